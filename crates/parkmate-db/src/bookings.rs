//! Bookings: reading them, the conditional updates that move them between states, and the
//! scheduler's queries over the one ordered set of deadlines (active bookings by end).
//!
//! Every state change is a conditional update (`… WHERE status = $from`) that answers whether it
//! happened, so a retried action or a racing writer finds nothing to change. Two active bookings
//! never overlap on a slot: the database refuses it for every writer (`DbError::SlotTaken`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::exec::{Exec, Row, Stmt};
use crate::model::ACTIVE_SQL;
use crate::{
    Booking, BookingStatus, BookingWindow, CarWashStatus, DbError, Payment, PaymentKind,
    PaymentMethod, PaymentState, PaymentStatus, Window, from_millis,
};

/// The 5-minute warning lead (event 1), in milliseconds.
pub const WARN_LEAD_MS: i64 = 5 * 60 * 1000;

/// Most rows a listing answers: the API has no paging yet, and a screen shows far fewer.
pub const MAX_LISTED: i64 = 1000;

/// The columns every booking query answers; its windows are read by [`attach_windows`].
const BOOKING_SELECT: &str = "SELECT b.id, b.user_id, u.name AS user_name, l.id AS lot_id, l.name AS lot_name, \
        l.owner_id AS lot_owner_id, b.slot_id, s.number AS slot_number, b.start_at_ms, b.end_at_ms, \
        b.duration_minutes, b.status, b.car_wash_status, b.decline_reason, b.created_at_ms, \
        b.renewed_at_ms, b.requested_at_ms, b.approved_at_ms \
    FROM bookings b JOIN users u ON u.id = b.user_id JOIN slots s ON s.id = b.slot_id JOIN lots l ON l.id = s.lot_id";

/// A window with its charge (`c_`) and the charge's refund (`r_`), in `booking_id, seq` order.
const WINDOW_SELECT: &str = "SELECT w.booking_id, w.seq, w.start_at_ms, w.end_at_ms, w.duration_minutes, \
        w.amount_cents, w.payment_method, w.payment_status, w.cash_verified_at_ms, \
        c.id AS c_id, c.status AS c_status, c.amount_cents AS c_amount, c.idempotency_key AS c_key, \
        c.gateway_ref AS c_ref, c.created_at_ms AS c_created, c.settled_at_ms AS c_settled, \
        r.id AS r_id, r.status AS r_status, r.amount_cents AS r_amount, r.idempotency_key AS r_key, \
        r.gateway_ref AS r_ref, r.created_at_ms AS r_created, r.settled_at_ms AS r_settled \
    FROM booking_windows w LEFT JOIN payments c ON c.id = w.payment_id \
        LEFT JOIN payments r ON r.refund_of = c.id";

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

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn bad(e: crate::UnknownValue) -> DbError {
    DbError::corrupt(e.to_string())
}

fn small(column: &str, v: i64) -> Result<u32, DbError> {
    u32::try_from(v).map_err(|e| DbError::corrupt(format!("{column}: {e}")))
}

/// A booking row before its windows are attached.
fn row_to_booking(row: &Row) -> Result<Booking, DbError> {
    let text = |column: &str| row.get::<String>(column);
    let wash: Option<String> = row.get("car_wash_status")?;
    let renewed: Option<i64> = row.get("renewed_at_ms")?;
    let approved: Option<i64> = row.get("approved_at_ms")?;
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
        duration_minutes: small("duration_minutes", row.get("duration_minutes")?)?,
        status: text("status")?.parse::<BookingStatus>().map_err(bad)?,
        // Aggregates of the windows, filled in by `attach_windows`.
        payment_method: PaymentMethod::Cash,
        payment_status: PaymentStatus::Pending,
        amount_cents: 0,
        refunded_cents: 0,
        car_wash: wash
            .map(|w| w.parse::<CarWashStatus>())
            .transpose()
            .map_err(bad)?,
        decline_reason: row.get("decline_reason")?,
        created_at: from_millis(row.get("created_at_ms")?),
        renewed_at: renewed.map(from_millis),
        requested_at: from_millis(row.get("requested_at_ms")?),
        approved_at: approved.map(from_millis),
        windows: Vec::new(),
    })
}

/// A payment of a window row, from the columns with this prefix (`c_` charge, `r_` refund).
fn payment_of(row: &Row, prefix: &str, kind: PaymentKind) -> Result<Option<Payment>, DbError> {
    let col = |name: &str| format!("{prefix}{name}");
    let Some(id) = row.get::<Option<i64>>(&col("id"))? else {
        return Ok(None);
    };
    let status: String = row.get(&col("status"))?;
    let settled: Option<i64> = row.get(&col("settled"))?;
    Ok(Some(Payment {
        id,
        kind,
        status: status.parse::<PaymentState>().map_err(bad)?,
        amount_cents: row.get(&col("amount"))?,
        idempotency_key: row.get(&col("key"))?,
        gateway_ref: row.get(&col("ref"))?,
        created_at: from_millis(row.get(&col("created"))?),
        settled_at: settled.map(from_millis),
    }))
}

