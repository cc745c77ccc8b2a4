//! Every SQL statement of the domain, for PostgreSQL: the twin of `sqlite.rs` (same functions, same
//! signatures, dispatched by `engine.rs`), differing where the dialects do (typed `NULL`
//! parameters, `IS DISTINCT FROM`, booleans) and where concurrency does. Nodes of a cluster write
//! at once under READ COMMITTED, so what SQLite's single writer gave for free is explicit here:
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

/// SQLSTATE `exclusion_violation`: only the `slot_taken` constraint can raise it here.
const EXCLUSION_VIOLATION: &str = "23P01";

/// The transaction-scoped advisory lock demo seeding holds, so nodes starting together on one
/// empty database seed it once: "parkmate" in ASCII plus 2 (the store's notification write lock
/// and leader lease use +0 and +1).
const SEED_LOCK: i64 = parkmate_store::postgres::NOTIFICATION_WRITE_LOCK + 2;

/// Whether an error is the `slot_taken` exclusion constraint refusing an overlap.
pub(crate) fn is_slot_taken(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(EXCLUSION_VIOLATION))
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
// Users

pub(crate) async fn insert_user(
    conn: &mut PgConnection,
    name: &str,
    email: &str,
    hash: &str,
    role: Role,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO users (name, email, password_hash, role, created_at_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(name)
    .bind(email)
    .bind(hash)
    .bind(role.as_str())
    .bind(ms(now))
    .fetch_one(conn)
    .await
}

fn row_to_user(row: &sqlx::postgres::PgRow) -> Result<User, DomainError> {
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        role: parse_role(row.try_get("role")?)?,
    })
}

