//! VAPID, "Voluntary Application Server Identification for Web Push" (RFC 8292).
//!
//! - [`VapidKeys`]: the application server's P-256 key pair (§3.2 asks for ECDSA on P-256). Written
//!   as the usual base64url strings: the private key as its 32-byte scalar, the public key as its
//!   65-byte uncompressed point, which is what a browser's `pushManager.subscribe({
//!   applicationServerKey })` takes and what the `k=` parameter carries.
//! - [`Vapid`]: signs, per push service, the header of §3:
//!   `Authorization: vapid t=<JWT>, k=<public key>`, where the JWT (ES256, §2) has
//!   `aud` = the push resource's origin (§2), `exp` at most 24 hours ahead (§2) and `sub` = a
//!   `mailto:` or `https:` contact (§2.1, [`Subject`]).
//!
//! The JWT is made by `jsonwebtoken` (already the tree's JWT crate, on ring), fed the key as
//! PKCS#8 exported by `p256`, which also generates keys and derives the public half of a loaded
//! private key — two things ring does not offer. So there is no hand-made JWT or ECDSA here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use p256::{PublicKey, SecretKey};
use rand_core::OsRng;
use reqwest::Url;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::b64;
use crate::encryption::{KeyFormatError, public_key_from_base64url, public_key_to_base64url};

/// The application server's VAPID key pair.
#[derive(Clone)]
pub struct VapidKeys {
    secret: SecretKey,
    public: PublicKey,
    /// The same private key, as jsonwebtoken's signer wants it (PKCS#8, parsed once).
    signer: EncodingKey,
}

impl VapidKeys {
    /// A new random key pair (the development key generated into `data/`).
    pub fn generate() -> Self {
        Self::from_secret(SecretKey::random(&mut OsRng))
    }

    /// Loads the private key from its base64url text (the 32-byte scalar, as `web-push
    /// generate-vapid-keys` and most libraries print it); the public key is derived from it.
    pub fn from_base64url(private_key: &str) -> Result<Self, KeyFormatError> {
        let bytes = b64::decode(private_key).map_err(|_| KeyFormatError::NotBase64Url)?;
        if bytes.len() != 32 {
            return Err(KeyFormatError::Length {
                expected: 32,
                actual: bytes.len(),
            });
        }
        // Rejects zero and scalars not below the group order.
        let secret =
            SecretKey::from_slice(&bytes).map_err(|_| KeyFormatError::InvalidPrivateKey)?;
        Ok(Self::from_secret(secret))
    }

    fn from_secret(secret: SecretKey) -> Self {
        let der = secret
            .to_pkcs8_der()
            .expect("a valid P-256 secret key always encodes as PKCS#8");
        Self {
            public: secret.public_key(),
            signer: EncodingKey::from_ec_der(der.as_bytes()),
            secret,
        }
    }

    /// Checks a configured public key against the one derived from the private key, so a
    /// mismatched pair (which browsers would reject only later, silently) stops start-up.
    pub fn ensure_public(&self, public_key: &str) -> Result<(), VapidError> {
        let given = public_key_from_base64url(public_key).map_err(VapidError::PublicKey)?;
        if given != self.public {
            return Err(VapidError::PublicKeyMismatch);
        }
        Ok(())
    }

    /// The public key, base64url of the 65-byte uncompressed point: the browser's
    /// `applicationServerKey` and the header's `k=`.
    pub fn public_key_base64url(&self) -> String {
        public_key_to_base64url(&self.public)
    }

    /// The private key, base64url of the 32-byte scalar, for saving the development key pair.
    pub fn private_key_base64url(&self) -> SecretString {
        b64::URL_SAFE_NO_PAD.encode(self.secret.to_bytes()).into()
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

impl std::fmt::Debug for VapidKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKeys")
            .field("public", &self.public_key_base64url())
            .field("private", &"<redacted>")
            .finish()
    }
}

/// The contact in the JWT's `sub` claim (RFC 8292 §2.1): a `mailto:` address or an `https:` URL,
/// so a push service operator can reach whoever runs this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(String);

/// A `sub` that RFC 8292 §2.1 would not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("VAPID subject must be a mailto: address or an https: URL, got {0:?}")]
pub struct SubjectError(pub String);

