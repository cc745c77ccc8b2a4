//! The driver renews an expired booking for a new window, paying again: event 3 on success,
//! event 4 (with the reason) on every refusal.
//!
//! The path, one step per function: find the driver's booking and answer a retry
//! ([`Domain::renew`]); expire it first if its time ran out a moment ago; refuse what cannot be
//! renewed; price the new window (refusing a taken slot before any money moves); charge; commit
//! the new window with event 3, refunding the charge if the commit does not happen.

use chrono::{DateTime, Utc};
use parkmate_db::bookings::{self, Renewal};
use parkmate_db::{DbError, lots};
use parkmate_protocol::Role;

use super::state::{BookingAction, Step, step};
use super::{PaymentChoice, RETRY_WINDOW, reload};
use crate::model::{Actor, Booking};
use crate::types::{BookingMinutes, BookingStatus, BookingWindow, PaymentStatus};
use crate::{Domain, DomainError, events};

/// The reason event 4 gives when the slot was taken while the booking was expired.
pub const SLOT_TAKEN_REASON: &str = "Slot is no longer available";
const STILL_ACTIVE: &str = "Booking is still active";
const DECLINED: &str = "Booking was declined";

/// A renewal that succeeded within [`RETRY_WINDOW`] with the same duration: a double click or a
/// client retry, answered with the renewed booking, not charged or reported again.
fn is_retried_renewal(b: &Booking, minutes: BookingMinutes, now: DateTime<Utc>) -> bool {
    b.status == BookingStatus::Confirmed
        && b.duration_minutes == minutes.get()
        && b.renewed_at.is_some_and(|at| now - at <= RETRY_WINDOW)
}

/// Why a booking in this state cannot be renewed, if it cannot.
fn refusal(b: &Booking) -> Option<&'static str> {
    match step(b.status, BookingAction::Renew) {
        Step::To(_) => None,
        Step::Unchanged | Step::Refused if b.status == BookingStatus::Declined => Some(DECLINED),
        Step::Unchanged | Step::Refused => Some(STILL_ACTIVE),
    }
}

/// What the write transaction of a paid renewal found.
enum Committed {
    Renewed(Booking),
    /// Someone (this driver's other click) renewed it between our read and our write.
    AlreadyRenewed,
    SlotTaken,
}

impl Domain {
    /// The driver renews an expired booking for `minutes` from now, paying again. Event 3 on
    /// success; a refusal (not renewable, slot taken meanwhile, payment declined or unavailable)
    /// commits event 4 with the reason and answers the error.
    ///
    /// A retry of a renewal that succeeded within [`RETRY_WINDOW`] answers the renewed booking
    /// without charging or reporting again.
    pub async fn renew(
        &self,
        actor: Actor,
        id: i64,
        minutes: BookingMinutes,
        payment: PaymentChoice,
    ) -> Result<Booking, DomainError> {
        let now = self.now();
        let b = self.drivers_booking(actor, id).await?;
        if is_retried_renewal(&b, minutes, now) {
            return Ok(b);
        }
        let b = self.expired_if_due(b, now).await?;
        if let Some(reason) = refusal(&b) {
            return Err(self
                .renewal_refused(&b, reason, DomainError::NotRenewable(reason))
                .await);
        }
        let window = minutes.window_from(now);
        let amount = self.renewal_price(&b, window, minutes).await?;
        let receipt = match self
            .charge(
                &payment,
                amount,
                format!("Parkmate renewal of booking {id}"),
            )
            .await
        {
            Ok(receipt) => receipt,
            Err(DomainError::PaymentDeclined(reason)) => {
                return Err(self
                    .renewal_refused(&b, &reason, DomainError::PaymentDeclined(reason.clone()))
                    .await);
            }
            Err(DomainError::PaymentUnavailable(reason)) => {
                return Err(self
                    .renewal_refused(&b, &reason, DomainError::PaymentUnavailable(reason.clone()))
                    .await);
            }
            Err(e) => return Err(e),
        };
        let renewal = Renewal {
            id,
            window,
            duration_minutes: minutes.get(),
            payment_method: payment.method(),
            payment_status: if receipt.is_some() {
                PaymentStatus::Paid
            } else {
                PaymentStatus::Pending
            },
            payment_ref: receipt.as_ref().map(|r| r.reference.as_str()),
            amount_cents: amount,
            now,
        };
        let committed = self.commit_renewal(renewal).await;
        if !matches!(committed, Ok(Committed::Renewed(_))) {
            self.refund(receipt.as_ref()).await;
        }
        match committed? {
            Committed::Renewed(b) => Ok(b),
            Committed::AlreadyRenewed => {
                let current = self.drivers_booking(actor, id).await?;
                if is_retried_renewal(&current, minutes, now) {
                    return Ok(current);
                }
                Err(self
                    .renewal_refused(
                        &current,
                        STILL_ACTIVE,
                        DomainError::NotRenewable(STILL_ACTIVE),
                    )
                    .await)
            }
            Committed::SlotTaken => Err(self
                .renewal_refused(&b, SLOT_TAKEN_REASON, DomainError::SlotTaken)
                .await),
        }
    }