pub(crate) async fn user(conn: &mut PgConnection, id: i64) -> Result<Option<User>, DomainError> {
    let row = sqlx::query("SELECT id, name, email, role FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(row_to_user).transpose()
}

/// The user and their password hash, for login.
pub(crate) async fn user_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<(User, String)>, DomainError> {
    let row =
        sqlx::query("SELECT id, name, email, role, password_hash FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(conn)
            .await?;
    match row {
        Some(row) => Ok(Some((row_to_user(&row)?, row.try_get("password_hash")?))),
        None => Ok(None),
    }
}

pub(crate) async fn users(
    conn: &mut PgConnection,
    role: Option<Role>,
) -> Result<Vec<User>, DomainError> {
    let rows = sqlx::query(
        "SELECT id, name, email, role FROM users WHERE $1::text IS NULL OR role = $1 ORDER BY id",
    )
    .bind(role.map(Role::as_str))
    .fetch_all(conn)
    .await?;
    rows.iter().map(row_to_user).collect()
}

pub(crate) async fn count_users(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(conn)
        .await
}

// ---------------------------------------------------------------------------------------------
// Lots, slots, employees

pub(crate) async fn insert_lot(
    conn: &mut PgConnection,
    owner_id: i64,
    name: &str,
    price_per_hour_cents: i64,
    slots: &[(i64, bool)],
) -> Result<i64, sqlx::Error> {
    let lot_id: i64 = sqlx::query_scalar(
        "INSERT INTO lots (owner_id, name, price_per_hour_cents) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(owner_id)
    .bind(name)
    .bind(price_per_hour_cents)
    .fetch_one(&mut *conn)
    .await?;
    for (number, car_wash) in slots {
        sqlx::query("INSERT INTO slots (lot_id, number, car_wash) VALUES ($1, $2, $3)")
            .bind(lot_id)
            .bind(number)
            .bind(car_wash)
            .execute(&mut *conn)
            .await?;
    }
    Ok(lot_id)
}

/// Adds an employee to a lot; `false` when they already worked there.
pub(crate) async fn insert_lot_employee(
    conn: &mut PgConnection,
    lot_id: i64,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO lot_employees (lot_id, user_id, assigned_at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(lot_id)
    .bind(user_id)
    .bind(ms(now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn works_at(
    conn: &mut PgConnection,
    user_id: i64,
    lot_id: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM lot_employees WHERE lot_id = $1 AND user_id = $2)",
    )
    .bind(lot_id)
    .bind(user_id)
    .fetch_one(conn)
    .await
}

/// Lots with their owner, employees and slots; `owner` filters to one owner's lots.
pub(crate) async fn lots(
    conn: &mut PgConnection,
    only_id: Option<i64>,
    owner: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Vec<Lot>, DomainError> {
    let rows = sqlx::query(
        "SELECT l.id, l.owner_id, u.name AS owner_name, l.name, l.price_per_hour_cents \
         FROM lots l JOIN users u ON u.id = l.owner_id \
         WHERE ($1::bigint IS NULL OR l.id = $1) AND ($2::bigint IS NULL OR l.owner_id = $2) ORDER BY l.id",
    )
    .bind(only_id)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    let mut lots = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let employees = sqlx::query(
            "SELECT u.id, u.name FROM lot_employees e JOIN users u ON u.id = e.user_id \
             WHERE e.lot_id = $1 ORDER BY u.id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Employee {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
            })
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
        let slots = sqlx::query(&format!(
            "SELECT s.id, s.number, s.car_wash, EXISTS (SELECT 1 FROM bookings b WHERE b.slot_id = s.id \
                 AND b.status IN {ACTIVE} AND b.start_at_ms <= $2 AND b.end_at_ms > $2) AS occupied \
             FROM slots s WHERE s.lot_id = $1 ORDER BY s.number"
        ))
        .bind(id)
        .bind(ms(now))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Slot {
                id: r.try_get("id")?,
                number: r.try_get("number")?,
                car_wash: r.try_get("car_wash")?,
                occupied: r.try_get("occupied")?,
            })
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
        lots.push(Lot {
            id,
            owner_id: row.try_get("owner_id")?,
            owner_name: row.try_get("owner_name")?,
            name: row.try_get("name")?,
            price_per_hour_cents: row.try_get("price_per_hour_cents")?,
            employees,
            slots,
        });
    }
    Ok(lots)
}

pub(crate) async fn slot_info(
    conn: &mut PgConnection,
    slot_id: i64,
) -> Result<Option<SlotInfo>, DomainError> {
    let row = sqlx::query(
        "SELECT l.price_per_hour_cents, s.car_wash FROM slots s JOIN lots l ON l.id = s.lot_id WHERE s.id = $1",
    )
    .bind(slot_id)
    .fetch_optional(conn)
    .await?;
    match row {
        Some(r) => Ok(Some(SlotInfo {
            price_per_hour_cents: r.try_get("price_per_hour_cents")?,
            car_wash: r.try_get("car_wash")?,
        })),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Bookings

fn row_to_booking(row: &sqlx::postgres::PgRow) -> Result<Booking, DomainError> {
    let status: String = row.try_get("status")?;
    let method: String = row.try_get("payment_method")?;
    let pay: String = row.try_get("payment_status")?;
    let wash: Option<String> = row.try_get("car_wash_status")?;
    let duration: i64 = row.try_get("duration_minutes")?;
    let renewed: Option<i64> = row.try_get("renewed_at_ms")?;
    let bad = |e: crate::types::InvalidInput| corrupt(e.to_string());
    Ok(Booking {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        user_name: row.try_get("user_name")?,
        lot_id: row.try_get("lot_id")?,
        lot_name: row.try_get("lot_name")?,
        lot_owner_id: row.try_get("lot_owner_id")?,
        slot_id: row.try_get("slot_id")?,
        slot_number: row.try_get("slot_number")?,
        window: BookingWindow::new(
            from_ms(row.try_get("start_at_ms")?),
            from_ms(row.try_get("end_at_ms")?),
        )
        .map_err(bad)?,
        duration_minutes: u32::try_from(duration).map_err(|e| corrupt(e.to_string()))?,
        status: status.parse::<BookingStatus>().map_err(bad)?,
        payment_method: method.parse::<PaymentMethod>().map_err(bad)?,
        payment_status: pay.parse::<PaymentStatus>().map_err(bad)?,
        amount_cents: row.try_get("amount_cents")?,
        car_wash: wash
            .map(|w| w.parse::<CarWashStatus>())
            .transpose()
            .map_err(bad)?,
        decline_reason: row.try_get("decline_reason")?,
        created_at: from_ms(row.try_get("created_at_ms")?),
        renewed_at: renewed.map(from_ms),
    })
}

pub(crate) async fn booking(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<Booking>, DomainError> {
    let row = sqlx::query(&format!("{BOOKING_SELECT} WHERE b.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(row_to_booking).transpose()
}

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

pub(crate) async fn bookings(
    conn: &mut PgConnection,
    scope: BookingScope,
) -> Result<Vec<Booking>, DomainError> {
    let (filter, id) = match scope {
        BookingScope::All => ("$1::bigint IS NULL OR TRUE", None),
        BookingScope::Driver(id) => ("b.user_id = $1", Some(id)),
        BookingScope::Owner(id) => ("l.owner_id = $1", Some(id)),
        BookingScope::Employee(id) => (
            "b.car_wash_status IS NOT NULL AND l.id IN (SELECT lot_id FROM lot_employees WHERE user_id = $1)",
            Some(id),
        ),
    };
    let rows = sqlx::query(&format!(
        "{BOOKING_SELECT} WHERE {filter} ORDER BY b.id DESC LIMIT $2"
    ))
    .bind(id)
    .bind(MAX_LISTED)
    .fetch_all(conn)
    .await?;
    rows.iter().map(row_to_booking).collect()
}

/// Inserts a `requested` booking; the exclusion constraint refuses an overlap (a racing insert
/// waits for the other's commit, then fails with 23P01).
pub(crate) async fn insert_booking(
    conn: &mut PgConnection,
    b: NewBookingRow<'_>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO bookings (user_id, slot_id, start_at_ms, end_at_ms, duration_minutes, status, payment_method, \
             payment_status, payment_ref, amount_cents, car_wash_status, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, 'requested', $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(b.user_id)
    .bind(b.slot_id)
    .bind(ms(b.window.start()))
    .bind(ms(b.window.end()))
    .bind(i64::from(b.duration_minutes))
    .bind(b.payment_method.as_str())
    .bind(b.payment_status.as_str())
    .bind(b.payment_ref)
    .bind(b.amount_cents)
    .bind(b.car_wash.then_some("pending"))
    .bind(ms(b.now))
    .fetch_one(conn)
    .await
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

/// The driver's own active booking of this slot made since `since` with this duration: what a
/// retried (double-clicked) create finds.
pub(crate) async fn recent_same_booking(
    conn: &mut PgConnection,
    user_id: i64,
    slot_id: i64,
    duration_minutes: u32,
    since: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(&format!(
        "SELECT id FROM bookings WHERE user_id = $1 AND slot_id = $2 AND duration_minutes = $3 \
             AND status IN {ACTIVE} AND created_at_ms >= $4 ORDER BY id DESC LIMIT 1"
    ))
    .bind(user_id)
    .bind(slot_id)
    .bind(i64::from(duration_minutes))
    .bind(ms(since))
    .fetch_optional(conn)
    .await
}

/// Moves a booking from `from` to `to`; `false` when it was not in `from` (a retry or a race).
pub(crate) async fn transition(
    conn: &mut PgConnection,
    id: i64,
    from: BookingStatus,
    to: BookingStatus,
    decline_reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bookings SET status = $3, decline_reason = COALESCE($4, decline_reason) WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(decline_reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn mark_cash_paid(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bookings SET payment_status = 'paid' \
         WHERE id = $1 AND payment_method = 'cash' AND payment_status = 'pending'",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn mark_car_wash_done(
    conn: &mut PgConnection,
    id: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE bookings SET car_wash_status = 'done' WHERE id = $1 AND car_wash_status = 'pending'")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// `expired` → `confirmed` with a new window; `false` when the booking is no longer expired (a
/// concurrent renewal won: it waits for the row, then its `WHERE` fails). The exclusion constraint
/// refuses a taken slot.
pub(crate) async fn renew(conn: &mut PgConnection, r: Renewal<'_>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE bookings SET status = 'confirmed', start_at_ms = $2, end_at_ms = $3, duration_minutes = $4, \
             payment_method = $5, payment_status = $6, payment_ref = COALESCE($7, payment_ref), \
             amount_cents = amount_cents + $8, renewed_at_ms = $9 \
         WHERE id = $1 AND status = 'expired'",
    )
    .bind(r.id)
    .bind(ms(r.window.start()))
    .bind(ms(r.window.end()))
    .bind(i64::from(r.duration_minutes))
    .bind(r.payment_method.as_str())
    .bind(r.payment_status.as_str())
    .bind(r.payment_ref)
    .bind(r.amount_cents)
    .bind(ms(r.now))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
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
