//! Domain values, parsed once at the edge: a value of these types is valid by construction
//! ("parse, don't validate"). Wire DTOs live in the HTTP crate; these never derive `Deserialize`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

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

/// A booking's time window `[start, end)`; `end` is strictly after `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl BookingWindow {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<BookingWindow, InvalidInput> {
        if end > start {
            Ok(BookingWindow { start, end })
        } else {
            Err(InvalidInput::Window)
        }
    }
    pub fn starting(start: DateTime<Utc>, minutes: BookingMinutes) -> BookingWindow {
        BookingWindow {
            start,
            end: start + minutes.duration(),
        }
    }
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }
    pub fn overlaps(&self, other: &BookingWindow) -> bool {
        self.start < other.end && other.start < self.end
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($(#[$vm:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => Err(InvalidInput::Enum { what: $what, value: other.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Where a booking is in its life; see `BookingStatus::holds_slot` and `docs/booking-api.md`.
    BookingStatus, "status", {
        /// Made by a driver, waiting for an admin (it already holds the slot).
        Requested => "requested",
        Confirmed => "confirmed",
        /// Refused by an admin; releases the slot. Terminal.
        Declined => "declined",
        /// The window ran out; releases the slot. A paid renewal makes it `confirmed` again.
        Expired => "expired",
    }
);

impl BookingStatus {
    /// Whether a booking in this state holds its slot (the database trigger uses the same set).
    pub fn holds_slot(self) -> bool {
        matches!(self, BookingStatus::Requested | BookingStatus::Confirmed)
    }

    /// The state machine of `docs/booking-api.md`: what `action` does to a booking in this state.
    /// Repeating an action that already took effect is [`Step::Unchanged`] (answered, not
    /// reported again), so retries are harmless.
    pub fn step(self, action: BookingAction) -> Step {
        use BookingAction as A;
        use BookingStatus as S;
        match (self, action) {
            (S::Requested, A::Approve) => Step::To(S::Confirmed),
            (S::Confirmed, A::Approve) => Step::Unchanged,
            (S::Requested, A::Decline) => Step::To(S::Declined),
            (S::Declined, A::Decline) => Step::Unchanged,
            (S::Requested | S::Confirmed, A::Expire) => Step::To(S::Expired),
            (S::Expired, A::Expire) => Step::Unchanged,
            (S::Expired, A::Renew) => Step::To(S::Confirmed),
            _ => Step::Refused,
        }
    }
}

/// Something that moves a booking between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingAction {
    /// An admin confirms a request.
    Approve,
    /// An admin refuses a request.
    Decline,
    /// The scheduler ends a booking whose window ran out.
    Expire,
    /// The driver pays for a new window.
    Renew,
}

/// The outcome of [`BookingStatus::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    To(BookingStatus),
    /// Already done: answer the booking as it is.
    Unchanged,
    /// Not allowed from this state.
    Refused,
}

string_enum!(PaymentMethod, "payment_method", { Cash => "cash", Online => "online" });
string_enum!(PaymentStatus, "payment_status", {
    /// Cash not yet verified by the lot owner or an admin.
    Pending => "pending",
    Paid => "paid",
});
string_enum!(CarWashStatus, "car_wash_status", { Pending => "pending", Done => "done" });

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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

    #[test]
    fn windows_refuse_empty_and_detect_overlap() {
        let t = |m: i64| Utc.timestamp_opt(m * 60, 0).unwrap();
        assert_eq!(BookingWindow::new(t(5), t(5)), Err(InvalidInput::Window));
        let a = BookingWindow::new(t(0), t(60)).unwrap();
        assert!(a.overlaps(&BookingWindow::new(t(59), t(70)).unwrap()));
        // Half-open: back to back is not an overlap.
        assert!(!a.overlaps(&BookingWindow::new(t(60), t(70)).unwrap()));
    }

    #[test]
    fn the_state_machine() {
        use BookingAction::*;
        use BookingStatus::*;
        let table = [
            (Requested, Approve, Step::To(Confirmed)),
            (Confirmed, Approve, Step::Unchanged),
            (Declined, Approve, Step::Refused),
            (Expired, Approve, Step::Refused),
            (Requested, Decline, Step::To(Declined)),
            (Declined, Decline, Step::Unchanged),
            (Confirmed, Decline, Step::Refused),
            (Expired, Decline, Step::Refused),
            (Requested, Expire, Step::To(Expired)),
            (Confirmed, Expire, Step::To(Expired)),
            (Expired, Expire, Step::Unchanged),
            (Declined, Expire, Step::Refused),
            (Expired, Renew, Step::To(Confirmed)),
            (Requested, Renew, Step::Refused),
            (Confirmed, Renew, Step::Refused),
            (Declined, Renew, Step::Refused),
        ];
        for (from, action, step) in table {
            assert_eq!(from.step(action), step, "{from} {action:?}");
        }
        // Whatever a step leads to, only requested/confirmed hold the slot.
        assert!(Confirmed.holds_slot() && !Declined.holds_slot());
    }

    #[test]
    fn enums_round_trip() {
        for s in ["requested", "confirmed", "declined", "expired"] {
            assert_eq!(s.parse::<BookingStatus>().unwrap().as_str(), s);
        }
        assert!("cheque".parse::<PaymentMethod>().is_err());
        assert!(BookingStatus::Requested.holds_slot() && !BookingStatus::Expired.holds_slot());
    }
}