    /// The booking, if it is `actor`'s to renew (404, or 403 for anyone but its driver).
    async fn drivers_booking(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        let b = bookings::booking(&mut self.read().await?, id)
            .await?
            .ok_or(DomainError::NotFound("booking"))?;
        if actor.role != Role::User || b.user_id != actor.user_id {
            return Err(DomainError::Forbidden(
                "only the booking's driver can renew it",
            ));
        }
        Ok(b)
    }

    /// A booking whose time ran out but which the scheduler has not got to yet (a matter of
    /// milliseconds) is expired now, with its event 5, rather than refusing a renewal the
    /// driver's countdown already offers.
    async fn expired_if_due(&self, b: Booking, now: DateTime<Utc>) -> Result<Booking, DomainError> {
        if !(b.status.holds_slot() && b.window.end() <= now) {
            return Ok(b);
        }
        self.fire_due().await?;
        bookings::booking(&mut self.read().await?, b.id)
            .await?
            .ok_or(DomainError::NotFound("booking"))
    }

    /// The price of the new window; refuses (with event 4) a slot taken meanwhile, before any
    /// money moves.
    async fn renewal_price(
        &self,
        b: &Booking,
        window: BookingWindow,
        minutes: BookingMinutes,
    ) -> Result<i64, DomainError> {
        let mut conn = self.read().await?;
        if bookings::slot_busy(&mut conn, b.slot_id, window, Some(b.id)).await? {
            drop(conn);
            return Err(self
                .renewal_refused(b, SLOT_TAKEN_REASON, DomainError::SlotTaken)
                .await);
        }
        let price = lots::slot_info(&mut conn, b.slot_id)
            .await?
            .ok_or(DomainError::NotFound("slot"))?
            .price_per_hour_cents;
        Ok(minutes.price(price))
    }

    /// The new window and event 3, in one transaction.
    async fn commit_renewal(&self, renewal: Renewal<'_>) -> Result<Committed, DomainError> {
        let id = renewal.id;
        let mut tx = self.begin().await?;
        match bookings::renew(&mut tx, renewal).await {
            Ok(true) => {}
            Ok(false) => return Ok(Committed::AlreadyRenewed),
            Err(DbError::SlotTaken) => return Ok(Committed::SlotTaken),
            Err(e) => return Err(e.into()),
        }
        let b = reload(&mut tx, id).await?;
        self.commit_with(tx, &[events::renewed(&b)]).await?;
        Ok(Committed::Renewed(b))
    }

    /// Commits event 4 for a refused renewal and gives back the error to answer. If even that
    /// commit fails, the commit error is answered (and the refusal is not reported).
    async fn renewal_refused(&self, b: &Booking, reason: &str, error: DomainError) -> DomainError {
        let reported = async {
            let tx = self.begin().await?;
            self.commit_with(tx, &[events::renewal_failed(b, reason)])
                .await
        };
        match reported.await {
            Ok(()) => error,
            Err(e) => e,
        }
    }
}
