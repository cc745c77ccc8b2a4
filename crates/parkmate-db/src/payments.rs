//! Payments: the ledger of every call to the payment gateway, so that every charge has exactly one
//! outcome after any crash (`migrations/*/1002_money.sql` has the lifecycle of a row).
//!
//! The order the domain keeps, and why each step is a row:
//! 1. [`insert_charge`] commits a `pending` charge with its idempotency key **before** the gateway
//!    is called: from then on the charge cannot be forgotten, whatever happens to the process.
//! 2. The gateway is called with that key (a repeated call is the same call).
//! 3. The transaction that writes the booking's window also claims the charge
//!    ([`charge_booked`], `pending` → `succeeded`): the window and the claim commit together or not
//!    at all. A declined card settles it `failed` ([`charge_failed`]).
//! 4. Anything else gives the money back: [`give_back_unbooked`] (a charge that reached no
//!    booking) and [`give_back_windows`] (a booking ended unused) decide the refund in a
//!    transaction (the charge becomes `refunded`, a `pending` refund row is added), the gateway is
//!    then asked to refund by the charge's key, and [`refund_settled`] records its answer.
//!
//! Every claim is a conditional update on the charge's row, so the request path, a second node and
//! recovery racing over one charge settle it once: whichever claims first decides, the others find
//! nothing to change. Recovery ([`stale_charges`], [`refunds_due`]) picks up what a crash left in
//! between; [`unsettled_charges`] is the query that proves none is left.

use chrono::{DateTime, Utc};

use crate::exec::{Exec, Row, Stmt};
use crate::{DbError, Payment, PaymentKind, PaymentState, RefundDue, from_millis};

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A charge about to be sent to the gateway.
#[derive(Debug, Clone)]
pub struct NewCharge<'a> {
    pub user_id: i64,
    /// Known for a renewal (the booking exists); `None` for a create until its booking is made.
    pub booking_id: Option<i64>,
    pub amount_cents: i64,
    /// Unique per charge; the gateway receives it with the call.
    pub idempotency_key: &'a str,
    pub now: DateTime<Utc>,
}

/// Records a `pending` charge; answers its id. Commit it before calling the gateway.
pub async fn insert_charge(c: &mut impl Exec, charge: NewCharge<'_>) -> Result<i64, DbError> {
    c.scalar(
        Stmt::new(
            "INSERT INTO payments (user_id, booking_id, kind, idempotency_key, amount_cents, status, \
                 created_at_ms) \
             VALUES ($1, $2, 'charge', $3, $4, 'pending', $5) RETURNING id AS v",
        )
        .bind(charge.user_id)
        .bind(charge.booking_id)
        .bind(charge.idempotency_key)
        .bind(charge.amount_cents)
        .bind(ms(charge.now)),
    )
    .await
}

/// The gateway declined: `pending` → `failed` (no money moved); `false` when it was settled
/// otherwise meanwhile.
pub async fn charge_failed(
    c: &mut impl Exec,
    id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE payments SET status = 'failed', settled_at_ms = $2 \
                 WHERE id = $1 AND kind = 'charge' AND status = 'pending'",
            )
            .bind(id)
            .bind(ms(now)),
        )
        .await?;
    Ok(changed == 1)
}

/// Claims a charge for the window `booking_id`/`seq` being written in this transaction:
/// `pending` → `succeeded`, with the gateway's reference. `false` when recovery (or the request
/// path's own give-back) settled it first: then the window must not be written.
pub async fn charge_booked(
    c: &mut impl Exec,
    id: i64,
    booking_id: i64,
    seq: u32,
    gateway_ref: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE payments SET status = 'succeeded', booking_id = $2, window_seq = $3, \
                     gateway_ref = $4, settled_at_ms = $5 \
                 WHERE id = $1 AND kind = 'charge' AND status = 'pending'",
            )
            .bind(id)
            .bind(booking_id)
            .bind(seq)
            .bind(gateway_ref)
            .bind(ms(now)),
        )
        .await?;
    Ok(changed == 1)
}

/// Adds the `pending` refund row of a charge just marked `refunded`; answers what executing it
/// needs.
async fn add_refund(
    c: &mut impl Exec,
    charge_id: i64,
    now: DateTime<Utc>,
) -> Result<RefundDue, DbError> {
    let refund_id: i64 = c
        .scalar(
            Stmt::new(
                "INSERT INTO payments (user_id, booking_id, window_seq, kind, refund_of, \
                     idempotency_key, amount_cents, status, created_at_ms) \
                 SELECT user_id, booking_id, window_seq, 'refund', id, idempotency_key || ':refund', \
                     amount_cents, 'pending', $2 \
                 FROM payments WHERE id = $1 RETURNING id AS v",
            )
            .bind(charge_id)
            .bind(ms(now)),
        )
        .await?;
    refund_due(c, refund_id)
        .await?
        .ok_or_else(|| DbError::corrupt("a refund just added is missing"))
}

