//! The records this crate reads and writes: plain data, valid by construction where a column
//! alone cannot say so (a [`BookingWindow`] ends after it starts). What the domain *does* with
//! them (the state machine, prices, who may act) lives in `parkmate-domain`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use parkmate_protocol::{Audience, Level, NotificationFrame, Role, rfc3339};

// ---------------------------------------------------------------------------------------------
// Notifications

/// A notification to be stored (and then published).
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub audience: Audience,
    pub level: Level,
    /// Machine-readable kind, e.g. `booking_renewed`; `custom` when a publisher gave none.
    pub event: String,
    pub message: String,
    /// Always a JSON object.
    pub data: serde_json::Value,
    /// When set, a second insert with the same key returns the first row instead of a new one
    /// (idempotent retries of the publish API and of domain actions).
    pub dedupe_key: Option<String>,
}

impl NewNotification {
    pub fn new(audience: Audience, level: Level, event: &str, message: impl Into<String>) -> Self {
        NewNotification {
            audience,
            level,
            event: event.to_owned(),
            message: message.into(),
            data: serde_json::Value::Object(Default::default()),
            dedupe_key: None,
        }
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }

    pub fn with_dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }
}

/// A committed notification.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNotification {
    pub id: i64,
    pub audience: Audience,
    pub level: Level,
    pub event: String,
    pub message: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl StoredNotification {
    pub fn frame(&self) -> NotificationFrame {
        NotificationFrame {
            id: self.id,
            level: self.level,
            event: self.event.clone(),
            message: self.message.clone(),
            data: self.data.clone(),
            created_at: rfc3339(self.created_at),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    pub notification: StoredNotification,
    pub read: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxPage {
    /// Newest first.
    pub items: Vec<InboxItem>,
    /// Pass as `before` to get the next (older) page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// A viewer's unread count and the highest notification id it accounts for, so a socket can tell
/// whether notifications it delivered after that point are already included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadState {
    pub count: i64,
    pub as_of: i64,
}

/// What a socket's `hello` needs from the store, from one snapshot: the unread state and the
/// newest notification id the viewer can see (0 when it sees none; never above `unread.as_of`).
/// A client that has no cursor of its own resumes from `newest`, so nothing published after its
/// first `hello` is lost to a reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    pub unread: UnreadState,
    pub newest: i64,
}

// ---------------------------------------------------------------------------------------------
// Accounts and lots

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub id: i64,
    pub number: i64,
    pub car_wash: bool,
    /// Whether an active booking's window contains "now".
    pub occupied: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub id: i64,
    pub owner_id: i64,
    pub owner_name: String,
    pub name: String,
    pub price_per_hour_cents: i64,
    pub employees: Vec<Employee>,
    pub slots: Vec<Slot>,
}

/// What booking a slot needs to know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    pub price_per_hour_cents: i64,
    pub car_wash: bool,
}

// ---------------------------------------------------------------------------------------------
// Bookings

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub id: i64,
    pub user_id: i64,
    pub user_name: String,
    pub lot_id: i64,
    pub lot_name: String,
    /// Who gets event 8 and may verify cash / mark the car wash done.
    pub lot_owner_id: i64,
    pub slot_id: i64,
    pub slot_number: i64,
    pub window: BookingWindow,
    pub duration_minutes: u32,
    pub status: BookingStatus,
    /// How the current (last) window is paid.
    pub payment_method: PaymentMethod,
    /// The windows' payments together: `pending` while any window's cash is unverified, else
    /// `refunded` when every window was given back, else `paid`.
    pub payment_status: PaymentStatus,
    /// Everything charged or owed for the booking: the sum of its windows.
    pub amount_cents: i64,
    /// The part of `amount_cents` given back (windows refunded).
    pub refunded_cents: i64,
    /// `None` when no car wash was ordered.
    pub car_wash: Option<CarWashStatus>,
    pub decline_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub renewed_at: Option<DateTime<Utc>>,
    /// When the current request was made: an unapproved request lapses a hold after it.
    pub requested_at: DateTime<Utc>,
    /// When an admin approved it; `None` for a booking never approved.
    pub approved_at: Option<DateTime<Utc>>,
    /// Its windows, oldest first (never empty: the first is the booking's own).
    pub windows: Vec<Window>,
}

/// One paid period of a booking: the first, then one per renewal. Each has its own payment, so a
/// renewal never rewrites how an earlier window was paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// 1, 2, … in the order the windows were added.
    pub seq: u32,
    pub span: BookingWindow,
    pub duration_minutes: u32,
    pub amount_cents: i64,
    pub payment_method: PaymentMethod,
    pub payment_status: PaymentStatus,
    /// When the lot's owner or an admin verified this window's cash.
    pub cash_verified_at: Option<DateTime<Utc>>,
    /// The online charge that paid it.
    pub charge: Option<Payment>,
    /// The refund that gave the charge back.
    pub refund: Option<Payment>,
}

