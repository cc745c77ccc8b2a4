//! What others do to a driver's booking: an admin approves or declines it (event 6, with the
//! refund of its online payments), the lot's owner (or an admin) verifies the cash of a window
//! (event 7), the lot's staff completes its car wash (event 9).

use parkmate_db::{bookings, lots, payments};
use parkmate_protocol::Role;

use super::state::{BookingAction, Step, step};
use super::{load, reload};
use crate::model::{Actor, Booking};
use crate::types::{BookingStatus, CarWashStatus, PaymentMethod, PaymentStatus};
use crate::{Domain, DomainError, events};

/// Longest decline reason kept.
pub const MAX_REASON_CHARS: usize = 500;

impl Domain {
    /// Admin confirms a request. Confirming a confirmed booking answers it unchanged.
    pub async fn approve(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        if actor.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins can approve bookings"));
        }
        let mut tx = self.begin().await?;
        let b = load(&mut tx, id).await?;
        let to = match step(b.status, BookingAction::Approve) {
            Step::To(to) => to,
            Step::Unchanged => return Ok(b),
            Step::Refused => {
                return Err(DomainError::InvalidTransition {
                    from: b.status,
                    action: "approve",
                });
            }
        };
        // Conditional on the state read (and locked) in this same transaction.
        debug_assert_eq!(to, BookingStatus::Confirmed);
        bookings::approve(&mut tx, id, self.now()).await?;
        let b = reload(&mut tx, id).await?;
        let key = format!("approved:{}", b.requested_at.timestamp_millis());
        self.commit_with(tx, &[events::lot_activity(&b, "approved", &key)])
            .await?;
        Ok(b)
    }

    /// Admin declines a request, releasing the slot and refunding its online payments (the slot
    /// is given back unused). Event 6, whose `data.refund_cents` says what was refunded.
    /// Declining a declined booking answers it unchanged and reports nothing.
    pub async fn decline(
        &self,
        actor: Actor,
        id: i64,
        reason: Option<&str>,
    ) -> Result<Booking, DomainError> {
        if actor.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins can decline bookings"));
        }
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| r.chars().take(MAX_REASON_CHARS).collect::<String>());
        let mut tx = self.begin().await?;
        let b = load(&mut tx, id).await?;
        let to = match step(b.status, BookingAction::Decline) {
            Step::To(to) => to,
            Step::Unchanged => return Ok(b),
            Step::Refused => {
                return Err(DomainError::InvalidTransition {
                    from: b.status,
                    action: "decline",
                });
            }
        };
        bookings::transition(&mut tx, id, b.status, to, reason.as_deref()).await?;
        let due = payments::give_back_windows(&mut tx, id, self.now()).await?;
        let refund_cents = due.iter().map(|d| d.amount_cents).sum();
        let b = reload(&mut tx, id).await?;
        let notes = [
            events::declined(&b, refund_cents),
            events::lot_activity(&b, "declined", "declined"),
        ];
        self.commit_with(tx, &notes).await?;
        if due.is_empty() {
            return Ok(b);
        }
        // Decided and committed: now sent, on a payment task (a dropped request still sends it;
        // recovery sends what an outage left), and answered as the gateway confirmed it.
        let domain = self.clone();
        self.in_task(async move {
            domain.send_refunds(due).await;
            Ok(())
        })
        .await?;
        bookings::booking(&mut self.read().await?, id)
            .await?
            .ok_or(DomainError::NotFound("booking"))
    }

    /// The lot's owner or an admin confirms the cash of the oldest window whose cash is not yet
    /// verified. Event 7, once per window.
    pub async fn verify_cash(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        self.verify_cash_of(actor, id, None).await
    }

    /// The lot's owner or an admin confirms the cash of window `seq` (`None`: the oldest one not
    /// yet verified). Event 7, once per window; verifying a verified window answers the booking
    /// unchanged. A booking without cash windows is `not_cash_payment`, as is a named online
    /// window; an unknown window is 404.
    pub async fn verify_cash_of(
        &self,
        actor: Actor,
        id: i64,
        seq: Option<u32>,
    ) -> Result<Booking, DomainError> {
        let mut tx = self.begin().await?;
        let b = load(&mut tx, id).await?;
        let allowed = actor.role == Role::Admin
            || (actor.role == Role::Owner && b.lot_owner_id == actor.user_id);
        if !allowed {
            return Err(DomainError::Forbidden(
                "only the lot's owner or an admin can verify cash",
            ));
        }
        let cash = |w: &&crate::model::Window| w.payment_method == PaymentMethod::Cash;
        if !b.windows.iter().any(|w| cash(&w)) {
            return Err(DomainError::NotCash);
        }
        if matches!(b.status, BookingStatus::Declined | BookingStatus::Lapsed) {
            return Err(DomainError::InvalidTransition {
                from: b.status,
                action: "verify cash of",
            });
        }
        let window = match seq {
            Some(seq) => {
                let w = b
                    .windows
                    .iter()
                    .find(|w| w.seq == seq)
                    .ok_or(DomainError::NotFound("window"))?;
                if !cash(&w) {
                    return Err(DomainError::NotCash);
                }
                w
            }
            None => match b
                .windows
                .iter()
                .filter(cash)
                .find(|w| w.payment_status == PaymentStatus::Pending)
            {
                Some(w) => w,
                None => return Ok(b), // every cash window verified: a retry
            },
        };
        let seq = window.seq;
        if !bookings::mark_cash_paid(&mut tx, id, seq, self.now()).await? {
            return Ok(b); // already verified: a retry
        }
        let b = reload(&mut tx, id).await?;
        let notes = [
            events::cash_verified(&b, seq),
            events::lot_activity(
                &b,
                &format!("cash of window #{seq} verified"),
                &format!("cash_verified:{seq}"),
            ),
        ];
        self.commit_with(tx, &notes).await?;
        Ok(b)
    }

    /// An employee of the lot, or its owner, marks the ordered car wash done. Event 9, once.
    pub async fn car_wash_done(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        let mut tx = self.begin().await?;
        let b = load(&mut tx, id).await?;
        let allowed = match actor.role {
            Role::Owner => b.lot_owner_id == actor.user_id,
            Role::Employee => lots::works_at(&mut tx, actor.user_id, b.lot_id).await?,
            Role::User | Role::Admin => false,
        };
        if !allowed {
            return Err(DomainError::Forbidden(
                "only the lot's employees or owner can complete a car wash",
            ));
        }
        match (b.car_wash, b.status) {
            (None, _) => return Err(DomainError::NoCarWash),
            (Some(CarWashStatus::Done), _) => return Ok(b),
            (_, BookingStatus::Declined) => {
                return Err(DomainError::InvalidTransition {
                    from: b.status,
                    action: "complete the car wash of",
                });
            }
            (Some(CarWashStatus::Pending), _) => {}
        }
        bookings::mark_car_wash_done(&mut tx, id).await?;
        let b = reload(&mut tx, id).await?;
        let notes = [
            events::car_wash_done(&b),
            events::lot_activity(&b, "car wash done", "car_wash_done"),
        ];
        self.commit_with(tx, &notes).await?;
        Ok(b)
    }
}
