//! A booking's rows: the columns every query reads, and rows turned into [`Booking`]s with their
//! windows and payments attached.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::exec::{Exec, Row, Stmt};
use crate::{
    Booking, BookingStatus, BookingWindow, CarWashStatus, DbError, Payment, PaymentKind,
    PaymentMethod, PaymentState, PaymentStatus, Window, from_millis,
};

/// The columns every booking query answers; its windows are read by [`attach_windows`].
pub(super) const BOOKING_SELECT: &str = "SELECT b.id, b.user_id, u.name AS user_name, l.id AS lot_id, l.name AS lot_name, \
        l.owner_id AS lot_owner_id, b.slot_id, s.number AS slot_number, b.start_at_ms, b.end_at_ms, \
        b.duration_minutes, b.status, b.car_wash_status, b.decline_reason, b.created_at_ms, \
        b.renewed_at_ms, b.requested_at_ms, b.approved_at_ms \
    FROM bookings b JOIN users u ON u.id = b.user_id JOIN slots s ON s.id = b.slot_id JOIN lots l ON l.id = s.lot_id";

/// A window with its charge (`c_`) and the charge's refund (`r_`), in `booking_id, seq` order.
pub(super) const WINDOW_SELECT: &str = "SELECT w.booking_id, w.seq, w.start_at_ms, w.end_at_ms, w.duration_minutes, \
        w.amount_cents, w.payment_method, w.payment_status, w.cash_verified_at_ms, \
        c.id AS c_id, c.status AS c_status, c.amount_cents AS c_amount, c.idempotency_key AS c_key, \
        c.gateway_ref AS c_ref, c.created_at_ms AS c_created, c.settled_at_ms AS c_settled, \
        r.id AS r_id, r.status AS r_status, r.amount_cents AS r_amount, r.idempotency_key AS r_key, \
        r.gateway_ref AS r_ref, r.created_at_ms AS r_created, r.settled_at_ms AS r_settled \
    FROM booking_windows w LEFT JOIN payments c ON c.id = w.payment_id \
        LEFT JOIN payments r ON r.refund_of = c.id";

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn bad(e: crate::UnknownValue) -> DbError {
    DbError::corrupt(e.to_string())
}

pub(super) fn small(column: &str, v: i64) -> Result<u32, DbError> {
    u32::try_from(v).map_err(|e| DbError::corrupt(format!("{column}: {e}")))
}

/// A booking row before its windows are attached.
pub(super) fn row_to_booking(row: &Row) -> Result<Booking, DbError> {
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
pub(super) fn payment_of(
    row: &Row,
    prefix: &str,
    kind: PaymentKind,
) -> Result<Option<Payment>, DbError> {
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

pub(super) fn row_to_window(row: &Row) -> Result<(i64, Window), DbError> {
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
pub(super) async fn attach_windows(
    c: &mut impl Exec,
    bookings: &mut [Booking],
) -> Result<(), DbError> {
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

pub(super) async fn one(c: &mut impl Exec, row: Option<Row>) -> Result<Option<Booking>, DbError> {
    let Some(row) = row else { return Ok(None) };
    let mut b = [row_to_booking(&row)?];
    attach_windows(c, &mut b).await?;
    let [b] = b;
    Ok(Some(b))
}
