//! The extractors of the HTTP edge, each refusing with an [`ApiError`]:
//!
//! - credentials: [`bearer`] is the one parser of `Authorization` (scheme matched in any case,
//!   credentials trimmed), used by [`AuthUser`] (a user's JWT), [`ApiKey`] (a backend's key,
//!   compared in constant time) and the socket handshake's header path;
//! - input: [`ApiJson`] for bodies; [`ApiQuery`] and [`PathId`] for the URL, both answering
//!   **400** with `invalid_query` / `invalid_id`. A malformed URL is a malformed request, like a
//!   body that is not JSON (also 400); 422 is kept for a well-formed body whose values the
//!   application refuses. axum's own rejections of paths and queries are 400 too, so a route that
//!   forgets the wrapper still answers the same status (if in plain text).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::{ApiError, Identity, TokenKeys};

/// The credentials of an `Authorization: Bearer <credentials>` header: the scheme in any case,
/// surrounding whitespace ignored. `None` when the header is absent, not text, of another scheme,
/// or has empty credentials.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credentials) = value.split_once([' ', '\t'])?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
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
        let token = bearer(&parts.headers).ok_or_else(|| {
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

/// The backends' API key as the server expects it. `Debug` never shows it.
#[derive(Clone)]
pub struct ExpectedApiKey(Arc<[u8]>);

impl ExpectedApiKey {
    pub fn new(key: &str) -> ExpectedApiKey {
        ExpectedApiKey(key.as_bytes().into())
    }

    /// Whether `presented` is the key. The bytes are compared in constant time (`subtle`), so the
    /// time taken does not tell how much of a guess matched; only a length mismatch answers early,
    /// and the length is no secret. An empty expected key accepts nothing.
    pub fn matches(&self, presented: &str) -> bool {
        !self.0.is_empty() && bool::from(self.0.ct_eq(presented.as_bytes()))
    }
}

impl std::fmt::Debug for ExpectedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExpectedApiKey([redacted])")
    }
}

/// Extractor: the caller presented the API key as `Authorization: Bearer <key>`, or 401
/// `unauthorized`. Put it before a body extractor, so an unauthenticated caller learns nothing
/// about the body.
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl<S> FromRequestParts<S> for ApiKey
where
    ExpectedApiKey: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match bearer(&parts.headers) {
            Some(key) if ExpectedApiKey::from_ref(state).matches(key) => Ok(ApiKey),
            Some(_) => Err(ApiError::unauthorized("unauthorized", "wrong API key")),
            None => Err(ApiError::unauthorized(
                "unauthorized",
                "Authorization: Bearer <API key> is required",
            )),
        }
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

/// `Query<T>` whose rejection is 400 `invalid_query` (see the module doc for why 400).
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// The `{id}` of a route: a positive integer (every id the server hands out is one), or 400
/// `invalid_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<i64>::from_request_parts(parts, state).await {
            Ok(Path(id)) if id > 0 => Ok(PathId(id)),
            _ => Err(ApiError::bad_request(
                "invalid_id",
                "ids are positive integers",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        h
    }

    #[test]
    fn bearer_matches_the_scheme_in_any_case_and_trims() {
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("BeArEr   abc  ", Some("abc")),
            ("  Bearer\tabc", Some("abc")),
            ("Bearer", None),
            ("Bearer    ", None),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("abc", None),
        ] {
            assert_eq!(bearer(&headers(value)), expected, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn api_keys_match_exactly_and_an_empty_one_never() {
        let key = ExpectedApiKey::new("s3cret");
        assert!(key.matches("s3cret"));
        for wrong in ["s3creT", "s3cre", "s3crets", ""] {
            assert!(!key.matches(wrong), "{wrong:?}");
        }
        assert!(!ExpectedApiKey::new("").matches(""));
        assert!(!format!("{key:?}").contains("s3cret"));
    }

    #[derive(Clone)]
    struct State(ExpectedApiKey);

    impl FromRef<State> for ExpectedApiKey {
        fn from_ref(s: &State) -> ExpectedApiKey {
            s.0.clone()
        }
    }

    async fn api_key(authorization: Option<&str>) -> Result<ApiKey, ApiError> {
        let mut req = Request::builder().uri("/");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let (mut parts, ()) = req.body(()).unwrap().into_parts();
        ApiKey::from_request_parts(&mut parts, &State(ExpectedApiKey::new("k3y"))).await
    }

    #[tokio::test]
    async fn the_api_key_extractor_takes_the_bearer_in_any_case() {
        assert!(api_key(Some("bearer k3y")).await.is_ok());
        assert!(api_key(Some("Bearer  k3y ")).await.is_ok());
        let e = api_key(Some("Bearer nope")).await.unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (401, "unauthorized"));
        let e = api_key(None).await.unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (401, "unauthorized"));
    }

    #[tokio::test]
    async fn bad_queries_are_400_invalid_query() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Q {
            limit: u32,
        }
        let (mut parts, ()) = Request::builder()
            .uri("/?limit=lots")
            .body(())
            .unwrap()
            .into_parts();
        let e = ApiQuery::<Q>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_query"));
    }
}