/// Gives back a charge that reached no booking (the booking's transaction failed, or a crash left
/// it `pending`): `pending` → `refunded` plus its `pending` refund row. `None` when it was settled
/// otherwise meanwhile (booked by the request path, or given back by someone else).
pub async fn give_back_unbooked(
    c: &mut impl Exec,
    charge_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<RefundDue>, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE payments SET status = 'refunded', settled_at_ms = $2 \
                 WHERE id = $1 AND kind = 'charge' AND status = 'pending'",
            )
            .bind(charge_id)
            .bind(ms(now)),
        )
        .await?;
    if changed != 1 {
        return Ok(None);
    }
    Ok(Some(add_refund(c, charge_id, now).await?))
}

/// Gives back every online window of a booking that ended unused (declined, lapsed, or expired
/// without ever being approved): each paying charge → `refunded` with a `pending` refund row, the
/// window → `refunded`. Call it in the transaction that ends the booking, with the booking locked.
pub async fn give_back_windows(
    c: &mut impl Exec,
    booking_id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<RefundDue>, DbError> {
    let rows = c
        .fetch_all(
            Stmt::new(
                "SELECT w.seq, w.payment_id FROM booking_windows w \
                     JOIN payments p ON p.id = w.payment_id \
                 WHERE w.booking_id = $1 AND w.payment_status = 'paid' AND p.status = 'succeeded' \
                 ORDER BY w.seq",
            )
            .bind(booking_id),
        )
        .await?;
    let mut due = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.get("seq")?;
        let charge_id: i64 = row.get("payment_id")?;
        let changed = c
            .execute(
                Stmt::new(
                    "UPDATE payments SET status = 'refunded' \
                     WHERE id = $1 AND kind = 'charge' AND status = 'succeeded'",
                )
                .bind(charge_id),
            )
            .await?;
        if changed != 1 {
            continue;
        }
        c.execute(
            Stmt::new(
                "UPDATE booking_windows SET payment_status = 'refunded' \
                 WHERE booking_id = $1 AND seq = $2",
            )
            .bind(booking_id)
            .bind(seq),
        )
        .await?;
        due.push(add_refund(c, charge_id, now).await?);
    }
    Ok(due)
}

/// The gateway confirmed a refund: `pending` → `succeeded`; `false` when already settled.
pub async fn refund_settled(
    c: &mut impl Exec,
    refund_id: i64,
    gateway_ref: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE payments SET status = 'succeeded', gateway_ref = $2, settled_at_ms = $3 \
                 WHERE id = $1 AND kind = 'refund' AND status = 'pending'",
            )
            .bind(refund_id)
            .bind(gateway_ref)
            .bind(ms(now)),
        )
        .await?;
    Ok(changed == 1)
}

/// The gateway refused a refund for good: `pending` → `failed`, for a human to settle (the
/// charge then shows in [`unsettled_charges`]).
pub async fn refund_failed(
    c: &mut impl Exec,
    refund_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let changed = c
        .execute(
            Stmt::new(
                "UPDATE payments SET status = 'failed', settled_at_ms = $2 \
                 WHERE id = $1 AND kind = 'refund' AND status = 'pending'",
            )
            .bind(refund_id)
            .bind(ms(now)),
        )
        .await?;
    Ok(changed == 1)
}

const REFUND_DUE_SELECT: &str = "SELECT r.id AS refund_id, r.idempotency_key AS refund_key, \
        r.amount_cents, r.booking_id, ch.id AS charge_id, ch.idempotency_key AS charge_key, \
        ch.gateway_ref AS charge_ref \
    FROM payments r JOIN payments ch ON ch.id = r.refund_of";

fn row_to_refund_due(row: &Row) -> Result<RefundDue, DbError> {
    Ok(RefundDue {
        refund_id: row.get("refund_id")?,
        charge_id: row.get("charge_id")?,
        charge_key: row.get("charge_key")?,
        charge_ref: row.get("charge_ref")?,
        refund_key: row.get("refund_key")?,
        amount_cents: row.get("amount_cents")?,
        booking_id: row.get("booking_id")?,
    })
}