fn row_to_window(row: &Row) -> Result<(i64, Window), DbError> {
    let verified: Option<i64> = row.get("cash_verified_at_ms")?;
    let window = Window {
        seq: small("seq", row.get("seq")?)?,
        span: BookingWindow::new(
            from_millis(row.get("start_at_ms")?),
            from_millis(row.get("end_at_ms")?),
        )
        .map_err(|e| DbError::corrupt(e.to_string()))?,
        duration_minutes: small("duration_minutes", row.get("duration_minutes")?)?,
        amount_cents: row.get("amount_cents")?,
        payment_method: row
            .get::<String>("payment_method")?
            .parse::<PaymentMethod>()
            .map_err(bad)?,
        payment_status: row
            .get::<String>("payment_status")?
            .parse::<PaymentStatus>()
            .map_err(bad)?,
        cash_verified_at: verified.map(from_millis),
        charge: payment_of(row, "c_", PaymentKind::Charge)?,
        refund: payment_of(row, "r_", PaymentKind::Refund)?,
    };
    Ok((row.get("booking_id")?, window))
}

/// Reads the windows of `bookings` (one statement for all of them) and fills in what the booking
/// answers about its payments, which is derived from its windows, never stored twice.
async fn attach_windows(c: &mut impl Exec, bookings: &mut [Booking]) -> Result<(), DbError> {
    if bookings.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=bookings.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "{WINDOW_SELECT} WHERE w.booking_id IN ({}) ORDER BY w.booking_id, w.seq",
        placeholders.join(", ")
    );
    let mut stmt = Stmt::new(&sql);
    for b in bookings.iter() {
        stmt = stmt.bind(b.id);
    }
    let mut windows: HashMap<i64, Vec<Window>> = HashMap::with_capacity(bookings.len());
    for row in c.fetch_all(stmt).await? {
        let (booking_id, window) = row_to_window(&row)?;
        windows.entry(booking_id).or_default().push(window);
    }
    for b in bookings.iter_mut() {
        b.windows = windows.remove(&b.id).unwrap_or_default();
        let last = b
            .windows
            .last()
            .ok_or_else(|| DbError::corrupt(format!("booking {} has no window", b.id)))?;
        b.payment_method = last.payment_method;
        b.amount_cents = b.windows.iter().map(|w| w.amount_cents).sum();
        b.refunded_cents = b
            .windows
            .iter()
            .filter(|w| w.payment_status == PaymentStatus::Refunded)
            .map(|w| w.amount_cents)
            .sum();
        let status = |s| b.windows.iter().any(|w| w.payment_status == s);
        b.payment_status = if status(PaymentStatus::Pending) {
            PaymentStatus::Pending
        } else if status(PaymentStatus::Paid) {
            PaymentStatus::Paid
        } else {
            PaymentStatus::Refunded
        };
    }
    Ok(())
}

async fn one(c: &mut impl Exec, row: Option<Row>) -> Result<Option<Booking>, DbError> {
    let Some(row) = row else { return Ok(None) };
    let mut b = [row_to_booking(&row)?];
    attach_windows(c, &mut b).await?;
    let [b] = b;
    Ok(Some(b))
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

/// The conditions of a request whose hold (`$2` ms) ran out at `$1`.
const LAPSE_DUE: &str = "status = 'requested' AND requested_at_ms + $2 <= $1";

/// Lapses up to `limit` requests not approved within `hold_ms` of being made; answers their ids.
/// Run after [`expire_due`]: a request whose window also ended expires instead.
pub async fn lapse_due(
    c: &mut impl Exec,
    now: DateTime<Utc>,
    hold_ms: i64,
    limit: i64,
) -> Result<Vec<i64>, DbError> {
    let sql = format!(
        "UPDATE bookings SET status = 'lapsed' WHERE id IN (SELECT id FROM bookings \
             WHERE {LAPSE_DUE} ORDER BY requested_at_ms, id LIMIT $3{}) AND {LAPSE_DUE} RETURNING id",
        c.dialect().lock_rows
    );
    c.fetch_all(Stmt::new(&sql).bind(ms(now)).bind(hold_ms).bind(limit))
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect()
}

/// When the oldest request's hold of `hold_ms` runs out.
pub async fn next_lapse(c: &mut impl Exec, hold_ms: i64) -> Result<Option<DateTime<Utc>>, DbError> {
    let next: Option<i64> = c
        .scalar(
            Stmt::new(
                "SELECT MIN(requested_at_ms) + $1 AS v FROM bookings WHERE status = 'requested'",
            )
            .bind(hold_ms),
        )
        .await?;
    Ok(next.map(from_millis))
}
