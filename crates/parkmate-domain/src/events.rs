//! The notifications the domain commits, one builder per event of `docs/booking-api.md`. The texts
//! and levels are exactly the original system's (tests assert them); `event` and `data` let the
//! client link a toast to its booking.
//!
//! Besides the ten, the domain sends notifications that are not among the original texts:
//! `booking_lapsed` (to the driver: a request not approved within the hold), and what keeps the
//! staff's screens live: `booking_requested` and `booking_request_lapsed` (to the admins' role),
//! `car_wash_requested` (to the lot's staff, [`Audience::Lot`]) and `lot_activity` (to the lot's
//! owner, on every change at their lots; the web client refreshes the dashboard without a toast).
//! Each is one row, however many people it reaches.
//!
//! Every builder sets a dedupe key naming the state change it reports (and, for events tied to a
//! window, that window's end), so a retried action or a scheduler pass that repeats after a crash
//! stores nothing new.

use parkmate_db::NewNotification;
use parkmate_protocol::{Audience, Level, Role, rfc3339};
use serde_json::json;

use crate::model::Booking;

pub const EXPIRING: &str = "Your booking will expire in 5 minutes!";
pub const RENEWED: &str = "Booking renewed successfully!";
pub const DECLINED: &str = "Admin declined your booking request";
pub const CASH_VERIFIED: &str = "Your cash payment has been verified";
pub const CAR_WASH_DONE: &str = "Your car wash service completed";

pub fn requested_text(booking_id: i64, lot_name: &str) -> String {
    format!("New booking request #{booking_id} at {lot_name} awaits approval")
}
pub fn request_lapsed_text(booking_id: i64, lot_name: &str) -> String {
    format!("Booking request #{booking_id} at {lot_name} lapsed without approval")
}
pub fn car_wash_job_text(b: &Booking) -> String {
    format!(
        "New car wash job: booking #{} at {}, Slot #{}",
        b.id, b.lot_name, b.slot_number
    )
}
pub fn lapsed_text(slot_number: i64) -> String {
    format!("Your booking request for Slot #{slot_number} lapsed: it was not approved in time")
}
pub fn renewal_failed_text(reason: &str) -> String {
    format!("Renewal failed: {reason}")
}
pub fn expired_text(slot_number: i64) -> String {
    format!("Your booking for Slot #{slot_number} expired")
}
pub fn created_text(lot_id: i64) -> String {
    format!("New booking received for Lot #{lot_id}")
}
pub fn employee_assigned_text(lot_id: i64, name: &str) -> String {
    format!("New employee assigned to Lot #{lot_id}: {name}")
}

fn booking_data(b: &Booking) -> serde_json::Value {
    json!({
        "booking_id": b.id,
        "lot_id": b.lot_id,
        "slot_id": b.slot_id,
        "slot_number": b.slot_number,
        "end_at": rfc3339(b.window.end()),
    })
}

fn to_driver(
    b: &Booking,
    level: Level,
    event: &str,
    message: impl Into<String>,
) -> NewNotification {
    NewNotification::new(Audience::User(b.user_id), level, event, message)
        .with_data(booking_data(b))
}

fn end_ms(b: &Booking) -> i64 {
    b.window.end().timestamp_millis()
}

/// Event 1: five minutes before the end of the current window.
pub fn expiring(b: &Booking) -> NewNotification {
    to_driver(b, Level::Warning, "booking_expiring", EXPIRING).with_dedupe_key(format!(
        "booking:{}:expiring:{}",
        b.id,
        end_ms(b)
    ))
}

/// Event 3: a paid renewal moved the window (`b` is the renewed booking).
pub fn renewed(b: &Booking) -> NewNotification {
    to_driver(b, Level::Success, "booking_renewed", RENEWED).with_dedupe_key(format!(
        "booking:{}:renewed:{}",
        b.id,
        end_ms(b)
    ))
}

/// Event 4: a renewal was refused. Keyed by reason and window, so a double click on a failing
/// renewal toasts once, while a second attempt that fails differently is reported.
pub fn renewal_failed(b: &Booking, reason: &str) -> NewNotification {
    let mut data = booking_data(b);
    data["reason"] = json!(reason);
    NewNotification::new(
        Audience::User(b.user_id),
        Level::Error,
        "renewal_failed",
        renewal_failed_text(reason),
    )
    .with_data(data)
    .with_dedupe_key(format!(
        "booking:{}:renewal_failed:{}:{reason}",
        b.id,
        end_ms(b)
    ))
}

/// Event 5: the server expired the booking and released its slot. A request that was never
/// approved is refunded as it expires: `refund_cents` then says how much.
pub fn expired(b: &Booking, refund_cents: i64) -> NewNotification {
    let mut n = to_driver(
        b,
        Level::Warning,
        "booking_expired",
        expired_text(b.slot_number),
    )
    .with_dedupe_key(format!("booking:{}:expired:{}", b.id, end_ms(b)));
    if refund_cents > 0 {
        n.data["refund_cents"] = json!(refund_cents);
    }
    n
}

