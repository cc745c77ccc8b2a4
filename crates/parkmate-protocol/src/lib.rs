//! The wire protocol of Parkmate Notify, shared by the server, the store and the tests.
//!
//! Everything a client can observe lives here: the JSON frames in both directions, the notification
//! levels the original Django helper used, who a notification is addressed to, and the close-code
//! table that tells a client whether to reconnect. `docs/protocol.md` is the prose twin of this file;
//! change both together.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod dialect;
pub use dialect::{CHANNELS_GREETING, CHANNELS_SUBPROTOCOL, Dialect};
pub mod publish;

/// RFC 3339 with milliseconds and a `Z`: the one timestamp format on the wire (frames, the HTTP
/// APIs' DTOs), so clients parse one shape everywhere.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The WebSocket sub-protocol of the native frames ([`ServerFrame`]); the server answers with it
/// unless the client asked for [`CHANNELS_SUBPROTOCOL`] ([`Dialect`]).
pub const SUBPROTOCOL: &str = "parkmate.v1";
/// Prefix of the sub-protocol entry a browser uses to carry its token (`bearer.<jwt>`), because
/// browsers cannot set an `Authorization` header on a WebSocket.
pub const BEARER_PROTOCOL_PREFIX: &str = "bearer.";

/// How a notification looks: the five toast kinds of the original front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Success,
    Error,
    Warning,
    Info,
    Confirm,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Success,
        Level::Error,
        Level::Warning,
        Level::Info,
        Level::Confirm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Success => "success",
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Confirm => "confirm",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {expected})")]
pub struct ParseEnumError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl FromStr for Level {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                what: "level",
                value: s.to_owned(),
                expected: "success, error, warning, info, confirm",
            })
    }
}

/// The role a signed-in account has; carried in the token and used for group delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A driver who books slots.
    User,
    Owner,
    Admin,
    Employee,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::User, Role::Owner, Role::Admin, Role::Employee];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Employee => "employee",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                what: "role",
                value: s.to_owned(),
                expected: "user, owner, admin, employee",
            })
    }
}

/// Who a stored notification is for. Group audiences are one row, not one row per recipient; each
/// viewer sees the union of its own user stream, its role stream, the streams of the lots it works
/// at and the broadcast stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    User(i64),
    Role(Role),
    /// The staff of a lot: whoever works there (the store's `lot_employees`) *when it is read*.
    /// Membership is not part of a viewer's identity, so the store decides who sees it (replay,
    /// inbox, read state) and the publisher resolves it to its members' user streams for live
    /// delivery; an assignment takes effect for both at once, without a reconnect.
    Lot(i64),
    All,
}

/// Who is looking: the identity a verified token gives. Decides which audiences a viewer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Viewer {
    pub user_id: i64,
    pub role: Role,
}

impl Viewer {
    /// Whether this viewer sees `audience`, when its identity alone says so; `None` for a lot's
    /// staff, whose membership only the store knows.
    pub fn sees(&self, audience: Audience) -> Option<bool> {
        match audience {
            Audience::User(id) => Some(id == self.user_id),
            Audience::Role(role) => Some(role == self.role),
            Audience::All => Some(true),
            Audience::Lot(_) => None,
        }
    }
}

/// A notification as the server sends it (`"type": "notification"`). `level` and `message` are
/// exactly what the original `send_ws_notification` sent, so its toasts keep working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationFrame {
    pub id: i64,
    pub level: Level,
    pub event: String,
    pub message: String,
    /// A JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Value,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// Every frame the server sends. Serialised with a `type` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every socket.
    Hello {
        user_id: i64,
        role: Role,
        /// The `since` the client asked for, if any; replay starts after it.
        resume_from: Option<i64>,
        /// The newest notification id this user could see when the socket opened (0 when none).
        /// A client that has no cursor of its own yet (it has received no notification) keeps
        /// this as its `since`, so a reconnect replays whatever was published while it was away.
        newest_id: i64,
        unread_count: i64,
        /// How often the server pings; a client that hears nothing for twice this may reconnect.
        heartbeat_ms: u64,
        /// The server's clock (RFC 3339), so a client can correct its countdowns for skew.
        server_time: String,
    },
    Notification(NotificationFrame),
    /// Sent once the replay of a `since` request is complete; everything after is live.
    Replayed {
        count: u64,
        last_id: Option<i64>,
    },
    UnreadCount {
        count: i64,
    },
    Pong,
    Error {
        code: String,
        message: String,
    },
}

impl ServerFrame {
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys, no custom impls.
        serde_json::to_string(self).expect("server frames always serialise")
    }
}

/// Every frame a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Application-level ping (browsers cannot send WebSocket pings); answered with `pong`.
    Ping {},
    /// Mark one notification read, like `POST /api/inbox/{id}/read`.
    MarkRead { id: i64 },
    /// Mark everything read, like `POST /api/inbox/read-all`.
    MarkAllRead {},
    /// The client showed notification `id` (its toast appeared): recorded as seen, which also
    /// cancels its escalation to Web Push. No reply on success; `not_found` for a notification
    /// the client cannot see.
    Ack { id: i64 },
}

/// Why a client frame was refused; sent back as an `error` frame, the socket stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frames must be JSON text")]
    Binary,
    #[error("frame is not valid JSON: {0}")]
    NotJson(String),
    #[error("unknown or malformed frame: {0}")]
    Unknown(String),
}

impl FrameError {
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::Binary => "binary_not_supported",
            FrameError::NotJson(_) => "invalid_json",
            FrameError::Unknown(_) => "unknown_frame",
        }
    }
}

