//! Bookings: reading them, the conditional updates that move them between states, and the
//! scheduler's queries over the one ordered set of deadlines (active bookings by end).
//!
//! Every state change is a conditional update (`… WHERE status = $from`) that answers whether it
//! happened, so a retried action or a racing writer finds nothing to change. Two active bookings
//! never overlap on a slot: the database refuses it for every writer (`DbError::SlotTaken`).

use chrono::{DateTime, Utc};

use crate::exec::{Exec, Row, Stmt};
use crate::model::ACTIVE_SQL;
use crate::{
    Booking, BookingStatus, BookingWindow, CarWashStatus, DbError, PaymentMethod, PaymentStatus,
    from_millis,
};

/// The 5-minute warning lead (event 1), in milliseconds.
pub const WARN_LEAD_MS: i64 = 5 * 60 * 1000;

/// Most rows a listing answers: the API has no paging yet, and a screen shows far fewer.
pub const MAX_LISTED: i64 = 1000;

/// The columns every booking query answers.
const BOOKING_SELECT: &str = "SELECT b.id, b.user_id, u.name AS user_name, l.id AS lot_id, l.name AS lot_name, \
        l.owner_id AS lot_owner_id, b.slot_id, s.number AS slot_number, b.start_at_ms, b.end_at_ms, \
        b.duration_minutes, b.status, b.payment_method, b.payment_status, b.amount_cents, b.car_wash_status, \
        b.decline_reason, b.created_at_ms, b.renewed_at_ms \
    FROM bookings b JOIN users u ON u.id = b.user_id JOIN slots s ON s.id = b.slot_id JOIN lots l ON l.id = s.lot_id";

/// Whose bookings a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingScope {
    All,
    Driver(i64),
    Owner(i64),
    /// Car-wash jobs at the lots the employee works at.
    Employee(i64),
}

/// A `requested` booking to insert.
#[derive(Debug, Clone)]
pub struct NewBookingRow<'a> {
    pub user_id: i64,
    pub slot_id: i64,
    pub window: BookingWindow,
    pub duration_minutes: u32,
    pub payment_method: PaymentMethod,
    pub payment_status: PaymentStatus,
    pub payment_ref: Option<&'a str>,
    pub amount_cents: i64,
    pub car_wash: bool,
    pub now: DateTime<Utc>,
}

/// A renewal: an expired booking gets a new window, paid again.
#[derive(Debug, Clone)]
pub struct Renewal<'a> {
    pub id: i64,
    pub window: BookingWindow,
    pub duration_minutes: u32,
    pub payment_method: PaymentMethod,
    pub payment_status: PaymentStatus,
    pub payment_ref: Option<&'a str>,
    pub amount_cents: i64,
    pub now: DateTime<Utc>,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn row_to_booking(row: &Row) -> Result<Booking, DbError> {
    let text = |column: &str| row.get::<String>(column);
    let bad = |e: crate::UnknownValue| DbError::corrupt(e.to_string());
    let duration: i64 = row.get("duration_minutes")?;
    let wash: Option<String> = row.get("car_wash_status")?;
    let renewed: Option<i64> = row.get("renewed_at_ms")?;
    Ok(Booking {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        user_name: row.get("user_name")?,
        lot_id: row.get("lot_id")?,
        lot_name: row.get("lot_name")?,
        lot_owner_id: row.get("lot_owner_id")?,
        slot_id: row.get("slot_id")?,
        slot_number: row.get("slot_number")?,
        window: BookingWindow::new(
            from_millis(row.get("start_at_ms")?),
            from_millis(row.get("end_at_ms")?),
        )
        .map_err(|e| DbError::corrupt(e.to_string()))?,
        duration_minutes: u32::try_from(duration).map_err(|e| DbError::corrupt(e.to_string()))?,
        status: text("status")?.parse::<BookingStatus>().map_err(bad)?,
        payment_method: text("payment_method")?
            .parse::<PaymentMethod>()
            .map_err(bad)?,
        payment_status: text("payment_status")?
            .parse::<PaymentStatus>()
            .map_err(bad)?,
        amount_cents: row.get("amount_cents")?,
        car_wash: wash
            .map(|w| w.parse::<CarWashStatus>())
            .transpose()
            .map_err(bad)?,
        decline_reason: row.get("decline_reason")?,
        created_at: from_millis(row.get("created_at_ms")?),
        renewed_at: renewed.map(from_millis),
    })
}

pub async fn booking(c: &mut impl Exec, id: i64) -> Result<Option<Booking>, DbError> {
    let sql = format!("{BOOKING_SELECT} WHERE b.id = $1");
    c.fetch_optional(Stmt::new(&sql).bind(id))
        .await?
        .as_ref()
        .map(row_to_booking)
        .transpose()
}

