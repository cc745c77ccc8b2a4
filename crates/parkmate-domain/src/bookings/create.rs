//! A driver books a slot (event 8 to the lot's owner; the admins hear of the request, the lot's
//! staff of a car-wash job).

use chrono::{DateTime, Utc};
use parkmate_db::bookings::{self, NewBookingRow};
use parkmate_db::{DbError, lots, payments};
use parkmate_protocol::Role;

use super::payments::Paid;
use super::{NewBooking, PaymentChoice, RETRY_WINDOW};
use crate::model::{Actor, Booking};
use crate::types::BookingWindow;
use crate::{Domain, DomainError, corrupt, events};

/// What a create decided before any money moved.
#[derive(Debug, Clone)]
struct Plan {
    actor: Actor,
    req: NewBooking,
    now: DateTime<Utc>,
    window: BookingWindow,
    amount: i64,
}

impl Domain {
    /// A driver books a slot from now for `minutes`. The booking starts `requested` (an admin
    /// confirms or declines it; unapproved, it lapses after the rules' hold) and holds the slot at
    /// once. Event 8 to the lot's owner.
    ///
    /// A retry of the same request within [`RETRY_WINDOW`] answers the booking it made instead of
    /// `slot_taken`, without charging again. A driver holding the rules' maximum of active
    /// bookings is refused (`too_many_bookings`) before any money moves.
    pub async fn create_booking(
        &self,
        actor: Actor,
        req: NewBooking,
    ) -> Result<Booking, DomainError> {
        if actor.role != Role::User {
            return Err(DomainError::Forbidden("only drivers can book"));
        }
        let now = self.now();
        let window = req.minutes.window_from(now);
        let slot = {
            let mut conn = self.read().await?;
            let slot = lots::slot_info(&mut conn, req.slot_id)
                .await?
                .ok_or(DomainError::NotFound("slot"))?;
            if req.car_wash && !slot.car_wash {
                return Err(DomainError::CarWashUnavailable);
            }
            // Cheap pre-checks so a taken slot or a full quota is refused before any money moves;
            // the write transaction is what actually guarantees both.
            if bookings::slot_busy(&mut conn, req.slot_id, window, None).await? {
                drop(conn);
                return self.retried_create(actor, &req, now).await;
            }
            let max = self.inner.rules.max_active_per_driver.get();
            if bookings::count_active(&mut conn, actor.user_id, now).await? >= i64::from(max) {
                return Err(DomainError::TooManyBookings(max));
            }
            slot
        };
        let plan = Plan {
            amount: req.minutes.price(slot.price_per_hour_cents),
            actor,
            req,
            now,
            window,
        };
        let PaymentChoice::Online(card) = plan.req.payment.clone() else {
            return self.book(plan, None).await;
        };
        let (payment_id, key) = self.record_charge(actor.user_id, None, plan.amount).await?;
        let description = format!(
            "Parkmate slot {} for {} min",
            plan.req.slot_id,
            plan.req.minutes.get()
        );
        let domain = self.clone();
        self.in_task(async move {
            let paid = domain
                .send_charge(payment_id, key, card, plan.amount, description)
                .await?;
            domain.book(plan, Some(paid)).await
        })
        .await
    }

    /// Writes the booking (paid by `paid`, or cash) with its notifications, in one transaction;
    /// gives the charge back if that does not happen.
    async fn book(&self, plan: Plan, paid: Option<Paid>) -> Result<Booking, DomainError> {
        let written = self.write_booking(&plan, paid.as_ref()).await;
        if written.is_err()
            && let Some(p) = &paid
        {
            self.give_back(p.payment_id).await;
        }
        match written {
            Ok(b) => Ok(b),
            Err(DomainError::SlotTaken) => {
                self.retried_create(plan.actor, &plan.req, plan.now).await
            }
            Err(e) => Err(e),
        }
    }

    async fn write_booking(
        &self,
        plan: &Plan,
        paid: Option<&Paid>,
    ) -> Result<Booking, DomainError> {
        let mut tx = self.begin().await?;
        let max = self.inner.rules.max_active_per_driver.get();
        if bookings::lock_and_count_active(&mut tx, plan.actor.user_id, plan.now).await?
            >= i64::from(max)
        {
            return Err(DomainError::TooManyBookings(max));
        }
        let inserted = bookings::insert_booking(
            &mut tx,
            NewBookingRow {
                user_id: plan.actor.user_id,
                slot_id: plan.req.slot_id,
                window: plan.window,
                duration_minutes: plan.req.minutes.get(),
                payment_method: plan.req.payment.method(),
                payment_id: paid.map(|p| p.payment_id),
                amount_cents: plan.amount,
                car_wash: plan.req.car_wash,
                now: plan.now,
            },
        )
        .await;
        let id = match inserted {
            Ok(id) => id,
            Err(DbError::SlotTaken) => return Err(DomainError::SlotTaken),
            Err(e) => return Err(e.into()),
        };
        if let Some(p) = paid
            && !payments::charge_booked(
                &mut tx,
                p.payment_id,
                id,
                1,
                &p.receipt.reference,
                plan.now,
            )
            .await?
        {
            // Recovery gave this charge back while the gateway was answering (a call slower
            // than the grace period): it must not pay for a booking now.
            return Err(DomainError::PaymentUnavailable(
                "Payment could not be confirmed".into(),
            ));
        }
        let b = bookings::booking(&mut tx, id)
            .await?
            .ok_or_else(|| corrupt("inserted booking vanished"))?;
        // Event 8 to the owner; the admins hear of the request, the lot's staff of a car wash.
        let mut notes = vec![events::created(&b), events::requested(&b)];
        notes.extend(events::car_wash_job(&b));
        self.commit_with(tx, &notes).await?;
        Ok(b)
    }

    /// The slot was taken: by this very request made a moment ago (answer it), or by someone else.
    async fn retried_create(
        &self,
        actor: Actor,
        req: &NewBooking,
        now: DateTime<Utc>,
    ) -> Result<Booking, DomainError> {
        let mut conn = self.read().await?;
        let since = now - RETRY_WINDOW;
        match bookings::recent_same_booking(
            &mut conn,
            actor.user_id,
            req.slot_id,
            req.minutes.get(),
            since,
        )
        .await?
        {
            Some(id) => bookings::booking(&mut conn, id)
                .await?
                .ok_or(DomainError::NotFound("booking")),
            None => Err(DomainError::SlotTaken),
        }
    }
}
