//! Every SQL statement of the domain, for PostgreSQL: the twin of `sqlite.rs` (same functions, same
//! signatures, dispatched by `engine.rs`). The statements both dialects write alike are stamped in
//! by [`shared_queries!`](crate::shared_sql::shared_queries); this file holds where the dialects
//! differ (typed `NULL` parameters, `IS DISTINCT FROM`, booleans) and where concurrency does.
//! Nodes of a cluster write at once under READ COMMITTED, so what SQLite's single writer gave for
//! free is explicit here:
//! - a write path reads the booking it changes `FOR UPDATE` ([`booking_for_update`]), so its
//!   checks hold until its commit and a racing writer waits, then sees the result;
//! - the scheduler's updates lock their rows in deadline order (no deadlock between two passes)
//!   and re-check their conditions on the locked row, so two nodes never fire one deadline twice;
//! - overlaps are refused by the `slot_taken` exclusion constraint (SQLSTATE 23P01).

use chrono::{DateTime, Utc};
use parkmate_protocol::Role;
use sqlx::{PgConnection, Row};

use crate::engine::{
    ACTIVE, BOOKING_SELECT, BookingScope, MAX_LISTED, NewBookingRow, Renewal, SlotInfo,
    WARN_LEAD_MS, from_ms, ms, parse_role,
};
use crate::model::{Booking, Employee, Lot, Slot, User};
use crate::types::{BookingStatus, BookingWindow, CarWashStatus, PaymentMethod, PaymentStatus};
use crate::{DomainError, corrupt};

crate::shared_sql::shared_queries!(PgConnection, sqlx::postgres::PgRow);

// PostgreSQL must know a parameter's type, even a `NULL`'s: hence the casts.

/// Users, or those of one role.
const USERS_BY_ROLE: &str =
    "SELECT id, name, email, role FROM users WHERE $1::text IS NULL OR role = $1 ORDER BY id";

/// Lots, or the one with an id, or one owner's.
const LOTS: &str = "SELECT l.id, l.owner_id, u.name AS owner_name, l.name, l.price_per_hour_cents \
         FROM lots l JOIN users u ON u.id = l.owner_id \
         WHERE ($1::bigint IS NULL OR l.id = $1) AND ($2::bigint IS NULL OR l.owner_id = $2) ORDER BY l.id";

/// Every booking (`$1` is bound `NULL`).
const ALL_BOOKINGS: &str = "$1::bigint IS NULL OR TRUE";

/// SQLSTATE `exclusion_violation`: only the `slot_taken` constraint can raise it here.
const EXCLUSION_VIOLATION: &str = "23P01";

/// The transaction-scoped advisory lock demo seeding holds, so nodes starting together on one
/// empty database seed it once: "parkmate" in ASCII plus 2 (the store's notification write lock
/// and leader lease use +0 and +1).
const SEED_LOCK: i64 = parkmate_store::postgres::NOTIFICATION_WRITE_LOCK + 2;

/// Whether an error is the `slot_taken` exclusion constraint refusing an overlap.
pub(crate) fn is_slot_taken(e: &sqlx::Error) -> bool {
    // The constraint's name too: another exclusion constraint added later must not read as a
    // double booking.
    matches!(e, sqlx::Error::Database(db)
        if db.code().as_deref() == Some(EXCLUSION_VIOLATION) && db.constraint() == Some("slot_taken"))
}

/// Waits for [`SEED_LOCK`]; released when the caller's transaction ends.
pub(crate) async fn lock_seeding(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SEED_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bookings

/// Locks the booking's row until the transaction ends: a concurrent change (another node's
/// approve, the scheduler's expiry) waits for this transaction, or this one waits for it and then
/// reads its result, so the state checked here is the state the conditional update meets.
pub(crate) async fn booking_for_update(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<Booking>, DomainError> {
    let row = sqlx::query(&format!("{BOOKING_SELECT} WHERE b.id = $1 FOR UPDATE OF b"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(row_to_booking).transpose()
}

/// Whether an active booking other than `except` holds `slot_id` during `window`.
pub(crate) async fn slot_busy(
    conn: &mut PgConnection,
    slot_id: i64,
    window: BookingWindow,
    except: Option<i64>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM bookings WHERE slot_id = $1 AND status IN {ACTIVE} \
             AND start_at_ms < $3 AND $2 < end_at_ms AND id IS DISTINCT FROM $4)"
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
/// statement changed are returned, so each expiry is reported exactly once: the subquery locks
/// its rows in deadline order (`FOR UPDATE` re-reads a row another pass changed meanwhile and
/// drops it), and the outer `WHERE` re-checks the locked row (PostgreSQL re-evaluates only the
/// target's own conditions when it meets a row updated since its snapshot).
pub(crate) async fn expire_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "UPDATE bookings SET status = 'expired' WHERE id IN (SELECT id FROM bookings \
             WHERE status IN {ACTIVE} AND end_at_ms <= $1 ORDER BY end_at_ms, id LIMIT $2 FOR UPDATE) \
           AND status IN {ACTIVE} AND end_at_ms <= $1 RETURNING id"
    ))
    .bind(ms(now))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Records the 5-minute warning for up to `limit` active bookings that are within 5 minutes of
/// their end and not yet warned for this end; answers their ids. A window of 5 minutes or less
/// gets no warning (it would be due the moment it was made). Locked and re-checked like
/// [`expire_due`], so two nodes' passes never warn twice.
pub(crate) async fn warn_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "UPDATE bookings SET warned_end_at_ms = end_at_ms WHERE id IN (SELECT id FROM bookings \
             WHERE status IN {ACTIVE} AND end_at_ms > $1 AND end_at_ms - {WARN_LEAD_MS} <= $1 \
               AND end_at_ms - {WARN_LEAD_MS} > start_at_ms \
               AND warned_end_at_ms IS DISTINCT FROM end_at_ms \
             ORDER BY end_at_ms, id LIMIT $2 FOR UPDATE) \
           AND status IN {ACTIVE} AND end_at_ms > $1 AND end_at_ms - {WARN_LEAD_MS} <= $1 \
           AND end_at_ms - {WARN_LEAD_MS} > start_at_ms AND warned_end_at_ms IS DISTINCT FROM end_at_ms \
         RETURNING id"
    ))
    .bind(ms(now))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The earliest pending deadline: a warning not yet sent, or an end.
pub(crate) async fn next_deadline(
    conn: &mut PgConnection,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let next: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT MIN(CASE WHEN warned_end_at_ms IS DISTINCT FROM end_at_ms \
                          AND end_at_ms - {WARN_LEAD_MS} > start_at_ms \
                     THEN end_at_ms - {WARN_LEAD_MS} ELSE end_at_ms END) \
         FROM bookings WHERE status IN {ACTIVE}"
    ))
    .fetch_one(conn)
    .await?;
    Ok(next.map(from_ms))
}
