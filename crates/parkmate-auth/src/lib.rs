//! Who is calling, and how the HTTP edge says no: HS256 user tokens, the extractors that check
//! credentials and parse request input ([`extract`]), and [`ApiError`], the one JSON error shape of
//! the HTTP edge (`{"code": "...", "message": "..."}` with a stable `code`).
//!
//! Only HS256 is accepted: a token that names another algorithm (`none` included) is refused before
//! its signature is even looked at.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parkmate_protocol::{Role, Viewer};
use serde::{Deserialize, Serialize};

mod error;
pub mod extract;

pub use error::ApiError;
pub use extract::{ApiJson, ApiKey, ApiQuery, AuthUser, ExpectedApiKey, PathId, bearer};

/// The claims of a Parkmate user token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id as a decimal string (JWT `sub` is a string).
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    pub iat: u64,
}

/// A verified identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    pub role: Role,
    /// When the token stops being valid (seconds since the Unix epoch).
    pub expires_at: u64,
}

impl Identity {
    pub fn viewer(&self) -> Viewer {
        Viewer {
            user_id: self.user_id,
            role: self.role,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is invalid or expired")]
    Invalid,
    #[error("token subject is not a user id")]
    BadSubject,
}

/// Signs and verifies user tokens with one shared secret.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys([redacted])")
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "sub"]);
        // No grace: an expired token is expired.
        validation.leeway = 0;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Mints a token for `user_id` valid for `ttl_secs`.
    pub fn mint(&self, user_id: i64, role: Role, ttl_secs: u64) -> String {
        let iat = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            exp: iat + ttl_secs,
            iat,
        };
        // HS256 signing of a plain struct cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let user_id: i64 = data
            .claims
            .sub
            .parse()
            .map_err(|_| TokenError::BadSubject)?;
        if user_id < 0 {
            return Err(TokenError::BadSubject);
        }
        Ok(Identity {
            user_id,
            role: data.claims.role,
            expires_at: data.claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mints_and_verifies() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let id = keys.verify(&keys.mint(7, Role::Owner, 60)).unwrap();
        assert_eq!((id.user_id, id.role), (7, Role::Owner));
    }

    #[test]
    fn refuses_wrong_key_expired_and_alg_none() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let other = TokenKeys::new(b"another-secret-another-secret-xx");
        assert_eq!(
            keys.verify(&other.mint(7, Role::User, 60)),
            Err(TokenError::Invalid)
        );

        let claims = Claims {
            sub: "7".into(),
            role: Role::User,
            exp: now_secs() - 10,
            iat: now_secs() - 70,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(keys.verify(&expired), Err(TokenError::Invalid));

        // {"alg":"none","typ":"JWT"} . {"sub":"7","role":"admin","exp":9999999999,"iat":0} . (empty)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiI3Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo5OTk5OTk5OTk5LCJpYXQiOjB9.";
        assert_eq!(keys.verify(none), Err(TokenError::Invalid));
        assert_eq!(keys.verify("garbage"), Err(TokenError::Invalid));
    }
}