/// The booking a write path is about to change, locked until the transaction ends: a concurrent
/// change (another node's approve, the scheduler's expiry) waits for this transaction, or this one
/// waits for it and then reads its result, so the state checked is the state the conditional
/// update meets. (On SQLite the single writer already guarantees it: `Dialect::lock_booking`.)
pub async fn booking_for_update(c: &mut impl Exec, id: i64) -> Result<Option<Booking>, DbError> {
    let sql = format!(
        "{BOOKING_SELECT} WHERE b.id = $1{}",
        c.dialect().lock_booking
    );
    c.fetch_optional(Stmt::new(&sql).bind(id))
        .await?
        .as_ref()
        .map(row_to_booking)
        .transpose()
}

/// These bookings, in the order of `ids` (missing ones left out).
pub async fn bookings_by_ids(c: &mut impl Exec, ids: &[i64]) -> Result<Vec<Booking>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "{BOOKING_SELECT} WHERE b.id IN ({})",
        placeholders.join(", ")
    );
    let mut stmt = Stmt::new(&sql);
    for id in ids {
        stmt = stmt.bind(*id);
    }
    let mut found = c
        .fetch_all(stmt)
        .await?
        .iter()
        .map(row_to_booking)
        .collect::<Result<Vec<_>, DbError>>()?;
    found.sort_by_key(|b| ids.iter().position(|id| *id == b.id));
    Ok(found)
}

/// The bookings of a scope, newest first (at most [`MAX_LISTED`]).
pub async fn bookings(c: &mut impl Exec, scope: BookingScope) -> Result<Vec<Booking>, DbError> {
    let (filter, id) = match scope {
        BookingScope::All => ("$1 IS NULL", None),
        BookingScope::Driver(id) => ("b.user_id = $1", Some(id)),
        BookingScope::Owner(id) => ("l.owner_id = $1", Some(id)),
        BookingScope::Employee(id) => (
            "b.car_wash_status IS NOT NULL AND l.id IN (SELECT lot_id FROM lot_employees WHERE user_id = $1)",
            Some(id),
        ),
    };
    let sql = format!("{BOOKING_SELECT} WHERE {filter} ORDER BY b.id DESC LIMIT $2");
    c.fetch_all(Stmt::new(&sql).bind(id).bind(MAX_LISTED))
        .await?
        .iter()
        .map(row_to_booking)
        .collect()
}

/// Inserts a `requested` booking; the database refuses an overlap with `SlotTaken`.
pub async fn insert_booking(c: &mut impl Exec, b: NewBookingRow<'_>) -> Result<i64, DbError> {
    c.scalar(
        Stmt::new(
            "INSERT INTO bookings (user_id, slot_id, start_at_ms, end_at_ms, duration_minutes, status, \
                 payment_method, payment_status, payment_ref, amount_cents, car_wash_status, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, 'requested', $6, $7, $8, $9, $10, $11) RETURNING id AS v",
        )
        .bind(b.user_id)
        .bind(b.slot_id)
        .bind(ms(b.window.start()))
        .bind(ms(b.window.end()))
        .bind(b.duration_minutes)
        .bind(b.payment_method.as_str())
        .bind(b.payment_status.as_str())
        .bind(b.payment_ref)
        .bind(b.amount_cents)
        .bind(b.car_wash.then_some("pending"))
        .bind(ms(b.now)),
    )
    .await
}

/// Whether an active booking other than `except` holds `slot_id` during `window`.
pub async fn slot_busy(
    c: &mut impl Exec,
    slot_id: i64,
    window: BookingWindow,
    except: Option<i64>,
) -> Result<bool, DbError> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM bookings WHERE slot_id = $1 AND status IN {ACTIVE_SQL} \
             AND start_at_ms < $3 AND $2 < end_at_ms AND id IS DISTINCT FROM $4) AS v"
    );
    c.scalar(
        Stmt::new(&sql)
            .bind(slot_id)
            .bind(ms(window.start()))
            .bind(ms(window.end()))
            .bind(except),
    )
    .await
}

/// The driver's own active booking of this slot made since `since` with this duration: what a
/// retried (double-clicked) create finds.
pub async fn recent_same_booking(
    c: &mut impl Exec,
    user_id: i64,
    slot_id: i64,
    duration_minutes: u32,
    since: DateTime<Utc>,
) -> Result<Option<i64>, DbError> {
    let sql = format!(
        "SELECT id FROM bookings WHERE user_id = $1 AND slot_id = $2 AND duration_minutes = $3 \
             AND status IN {ACTIVE_SQL} AND created_at_ms >= $4 ORDER BY id DESC LIMIT 1"
    );
    c.fetch_optional(
        Stmt::new(&sql)
            .bind(user_id)
            .bind(slot_id)
            .bind(duration_minutes)
            .bind(ms(since)),
    )
    .await?
    .map(|row| row.get("id"))
    .transpose()
}

/// Moves a booking from `from` to `to`; `false` when it was not in `from` (a retry or a race).
pub async fn transition(
    c: &mut impl Exec,
    id: i64,
    from: BookingStatus,
    to: BookingStatus,
    decline_reason: Option<&str>,
) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE bookings SET status = $3, decline_reason = COALESCE($4, decline_reason) \
                 WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(decline_reason),
        )
        .await?;
    Ok(changed == 1)
}

