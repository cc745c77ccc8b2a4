//! Bookings: what a driver books, who may see it, and the paths that change it, one file each:
//! - `create.rs`: a driver books a slot (event 8 to the owner);
//! - `actions.rs`: an admin approves or declines (event 6), the owner verifies cash (event 7), the
//!   lot's staff completes the car wash (event 9);
//! - `renewal.rs`: the driver renews an expired booking, paying again (events 3 and 4);
//! - `payments.rs`: charging and refunding through the [`PaymentGateway`](crate::PaymentGateway),
//!   each call recorded first, and the recovery that settles what a crash left;
//! - `state.rs`: the state machine.
//!
//! Every changing path reads the booking it changes inside its write transaction, locked
//! ([`load`]), decides with [`state::step`], applies a conditional update and commits its
//! notification in the same transaction.

use chrono::Duration;
use parkmate_db::bookings::{self, BookingScope};
use parkmate_db::{Exec, Tx, lots};
use parkmate_protocol::Role;

use crate::model::{Actor, Booking};
use crate::types::{BookingMinutes, CardNumber, InvalidInput, PaymentMethod};
use crate::{Domain, DomainError, corrupt};

mod actions;
mod create;
pub(crate) mod payments;
mod renewal;
pub mod state;

pub use actions::MAX_REASON_CHARS;
pub use renewal::SLOT_TAKEN_REASON;

/// How long after a create or a renewal the same request counts as a retry (a double click, a
/// client retry after a timeout) and answers the first result instead of failing or charging again.
pub const RETRY_WINDOW: Duration = Duration::minutes(2);

/// How a booking or renewal is paid.
#[derive(Debug, Clone)]
pub enum PaymentChoice {
    /// Pending until the lot owner or an admin verifies it.
    Cash,
    /// Charged through the gateway before the booking is committed.
    Online(CardNumber),
}

impl PaymentChoice {
    /// From the wire's `payment_method` and `card_number`; online needs a card.
    pub fn parse(method: &str, card: Option<&str>) -> Result<PaymentChoice, InvalidInput> {
        match method.parse::<PaymentMethod>()? {
            PaymentMethod::Cash => Ok(PaymentChoice::Cash),
            PaymentMethod::Online => match card {
                Some(c) => Ok(PaymentChoice::Online(CardNumber::parse(c)?)),
                None => Err(InvalidInput::CardRequired),
            },
        }
    }

    pub(crate) fn method(&self) -> PaymentMethod {
        match self {
            PaymentChoice::Cash => PaymentMethod::Cash,
            PaymentChoice::Online(_) => PaymentMethod::Online,
        }
    }
}

/// A driver's request for a slot.
#[derive(Debug, Clone)]
pub struct NewBooking {
    pub slot_id: i64,
    pub minutes: BookingMinutes,
    pub car_wash: bool,
    pub payment: PaymentChoice,
}

/// The booking a caller named, or 404; locked for the rest of the write transaction `tx`, so the
/// state checked is the state the conditional update meets.
async fn load(tx: &mut Tx, id: i64) -> Result<Booking, DomainError> {
    bookings::booking_for_update(tx, id)
        .await?
        .ok_or(DomainError::NotFound("booking"))
}

/// The booking just changed inside this transaction: missing would mean the store is broken.
async fn reload(tx: &mut Tx, id: i64) -> Result<Booking, DomainError> {
    bookings::booking(tx, id)
        .await?
        .ok_or_else(|| corrupt("booking vanished"))
}

/// Whether `actor` may see `b`: admins everything, a driver their own, an owner their lots', an
/// employee the car-wash jobs of the lots they work at.
async fn can_see(c: &mut impl Exec, actor: Actor, b: &Booking) -> Result<bool, DomainError> {
    Ok(match actor.role {
        Role::Admin => true,
        Role::User => b.user_id == actor.user_id,
        Role::Owner => b.lot_owner_id == actor.user_id,
        Role::Employee => {
            b.car_wash.is_some() && lots::works_at(c, actor.user_id, b.lot_id).await?
        }
    })
}

impl Domain {
    /// The bookings `actor` may see: a driver's own, an owner's lots', an employee's lots' car-wash
    /// jobs, everything for admins. Newest first.
    pub async fn bookings(&self, actor: Actor) -> Result<Vec<Booking>, DomainError> {
        let scope = match actor.role {
            Role::Admin => BookingScope::All,
            Role::User => BookingScope::Driver(actor.user_id),
            Role::Owner => BookingScope::Owner(actor.user_id),
            Role::Employee => BookingScope::Employee(actor.user_id),
        };
        Ok(bookings::bookings(&mut self.read().await?, scope).await?)
    }

    /// One booking, if `actor` may see it (404 when it does not exist, 403 when it is not theirs).
    pub async fn booking(&self, actor: Actor, id: i64) -> Result<Booking, DomainError> {
        let mut conn = self.read().await?;
        let b = bookings::booking(&mut conn, id)
            .await?
            .ok_or(DomainError::NotFound("booking"))?;
        if can_see(&mut conn, actor, &b).await? {
            Ok(b)
        } else {
            Err(DomainError::Forbidden("this booking is not yours"))
        }
    }
}
