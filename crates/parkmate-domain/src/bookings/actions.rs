//! What others do to a driver's booking: an admin approves or declines it (event 6), the lot's
//! owner (or an admin) verifies its cash (event 7), the lot's staff completes its car wash
//! (event 9).

use parkmate_db::{bookings, lots};
use parkmate_protocol::Role;

use super::state::{BookingAction, Step, step};
use super::{load, reload};
use crate::model::{Actor, Booking};
use crate::types::{BookingStatus, CarWashStatus, PaymentMethod};
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
        bookings::transition(&mut tx, id, b.status, to, None).await?;
        let b = reload(&mut tx, id).await?;
        self.commit_with(tx, &[]).await?;
        Ok(b)
    }

    /// Admin declines a request, releasing the slot. Event 6. Declining a declined booking
    /// answers it unchanged and reports nothing.
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
        let b = reload(&mut tx, id).await?;
        self.commit_with(tx, &[events::declined(&b)]).await?;
        Ok(b)
    }

    /// The lot's owner or an admin confirms the cash was received. Event 7, once per window.
    pub async fn verify_cash(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        let mut tx = self.begin().await?;
        let b = load(&mut tx, id).await?;
        let allowed = actor.role == Role::Admin
            || (actor.role == Role::Owner && b.lot_owner_id == actor.user_id);
        if !allowed {
            return Err(DomainError::Forbidden(
                "only the lot's owner or an admin can verify cash",
            ));
        }
        if b.payment_method != PaymentMethod::Cash {
            return Err(DomainError::NotCash);
        }
        if b.status == BookingStatus::Declined {
            return Err(DomainError::InvalidTransition {
                from: b.status,
                action: "verify cash of",
            });
        }
        if !bookings::mark_cash_paid(&mut tx, id).await? {
            return Ok(b); // already verified: a retry
        }
        let b = reload(&mut tx, id).await?;
        self.commit_with(tx, &[events::cash_verified(&b)]).await?;
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
        self.commit_with(tx, &[events::car_wash_done(&b)]).await?;
        Ok(b)
    }
}
