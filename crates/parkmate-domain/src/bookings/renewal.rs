//! The driver renews an expired booking for a new window, paying again: event 3 on success,
//! event 4 (with the reason) on every refusal.
//!
//! The path, one step per function: find the driver's booking and answer a retry
//! ([`Domain::renew`]); expire it first if its time ran out a moment ago; refuse what cannot be
//! renewed; price the new window and check the cap (refusing before any money moves); record and
//! send the charge on a payment task; commit the new window with its payment and event 3, giving
//! the charge back if the commit does not happen ([`finish_renewal`](Domain::finish_renewal)).
//!
//! **A renewal of a request that was never approved is a new request**: it comes back
//! `requested`, needs an admin's approval, and lapses after the hold like any request. Only a
//! booking an admin approved once is `confirmed` again by paying.

use chrono::{DateTime, Utc};
use parkmate_db::bookings::{self, Renewal};
use parkmate_db::{DbError, lots, payments};
use parkmate_protocol::Role;

use super::payments::Paid;
use super::state::{BookingAction, Step, step};
use super::{PaymentChoice, RETRY_WINDOW, reload};
use crate::model::{Actor, Booking};
use crate::types::{BookingMinutes, BookingStatus, BookingWindow};
use crate::{Domain, DomainError, events};

/// The reason event 4 gives when the slot was taken while the booking was expired.
pub const SLOT_TAKEN_REASON: &str = "Slot is no longer available";
const STILL_ACTIVE: &str = "Booking is still active";
const DECLINED: &str = "Booking was declined";
const LAPSED: &str = "Booking request lapsed";
/// The reason event 4 gives when the driver already holds the most active bookings allowed.
pub const TOO_MANY_REASON: &str = "Too many active bookings";

/// A renewal that succeeded within [`RETRY_WINDOW`] with the same duration: a double click or a
/// client retry, answered with the renewed booking, not charged or reported again.
fn is_retried_renewal(b: &Booking, minutes: BookingMinutes, now: DateTime<Utc>) -> bool {
    b.status.holds_slot()
        && b.duration_minutes == minutes.get()
        && b.renewed_at.is_some_and(|at| now - at <= RETRY_WINDOW)
}

/// How renewing this booking acts on it: an approved one is renewed, one never approved is
/// requested again.
fn renew_action(b: &Booking) -> BookingAction {
    if b.approved_at.is_some() {
        BookingAction::Renew
    } else {
        BookingAction::RenewUnapproved
    }
}

/// Why a booking in this state cannot be renewed, if it cannot.
fn refusal(b: &Booking) -> Option<&'static str> {
    match step(b.status, renew_action(b)) {
        Step::To(_) => None,
        Step::Unchanged | Step::Refused => Some(match b.status {
            BookingStatus::Declined => DECLINED,
            BookingStatus::Lapsed => LAPSED,
            _ => STILL_ACTIVE,
        }),
    }
}

/// A renewal decided before any money moved.
#[derive(Debug, Clone)]
struct Plan {
    actor: Actor,
    /// The expired booking as it was read.
    booking: Booking,
    minutes: BookingMinutes,
    window: BookingWindow,
    amount: i64,
    /// `confirmed` for a booking approved once; a never-approved one becomes a new `requested`.
    to: BookingStatus,
    now: DateTime<Utc>,
}

/// What the write transaction of a renewal found.
enum Committed {
    /// Boxed: a booking with its windows is large, the other outcomes are nothing.
    Renewed(Box<Booking>),
    /// Someone (this driver's other click) renewed it between our read and our write.
    AlreadyRenewed,
    SlotTaken,
    TooMany(u32),
}

