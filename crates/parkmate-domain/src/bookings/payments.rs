//! Taking and giving back money for bookings, through the [`PaymentGateway`](crate::PaymentGateway),
//! so that **every charge ends booked or refunded, whatever fails and whenever the process dies**.
//!
//! How, step by step (the ledger's side is `parkmate_db::payments`):
//! 1. [`Domain::record_charge`] commits a `pending` charge with a fresh idempotency key before
//!    anything is sent: a charge is never made that the database does not know about.
//! 2. The rest runs on a payment task ([`Domain::in_task`]) that the request awaits but does not
//!    own: a client that goes away (its request future dropped) cannot stop it half-way.
//!    [`Domain::send_charge`] calls the gateway with the key; the booking's transaction then
//!    claims the charge together with the window it pays (`charges_booked`).
//! 3. Any failure after a successful charge (the slot was taken, the cap was reached, the database
//!    refused or was unreachable, the commit failed) runs [`Domain::give_back`]: the charge is
//!    marked `refunded` with a `pending` refund row, then refunded by key. A declined card marks
//!    it `failed`; an unreachable gateway leaves it `pending`, since it may or may not have taken
//!    the money.
//! 4. [`Domain::recover_payments`], run by the leader at each lead start and periodically, settles
//!    what is left after [`BookingRules::payment_grace`](crate::BookingRules): charges still
//!    `pending` are given back (a refund by key also voids a charge the gateway never made) and
//!    refunds not yet confirmed are sent again. Every step is conditional and every gateway call
//!    idempotent, so two passes, two nodes or a pass racing a slow request settle each charge once.
//!
//! Gateway calls never run inside a transaction: a slow provider must not hold the write
//! connection.

use std::future::Future;

use parkmate_db::RefundDue;
use parkmate_db::payments::{self, NewCharge};

use crate::payment::{Charge, PaymentError, Receipt, Refund};
use crate::types::CardNumber;
use crate::{Domain, DomainError, corrupt};

/// Most stale charges and refunds one recovery pass settles (the next pass takes the rest).
const RECOVERY_BATCH: i64 = 256;

/// A charge the gateway accepted, not yet claimed by a booking.
#[derive(Debug, Clone)]
pub(crate) struct Paid {
    pub payment_id: i64,
    pub receipt: Receipt,
}

/// What one recovery pass settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Charges that reached no booking, given back.
    pub charges: usize,
    /// Refunds the gateway confirmed in this pass (those just decided and those left before).
    pub refunds: usize,
}

/// A fresh idempotency key: random, so keys of different nodes never collide.
fn new_key() -> String {
    format!("pm_ch_{:032x}", rand::random::<u128>())
}

