//! Every SQL statement of the domain, for SQLite; `postgres.rs` is its twin (same functions, same
//! signatures, dispatched by `engine.rs`). The statements both dialects write alike are stamped in
//! by [`shared_queries!`](crate::shared_sql::shared_queries); this file holds the rest. Functions
//! take a connection so callers decide the transaction. Writers are serialised by the store's
//! single write connection, so a row read in a write transaction stays as read until the commit.

use chrono::{DateTime, Utc};
use parkmate_protocol::Role;
use sqlx::{Row, SqliteConnection};

use crate::engine::{
    ACTIVE, BOOKING_SELECT, BookingScope, MAX_LISTED, NewBookingRow, Renewal, SlotInfo,
    WARN_LEAD_MS, from_ms, ms, parse_role,
};
use crate::model::{Booking, Employee, Lot, Slot, User};
use crate::types::{BookingStatus, BookingWindow, CarWashStatus, PaymentMethod, PaymentStatus};
use crate::{DomainError, corrupt};

crate::shared_sql::shared_queries!(SqliteConnection, sqlx::sqlite::SqliteRow);

// SQLite takes an untyped `NULL` parameter as is.

/// Users, or those of one role.
const USERS_BY_ROLE: &str =
    "SELECT id, name, email, role FROM users WHERE $1 IS NULL OR role = $1 ORDER BY id";

/// Lots, or the one with an id, or one owner's.
const LOTS: &str = "SELECT l.id, l.owner_id, u.name AS owner_name, l.name, l.price_per_hour_cents \
         FROM lots l JOIN users u ON u.id = l.owner_id \
         WHERE ($1 IS NULL OR l.id = $1) AND ($2 IS NULL OR l.owner_id = $2) ORDER BY l.id";

/// Every booking (`$1` is bound `NULL`).
const ALL_BOOKINGS: &str = "1 = 1 OR $1 IS NULL";

/// Whether an error is the overlap trigger's `RAISE(ABORT, 'slot_taken')`.
pub(crate) fn is_slot_taken(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.message().contains("slot_taken"))
}

// ---------------------------------------------------------------------------------------------
// Bookings

/// The single write connection already excludes every other writer until the commit: a plain read.
pub(crate) async fn booking_for_update(
    conn: &mut SqliteConnection,
    id: i64,
) -> Result<Option<Booking>, DomainError> {
    booking(conn, id).await
}

/// Whether an active booking other than `except` holds `slot_id` during `window`.
pub(crate) async fn slot_busy(
    conn: &mut SqliteConnection,
    slot_id: i64,
    window: BookingWindow,
    except: Option<i64>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM bookings WHERE slot_id = $1 AND status IN {ACTIVE} \
             AND start_at_ms < $3 AND $2 < end_at_ms AND id IS NOT $4)"
    ))
    .bind(slot_id)
    .bind(ms(window.start()))
    .bind(ms(window.end()))
    .bind(except)
    .fetch_one(conn)
    .await
}

// ---------------------------------------------------------------------------------------------
// The scheduler's queries

/// Expires up to `limit` active bookings whose window has ended; answers their ids. Only rows this
/// statement changed are returned, so each expiry is reported exactly once.
pub(crate) async fn expire_due(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "UPDATE bookings SET status = 'expired' WHERE id IN (SELECT id FROM bookings \
             WHERE status IN {ACTIVE} AND end_at_ms <= $1 ORDER BY end_at_ms LIMIT $2) RETURNING id"
    ))
    .bind(ms(now))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Records the 5-minute warning for up to `limit` active bookings that are within 5 minutes of
/// their end and not yet warned for this end; answers their ids. A window of 5 minutes or less
/// gets no warning (it would be due the moment it was made).
pub(crate) async fn warn_due(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "UPDATE bookings SET warned_end_at_ms = end_at_ms WHERE id IN (SELECT id FROM bookings \
             WHERE status IN {ACTIVE} AND end_at_ms > $1 AND end_at_ms - {WARN_LEAD_MS} <= $1 \
               AND end_at_ms - {WARN_LEAD_MS} > start_at_ms \
               AND (warned_end_at_ms IS NULL OR warned_end_at_ms != end_at_ms) \
             ORDER BY end_at_ms LIMIT $2) RETURNING id"
    ))
    .bind(ms(now))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The earliest pending deadline: a warning not yet sent, or an end.
pub(crate) async fn next_deadline(
    conn: &mut SqliteConnection,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let next: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT MIN(CASE WHEN (warned_end_at_ms IS NULL OR warned_end_at_ms != end_at_ms) \
                          AND end_at_ms - {WARN_LEAD_MS} > start_at_ms \
                     THEN end_at_ms - {WARN_LEAD_MS} ELSE end_at_ms END) \
         FROM bookings WHERE status IN {ACTIVE}"
    ))
    .fetch_one(conn)
    .await?;
    Ok(next.map(from_ms))
}