impl Domain {
    /// The driver renews an expired booking for `minutes` from now, paying again for the new
    /// window (a window of its own: earlier windows keep their payments). A booking that was
    /// approved once is `confirmed` again; one that never was becomes a new request (`requested`,
    /// waiting for approval, subject to the hold). Event 3 on success; a refusal (not renewable,
    /// slot taken meanwhile, too many active bookings, payment declined or unavailable) commits
    /// event 4 with the reason and answers the error.
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
        let max = self.inner.rules.max_active_per_driver.get();
        if bookings::count_active(&mut self.read().await?, actor.user_id, now).await?
            >= i64::from(max)
        {
            return Err(self
                .renewal_refused(&b, TOO_MANY_REASON, DomainError::TooManyBookings(max))
                .await);
        }
        let Step::To(to) = step(b.status, renew_action(&b)) else {
            return Err(crate::corrupt("a renewable booking has no renewal step"));
        };
        let plan = Plan {
            actor,
            to,
            booking: b,
            minutes,
            window,
            amount,
            now,
        };
        let card = match payment {
            PaymentChoice::Cash => return self.finish_renewal(plan, None).await,
            PaymentChoice::Online(card) => card,
        };
        let (payment_id, key) = self.record_charge(actor.user_id, Some(id), amount).await?;
        let domain = self.clone();
        self.in_task(async move {
            let sent = domain
                .send_charge(
                    payment_id,
                    key,
                    card,
                    amount,
                    format!("Parkmate renewal of booking {id}"),
                )
                .await;
            let paid = match sent {
                Ok(paid) => paid,
                Err(DomainError::PaymentDeclined(reason)) => {
                    return Err(domain
                        .renewal_refused(
                            &plan.booking,
                            &reason,
                            DomainError::PaymentDeclined(reason.clone()),
                        )
                        .await);
                }
                Err(DomainError::PaymentUnavailable(reason)) => {
                    return Err(domain
                        .renewal_refused(
                            &plan.booking,
                            &reason,
                            DomainError::PaymentUnavailable(reason.clone()),
                        )
                        .await);
                }
                Err(e) => return Err(e),
            };
            domain.finish_renewal(plan, Some(paid)).await
        })
        .await
    }

    /// Commits the renewal (paid by `paid`, or cash), giving the charge back and reporting event 4
    /// when it does not happen.
    async fn finish_renewal(&self, plan: Plan, paid: Option<Paid>) -> Result<Booking, DomainError> {
        let committed = self.commit_renewal(&plan, paid.as_ref()).await;
        if !matches!(committed, Ok(Committed::Renewed(_)))
            && let Some(p) = &paid
        {
            self.give_back(p.payment_id).await;
        }
        match committed? {
            Committed::Renewed(b) => Ok(*b),
            Committed::AlreadyRenewed => {
                let current = self.drivers_booking(plan.actor, plan.booking.id).await?;
                if is_retried_renewal(&current, plan.minutes, plan.now) {
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
                .renewal_refused(&plan.booking, SLOT_TAKEN_REASON, DomainError::SlotTaken)
                .await),
            Committed::TooMany(max) => Err(self
                .renewal_refused(
                    &plan.booking,
                    TOO_MANY_REASON,
                    DomainError::TooManyBookings(max),
                )
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

    /// The new window (claiming its charge) and event 3, in one transaction.
    async fn commit_renewal(
        &self,
        plan: &Plan,
        paid: Option<&Paid>,
    ) -> Result<Committed, DomainError> {
        let id = plan.booking.id;
        let mut tx = self.begin().await?;
        let max = self.inner.rules.max_active_per_driver.get();
        if bookings::lock_and_count_active(&mut tx, plan.actor.user_id, plan.now).await?
            >= i64::from(max)
        {
            return Ok(Committed::TooMany(max));
        }
        let renewal = Renewal {
            id,
            window: plan.window,
            duration_minutes: plan.minutes.get(),
            to: plan.to,
            payment_method: if paid.is_some() {
                crate::types::PaymentMethod::Online
            } else {
                crate::types::PaymentMethod::Cash
            },
            payment_id: paid.map(|p| p.payment_id),
            amount_cents: plan.amount,
            now: plan.now,
        };
        let seq = match bookings::renew(&mut tx, renewal).await {
            Ok(Some(seq)) => seq,
            Ok(None) => return Ok(Committed::AlreadyRenewed),
            Err(DbError::SlotTaken) => return Ok(Committed::SlotTaken),
            Err(e) => return Err(e.into()),
        };
        if let Some(p) = paid
            && !payments::charge_booked(
                &mut tx,
                p.payment_id,
                id,
                seq,
                &p.receipt.reference,
                plan.now,
            )
            .await?
        {
            // Recovery gave the charge back while the gateway was answering.
            return Err(DomainError::PaymentUnavailable(
                "Payment could not be confirmed".into(),
            ));
        }
        let b = reload(&mut tx, id).await?;
        let end = b.window.end().timestamp_millis();
        let mut notes = vec![
            events::renewed(&b),
            events::lot_activity(&b, "renewed", &format!("renewed:{end}")),
        ];
        if b.status == BookingStatus::Requested {
            notes.push(events::requested(&b));
        }
        self.commit_with(tx, &notes).await?;
        Ok(Committed::Renewed(Box::new(b)))
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