/// Records the cash as received; `false` when it was not pending cash.
pub async fn mark_cash_paid(c: &mut impl Exec, id: i64) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE bookings SET payment_status = 'paid' \
                 WHERE id = $1 AND payment_method = 'cash' AND payment_status = 'pending'",
            )
            .bind(id),
        )
        .await?;
    Ok(changed == 1)
}

/// Marks the ordered car wash done; `false` when none was pending.
pub async fn mark_car_wash_done(c: &mut impl Exec, id: i64) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE bookings SET car_wash_status = 'done' WHERE id = $1 AND car_wash_status = 'pending'",
            )
            .bind(id),
        )
        .await?;
    Ok(changed == 1)
}

/// `expired` → `confirmed` with a new window; `false` when the booking is no longer expired (a
/// concurrent renewal won: on PostgreSQL it waits for the row, then its `WHERE` fails). The
/// database refuses a taken slot with `SlotTaken`.
pub async fn renew(c: &mut impl Exec, r: Renewal<'_>) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE bookings SET status = 'confirmed', start_at_ms = $2, end_at_ms = $3, \
                     duration_minutes = $4, payment_method = $5, payment_status = $6, \
                     payment_ref = COALESCE($7, payment_ref), amount_cents = amount_cents + $8, \
                     renewed_at_ms = $9 \
                 WHERE id = $1 AND status = 'expired'",
            )
            .bind(r.id)
            .bind(ms(r.window.start()))
            .bind(ms(r.window.end()))
            .bind(r.duration_minutes)
            .bind(r.payment_method.as_str())
            .bind(r.payment_status.as_str())
            .bind(r.payment_ref)
            .bind(r.amount_cents)
            .bind(ms(r.now)),
        )
        .await?;
    Ok(changed == 1)
}

// ---------------------------------------------------------------------------------------------
// The scheduler's queries. The due rows are picked by a subquery that locks them in deadline
// order (`Dialect::lock_rows`: `FOR UPDATE` re-reads a row another pass changed meanwhile and
// drops it), and the outer `WHERE` re-checks the locked row (PostgreSQL re-evaluates only the
// target's own conditions when it meets a row updated since its snapshot). Only rows a statement
// changed are returned, so each deadline fires exactly once even if two passes race.

/// The conditions of a booking due for its 5-minute warning at `$1`: active, within 5 minutes of
/// its end, not yet warned for this end, and long enough that the warning is not due the moment
/// it was made.
fn warning_due() -> String {
    format!(
        "status IN {ACTIVE_SQL} AND end_at_ms > $1 AND end_at_ms - {WARN_LEAD_MS} <= $1 \
         AND end_at_ms - {WARN_LEAD_MS} > start_at_ms AND warned_end_at_ms IS DISTINCT FROM end_at_ms"
    )
}

/// Expires up to `limit` active bookings whose window has ended; answers their ids.
pub async fn expire_due(
    c: &mut impl Exec,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, DbError> {
    let due = format!("status IN {ACTIVE_SQL} AND end_at_ms <= $1");
    let sql = format!(
        "UPDATE bookings SET status = 'expired' WHERE id IN (SELECT id FROM bookings \
             WHERE {due} ORDER BY end_at_ms, id LIMIT $2{}) AND {due} RETURNING id",
        c.dialect().lock_rows
    );
    c.fetch_all(Stmt::new(&sql).bind(ms(now)).bind(limit))
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect()
}

/// Records the 5-minute warning for up to `limit` bookings that are due for it; answers their ids.
pub async fn warn_due(
    c: &mut impl Exec,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, DbError> {
    let due = warning_due();
    let sql = format!(
        "UPDATE bookings SET warned_end_at_ms = end_at_ms WHERE id IN (SELECT id FROM bookings \
             WHERE {due} ORDER BY end_at_ms, id LIMIT $2{}) AND {due} RETURNING id",
        c.dialect().lock_rows
    );
    c.fetch_all(Stmt::new(&sql).bind(ms(now)).bind(limit))
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect()
}

/// The earliest pending deadline: a warning not yet sent, or an end.
pub async fn next_deadline(c: &mut impl Exec) -> Result<Option<DateTime<Utc>>, DbError> {
    let sql = format!(
        "SELECT MIN(CASE WHEN warned_end_at_ms IS DISTINCT FROM end_at_ms \
                          AND end_at_ms - {WARN_LEAD_MS} > start_at_ms \
                     THEN end_at_ms - {WARN_LEAD_MS} ELSE end_at_ms END) AS v \
         FROM bookings WHERE status IN {ACTIVE_SQL}"
    );
    let next: Option<i64> = c.scalar(Stmt::new(&sql)).await?;
    Ok(next.map(from_millis))
}