impl Domain {
    /// Runs `work` on a payment task and waits for it: the work finishes even if this caller is
    /// dropped (the client went away), and shutdown waits for it (`payments_settled`).
    pub(crate) async fn in_task<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, DomainError>> + Send + 'static,
    ) -> Result<T, DomainError> {
        self.inner
            .payments
            .spawn(work)
            .await
            .map_err(|e| corrupt(format!("a payment task failed: {e}")))?
    }

    /// Commits a `pending` charge of `amount` for `user_id` (and `booking_id`, when renewing);
    /// answers its id and idempotency key. Nothing is sent yet.
    pub(crate) async fn record_charge(
        &self,
        user_id: i64,
        booking_id: Option<i64>,
        amount: i64,
    ) -> Result<(i64, String), DomainError> {
        let key = new_key();
        let mut tx = self.begin().await?;
        let id = payments::insert_charge(
            &mut tx,
            NewCharge {
                user_id,
                booking_id,
                amount_cents: amount,
                idempotency_key: &key,
                now: self.now(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((id, key))
    }

    /// Sends a recorded charge to the gateway. A declined card settles it `failed`; an
    /// unreachable gateway leaves it `pending` for recovery (it may have taken the money).
    pub(crate) async fn send_charge(
        &self,
        payment_id: i64,
        key: String,
        card: CardNumber,
        amount: i64,
        description: String,
    ) -> Result<Paid, DomainError> {
        let charge = Charge {
            card,
            amount_cents: amount,
            description,
            idempotency_key: key,
        };
        match self.inner.gateway.charge(charge).await {
            Ok(receipt) => Ok(Paid {
                payment_id,
                receipt,
            }),
            Err(PaymentError::Declined(reason)) => {
                let mut tx = self.begin().await?;
                payments::charge_failed(&mut tx, payment_id, self.now()).await?;
                tx.commit().await?;
                Err(DomainError::PaymentDeclined(reason))
            }
            Err(PaymentError::Unavailable(reason)) => {
                tracing::warn!(payment_id, %reason, "charge uncertain: left for recovery");
                Err(DomainError::PaymentUnavailable(reason))
            }
        }
    }

    /// Gives back a charge that booked nothing, now: decides the refund (a no-op when the charge
    /// was settled otherwise meanwhile, e.g. its booking did commit), then sends it. Failures are
    /// logged; the refund stays recorded and recovery finishes it.
    pub(crate) async fn give_back(&self, payment_id: i64) {
        let decided = async {
            let mut tx = self.begin().await?;
            let due = payments::give_back_unbooked(&mut tx, payment_id, self.now()).await?;
            tx.commit().await?;
            Ok::<_, DomainError>(due)
        };
        match decided.await {
            Ok(Some(due)) => {
                self.send_refunds(vec![due]).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(payment_id, error = ?e, "cannot record a refund: recovery will");
            }
        }
    }

    /// Sends decided refunds to the gateway by their charges' keys and records each answer;
    /// answers how many the gateway confirmed. An unreachable gateway leaves a refund `pending`
    /// for recovery; a refusal marks it `failed` and needs a human.
    pub(crate) async fn send_refunds(&self, due: Vec<RefundDue>) -> usize {
        let mut confirmed = 0;
        for d in due {
            let refund = Refund {
                charge_key: d.charge_key.clone(),
                charge_reference: d.charge_ref.clone(),
                amount_cents: d.amount_cents,
                idempotency_key: d.refund_key.clone(),
            };
            let answer = self.inner.gateway.refund(&refund).await;
            let recorded = async {
                let mut tx = self.begin().await?;
                match &answer {
                    Ok(r) => {
                        payments::refund_settled(&mut tx, d.refund_id, &r.reference, self.now())
                            .await?;
                    }
                    Err(PaymentError::Declined(reason)) => {
                        // Money owed to a driver that the gateway will not return: a human's job.
                        tracing::error!(refund_id = d.refund_id, charge_id = d.charge_id, %reason,
                            "the gateway refused a refund");
                        payments::refund_failed(&mut tx, d.refund_id, self.now()).await?;
                    }
                    Err(PaymentError::Unavailable(reason)) => {
                        tracing::warn!(refund_id = d.refund_id, %reason,
                            "refund not sent: left for recovery");
                        return Ok(false);
                    }
                }
                tx.commit().await?;
                Ok::<_, DomainError>(answer.is_ok())
            };
            match recorded.await {
                Ok(true) => confirmed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(refund_id = d.refund_id, error = ?e,
                        "cannot record a refund's answer: recovery will send it again");
                }
            }
        }
        confirmed
    }

    /// Sends decided refunds on a payment task, without waiting (the scheduler's passes).
    pub(crate) fn spawn_refunds(&self, due: Vec<RefundDue>) {
        if due.is_empty() {
            return;
        }
        let domain = self.clone();
        self.inner.payments.spawn(async move {
            domain.send_refunds(due).await;
        });
    }

    /// Settles what a crash or an outage left unsettled for longer than the grace period:
    /// charges still `pending` are given back and refunded by key (which voids a charge the
    /// gateway never made), refunds not yet confirmed are sent again. Idempotent, safe to run on
    /// several nodes at once; the leader runs it at each lead start and periodically.
    pub async fn recover_payments(&self) -> Result<Recovered, DomainError> {
        let now = self.now();
        let before = now - self.inner.rules.grace();
        let (stale, mut due) = {
            let mut conn = self.read().await?;
            (
                payments::stale_charges(&mut conn, before, RECOVERY_BATCH).await?,
                payments::refunds_due(&mut conn, before, RECOVERY_BATCH).await?,
            )
        };
        let mut given_back = 0;
        for charge in stale {
            let mut tx = self.begin().await?;
            if let Some(d) = payments::give_back_unbooked(&mut tx, charge, now).await? {
                tracing::warn!(charge, "recovery: giving back a charge that booked nothing");
                given_back += 1;
                due.push(d);
            }
            tx.commit().await?;
        }
        let refunds = self.send_refunds(due).await;
        Ok(Recovered {
            charges: given_back,
            refunds,
        })
    }

    /// The ids of charges without exactly one outcome (`parkmate_db::payments::UNSETTLED_CHARGES`):
    /// empty when the money is in order.
    pub async fn unsettled_charges(&self) -> Result<Vec<i64>, DomainError> {
        Ok(payments::unsettled_charges(&mut self.read().await?).await?)
    }
}
