//! Who is calling: HS256 user tokens and the extractors that verify them, plus [`ApiError`], the one
//! JSON error shape of the HTTP edge (`{"code": "...", "message": "..."}` with a stable `code`).
//!
//! Only HS256 is accepted: a token that names another algorithm (`none` included) is refused before
//! its signature is even looked at.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parkmate_protocol::{Role, Viewer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// The bearer token of an `Authorization` header, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Extractor: the signed-in user of an `Authorization: Bearer <jwt>` request, or 401 JSON.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub Identity);

impl<S> FromRequestParts<S> for AuthUser
where
    Arc<TokenKeys>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = Arc::<TokenKeys>::from_ref(state);
        let token = bearer(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                "an Authorization: Bearer token is required",
            )
        })?;
        keys.verify(token)
            .map(AuthUser)
            .map_err(|e| ApiError::unauthorized("invalid_token", e.to_string()))
    }
}

/// The HTTP edge's error: a status and a JSON body with a stable `code`. Server errors are logged
/// with their cause and answered with a generic message, never the details.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
    /// Logs `cause` (with its chain) and answers 500 without it.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> ApiError {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s: 400 `invalid_json` for syntax, 422 `invalid_body`
/// for a body of the wrong shape, 415 for a missing JSON content type.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::bad_request("invalid_json", e.body_text()))
            }
            Err(JsonRejection::JsonDataError(e)) => {
                Err(ApiError::unprocessable("invalid_body", e.body_text()))
            }
            Err(JsonRejection::MissingJsonContentType(e)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                e.body_text(),
            )),
            Err(e) => Err(ApiError::bad_request("invalid_body", e.body_text())),
        }
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
