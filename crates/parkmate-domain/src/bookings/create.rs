//! A driver books a slot (event 8 to the lot's owner).

use chrono::{DateTime, Utc};
use parkmate_db::bookings::{self, NewBookingRow};
use parkmate_db::{DbError, lots};
use parkmate_protocol::Role;

use super::{NewBooking, RETRY_WINDOW};
use crate::model::{Actor, Booking};
use crate::types::PaymentStatus;
use crate::{Domain, DomainError, corrupt, events};

impl Domain {
    /// A driver books a slot from now for `minutes`. The booking starts `requested` (an admin
    /// confirms or declines it) and holds the slot at once. Event 8 to the lot's owner.
    ///
    /// A retry of the same request within [`RETRY_WINDOW`] answers the booking it made instead of
    /// `slot_taken`, without charging again.
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
            // Cheap pre-check so a taken slot is refused before any money moves; the database is
            // what actually guarantees it.
            if bookings::slot_busy(&mut conn, req.slot_id, window, None).await? {
                drop(conn);
                return self.retried_create(actor, &req, now).await;
            }
            slot
        };
        let amount = req.minutes.price(slot.price_per_hour_cents);
        let receipt = self
            .charge(
                &req.payment,
                amount,
                format!(
                    "Parkmate slot {} for {} min",
                    req.slot_id,
                    req.minutes.get()
                ),
            )
            .await?;

        let mut tx = self.begin().await?;
        let inserted = bookings::insert_booking(
            &mut tx,
            NewBookingRow {
                user_id: actor.user_id,
                slot_id: req.slot_id,
                window,
                duration_minutes: req.minutes.get(),
                payment_method: req.payment.method(),
                payment_status: if receipt.is_some() {
                    PaymentStatus::Paid
                } else {
                    PaymentStatus::Pending
                },
                payment_ref: receipt.as_ref().map(|r| r.reference.as_str()),
                amount_cents: amount,
                car_wash: req.car_wash,
                now,
            },
        )
        .await;
        let id = match inserted {
            Ok(id) => id,
            Err(e) => {
                drop(tx);
                self.refund(receipt.as_ref()).await;
                return match e {
                    DbError::SlotTaken => self.retried_create(actor, &req, now).await,
                    e => Err(e.into()),
                };
            }
        };
        let b = bookings::booking(&mut tx, id)
            .await?
            .ok_or_else(|| corrupt("inserted booking vanished"))?;
        self.commit_with(tx, &[events::created(&b)]).await?;
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
