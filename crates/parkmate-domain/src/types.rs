//! Domain values, parsed once at the edge: a value of these types is valid by construction
//! ("parse, don't validate"). Wire DTOs live in the HTTP crate; these never derive `Deserialize`.
//! The stored enums and the booking window are `parkmate-db`'s records, re-exported here.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
pub use parkmate_db::{
    BookingStatus, BookingWindow, CarWashStatus, EmptyWindow, PaymentKind, PaymentMethod,
    PaymentState, PaymentStatus, UnknownValue,
};

/// Why an input was refused. Each variant has a stable `code()` the HTTP edge answers with (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("name must be 1 to {max} characters", max = Name::MAX)]
    Name,
    #[error("email address is not valid")]
    Email,
    #[error("password must be {min} to {max} characters", min = Password::MIN, max = Password::MAX)]
    Password,
    #[error("duration_minutes must be between 1 and {max}", max = BookingMinutes::MAX)]
    Duration,
    #[error("card_number must be 12 to 19 digits")]
    CardNumber,
    #[error("card_number is required for online payments")]
    CardRequired,
    #[error("a booking window must end after it starts")]
    Window,
    #[error("unknown {what} `{value}`")]
    Enum { what: &'static str, value: String },
}

impl InvalidInput {
    pub fn code(&self) -> &'static str {
        match self {
            InvalidInput::Name => "invalid_name",
            InvalidInput::Email => "invalid_email",
            InvalidInput::Password => "invalid_password",
            InvalidInput::Duration => "invalid_duration",
            InvalidInput::CardNumber => "invalid_card_number",
            InvalidInput::CardRequired => "card_required",
            InvalidInput::Window => "invalid_window",
            InvalidInput::Enum { .. } => "invalid_value",
        }
    }
}

/// A person's display name: trimmed, 1..=100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX: usize = 100;
    pub fn parse(s: &str) -> Result<Name, InvalidInput> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > Self::MAX || s.chars().any(char::is_control) {
            return Err(InvalidInput::Name);
        }
        Ok(Name(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, trimmed and lower-cased so `A@x.io` and `a@x.io` are one account. Only the
/// shape is checked (one `@`, non-empty parts, a dot in the domain); deliverability is not ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Email, InvalidInput> {
        let s = s.trim().to_lowercase();
        let (local, domain) = s.split_once('@').ok_or(InvalidInput::Email)?;
        let ok = !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(Email(s))
        } else {
            Err(InvalidInput::Email)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plain-text password on its way to the hasher. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub(crate) String);

impl Password {
    pub const MIN: usize = 8;
    /// Bounds the argon2 input so a huge body cannot buy a lot of hashing.
    pub const MAX: usize = 128;
    pub fn parse(s: &str) -> Result<Password, InvalidInput> {
        let n = s.chars().count();
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(Password(s.to_owned()))
        } else {
            Err(InvalidInput::Password)
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// How long a booking (or a renewal) lasts: 1 minute to 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BookingMinutes(u32);

impl BookingMinutes {
    pub const MAX: i64 = 24 * 60;
    pub fn parse(minutes: i64) -> Result<BookingMinutes, InvalidInput> {
        if (1..=Self::MAX).contains(&minutes) {
            Ok(BookingMinutes(minutes as u32))
        } else {
            Err(InvalidInput::Duration)
        }
    }
    pub fn get(self) -> u32 {
        self.0
    }
    pub fn duration(self) -> Duration {
        Duration::minutes(i64::from(self.0))
    }
    /// The price of this many minutes at `per_hour_cents`, rounded up to the next cent.
    pub fn price(self, per_hour_cents: i64) -> i64 {
        (per_hour_cents * i64::from(self.0) + 59) / 60
    }
}

/// A payment card number: 12 to 19 digits once spaces and dashes are removed. `Debug` masks all
/// but the last four digits so a number never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    pub fn parse(s: &str) -> Result<CardNumber, InvalidInput> {
        let digits: String = s.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if (12..=19).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
            Ok(CardNumber(digits))
        } else {
            Err(InvalidInput::CardNumber)
        }
    }
    pub fn digits(&self) -> &str {
        &self.0
    }
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(**** {})", self.last4())
    }
}

impl BookingMinutes {
    /// The window of this many minutes from `start`.
    pub fn window_from(self, start: DateTime<Utc>) -> BookingWindow {
        BookingWindow::new(start, start + self.duration())
            .expect("a booking lasts at least one minute, so its window is never empty")
    }
}

impl From<UnknownValue> for InvalidInput {
    fn from(e: UnknownValue) -> Self {
        InvalidInput::Enum {
            what: e.what,
            value: e.value,
        }
    }
}

impl From<EmptyWindow> for InvalidInput {
    fn from(_: EmptyWindow) -> Self {
        InvalidInput::Window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_emails_passwords() {
        assert_eq!(Name::parse("  Ada ").unwrap().as_str(), "Ada");
        assert_eq!(Name::parse(" "), Err(InvalidInput::Name));
        assert_eq!(Name::parse(&"x".repeat(101)), Err(InvalidInput::Name));
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "", "ada", "@x.io", "ada@", "ada@x", "a@b@c.io", "a b@x.io", "ada@.io",
        ] {
            assert_eq!(Email::parse(bad), Err(InvalidInput::Email), "{bad}");
        }
        assert!(Password::parse("12345678").is_ok());
        assert_eq!(Password::parse("short"), Err(InvalidInput::Password));
        assert!(!format!("{:?}", Password::parse("secret-pass").unwrap()).contains("secret"));
    }

    #[test]
    fn durations_and_prices() {
        assert_eq!(BookingMinutes::parse(0), Err(InvalidInput::Duration));
        assert_eq!(BookingMinutes::parse(1441), Err(InvalidInput::Duration));
        let m = BookingMinutes::parse(90).unwrap();
        assert_eq!(m.price(200), 300);
        // Rounded up: 1 minute at 100/h is 1.67 cents.
        assert_eq!(BookingMinutes::parse(1).unwrap().price(100), 2);
    }

    #[test]
    fn card_numbers_are_digits_and_masked() {
        let c = CardNumber::parse("4242 4242-4242 4242").unwrap();
        assert_eq!(c.digits(), "4242424242424242");
        assert_eq!(format!("{c:?}"), "CardNumber(**** 4242)");
        assert_eq!(CardNumber::parse("4242"), Err(InvalidInput::CardNumber));
        assert_eq!(
            CardNumber::parse("4242abcd42424242"),
            Err(InvalidInput::CardNumber)
        );
    }
}