impl ClientFrame {
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
        serde_json::from_value(value).map_err(|e| FrameError::Unknown(e.to_string()))
    }
}

/// The close-code table (`docs/protocol.md`). `reconnect()` is what the web client obeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// The client closed, or the server ended normally.
    Normal = 1000,
    /// The peer is going away (e.g. heartbeat lost); reconnect.
    GoingAway = 1001,
    /// The client broke RFC 6455's framing (an unmasked frame, reserved bits, an unknown opcode,
    /// a control frame over 125 bytes or fragmented, a stray continuation, a close code it may
    /// not send): the client is broken, do not reconnect.
    ProtocolError = 1002,
    /// A text frame (or close reason) that is not UTF-8: the client is broken, do not reconnect.
    InvalidPayload = 1007,
    /// An inbound frame was larger than the configured limit; reconnect (and send smaller frames).
    TooBig = 1009,
    /// An unexpected server error; reconnect with backoff.
    InternalError = 1011,
    /// The server is restarting (graceful shutdown); reconnect with backoff and `since`.
    ServiceRestart = 1012,
    /// The token expired while the socket was open; terminal until the client has a new token.
    TokenExpired = 4001,
    /// The account behind the token changed role, was deleted or had its tokens revoked while
    /// the socket was open; terminal until the client has a new token (logs in again).
    TokenRevoked = 4003,
    /// The client stopped answering pings within the configured time.
    HeartbeatTimeout = 4002,
    /// The socket's bounded send queue filled up: the client reads too slowly. Reconnect with
    /// `since`; the replay makes this lossless.
    SlowConsumer = 4008,
    /// Too many malformed frames; reconnect only after fixing the client.
    ProtocolViolation = 4009,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// Whether a client should reconnect after this close. Terminal codes need user action.
    pub fn reconnect(self) -> bool {
        !matches!(
            self,
            CloseCode::TokenExpired
                | CloseCode::TokenRevoked
                | CloseCode::ProtocolViolation
                | CloseCode::ProtocolError
                | CloseCode::InvalidPayload
        )
    }

    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "bye",
            CloseCode::GoingAway => "going away",
            CloseCode::ProtocolError => "protocol error",
            CloseCode::InvalidPayload => "invalid UTF-8",
            CloseCode::TooBig => "frame too big",
            CloseCode::InternalError => "internal error, reconnect",
            CloseCode::ServiceRestart => "server restarting, reconnect",
            CloseCode::TokenExpired => "token expired, log in again",
            CloseCode::TokenRevoked => "token revoked, log in again",
            CloseCode::HeartbeatTimeout => "heartbeat timeout",
            CloseCode::SlowConsumer => "slow consumer, reconnect",
            CloseCode::ProtocolViolation => "too many invalid frames",
        }
    }

    pub fn from_code(code: u16) -> Option<CloseCode> {
        [
            CloseCode::Normal,
            CloseCode::GoingAway,
            CloseCode::ProtocolError,
            CloseCode::InvalidPayload,
            CloseCode::TooBig,
            CloseCode::InternalError,
            CloseCode::ServiceRestart,
            CloseCode::TokenExpired,
            CloseCode::TokenRevoked,
            CloseCode::HeartbeatTimeout,
            CloseCode::SlowConsumer,
            CloseCode::ProtocolViolation,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_frame_has_the_original_fields() {
        let frame = ServerFrame::Notification(NotificationFrame {
            id: 7,
            level: Level::Success,
            event: "booking_renewed".into(),
            message: "Booking renewed successfully!".into(),
            data: serde_json::json!({"booking_id": 3}),
            created_at: "2026-01-01T00:00:00Z".into(),
        });
        let v: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(v["type"], "notification");
        assert_eq!(v["id"], 7);
        assert_eq!(v["level"], "success");
        assert_eq!(v["message"], "Booking renewed successfully!");
        assert_eq!(v["data"]["booking_id"], 3);
    }

    #[test]
    fn client_frames_parse_and_refuse() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping {})
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"mark_read","id":4}"#),
            Ok(ClientFrame::MarkRead { id: 4 })
        );
        assert_eq!(
            ClientFrame::parse("nope").unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"launch"}"#)
                .unwrap_err()
                .code(),
            "unknown_frame"
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"ping","x":1}"#)
                .unwrap_err()
                .code(),
            "unknown_frame"
        );
    }

    #[test]
    fn levels_and_roles_round_trip() {
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>().unwrap(), l);
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("loud".parse::<Level>().is_err());
    }

    #[test]
    fn close_codes_say_whether_to_reconnect() {
        assert!(CloseCode::SlowConsumer.reconnect());
        assert!(CloseCode::ServiceRestart.reconnect());
        assert!(!CloseCode::TokenExpired.reconnect());
        for terminal in [1002, 1007, 4003] {
            let code = CloseCode::from_code(terminal).unwrap();
            assert!(!code.reconnect(), "{code:?}");
        }
        assert_eq!(CloseCode::from_code(4008), Some(CloseCode::SlowConsumer));
    }

    #[test]
    fn viewer_sees_its_streams_only() {
        let v = Viewer {
            user_id: 7,
            role: Role::Owner,
        };
        assert_eq!(v.sees(Audience::User(7)), Some(true));
        assert_eq!(v.sees(Audience::User(8)), Some(false));
        assert_eq!(v.sees(Audience::Role(Role::Owner)), Some(true));
        assert_eq!(v.sees(Audience::Role(Role::Admin)), Some(false));
        assert_eq!(v.sees(Audience::All), Some(true));
        assert_eq!(v.sees(Audience::Lot(3)), None, "the store decides");
    }
}
