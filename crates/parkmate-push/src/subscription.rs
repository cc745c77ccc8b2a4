//! A browser's push subscription: where to send (RFC 8030 §4's push resource, the `endpoint`)
//! and the keys to encrypt for (RFC 8291 §2: `p256dh` and `auth`).
//!
//! [`SubscriptionJson`] is the wire shape, exactly what `PushSubscription.toJSON()` gives in a
//! browser and what the web client will `POST` to the server. [`Subscription`] is the parsed
//! value: an endpoint that passed the [`EndpointPolicy`], a P-256 point and a 16-byte secret.
//! Nothing can be sent to a subscription that was not parsed.

use p256::PublicKey;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::encryption::{
    AuthSecret, KeyFormatError, public_key_from_base64url, public_key_to_base64url,
};
use crate::endpoint::{EndpointError, EndpointPolicy};

/// `PushSubscription.toJSON()`: `{"endpoint": …, "expirationTime": null, "keys": {"p256dh": …,
/// "auth": …}}`. Unknown fields are ignored (browsers may add some).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionJson {
    pub endpoint: String,
    /// When the push service will expire the subscription, milliseconds since the Unix epoch
    /// (a `DOMHighResTimeStamp`, so possibly fractional); `null` for most push services.
    #[serde(default)]
    pub expiration_time: Option<f64>,
    pub keys: SubscriptionKeys,
}

/// The subscription's keys, base64url as the browser writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionKeys {
    /// The user agent's P-256 public key, 65 bytes uncompressed.
    pub p256dh: String,
    /// The 16-byte authentication secret.
    pub auth: String,
}

/// A subscription the server may push to.
#[derive(Clone, PartialEq, Eq)]
pub struct Subscription {
    endpoint: Url,
    p256dh: PublicKey,
    auth: AuthSecret,
}

/// Why a subscription was refused; each variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("endpoint: {0}")]
    Endpoint(#[from] EndpointError),
    #[error("keys.p256dh: {0}")]
    P256dh(KeyFormatError),
    #[error("keys.auth: {0}")]
    Auth(KeyFormatError),
}

impl Subscription {
    /// Parses the browser's JSON under `policy`.
    pub fn parse(
        json: &SubscriptionJson,
        policy: &EndpointPolicy,
    ) -> Result<Self, SubscriptionError> {
        Self::from_parts(&json.endpoint, &json.keys.p256dh, &json.keys.auth, policy)
    }

    /// Parses the three stored strings under `policy` (loading a stored subscription is parsing
    /// it again, so one stored under a looser policy is refused by a stricter one).
    pub fn from_parts(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        policy: &EndpointPolicy,
    ) -> Result<Self, SubscriptionError> {
        let endpoint = policy.parse(endpoint)?;
        let p256dh = public_key_from_base64url(p256dh).map_err(SubscriptionError::P256dh)?;
        let auth = AuthSecret::from_base64url(auth).map_err(SubscriptionError::Auth)?;
        Ok(Self {
            endpoint,
            p256dh,
            auth,
        })
    }

    /// The push resource to `POST` to.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    pub fn p256dh(&self) -> &PublicKey {
        &self.p256dh
    }

    pub fn auth(&self) -> &AuthSecret {
        &self.auth
    }

    /// The JSON form, for storing (without `expirationTime`, which the caller keeps if it wants).
    pub fn to_json(&self) -> SubscriptionJson {
        SubscriptionJson {
            endpoint: self.endpoint.to_string(),
            expiration_time: None,
            keys: SubscriptionKeys {
                p256dh: public_key_to_base64url(&self.p256dh),
                auth: self.auth.to_base64url(),
            },
        }
    }
}

/// Shows the endpoint's origin only: the rest of an endpoint is a capability (whoever holds it
/// can push to that browser, given the VAPID key), so it stays out of logs.
impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("origin", &self.endpoint.origin().ascii_serialization())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BROWSER_JSON: &str = r#"{
        "endpoint": "https://fcm.googleapis.com/fcm/send/dXk2:APA91bF",
        "expirationTime": null,
        "keys": {
            "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "auth": "BTBZMqHH6r4Tts7J_aSIgg"
        }
    }"#;

    #[test]
    fn the_browsers_json_parses_and_round_trips() {
        let json: SubscriptionJson = serde_json::from_str(BROWSER_JSON).unwrap();
        let sub = Subscription::parse(&json, &EndpointPolicy::PRODUCTION).unwrap();
        assert_eq!(sub.endpoint().host_str(), Some("fcm.googleapis.com"));
        assert_eq!(sub.to_json(), json);
        assert_eq!(
            format!("{sub:?}"),
            r#"Subscription { origin: "https://fcm.googleapis.com", .. }"#
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut json: SubscriptionJson = serde_json::from_str(BROWSER_JSON).unwrap();
        json.keys.auth = "AAAA".into();
        let err = Subscription::parse(&json, &EndpointPolicy::PRODUCTION).unwrap_err();
        assert!(matches!(err, SubscriptionError::Auth(_)));
        assert!(err.to_string().starts_with("keys.auth: "));

        let mut json: SubscriptionJson = serde_json::from_str(BROWSER_JSON).unwrap();
        json.keys.p256dh = json.keys.auth.clone();
        assert!(matches!(
            Subscription::parse(&json, &EndpointPolicy::PRODUCTION),
            Err(SubscriptionError::P256dh(_))
        ));

        let mut json: SubscriptionJson = serde_json::from_str(BROWSER_JSON).unwrap();
        json.endpoint = "http://127.0.0.1:9/x".into();
        assert!(matches!(
            Subscription::parse(&json, &EndpointPolicy::PRODUCTION),
            Err(SubscriptionError::Endpoint(EndpointError::Scheme { .. }))
        ));
        assert!(Subscription::parse(&json, &EndpointPolicy::DEVELOPMENT).is_ok());
    }
}
