//! Who is calling, and how the HTTP edge says no: HS256 user tokens, the extractors that check
//! credentials and parse request input ([`extract`]), and [`ApiError`], the one JSON error shape of
//! the HTTP edge (`{"code": "...", "message": "..."}` with a stable `code`).
//!
//! Only HS256 is accepted: a token that names another algorithm (`none` included) is refused before
//! its signature is even looked at. A token needs `sub`, `exp` and a known `role`; `iat` is
//! optional (RFC 7519 makes it so, and many issuers leave it out).
//!
//! Tokens this server mints for an account of its own (login, register) also carry `ver`, the
//! account's token version: [`Authenticator`] checks those against the store on every use, so a
//! role change, a deleted account or a revocation takes effect on the next request rather than
//! when the token expires. Tokens from other issuers (a backend's `mint_token`, `parkmate token`)
//! carry no `ver`; their issuer owns their lifetime.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parkmate_protocol::{Role, Viewer};
use serde::{Deserialize, Serialize};

mod account;
mod error;
pub mod extract;
pub mod limit;

pub use account::{AccountLookup, AccountState, AuthError, Authenticator, LookupFailed};
pub use error::{ApiError, retry_after_secs};
pub use extract::{
    ApiJson, ApiKey, ApiQuery, AuthUser, ClientIp, ExpectedApiKey, PathId, TrustedProxies, bearer,
};
pub use limit::{KeyedLimit, Rate, SingleLimit};

/// The claims of a Parkmate user token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id as a decimal string (JWT `sub` is a string).
    pub sub: String,
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch. Optional (RFC 7519): nothing here depends on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The account's token version, in tokens minted by this server for its own accounts: the
    /// token is good only while the store still holds that version (and the same role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<i64>,
}

/// A verified identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    pub role: Role,
    /// When the token stops being valid (seconds since the Unix epoch).
    pub expires_at: u64,
    /// `ver` of a token minted for one of this server's accounts: checked against the store on
    /// every use ([`Authenticator`]). `None` for tokens of other issuers.
    pub token_version: Option<i64>,
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

    /// Mints a token for `user_id` valid for `ttl_secs`, without `ver`: as another issuer would
    /// (`parkmate token`, tests).
    pub fn mint(&self, user_id: i64, role: Role, ttl_secs: u64) -> String {
        self.sign(user_id, role, ttl_secs, None)
    }

    /// Mints a token for one of this server's accounts, at its current token `version`.
    pub fn mint_versioned(&self, user_id: i64, role: Role, version: i64, ttl_secs: u64) -> String {
        self.sign(user_id, role, ttl_secs, Some(version))
    }

    fn sign(&self, user_id: i64, role: Role, ttl_secs: u64, ver: Option<i64>) -> String {
        let iat = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            exp: iat + ttl_secs,
            iat: Some(iat),
            ver,
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
            token_version: data.claims.ver,
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
            iat: Some(now_secs() - 70),
            ver: None,
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

    fn signed(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap()
    }

    #[test]
    fn iat_is_optional_but_sub_exp_and_a_known_role_are_not() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let exp = now_secs() + 60;
        let id = keys
            .verify(&signed(
                serde_json::json!({"sub": "7", "role": "owner", "exp": exp}),
            ))
            .unwrap();
        assert_eq!(
            (id.user_id, id.role, id.token_version),
            (7, Role::Owner, None)
        );
        for bad in [
            serde_json::json!({"role": "owner", "exp": exp}),
            serde_json::json!({"sub": "7", "role": "owner"}),
            serde_json::json!({"sub": "7", "exp": exp}),
            serde_json::json!({"sub": "7", "role": "pilot", "exp": exp}),
        ] {
            assert_eq!(
                keys.verify(&signed(bad.clone())),
                Err(TokenError::Invalid),
                "{bad}"
            );
        }
        let versioned = keys.mint_versioned(7, Role::Admin, 3, 60);
        assert_eq!(keys.verify(&versioned).unwrap().token_version, Some(3));
    }
}
