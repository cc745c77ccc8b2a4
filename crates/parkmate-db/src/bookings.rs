//! Bookings: reading them, the conditional updates that move them between states, and the
//! scheduler's queries over the one ordered set of deadlines (active bookings by end).
//!
//! Every state change is a conditional update (`… WHERE status = $from`) that answers whether it
//! happened, so a retried action or a racing writer finds nothing to change. Two active bookings
//! never overlap on a slot: the database refuses it for every writer (`DbError::SlotTaken`).

use chrono::{DateTime, Utc};

mod rows;
mod schedule;

pub use schedule::{expire_due, lapse_due, next_deadline, next_lapse, warn_due};

use crate::exec::{Exec, Stmt};
use crate::model::ACTIVE_SQL;
use crate::{Booking, BookingStatus, BookingWindow, DbError, PaymentMethod, PaymentStatus};
use rows::{BOOKING_SELECT, attach_windows, ms, one, row_to_booking, small};

/// The 5-minute warning lead (event 1), in milliseconds.
pub const WARN_LEAD_MS: i64 = 5 * 60 * 1000;

/// Most rows a listing answers: the API has no paging yet, and a screen shows far fewer.
pub const MAX_LISTED: i64 = 1000;

/// Whose bookings a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingScope {
    All,
    Driver(i64),
    Owner(i64),
    /// Car-wash jobs at the lots the employee works at.
    Employee(i64),
}

/// A `requested` booking to insert, with its first window.
#[derive(Debug, Clone)]
pub struct NewBookingRow {
    pub user_id: i64,
    pub slot_id: i64,
    pub window: BookingWindow,
    pub duration_minutes: u32,
    pub payment_method: PaymentMethod,
    /// The charge that paid the window (online; see `crate::payments`), `None` for cash.
    pub payment_id: Option<i64>,
    pub amount_cents: i64,
    pub car_wash: bool,
    pub now: DateTime<Utc>,
}

/// A renewal: an expired booking gets a new window with its own payment.
#[derive(Debug, Clone)]
pub struct Renewal {
    pub id: i64,
    pub window: BookingWindow,
    pub duration_minutes: u32,
    /// `confirmed` for a booking that was approved once, `requested` (a new request, waiting
    /// for approval again) for one that never was.
    pub to: BookingStatus,
    pub payment_method: PaymentMethod,
    pub payment_id: Option<i64>,
    pub amount_cents: i64,
    pub now: DateTime<Utc>,
}

pub async fn booking(c: &mut impl Exec, id: i64) -> Result<Option<Booking>, DbError> {
    let sql = format!("{BOOKING_SELECT} WHERE b.id = $1");
    let row = c.fetch_optional(Stmt::new(&sql).bind(id)).await?;
    one(c, row).await
}

/// The booking a write path is about to change, locked until the transaction ends: a concurrent
/// change (another node's approve, the scheduler's expiry) waits for this transaction, or this one
/// waits for it and then reads its result, so the state checked is the state the conditional
/// update meets. (On SQLite the single writer already guarantees it: `Dialect::lock_booking`.)
/// Its windows are covered by the same lock: every path that changes them locks the booking first.
pub async fn booking_for_update(c: &mut impl Exec, id: i64) -> Result<Option<Booking>, DbError> {
    let sql = format!(
        "{BOOKING_SELECT} WHERE b.id = $1{}",
        c.dialect().lock_booking
    );
    let row = c.fetch_optional(Stmt::new(&sql).bind(id)).await?;
    one(c, row).await
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
    attach_windows(c, &mut found).await?;
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
    let mut found = c
        .fetch_all(Stmt::new(&sql).bind(id).bind(MAX_LISTED))
        .await?
        .iter()
        .map(row_to_booking)
        .collect::<Result<Vec<_>, DbError>>()?;
    attach_windows(c, &mut found).await?;
    Ok(found)
}

/// Inserts a `requested` booking and its first window; the database refuses an overlap with
/// `SlotTaken`.
pub async fn insert_booking(c: &mut impl Exec, b: NewBookingRow) -> Result<i64, DbError> {
    let id: i64 = c
        .scalar(
            Stmt::new(
                "INSERT INTO bookings (user_id, slot_id, start_at_ms, end_at_ms, duration_minutes, status, \
                     car_wash_status, created_at_ms, requested_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, 'requested', $6, $7, $7) RETURNING id AS v",
            )
            .bind(b.user_id)
            .bind(b.slot_id)
            .bind(ms(b.window.start()))
            .bind(ms(b.window.end()))
            .bind(b.duration_minutes)
            .bind(b.car_wash.then_some("pending"))
            .bind(ms(b.now)),
        )
        .await?;
    insert_window(
        c,
        id,
        b.window,
        b.duration_minutes,
        b.amount_cents,
        b.payment_method,
        b.payment_id,
        b.now,
    )
    .await?;
    Ok(id)
}