/// A refund row still waiting for the gateway, if `refund_id` is one.
pub async fn refund_due(c: &mut impl Exec, refund_id: i64) -> Result<Option<RefundDue>, DbError> {
    let sql = format!("{REFUND_DUE_SELECT} WHERE r.id = $1 AND r.status = 'pending'");
    c.fetch_optional(Stmt::new(&sql).bind(refund_id))
        .await?
        .as_ref()
        .map(row_to_refund_due)
        .transpose()
}

/// Refunds decided at or before `before` that the gateway has not confirmed yet (the request
/// path normally settles its own at once: these are what a crash or a gateway outage left).
pub async fn refunds_due(
    c: &mut impl Exec,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<RefundDue>, DbError> {
    let sql = format!(
        "{REFUND_DUE_SELECT} WHERE r.kind = 'refund' AND r.status = 'pending' \
             AND r.created_at_ms <= $1 ORDER BY r.id LIMIT $2"
    );
    c.fetch_all(Stmt::new(&sql).bind(ms(before)).bind(limit))
        .await?
        .iter()
        .map(row_to_refund_due)
        .collect()
}

/// Charges recorded at or before `before` and still `pending`: the gateway was called (or was
/// about to be) and nothing settled them, because the process died or the gateway's answer was
/// uncertain. Recovery gives them back ([`give_back_unbooked`]) and refunds them by key.
pub async fn stale_charges(
    c: &mut impl Exec,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<i64>, DbError> {
    c.fetch_all(
        Stmt::new(
            "SELECT id FROM payments WHERE kind = 'charge' AND status = 'pending' \
                 AND created_at_ms <= $1 ORDER BY id LIMIT $2",
        )
        .bind(ms(before))
        .bind(limit),
    )
    .await?
    .iter()
    .map(|r| r.get("id"))
    .collect()
}

/// **The proof that every charge has exactly one outcome** (`docs/booking-api.md` quotes it):
/// the charges that are none of "declined" (`failed`), "booked" (`succeeded` and paying a window
/// that was not given back) or "refunded" (`refunded`, not paying a kept window, and its one
/// refund confirmed by the gateway). Empty once recovery has run past the grace period; anything
/// here is money in limbo.
pub const UNSETTLED_CHARGES: &str = "SELECT c.id FROM payments c WHERE c.kind = 'charge' AND NOT ( \
        c.status = 'failed' \
     OR (c.status = 'succeeded' AND EXISTS (SELECT 1 FROM booking_windows w \
            WHERE w.payment_id = c.id AND w.payment_status = 'paid')) \
     OR (c.status = 'refunded' \
            AND NOT EXISTS (SELECT 1 FROM booking_windows w \
                WHERE w.payment_id = c.id AND w.payment_status = 'paid') \
            AND EXISTS (SELECT 1 FROM payments r WHERE r.refund_of = c.id AND r.status = 'succeeded')) \
    ) ORDER BY c.id";

/// Runs [`UNSETTLED_CHARGES`]: the ids of charges without exactly one outcome.
pub async fn unsettled_charges(c: &mut impl Exec) -> Result<Vec<i64>, DbError> {
    c.fetch_all(Stmt::new(UNSETTLED_CHARGES))
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect()
}

/// One payment row.
pub async fn payment(c: &mut impl Exec, id: i64) -> Result<Option<Payment>, DbError> {
    let row = c
        .fetch_optional(
            Stmt::new(
                "SELECT id, kind, status, amount_cents, idempotency_key, gateway_ref, created_at_ms, \
                     settled_at_ms FROM payments WHERE id = $1",
            )
            .bind(id),
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let bad = |e: crate::UnknownValue| DbError::corrupt(e.to_string());
    let settled: Option<i64> = row.get("settled_at_ms")?;
    Ok(Some(Payment {
        id: row.get("id")?,
        kind: row
            .get::<String>("kind")?
            .parse::<PaymentKind>()
            .map_err(bad)?,
        status: row
            .get::<String>("status")?
            .parse::<PaymentState>()
            .map_err(bad)?,
        amount_cents: row.get("amount_cents")?,
        idempotency_key: row.get("idempotency_key")?,
        gateway_ref: row.get("gateway_ref")?,
        created_at: from_millis(row.get("created_at_ms")?),
        settled_at: settled.map(from_millis),
    }))
}

/// The charges a user was ever asked for, oldest first (support, tests).
pub async fn charges_of_user(c: &mut impl Exec, user_id: i64) -> Result<Vec<Payment>, DbError> {
    let ids: Vec<i64> = c
        .fetch_all(
            Stmt::new("SELECT id FROM payments WHERE user_id = $1 AND kind = 'charge' ORDER BY id")
                .bind(user_id),
        )
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(p) = payment(c, id).await? {
            out.push(p);
        }
    }
    Ok(out)
}