impl Subject {
    /// Accepts `mailto:someone@host` or an `https://host/…` URL.
    pub fn parse(text: &str) -> Result<Self, SubjectError> {
        let ok = if let Some(address) = text.strip_prefix("mailto:") {
            address
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
                && !address.chars().any(|c| c.is_whitespace() || c.is_control())
        } else {
            Url::parse(text).is_ok_and(|url| url.scheme() == "https" && url.host().is_some())
        };
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(SubjectError(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The claims of a VAPID JWT (RFC 8292 §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VapidClaims {
    /// The push resource's origin: `https://push.example.net` (with the port when it is not the
    /// scheme's default).
    pub aud: String,
    /// Expiry, seconds since the Unix epoch; at most 24 hours after the request.
    pub exp: u64,
    /// The contact ([`Subject`]).
    pub sub: String,
}

/// Why a VAPID header could not be made or a key pair not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VapidError {
    #[error("VAPID token validity must be between 1 second and 24 hours (RFC 8292 §2), got {0:?}")]
    Validity(Duration),
    #[error("VAPID public key: {0}")]
    PublicKey(KeyFormatError),
    #[error("the VAPID public key does not belong to the private key")]
    PublicKeyMismatch,
    #[error("push endpoint {0:?} has no origin to use as the JWT audience")]
    NoOrigin(String),
    #[error("the system clock is before 1970")]
    Clock,
    #[error("signing the VAPID JWT failed: {0}")]
    Sign(String),
}

/// Signs VAPID headers with one key pair and one contact.
#[derive(Debug, Clone)]
pub struct Vapid {
    keys: VapidKeys,
    subject: Subject,
    /// How far ahead each token's `exp` is. RFC 8292 §2 caps it at 24 hours; the default of 12
    /// leaves room for a push service whose clock is ahead of ours.
    validity: Duration,
}

impl Vapid {
    /// RFC 8292 §2's cap on `exp`.
    pub const MAX_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);
    /// The default token lifetime: half the cap (what the common Web Push libraries use).
    pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(12 * 60 * 60);

    pub fn new(keys: VapidKeys, subject: Subject) -> Self {
        Self {
            keys,
            subject,
            validity: Self::DEFAULT_VALIDITY,
        }
    }

    /// Sets the token lifetime; refuses zero and anything over 24 hours.
    pub fn with_validity(mut self, validity: Duration) -> Result<Self, VapidError> {
        if validity < Duration::from_secs(1) || validity > Self::MAX_VALIDITY {
            return Err(VapidError::Validity(validity));
        }
        self.validity = validity;
        Ok(self)
    }

    pub fn keys(&self) -> &VapidKeys {
        &self.keys
    }

    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// The `Authorization` header value for a request to `endpoint`, valid from now.
    pub fn authorization(&self, endpoint: &Url) -> Result<String, VapidError> {
        self.authorization_at(endpoint, SystemTime::now())
    }

    /// [`Vapid::authorization`] at a given time (tests).
    pub fn authorization_at(&self, endpoint: &Url, now: SystemTime) -> Result<String, VapidError> {
        let claims = self.claims_at(endpoint, now)?;
        // `Header::new` writes {"typ":"JWT","alg":"ES256"}, the header RFC 8292 §2 shows.
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.keys.signer)
                .map_err(|e| VapidError::Sign(e.to_string()))?;
        Ok(format!(
            "vapid t={token}, k={}",
            self.keys.public_key_base64url()
        ))
    }

    /// The claims a token for `endpoint` carries at `now`.
    pub fn claims_at(&self, endpoint: &Url, now: SystemTime) -> Result<VapidClaims, VapidError> {
        let origin = endpoint.origin();
        if !origin.is_tuple() {
            return Err(VapidError::NoOrigin(endpoint.to_string()));
        }
        let exp = now
            .checked_add(self.validity)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .ok_or(VapidError::Clock)?;
        Ok(VapidClaims {
            // `ascii_serialization` is the RFC 6454 origin: scheme, host, and the port only when
            // it is not the default — what the push service compares against its own origin.
            aud: origin.ascii_serialization(),
            exp: exp.as_secs(),
            sub: self.subject.0.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    use super::*;

    fn vapid() -> Vapid {
        Vapid::new(
            VapidKeys::generate(),
            Subject::parse("mailto:ops@parkmate.example").unwrap(),
        )
    }

    /// Verifies a header the way `test_support` does, independently of the signer's key type:
    /// the `k=` key rebuilt from its coordinates.
    fn verify(header: &str, audience: &str) -> VapidClaims {
        let rest = header.strip_prefix("vapid ").unwrap();
        let (t, k) = rest.split_once(", ").unwrap();
        let token = t.strip_prefix("t=").unwrap();
        let key = public_key_from_base64url(k.strip_prefix("k=").unwrap()).unwrap();
        let point = key.to_encoded_point(false);
        let decoding = DecodingKey::from_ec_components(
            &b64::URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            &b64::URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        )
        .unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[audience]);
        validation.leeway = 0;
        jsonwebtoken::decode::<VapidClaims>(token, &decoding, &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn the_header_carries_a_verifiable_es256_jwt_for_the_endpoint_origin() {
        let vapid = vapid();
        let endpoint = Url::parse("https://push.example.net:8443/wpush/v2/abc?x=1").unwrap();
        let now = SystemTime::now();
        let header = vapid.authorization_at(&endpoint, now).unwrap();
        let claims = verify(&header, "https://push.example.net:8443");
        assert_eq!(claims.sub, "mailto:ops@parkmate.example");
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(claims.exp, now_secs + 12 * 3600);
        assert!(header.ends_with(&format!("k={}", vapid.keys().public_key_base64url())));
    }

    #[test]
    fn the_audience_omits_a_default_port_and_the_path() {
        let vapid = vapid();
        let endpoint = Url::parse("https://fcm.googleapis.com:443/fcm/send/xyz").unwrap();
        let claims = vapid.claims_at(&endpoint, SystemTime::now()).unwrap();
        assert_eq!(claims.aud, "https://fcm.googleapis.com");
    }

    #[test]
    fn validity_is_capped_at_24_hours() {
        assert_eq!(
            vapid()
                .with_validity(Duration::from_secs(24 * 3600 + 1))
                .unwrap_err(),
            VapidError::Validity(Duration::from_secs(24 * 3600 + 1))
        );
        assert!(vapid().with_validity(Duration::ZERO).is_err());
        let v = vapid().with_validity(Vapid::MAX_VALIDITY).unwrap();
        let endpoint = Url::parse("https://push.example.net/x").unwrap();
        let now = SystemTime::now();
        let exp = v.claims_at(&endpoint, now).unwrap().exp;
        assert_eq!(
            exp,
            now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 24 * 3600
        );
    }

    #[test]
    fn keys_round_trip_through_their_base64url_strings() {
        use secrecy::ExposeSecret;
        let keys = VapidKeys::generate();
        let private = keys.private_key_base64url();
        assert_eq!(private.expose_secret().len(), 43); // 32 bytes, unpadded
        assert_eq!(keys.public_key_base64url().len(), 87); // 65 bytes, unpadded
        let loaded = VapidKeys::from_base64url(private.expose_secret()).unwrap();
        assert_eq!(loaded.public_key_base64url(), keys.public_key_base64url());
        loaded.ensure_public(&keys.public_key_base64url()).unwrap();
        assert_eq!(
            loaded.ensure_public(&VapidKeys::generate().public_key_base64url()),
            Err(VapidError::PublicKeyMismatch)
        );
        // A loaded key signs what its public key verifies.
        let endpoint = Url::parse("https://push.example.net/x").unwrap();
        let header = Vapid::new(
            loaded,
            Subject::parse("https://parkmate.example/contact").unwrap(),
        )
        .authorization(&endpoint)
        .unwrap();
        verify(&header, "https://push.example.net");
        assert!(!format!("{keys:?}").contains(private.expose_secret()));
    }

    #[test]
    fn bad_private_keys_are_refused() {
        assert_eq!(
            VapidKeys::from_base64url("AAAA").unwrap_err(),
            KeyFormatError::Length {
                expected: 32,
                actual: 3
            }
        );
        let zero = b64::URL_SAFE_NO_PAD.encode([0u8; 32]);
        assert_eq!(
            VapidKeys::from_base64url(&zero).unwrap_err(),
            KeyFormatError::InvalidPrivateKey
        );
        let above_order = b64::URL_SAFE_NO_PAD.encode([0xffu8; 32]);
        assert_eq!(
            VapidKeys::from_base64url(&above_order).unwrap_err(),
            KeyFormatError::InvalidPrivateKey
        );
    }

    #[test]
    fn subjects_are_mailto_or_https() {
        assert!(Subject::parse("mailto:ops@parkmate.example").is_ok());
        assert!(Subject::parse("https://parkmate.example/contact").is_ok());
        for bad in [
            "ops@parkmate.example",
            "mailto:",
            "mailto:@x",
            "mailto:a b@x",
            "http://parkmate.example",
            "https://",
            "",
        ] {
            assert!(Subject::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