/// Appends a window to a booking; answers its `seq`. Paid at once when a charge pays it,
/// pending (cash to verify) otherwise.
#[allow(clippy::too_many_arguments)]
async fn insert_window(
    c: &mut impl Exec,
    booking_id: i64,
    window: BookingWindow,
    duration_minutes: u32,
    amount_cents: i64,
    method: PaymentMethod,
    payment_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<u32, DbError> {
    let status = if payment_id.is_some() {
        PaymentStatus::Paid
    } else {
        PaymentStatus::Pending
    };
    let seq: i64 = c
        .scalar(
            Stmt::new(
                "INSERT INTO booking_windows (booking_id, seq, start_at_ms, end_at_ms, duration_minutes, \
                     amount_cents, payment_method, payment_status, payment_id, created_at_ms) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9 \
                 FROM booking_windows WHERE booking_id = $1 RETURNING seq AS v",
            )
            .bind(booking_id)
            .bind(ms(window.start()))
            .bind(ms(window.end()))
            .bind(duration_minutes)
            .bind(amount_cents)
            .bind(method.as_str())
            .bind(status.as_str())
            .bind(payment_id)
            .bind(ms(now)),
        )
        .await?;
    small("seq", seq)
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

/// `requested` → `confirmed`, recording when; `false` when it was not requested.
pub async fn approve(c: &mut impl Exec, id: i64, now: DateTime<Utc>) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE bookings SET status = 'confirmed', approved_at_ms = $2 \
                 WHERE id = $1 AND status = 'requested'",
            )
            .bind(id)
            .bind(ms(now)),
        )
        .await?;
    Ok(changed == 1)
}

/// Records window `seq`'s cash as received; `false` when it was not pending cash.
pub async fn mark_cash_paid(
    c: &mut impl Exec,
    id: i64,
    seq: u32,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE booking_windows SET payment_status = 'paid', cash_verified_at_ms = $3 \
                 WHERE booking_id = $1 AND seq = $2 AND payment_method = 'cash' \
                     AND payment_status = 'pending'",
            )
            .bind(id)
            .bind(seq)
            .bind(ms(now)),
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

/// `expired` → `r.to` with a new window (its own payment); answers the window's `seq`, `None`
/// when the booking is no longer expired (a concurrent renewal won: on PostgreSQL it waits for the
/// row, then its `WHERE` fails). The database refuses a taken slot with `SlotTaken`. A renewal
/// into `requested` is a new request: its hold starts now.
pub async fn renew(c: &mut impl Exec, r: Renewal) -> Result<Option<u32>, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE bookings SET status = $2, start_at_ms = $3, end_at_ms = $4, \
                     duration_minutes = $5, renewed_at_ms = $6, \
                     requested_at_ms = CASE WHEN $2 = 'requested' THEN $6 ELSE requested_at_ms END \
                 WHERE id = $1 AND status = 'expired'",
            )
            .bind(r.id)
            .bind(r.to.as_str())
            .bind(ms(r.window.start()))
            .bind(ms(r.window.end()))
            .bind(r.duration_minutes)
            .bind(ms(r.now)),
        )
        .await?;
    if changed != 1 {
        return Ok(None);
    }
    let seq = insert_window(
        c,
        r.id,
        r.window,
        r.duration_minutes,
        r.amount_cents,
        r.payment_method,
        r.payment_id,
        r.now,
    )
    .await?;
    Ok(Some(seq))
}

/// How many bookings `user_id` holds a slot with at `now` (the cap of active bookings per
/// driver). Locks the driver's row first, so two of their requests racing on different nodes
/// count one after the other (SQLite's single writer already does).
pub async fn lock_and_count_active(
    c: &mut impl Exec,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<i64, DbError> {
    let lock = format!(
        "SELECT id FROM users WHERE id = $1{}",
        c.dialect().lock_rows
    );
    c.fetch_optional(Stmt::new(&lock).bind(user_id)).await?;
    count_active(c, user_id, now).await
}

/// How many bookings `user_id` holds a slot with at `now`, without a lock (a pre-check).
pub async fn count_active(
    c: &mut impl Exec,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<i64, DbError> {
    let sql = format!(
        "SELECT COUNT(*) AS v FROM bookings WHERE user_id = $1 AND status IN {ACTIVE_SQL} \
             AND end_at_ms > $2"
    );
    c.scalar(Stmt::new(&sql).bind(user_id).bind(ms(now))).await
}
