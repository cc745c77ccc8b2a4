//! The body of `POST /api/notifications` (the publish API), and its parse into what is stored.
//!
//! The wire shape mirrors the original `send_ws_notification(user_id, level, message)`;
//! [`PublishRequest::parse`] turns it into a [`Publish`] whose fields are checked (a known level,
//! a non-empty message within [`MAX_MESSAGE_CHARS`], an event name of `a-z0-9_`, a `data` object
//! within [`MAX_DATA_BYTES`], exactly one recipient kind), or says which rule it broke with a
//! stable [`PublishError::code`]. It lives here, beside the frames, and not in the server, so the
//! fuzz target (`fuzz/`) exercises exactly what the server runs without building the server.

use serde::Deserialize;

use crate::{Audience, Level, ParseEnumError, Role};

/// Longest message accepted: toasts show a sentence, not an essay.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Largest `data` object, serialised.
pub const MAX_DATA_BYTES: usize = 16 * 1024;
/// Most recipients in one `user_ids` call.
pub const MAX_USER_IDS: usize = 1000;
/// Longest `event` name.
pub const MAX_EVENT_CHARS: usize = 64;

/// The publish body as it arrives. Give exactly one of `user_id`, `user_ids`, `role` and
/// `broadcast` (`true`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// `success`, `error`, `warning`, `info` or `confirm`.
    pub level: String,
    /// The toast's text: 1 to 2000 characters, not only spaces.
    pub message: String,
    /// A machine-readable kind: 1 to 64 characters of `a-z`, `0-9` and `_`; `custom` when absent.
    pub event: Option<String>,
    /// A JSON object of at most 16 KiB (serialised), delivered as is.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<serde_json::Value>,
    /// One user.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub user_id: Option<i64>,
    /// 1 to 1000 users (repeats are sent once).
    pub user_ids: Option<Vec<i64>>,
    /// Everyone of a role: `user`, `owner`, `admin` or `employee`.
    pub role: Option<String>,
    /// Everyone; must be `true` when given.
    pub broadcast: Option<bool>,
}

/// A checked publish: what the store is asked to keep, one row per audience.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub level: Level,
    pub event: String,
    pub message: String,
    /// Always a JSON object.
    pub data: serde_json::Value,
    /// At least one; user audiences without repeats, in the order given.
    pub audiences: Vec<Audience>,
}

/// Which rule a publish body broke. [`PublishError::code`] is the API's stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Level(ParseEnumError),
    #[error("message must not be empty")]
    EmptyMessage,
    #[error("message is longer than {MAX_MESSAGE_CHARS} characters")]
    MessageTooLong,
    #[error("event must be 1-{MAX_EVENT_CHARS} characters of a-z, 0-9 and _")]
    Event,
    #[error("data is larger than {MAX_DATA_BYTES} bytes")]
    DataTooLarge,
    #[error("data must be a JSON object")]
    DataNotObject,
    #[error("{0}")]
    Recipient(String),
}

impl PublishError {
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::Level(_) => "invalid_level",
            PublishError::EmptyMessage => "empty_message",
            PublishError::MessageTooLong => "message_too_long",
            PublishError::Event => "invalid_event",
            PublishError::DataTooLarge | PublishError::DataNotObject => "invalid_data",
            PublishError::Recipient(_) => "invalid_recipient",
        }
    }
}

impl PublishRequest {
    /// Checks every field, cheapest first; see the module's doc for the rules.
    pub fn parse(&self) -> Result<Publish, PublishError> {
        let level: Level = self.level.parse().map_err(PublishError::Level)?;
        if self.message.trim().is_empty() {
            return Err(PublishError::EmptyMessage);
        }
        if self.message.chars().count() > MAX_MESSAGE_CHARS {
            return Err(PublishError::MessageTooLong);
        }
        let event = self.event.as_deref().unwrap_or("custom");
        if event.is_empty()
            || event.len() > MAX_EVENT_CHARS
            || !event
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(PublishError::Event);
        }
        let data = match &self.data {
            None => serde_json::Value::Object(Default::default()),
            Some(v @ serde_json::Value::Object(_)) if v.to_string().len() <= MAX_DATA_BYTES => {
                v.clone()
            }
            Some(serde_json::Value::Object(_)) => return Err(PublishError::DataTooLarge),
            Some(_) => return Err(PublishError::DataNotObject),
        };
        Ok(Publish {
            level,
            event: event.to_owned(),
            message: self.message.clone(),
            data,
            audiences: self.audiences()?,
        })
    }

    fn audiences(&self) -> Result<Vec<Audience>, PublishError> {
        let bad = |m: &str| PublishError::Recipient(m.to_owned());
        let given = [
            self.user_id.is_some(),
            self.user_ids.is_some(),
            self.role.is_some(),
            self.broadcast.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(bad(
                "give exactly one of user_id, user_ids, role, broadcast",
            ));
        }
        let user = |id: i64| {
            if id < 0 {
                Err(bad("user ids are non-negative"))
            } else {
                Ok(Audience::User(id))
            }
        };
        if let Some(id) = self.user_id {
            return Ok(vec![user(id)?]);
        }
        if let Some(ids) = &self.user_ids {
            if ids.is_empty() || ids.len() > MAX_USER_IDS {
                return Err(bad(&format!("user_ids must hold 1 to {MAX_USER_IDS} ids")));
            }
            let mut seen = std::collections::HashSet::new();
            return ids
                .iter()
                .filter(|id| seen.insert(**id))
                .map(|id| user(*id))
                .collect();
        }
        if let Some(role) = &self.role {
            return role
                .parse::<Role>()
                .map(|r| vec![Audience::Role(r)])
                .map_err(|e| bad(&e.to_string()));
        }
        match self.broadcast {
            Some(true) => Ok(vec![Audience::All]),
            _ => Err(bad("broadcast must be true when given")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: serde_json::Value) -> PublishRequest {
        serde_json::from_value(json).unwrap()
    }

    fn code(json: serde_json::Value) -> &'static str {
        req(json).parse().unwrap_err().code()
    }

    #[test]
    fn exactly_one_recipient() {
        use serde_json::json;
        assert_eq!(
            code(json!({"level":"info","message":"m"})),
            "invalid_recipient"
        );
        assert_eq!(
            code(json!({"level":"info","message":"m","user_id":1,"broadcast":true})),
            "invalid_recipient"
        );
        let p = req(json!({"level":"info","message":"m","user_ids":[1,2,2]}))
            .parse()
            .unwrap();
        assert_eq!(p.audiences, [Audience::User(1), Audience::User(2)]);
        assert_eq!(
            code(json!({"level":"info","message":"m","role":"pilot"})),
            "invalid_recipient"
        );
        assert_eq!(
            code(json!({"level":"info","message":"m","broadcast":false})),
            "invalid_recipient"
        );
    }

    #[test]
    fn level_message_event_and_data_are_checked() {
        use serde_json::json;
        assert_eq!(
            code(json!({"level":"loud","message":"m","user_id":1})),
            "invalid_level"
        );
        assert_eq!(
            code(json!({"level":"info","message":"  ","user_id":1})),
            "empty_message"
        );
        assert_eq!(
            code(json!({"level":"info","message":"m","user_id":1,"event":"Bad Event"})),
            "invalid_event"
        );
        assert_eq!(
            code(json!({"level":"info","message":"m","user_id":1,"data":[1]})),
            "invalid_data"
        );
        let p = req(json!({"level":"info","message":"m","user_id":1}))
            .parse()
            .unwrap();
        assert_eq!((p.event.as_str(), p.data.clone()), ("custom", json!({})));
    }
}