/// Not one of the ten: a request not approved within the hold lapsed, its slot released and
/// its online payments (`refund_cents`) refunded. Keyed by the request it ends.
pub fn lapsed(b: &Booking, refund_cents: i64) -> NewNotification {
    let mut data = booking_data(b);
    data["refund_cents"] = json!(refund_cents);
    NewNotification::new(
        Audience::User(b.user_id),
        Level::Warning,
        "booking_lapsed",
        lapsed_text(b.slot_number),
    )
    .with_data(data)
    .with_dedupe_key(format!(
        "booking:{}:lapsed:{}",
        b.id,
        b.requested_at.timestamp_millis()
    ))
}

/// Event 6: an admin declined the request (terminal, so one key per booking). The text stays the
/// original's; what was refunded is in `data.refund_cents` (0 when nothing was paid online).
pub fn declined(b: &Booking, refund_cents: i64) -> NewNotification {
    let mut data = booking_data(b);
    data["reason"] = json!(b.decline_reason);
    data["refund_cents"] = json!(refund_cents);
    NewNotification::new(
        Audience::User(b.user_id),
        Level::Warning,
        "booking_declined",
        DECLINED,
    )
    .with_data(data)
    .with_dedupe_key(format!("booking:{}:declined", b.id))
}

/// Event 7: the cash of window `seq` verified: once per window, hence the window in the key.
pub fn cash_verified(b: &Booking, seq: u32) -> NewNotification {
    to_driver(b, Level::Success, "cash_payment_verified", CASH_VERIFIED)
        .with_dedupe_key(format!("booking:{}:cash_verified:{seq}", b.id))
}

/// Event 8: to the lot's owner.
pub fn created(b: &Booking) -> NewNotification {
    NewNotification::new(
        Audience::User(b.lot_owner_id),
        Level::Info,
        "booking_created",
        created_text(b.lot_id),
    )
    .with_data(booking_data(b))
    .with_dedupe_key(format!("booking:{}:created", b.id))
}

/// Event 9: a booking has one car wash.
pub fn car_wash_done(b: &Booking) -> NewNotification {
    to_driver(b, Level::Success, "car_wash_completed", CAR_WASH_DONE)
        .with_dedupe_key(format!("booking:{}:car_wash_done", b.id))
}

/// Event 10: to the lot's owner.
pub fn employee_assigned(
    lot_id: i64,
    owner_id: i64,
    employee_id: i64,
    employee_name: &str,
) -> NewNotification {
    NewNotification::new(
        Audience::User(owner_id),
        Level::Info,
        "employee_assigned",
        employee_assigned_text(lot_id, employee_name),
    )
    .with_data(
        json!({"lot_id": lot_id, "employee_id": employee_id, "employee_name": employee_name}),
    )
    .with_dedupe_key(format!("lot:{lot_id}:employee:{employee_id}:assigned"))
}

/// To the admins (one row for the role): a request waits for approval, new or renewed.
pub fn requested(b: &Booking) -> NewNotification {
    NewNotification::new(
        Audience::Role(Role::Admin),
        Level::Info,
        "booking_requested",
        requested_text(b.id, &b.lot_name),
    )
    .with_data(booking_data(b))
    .with_dedupe_key(format!(
        "booking:{}:requested:{}",
        b.id,
        b.requested_at.timestamp_millis()
    ))
}

/// To the admins: a request nobody approved lapsed (it leaves their pending list).
pub fn request_lapsed(b: &Booking) -> NewNotification {
    NewNotification::new(
        Audience::Role(Role::Admin),
        Level::Info,
        "booking_request_lapsed",
        request_lapsed_text(b.id, &b.lot_name),
    )
    .with_data(booking_data(b))
    .with_dedupe_key(format!(
        "booking:{}:request_lapsed:{}",
        b.id,
        b.requested_at.timestamp_millis()
    ))
}

/// To the lot's staff (one row for the lot): a booking ordered a car wash.
pub fn car_wash_job(b: &Booking) -> Option<NewNotification> {
    b.car_wash?;
    Some(
        NewNotification::new(
            Audience::Lot(b.lot_id),
            Level::Info,
            "car_wash_requested",
            car_wash_job_text(b),
        )
        .with_data(booking_data(b))
        .with_dedupe_key(format!("booking:{}:car_wash_job", b.id)),
    )
}

/// A change at a lot, to its owner, whose dashboard refreshes on it (the web client shows no
/// toast for this kind). `change` names it in words and, with `key`, in the dedupe key: one row
/// per change, however often it is retried.
pub fn lot_activity(b: &Booking, change: &str, key: &str) -> NewNotification {
    let mut data = booking_data(b);
    data["status"] = json!(b.status.as_str());
    data["change"] = json!(change);
    NewNotification::new(
        Audience::User(b.lot_owner_id),
        Level::Info,
        "lot_activity",
        format!("Booking #{} at {}: {change}", b.id, b.lot_name),
    )
    .with_data(data)
    .with_dedupe_key(format!("booking:{}:activity:{key}", b.id))
}