/// A call to the payment gateway, as recorded before it was made and settled after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: i64,
    pub kind: PaymentKind,
    pub status: PaymentState,
    pub amount_cents: i64,
    /// What the gateway received with the call.
    pub idempotency_key: String,
    /// The gateway's reference, once it answered.
    pub gateway_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// A refund decided (its row committed) and not yet confirmed by the gateway: what executing it
/// needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundDue {
    /// The refund's own row.
    pub refund_id: i64,
    /// The charge it gives back, and the key and reference the gateway knows that charge by.
    pub charge_id: i64,
    pub charge_key: String,
    pub charge_ref: Option<String>,
    /// The refund's own idempotency key.
    pub refund_key: String,
    pub amount_cents: i64,
    pub booking_id: Option<i64>,
}

/// A booking's time window `[start, end)`; `end` is strictly after `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// A window that would end before (or when) it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a booking window must end after it starts")]
pub struct EmptyWindow;

impl BookingWindow {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<BookingWindow, EmptyWindow> {
        if end > start {
            Ok(BookingWindow { start, end })
        } else {
            Err(EmptyWindow)
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

/// A stored enum value this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

/// A closed set of values stored as text: `as_str` is the column value, `FromStr` its inverse.
macro_rules! text_enum {
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
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => Err(UnknownValue { what: $what, value: other.to_owned() }),
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

text_enum!(
    /// Where a booking is in its life; the domain's state machine moves it (`docs/booking-api.md`).
    BookingStatus, "status", {
        /// Made by a driver, waiting for an admin (it already holds the slot).
        Requested => "requested",
        Confirmed => "confirmed",
        /// Refused by an admin; releases the slot. Terminal.
        Declined => "declined",
        /// The window ran out; releases the slot. A renewal makes it active again (`confirmed`
        /// if it was ever approved, otherwise a new `requested`).
        Expired => "expired",
        /// A request not approved within the hold; releases the slot and refunds it. Terminal.
        Lapsed => "lapsed",
    }
);

impl BookingStatus {
    /// Whether a booking in this state holds its slot: the same set as [`ACTIVE_SQL`], the SQLite
    /// trigger and the PostgreSQL exclusion constraint.
    pub fn holds_slot(self) -> bool {
        matches!(self, BookingStatus::Requested | BookingStatus::Confirmed)
    }
}

/// The statuses that hold a slot, as a SQL list (see [`BookingStatus::holds_slot`]).
pub(crate) const ACTIVE_SQL: &str = "('requested', 'confirmed')";

text_enum!(PaymentMethod, "payment_method", { Cash => "cash", Online => "online" });
text_enum!(PaymentStatus, "payment_status", {
    /// Cash not yet verified by the lot owner or an admin.
    Pending => "pending",
    Paid => "paid",
    /// Given back: an online payment refunded because the slot was returned unused.
    Refunded => "refunded",
});
text_enum!(
    /// A `payments` row is a charge or the refund of one.
    PaymentKind, "payment kind", { Charge => "charge", Refund => "refund" }
);
text_enum!(
    /// The outcome of a gateway call (`migrations/*/1002_money.sql` has the lifecycle).
    PaymentState, "payment status", {
        /// Sent (or about to be): uncertain until settled; recovery settles old ones.
        Pending => "pending",
        /// A charge that pays a window, or a refund the gateway confirmed.
        Succeeded => "succeeded",
        /// Refused by the gateway: no money moved (a refund: needs a human).
        Failed => "failed",
        /// A charge given back (or voided): its refund row carries the gateway's answer.
        Refunded => "refunded",
    }
);
text_enum!(CarWashStatus, "car_wash_status", { Pending => "pending", Done => "done" });

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn windows_refuse_empty_and_detect_overlap() {
        let t = |m: i64| Utc.timestamp_opt(m * 60, 0).unwrap();
        assert_eq!(BookingWindow::new(t(5), t(5)), Err(EmptyWindow));
        let a = BookingWindow::new(t(0), t(60)).unwrap();
        assert!(a.overlaps(&BookingWindow::new(t(59), t(70)).unwrap()));
        // Half-open: back to back is not an overlap.
        assert!(!a.overlaps(&BookingWindow::new(t(60), t(70)).unwrap()));
    }

    #[test]
    fn enums_round_trip() {
        for s in ["requested", "confirmed", "declined", "expired", "lapsed"] {
            assert_eq!(s.parse::<BookingStatus>().unwrap().as_str(), s);
        }
        assert!("cheque".parse::<PaymentMethod>().is_err());
        assert!(BookingStatus::Requested.holds_slot() && !BookingStatus::Expired.holds_slot());
    }
}
