//! The two frame dialects a socket can speak, chosen by the WebSocket sub-protocol the client
//! offers.
//!
//! - [`Dialect::Native`] (`parkmate.v1`, also what a client offering no known sub-protocol gets):
//!   the frames of [`ServerFrame`], `type` saying what kind of frame it is.
//! - [`Dialect::Channels`] (`parkmate.channels`, opt-in): the frames of the original Django Channels
//!   consumer, so the original front end's `onmessage` works unchanged. The greeting is the
//!   consumer's (`connected: true`), a notification carries its level in `type` as
//!   `send_ws_notification` did (and, additively, our `id`, `level`, `event`, `data` and
//!   `created_at`, so such a client can still resume with `since`), and nothing else is sent
//!   unasked: no unread counts and no replay marker, each of which the original handler would
//!   toast as "Notification received". Replies to frames the client sends (`pong`, `error`) are the
//!   native ones: only a client that speaks the native protocol sends any.

use serde::Serialize;

use crate::{Level, NotificationFrame, SUBPROTOCOL, ServerFrame};

/// The sub-protocol that asks for the original consumer's frames.
pub const CHANNELS_SUBPROTOCOL: &str = "parkmate.channels";

/// The original consumer's greeting, byte for byte what `NotificationConsumer.connect` sent.
pub const CHANNELS_GREETING: &str =
    r#"{"type":"info","message":"Connected to real-time notifications","connected":true}"#;

/// Which frames a socket gets. Decided once, at the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    Native,
    Channels,
}

impl Dialect {
    /// From the sub-protocols a client offered, in its order of preference: the first one this
    /// server knows wins (`bearer.<jwt>` carries a token and is never chosen). None known:
    /// [`Dialect::Native`].
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Dialect {
        offered
            .into_iter()
            .find_map(|p| match p.trim() {
                SUBPROTOCOL => Some(Dialect::Native),
                CHANNELS_SUBPROTOCOL => Some(Dialect::Channels),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The sub-protocol the server answers with.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Dialect::Native => SUBPROTOCOL,
            Dialect::Channels => CHANNELS_SUBPROTOCOL,
        }
    }

    /// A notification in this dialect.
    pub fn notification(self, n: NotificationFrame) -> String {
        match self {
            Dialect::Native => ServerFrame::Notification(n).to_json(),
            Dialect::Channels => n.to_channels_json(),
        }
    }
}

/// A notification as the original consumer sent it, plus our fields.
#[derive(Serialize)]
struct ChannelsNotification<'a> {
    /// The level, where the original consumer put it.
    #[serde(rename = "type")]
    kind: Level,
    message: &'a str,
    id: i64,
    level: Level,
    event: &'a str,
    data: &'a serde_json::Value,
    created_at: &'a str,
}

impl NotificationFrame {
    /// `{"type": <level>, "message": …, "id": …, "level": …, "event": …, "data": …, "created_at": …}`.
    pub fn to_channels_json(&self) -> String {
        let frame = ChannelsNotification {
            kind: self.level,
            message: &self.message,
            id: self.id,
            level: self.level,
            event: &self.event,
            data: &self.data,
            created_at: &self.created_at,
        };
        serde_json::to_string(&frame).expect("notification frames always serialise")
    }

    /// The Channels form of a serialised native notification frame (live deliveries arrive as the
    /// bytes the dispatcher built once for every socket); `None` if they are not one.
    pub fn channels_from_native(native: &[u8]) -> Option<String> {
        match serde_json::from_slice::<ServerFrame>(native) {
            Ok(ServerFrame::Notification(n)) => Some(n.to_channels_json()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> NotificationFrame {
        NotificationFrame {
            id: 9,
            level: Level::Warning,
            event: "booking_expired".into(),
            message: "Your booking for Slot #3 expired".into(),
            data: serde_json::json!({"booking_id": 3}),
            created_at: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    #[test]
    fn the_first_known_offer_wins_and_tokens_are_never_chosen() {
        assert_eq!(Dialect::negotiate([]), Dialect::Native);
        assert_eq!(Dialect::negotiate(["bearer.x.y.z"]), Dialect::Native);
        assert_eq!(
            Dialect::negotiate(["parkmate.channels", "bearer.x"]),
            Dialect::Channels
        );
        assert_eq!(
            Dialect::negotiate(["bearer.x", " parkmate.channels"]),
            Dialect::Channels
        );
        assert_eq!(
            Dialect::negotiate(["parkmate.v1", "parkmate.channels"]),
            Dialect::Native
        );
        assert_eq!(
            Dialect::negotiate(["chat", "parkmate.channels", "parkmate.v1"]),
            Dialect::Channels
        );
        assert_eq!(Dialect::Channels.subprotocol(), "parkmate.channels");
        assert_eq!(Dialect::Native.subprotocol(), "parkmate.v1");
    }

    #[test]
    fn a_channels_notification_carries_the_level_in_type() {
        let v: serde_json::Value = serde_json::from_str(&frame().to_channels_json()).unwrap();
        assert_eq!(v["type"], "warning");
        assert_eq!(v["message"], "Your booking for Slot #3 expired");
        assert_eq!(v["level"], "warning");
        assert_eq!(v["id"], 9);
        assert_eq!(v["data"]["booking_id"], 3);
        assert!(v.get("connected").is_none());
    }

    #[test]
    fn live_bytes_convert_and_other_frames_do_not() {
        let native = ServerFrame::Notification(frame()).to_json();
        assert_eq!(
            NotificationFrame::channels_from_native(native.as_bytes()),
            Some(frame().to_channels_json())
        );
        assert_eq!(
            Dialect::Channels.notification(frame()),
            frame().to_channels_json()
        );
        assert_eq!(Dialect::Native.notification(frame()), native);
        let count = ServerFrame::UnreadCount { count: 1 }.to_json();
        assert_eq!(
            NotificationFrame::channels_from_native(count.as_bytes()),
            None
        );
        assert_eq!(NotificationFrame::channels_from_native(b"not json"), None);
    }

    #[test]
    fn the_greeting_is_the_original_consumers() {
        let v: serde_json::Value = serde_json::from_str(CHANNELS_GREETING).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "info",
                "message": "Connected to real-time notifications",
                "connected": true
            })
        );
    }
}
