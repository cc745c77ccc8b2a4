//! The extractors of the HTTP edge, each refusing with an [`ApiError`]:
//!
//! - credentials: [`bearer`] is the one parser of `Authorization` (scheme matched in any case,
//!   credentials trimmed), used by [`AuthUser`] (a user's JWT, checked by the [`Authenticator`]),
//!   [`ApiKey`] (a backend's key, compared in constant time) and the socket handshake's header
//!   path;
//! - the caller's address: [`ClientIp`], the peer of the connection, or behind a proxy listed in
//!   [`TrustedProxies`] the address that proxy saw (`X-Forwarded-For`), for per-address limits;
//! - input: [`ApiJson`] for bodies; [`ApiQuery`] and [`PathId`] for the URL, both answering
//!   **400** with `invalid_query` / `invalid_id`. A malformed URL is a malformed request, like a
//!   body that is not JSON (also 400); 422 is kept for a well-formed body whose values the
//!   application refuses. axum's own rejections of paths and queries are 400 too, so a route that
//!   forgets the wrapper still answers the same status (if in plain text).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use crate::{ApiError, Authenticator, Identity};

/// The credentials of an `Authorization: Bearer <credentials>` header: the scheme in any case,
/// surrounding whitespace ignored. `None` when the header is absent, not text, of another scheme,
/// or has empty credentials.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credentials) = value.split_once([' ', '\t'])?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// Extractor: the signed-in user of an `Authorization: Bearer <jwt>` request, or 401 JSON
/// (`missing_token`, `invalid_token`, `token_revoked`; 503 when the account cannot be checked).
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub Identity);

impl<S> FromRequestParts<S> for AuthUser
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Authenticator::from_ref(state);
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                "an Authorization: Bearer token is required",
            )
        })?;
        Ok(AuthUser(auth.authenticate(token).await?))
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`http.trusted_proxies`). Empty: the
/// connection's peer is the client, whatever the headers say (anyone can write them).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> TrustedProxies {
        TrustedProxies(nets.into_iter().collect())
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `10.0.0.0/8`, `2001:db8::/32`, or one address (`10.0.0.7`).
    pub fn parse_net(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("`{s}` is neither an address nor a network such as 10.0.0.0/8"))
    }
}

/// Extractor: the client's address. The connection's peer, unless that peer is a trusted proxy:
/// then `X-Forwarded-For` is read from the right (the hop the proxy added) past every trusted
/// address, and the first untrusted one is the client. Without a peer address (only a router
/// driven in-process, as unit tests do) it is the unspecified address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn resolve(
        peer: Option<IpAddr>,
        headers: &HeaderMap,
        trusted: &TrustedProxies,
    ) -> ClientIp {
        let Some(mut client) = peer.map(|ip| ip.to_canonical()) else {
            return ClientIp(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        };
        if !trusted.contains(client) {
            return ClientIp(client);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let hop = hop.trim();
            let Some(ip) = hop
                .parse::<IpAddr>()
                .ok()
                .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
            else {
                // Garbage in the chain: the last hop we could trust is as far as we can see.
                break;
            };
            client = ip.to_canonical();
            if !trusted.contains(client) {
                break;
            }
        }
        ClientIp(client)
    }

    /// The key of per-address limits: the address, or for IPv6 its /64 (one host is commonly
    /// given a whole /64, so single IPv6 addresses cost an attacker nothing).
    pub fn bucket(self) -> IpAddr {
        match self.0 {
            IpAddr::V4(_) => self.0,
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & (u128::MAX << 64);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        }
    }
}

impl<S> FromRequestParts<S> for ClientIp
where
    TrustedProxies: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp::resolve(
            peer,
            &parts.headers,
            &TrustedProxies::from_ref(state),
        ))
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
/// for a body of the wrong shape, 415 for a missing JSON content type, 413 `payload_too_large`
/// for a body over the router's limit (`http.max_body_bytes`; refused from `Content-Length`
/// before a byte is read, or as soon as the read passes it).
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
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::too_large(
                "the request body is larger than this server accepts",
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

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", v.parse().unwrap());
            h
        };
        let none = TrustedProxies::default();
        let proxies = TrustedProxies::new(
            ["10.0.0.0/8", "127.0.0.1"].map(|n| TrustedProxies::parse_net(n).unwrap()),
        );
        let resolve = |peer: &str, h: &HeaderMap, t: &TrustedProxies| {
            ClientIp::resolve(Some(ip(peer)), h, t).0
        };
        // Anyone can write the header: without trusted proxies it is ignored.
        assert_eq!(
            resolve("203.0.113.9", &xff("1.2.3.4"), &none),
            ip("203.0.113.9")
        );
        // From an untrusted peer too.
        assert_eq!(
            resolve("203.0.113.9", &xff("1.2.3.4"), &proxies),
            ip("203.0.113.9")
        );
        // Behind trusted hops, the first untrusted address from the right; a forged left part
        // does not matter.
        assert_eq!(
            resolve(
                "127.0.0.1",
                &xff("6.6.6.6, 198.51.100.7, 10.1.2.3"),
                &proxies
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve("127.0.0.1", &HeaderMap::new(), &proxies),
            ip("127.0.0.1")
        );
        assert_eq!(
            resolve("127.0.0.1", &xff("198.51.100.7:4711"), &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve("127.0.0.1", &xff("junk, 10.0.0.1"), &proxies),
            ip("10.0.0.1")
        );
        assert_eq!(
            resolve("::ffff:203.0.113.9", &HeaderMap::new(), &none),
            ip("203.0.113.9")
        );
        assert!(TrustedProxies::parse_net("10.0.0.0/33").is_err());
        // IPv6 clients share a bucket per /64.
        assert_eq!(
            ClientIp(ip("2001:db8:1:2:aaaa::1")).bucket(),
            ClientIp(ip("2001:db8:1:2:bbbb::9")).bucket()
        );
        assert_ne!(
            ClientIp(ip("2001:db8:1:2::1")).bucket(),
            ClientIp(ip("2001:db8:1:3::1")).bucket()
        );
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
