//! [`DomainError`]: every way a domain call can fail, each with the stable `code` the HTTP edge
//! answers with. Callers branch on the variants; the internal ones are logged, never shown.

use parkmate_db::DbError;

use crate::types::{BookingStatus, InvalidInput};

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("email or password is wrong")]
    InvalidCredentials,
    #[error("the slot is already booked for that time")]
    SlotTaken,
    #[error("cannot {action} a booking that is {from}")]
    InvalidTransition {
        from: BookingStatus,
        action: &'static str,
    },
    #[error("{0}")]
    NotRenewable(&'static str),
    /// The driver already holds as many active bookings as the rules allow.
    #[error("you already hold {0} active bookings, the most allowed")]
    TooManyBookings(u32),
    #[error("this slot offers no car wash")]
    CarWashUnavailable,
    #[error("this booking was not paid in cash")]
    NotCash,
    #[error("no car wash was ordered with this booking")]
    NoCarWash,
    #[error("user {0} is not an employee")]
    NotAnEmployee(i64),
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    #[error("{0}")]
    PaymentUnavailable(String),
    #[error("the clock is not manual")]
    ClockNotManual,
    /// The database could not be reached: worth a retry later (503), not a bug.
    #[error("the database is unavailable")]
    Unavailable(#[source] DbError),
    #[error("database error")]
    Db(#[source] DbError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl From<DbError> for DomainError {
    fn from(e: DbError) -> Self {
        match e {
            // A refused overlap reached a caller that did not expect it: still a taken slot.
            DbError::SlotTaken => DomainError::SlotTaken,
            DbError::Unavailable(_) => DomainError::Unavailable(e),
            e => DomainError::Db(e),
        }
    }
}

impl DomainError {
    /// The stable machine-readable code the HTTP edge answers with.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::Invalid(e) => e.code(),
            DomainError::NotFound(_) => "not_found",
            DomainError::Forbidden(_) => "forbidden",
            DomainError::EmailTaken => "email_taken",
            DomainError::InvalidCredentials => "invalid_credentials",
            DomainError::SlotTaken => "slot_taken",
            DomainError::InvalidTransition { .. } => "invalid_transition",
            DomainError::NotRenewable(_) => "not_renewable",
            DomainError::TooManyBookings(_) => "too_many_bookings",
            DomainError::CarWashUnavailable => "car_wash_unavailable",
            DomainError::NotCash => "not_cash_payment",
            DomainError::NoCarWash => "no_car_wash",
            DomainError::NotAnEmployee(_) => "not_an_employee",
            DomainError::PaymentDeclined(_) => "payment_declined",
            DomainError::PaymentUnavailable(_) => "payment_unavailable",
            DomainError::ClockNotManual => "not_found",
            DomainError::Unavailable(_) => "unavailable",
            DomainError::Db(_) | DomainError::Corrupt(_) | DomainError::Hashing(_) => "internal",
        }
    }

    /// Whether this is the server's fault (logged, answered without details).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            DomainError::Unavailable(_)
                | DomainError::Db(_)
                | DomainError::Corrupt(_)
                | DomainError::Hashing(_)
        )
    }
}

pub(crate) fn corrupt(msg: impl Into<String>) -> DomainError {
    DomainError::Corrupt(msg.into())
}
