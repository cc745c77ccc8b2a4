//! What is pushed: the payload and the three request headers RFC 8030 gives the application
//! server to steer delivery.
//!
//! - **TTL** (§5.2, mandatory): how long the push service keeps the message for a user agent
//!   that is offline; 0 means "now or never".
//! - **Urgency** (§5.3): `very-low` | `low` | `normal` | `high`; a phone in power-saving mode
//!   may only wake up for `high`.
//! - **Topic** (§5.4): a message with the same topic replaces an undelivered one, so a driver who
//!   was offline sees the latest "expires in 5 minutes" once, not every reminder. At most 32
//!   characters of the base64url alphabet; [`Topic::digest`] turns any key into one.
//!
//! The payload's size is checked here, when the message is made, against [`MAX_PLAINTEXT`], so
//! an oversized notification fails before any subscription is tried.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::encryption::MAX_PLAINTEXT;

/// A push message, ready to be encrypted for each subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    payload: Vec<u8>,
    ttl: Duration,
    urgency: Urgency,
    topic: Option<Topic>,
}

/// Why a message could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("payload is {size} bytes; Web Push carries at most {max} (RFC 8291 §4)")]
    TooLarge { size: usize, max: usize },
    #[error("payload is not serialisable as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Message {
    /// The default TTL: one day. A parking notification older than that is history, and the
    /// in-app inbox holds it anyway.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

    /// A message whose payload is `value` as JSON (what the service worker parses).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, MessageError> {
        Self::new(serde_json::to_vec(value)?)
    }

    /// A message with raw payload bytes.
    pub fn new(payload: Vec<u8>) -> Result<Self, MessageError> {
        if payload.len() > MAX_PLAINTEXT {
            return Err(MessageError::TooLarge {
                size: payload.len(),
                max: MAX_PLAINTEXT,
            });
        }
        Ok(Self {
            payload,
            ttl: Self::DEFAULT_TTL,
            urgency: Urgency::Normal,
            topic: None,
        })
    }

    /// Sets the TTL (whole seconds are sent; a fraction is dropped).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn with_urgency(mut self, urgency: Urgency) -> Self {
        self.urgency = urgency;
        self
    }

    pub fn with_topic(mut self, topic: Topic) -> Self {
        self.topic = Some(topic);
        self
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The `TTL` header's value: delta-seconds.
    pub fn ttl_header(&self) -> u64 {
        self.ttl.as_secs()
    }

    pub fn urgency(&self) -> Urgency {
        self.urgency
    }

    pub fn topic(&self) -> Option<&Topic> {
        self.topic.as_ref()
    }
}

/// RFC 8030 §5.3's urgency levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    VeryLow,
    Low,
    #[default]
    Normal,
    High,
}

impl Urgency {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

impl std::str::FromStr for Urgency {
    type Err = UnknownUrgency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "very-low" => Ok(Urgency::VeryLow),
            "low" => Ok(Urgency::Low),
            "normal" => Ok(Urgency::Normal),
            "high" => Ok(Urgency::High),
            other => Err(UnknownUrgency(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Urgency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of RFC 8030 §5.3's four levels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("urgency must be very-low, low, normal or high, got {0:?}")]
pub struct UnknownUrgency(pub String);

/// A replacement key (RFC 8030 §5.4): 1 to 32 characters of the base64url alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(String);

/// Not a valid topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic must be 1 to 32 characters of A-Z a-z 0-9 - _, got {0:?}")]
pub struct TopicError(pub String);

impl Topic {
    /// RFC 8030 §5.4's maximum length.
    pub const MAX_LEN: usize = 32;

    /// Accepts a valid topic as it is.
    pub fn parse(text: &str) -> Result<Self, TopicError> {
        let valid = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(TopicError(text.to_owned()))
        }
    }

    /// A topic for any key (a notification's dedupe key, say): the first 32 characters of the
    /// base64url SHA-256 of `key` (192 bits, so distinct keys do not collide in practice). The
    /// topic is visible to the push service, and the digest also keeps the key itself from it.
    pub fn digest(key: &str) -> Self {
        let hash = b64::URL_SAFE_NO_PAD.encode(Sha256::digest(key.as_bytes()));
        Self(hash[..Self::MAX_LEN].to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payloads_are_size_checked_when_made() {
        let ok =
            Message::json(&serde_json::json!({"text": "x".repeat(MAX_PLAINTEXT - 11)})).unwrap();
        assert_eq!(ok.payload().len(), MAX_PLAINTEXT);
        let err = Message::json(&serde_json::json!({"text": "x".repeat(MAX_PLAINTEXT - 10)}))
            .unwrap_err();
        assert!(matches!(
            err,
            MessageError::TooLarge {
                size: 3994,
                max: 3993
            }
        ));
    }

    #[test]
    fn defaults_and_builders() {
        let m = Message::new(b"{}".to_vec()).unwrap();
        assert_eq!(m.ttl_header(), 86_400);
        assert_eq!(m.urgency(), Urgency::Normal);
        assert!(m.topic().is_none());
        let m = m
            .with_ttl(Duration::from_millis(300_900))
            .with_urgency(Urgency::High)
            .with_topic(Topic::parse("booking-42_expiry").unwrap());
        assert_eq!(m.ttl_header(), 300);
        assert_eq!(m.urgency().as_str(), "high");
        assert_eq!(m.topic().unwrap().as_str(), "booking-42_expiry");
    }

    #[test]
    fn urgency_reads_and_writes_the_rfc_tokens() {
        for u in [
            Urgency::VeryLow,
            Urgency::Low,
            Urgency::Normal,
            Urgency::High,
        ] {
            assert_eq!(u.as_str().parse::<Urgency>().unwrap(), u);
            assert_eq!(serde_json::to_string(&u).unwrap(), format!("\"{u}\""));
        }
        assert!("urgent".parse::<Urgency>().is_err());
    }

    #[test]
    fn topics_follow_rfc_8030() {
        assert!(Topic::parse(&"a".repeat(32)).is_ok());
        for bad in ["", "has space", "dot.ted", "slash/", &"a".repeat(33)] {
            assert!(Topic::parse(bad).is_err(), "{bad:?} accepted");
        }
        let t = Topic::digest("booking:42:expires-soon");
        assert_eq!(t.as_str().len(), 32);
        assert_eq!(Topic::parse(t.as_str()).unwrap(), t);
        assert_eq!(t, Topic::digest("booking:42:expires-soon"));
        assert_ne!(t, Topic::digest("booking:43:expires-soon"));
    }
}
