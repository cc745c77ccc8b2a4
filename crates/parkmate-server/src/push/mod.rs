//! Web Push on the server (issue 15, `docs/push.md`): reaching a person whose app is closed.
//!
//! `parkmate-push` does the standards (VAPID, RFC 8291 encryption, RFC 8030 delivery with
//! retries); this module decides who is pushed what and when:
//! - [`api`]: the signed-in person's subscriptions (`POST`/`DELETE /api/push/subscriptions`),
//!   the VAPID public key browsers subscribe with, and the publisher's funnel of a notification
//!   (`GET /api/notifications/{id}/status`), a person's preferences and quiet hours;
//! - [`escalation`]: the leader's task that pushes what no socket acknowledged in time;
//! - [`quiet`]: a person's quiet hours, during which pushes are held (urgent ones excepted).
//!
//! The `ack` client frame (`ws/connection.rs`) is the other half: it marks a notification seen,
//! which is what cancels its push.

pub mod api;
pub mod escalation;
pub mod quiet;

use std::time::Duration;

use parkmate_push::{EndpointPolicy, Pusher};

/// Events pushed at once, without waiting for an `ack`: the two a driver must not miss. Event 1,
/// "Your booking will expire in 5 minutes!", is useless ten seconds late into a five-minute
/// warning; event 5 says the slot is gone.
pub const URGENT_EVENTS: &[&str] = &["booking_expiring", "booking_expired"];

/// Event kinds counted under their own name in the Prometheus counters; any other (publishers
/// choose their own) is counted as `other`, so a publisher cannot grow the label set without
/// bound.
pub const KNOWN_EVENTS: &[&str] = &[
    "custom",
    "booking_created",
    "booking_declined",
    "booking_expired",
    "booking_expiring",
    "booking_lapsed",
    "booking_renewed",
    "booking_request_lapsed",
    "booking_requested",
    "car_wash_completed",
    "car_wash_requested",
    "cash_payment_verified",
    "employee_assigned",
    "lot_activity",
    "renewal_failed",
];

/// The metrics label of an event kind.
pub fn event_label(event: &str) -> &'static str {
    KNOWN_EVENTS
        .iter()
        .find(|e| **e == event)
        .copied()
        .unwrap_or("other")
}

/// The node's push set-up when `[push]` is on.
#[derive(Clone, Debug)]
pub struct Push {
    pub pusher: Pusher,
    /// The VAPID public key, base64url (`applicationServerKey` for browsers).
    pub public_key: String,
    /// `push.escalation_window`.
    pub window: Duration,
    /// `push.ttl`.
    pub ttl: Duration,
}

impl Push {
    /// The pusher of `settings`, or `None` when push is off.
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Option<Push>> {
        let Some(vapid) = settings.vapid()? else {
            return Ok(None);
        };
        let public_key = vapid.keys().public_key_base64url();
        let pusher = Pusher::new(
            vapid,
            endpoint_policy(settings),
            parkmate_push::PushSettings::default(),
        )?;
        Ok(Some(Push {
            pusher,
            public_key,
            window: settings.push.escalation_window,
            ttl: settings.push.ttl,
        }))
    }
}

/// Where pushes may go: https to public addresses in production; anything outside it (the test
/// push service listens on 127.0.0.1 over http).
pub fn endpoint_policy(settings: &crate::config::Settings) -> EndpointPolicy {
    EndpointPolicy::for_production(settings.is_production())
}
