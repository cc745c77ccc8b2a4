//! A local push service for tests (feature `test-support`): what a browser vendor's push service
//! and the subscribed browser together would do with our requests, on `127.0.0.1:0`.
//!
//! [`TestPushService::subscribe`] plays the browser's `pushManager.subscribe({
//! applicationServerKey })`: it generates the user agent's P-256 key pair and 16-byte auth
//! secret, registers a push resource at `/wpush/<token>` restricted to that application server
//! key (RFC 8292 §4), and returns the [`SubscriptionJson`] the browser would hand to the web app.
//!
//! Every `POST` to a push resource is then checked the way a push service checks it, in order,
//! each failure answered with the status a push service uses (and recorded as a [`Refusal`]):
//! 1. the resource exists (404 otherwise; 410 once told it is gone);
//! 2. `Authorization: vapid t=…, k=…` (RFC 8292 §3): `k` is an uncompressed P-256 key (401),
//!    equal to the subscription's application server key (403, RFC 8292 §4.2); `t` is an ES256
//!    JWT whose signature verifies under `k`, whose `aud` is this service's origin, whose `exp` is
//!    in the future and at most 24 hours ahead, and whose `sub` is `mailto:` or `https:` (401);
//! 3. `TTL` present, delta-seconds (400, RFC 8030 §5.2); `Urgency`, if present, one of the four
//!    levels (400, §5.3); `Topic`, if present, at most 32 base64url characters (400, §5.4);
//! 4. `Content-Encoding: aes128gcm` (415) and a body of at most 4096 bytes (413, §7.2);
//! 5. the body decrypts with the subscription's private key and auth secret exactly as the
//!    browser would ([`encryption::decrypt`]); a browser would silently drop what does not, the
//!    service answers 400 so the test sees it.
//!
//! What passes is recorded as a [`Received`] and answered `201 Created` with a `Location`.
//! A test can script the next answers of one resource ([`TestPushService::reply_next`]: 404,
//! 410, 429 with `Retry-After`, 500 …, or [`Reply::Hang`] to exercise timeouts); a scripted answer
//! is given before any check and counts as an attempt (see [`TestPushService::attempts`]).
//!
//! Over 500 lines on purpose: the push service and the browser it stands in for (decryption, VAPID
//! checks, resource table) are one test double whose parts only make sense together.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::SecretKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::OsRng;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::b64;
use crate::encryption::{self, AuthSecret, MAX_BODY};
use crate::message::{Topic, Urgency};
use crate::subscription::{SubscriptionJson, SubscriptionKeys};
use crate::vapid::VapidClaims;

/// A running test push service; stopped when dropped.
pub struct TestPushService {
    addr: SocketAddr,
    origin: String,
    state: Arc<Shared>,
    stop: CancellationToken,
}

/// A subscription made by [`TestPushService::subscribe`].
#[derive(Debug, Clone)]
pub struct TestSubscription {
    /// The push resource's token (the last path segment); the handle for the service's methods.
    pub token: String,
    /// What the browser hands the web app (`PushSubscription.toJSON()`).
    pub json: SubscriptionJson,
}

/// A push message that passed every check, as the browser's service worker would get it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The decrypted payload.
    pub payload: Vec<u8>,
    /// `TTL`, seconds.
    pub ttl: u64,
    /// `Urgency`, if the request had one (RFC 8030 §5.3: absent means normal).
    pub urgency: Option<Urgency>,
    pub topic: Option<Topic>,
    /// The verified VAPID claims.
    pub vapid: VapidClaims,
    /// The `k=` key, base64url.
    pub vapid_key: String,
    /// The raw body as it arrived (encrypted).
    pub body: Vec<u8>,
}

impl Received {
    /// The payload parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("payload is JSON")
    }
}

/// A request the service refused, and why.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub token: String,
    pub status: StatusCode,
    pub reason: String,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, with this `Retry-After` header if any, and a short body naming it.
    Status {
        status: StatusCode,
        retry_after: Option<String>,
    },
    /// Never answer (until the service stops): the sender's timeout must fire.
    Hang,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply::Status {
            status: StatusCode::from_u16(status).expect("a valid status code"),
            retry_after: None,
        }
    }

    /// 410 Gone: the user unsubscribed.
    pub fn gone() -> Self {
        Self::status(410)
    }

    /// 429 with `Retry-After: <seconds>`.
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Reply::Status {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(retry_after_secs.to_string()),
        }
    }
}

struct Resource {
    ua_secret: SecretKey,
    auth: AuthSecret,
    /// The application server key the subscription is restricted to (RFC 8292 §4), base64url.
    application_server_key: String,
    script: VecDeque<Reply>,
    attempts: usize,
    received: Vec<Received>,
}

#[derive(Default)]
struct Shared {
    /// Never held across an `.await`.
    resources: Mutex<HashMap<String, Resource>>,
    refusals: Mutex<Vec<Refusal>>,
    /// `http://127.0.0.1:<port>`: the audience a VAPID token must name.
    origin: String,
    stop: CancellationToken,
    next_message: std::sync::atomic::AtomicU64,
}

impl TestPushService {
    /// Starts the service on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let origin = format!("http://{addr}");
        let stop = CancellationToken::new();
        let state = Arc::new(Shared {
            origin: origin.clone(),
            stop: stop.clone(),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/wpush/{token}", post(push))
            .with_state(state.clone());
        let shutdown = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            // An error here ends the service; tests then see connection failures, not a hang.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        Ok(Self {
            addr,
            origin,
            state,
            stop,
        })
    }

    /// `http://127.0.0.1:<port>`: the audience VAPID tokens must name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Subscribes a new "browser" restricted to `application_server_key` (base64url, as the web
    /// app passes it to `pushManager.subscribe`).
    pub fn subscribe(&self, application_server_key: &str) -> TestSubscription {
        let ua_secret = SecretKey::random(&mut OsRng);
        let auth = AuthSecret::generate();
        let mut token = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut token);
        let token = b64::URL_SAFE_NO_PAD.encode(token);
        let json = SubscriptionJson {
            endpoint: format!("{}/wpush/{token}", self.origin),
            expiration_time: None,
            keys: SubscriptionKeys {
                p256dh: b64::URL_SAFE_NO_PAD
                    .encode(ua_secret.public_key().to_encoded_point(false).as_bytes()),
                auth: auth.to_base64url(),
            },
        };
        self.state.resources.lock().unwrap().insert(
            token.clone(),
            Resource {
                ua_secret,
                auth,
                application_server_key: application_server_key.to_owned(),
                script: VecDeque::new(),
                attempts: 0,
                received: Vec::new(),
            },
        );
        TestSubscription { token, json }
    }

    /// The next requests to `subscription` get these answers, in order, before any check; after
    /// them the service checks and accepts again.
    pub fn reply_next(
        &self,
        subscription: &TestSubscription,
        replies: impl IntoIterator<Item = Reply>,
    ) {
        self.with_resource(subscription, |r| r.script.extend(replies));
    }

    /// Forgets the resource: later requests get 404, like an endpoint the push service never
    /// knew or has purged.
    pub fn forget(&self, subscription: &TestSubscription) {
        self.state
            .resources
            .lock()
            .unwrap()
            .remove(&subscription.token);
    }

    /// Requests that reached `subscription`'s resource, scripted or not.
    pub fn attempts(&self, subscription: &TestSubscription) -> usize {
        self.with_resource(subscription, |r| r.attempts)
    }

    /// Messages delivered to `subscription`, oldest first.
    pub fn received(&self, subscription: &TestSubscription) -> Vec<Received> {
        self.with_resource(subscription, |r| r.received.clone())
    }

    /// Every refused request so far.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.state.refusals.lock().unwrap().clone()
    }

    fn with_resource<T>(
        &self,
        subscription: &TestSubscription,
        f: impl FnOnce(&mut Resource) -> T,
    ) -> T {
        let mut resources = self.state.resources.lock().unwrap();
        let resource = resources
            .get_mut(&subscription.token)
            .expect("a subscription of this service that was not forgotten");
        f(resource)
    }
}

impl Drop for TestPushService {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The push resource: `POST /wpush/{token}`.
async fn push(
    State(state): State<Arc<Shared>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A scripted answer comes first, outside the lock's scope.
    let scripted = {
        let mut resources = state.resources.lock().unwrap();
        match resources.get_mut(&token) {
            None => None,
            Some(r) => {
                r.attempts += 1;
                r.script.pop_front()
            }
        }
    };
    match scripted {
        Some(Reply::Hang) => {
            state.stop.cancelled().await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Some(Reply::Status {
            status,
            retry_after,
        }) => {
            let mut response = (status, format!("scripted {status}")).into_response();
            if let Some(value) = retry_after {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_str(&value).expect("a valid Retry-After"),
                );
            }
            return response;
        }
        None => {}
    }
    let origin = &state.origin;
    match check_and_decrypt(&state, &token, origin, &headers, &body) {
        Ok(received) => {
            let n = state
                .next_message
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let ttl = received.ttl;
            if let Some(r) = state.resources.lock().unwrap().get_mut(&token) {
                r.received.push(received);
            }
            let mut response = StatusCode::CREATED.into_response();
            let h = response.headers_mut();
            h.insert(
                header::LOCATION,
                HeaderValue::from_str(&format!("{origin}/m/{n}")).unwrap(),
            );
            h.insert("TTL", HeaderValue::from(ttl));
            response
        }
        Err((status, reason)) => {
            state.refusals.lock().unwrap().push(Refusal {
                token,
                status,
                reason: reason.clone(),
            });
            (status, reason).into_response()
        }
    }
}

type Refused = (StatusCode, String);

fn refuse<T>(status: StatusCode, reason: impl Into<String>) -> Result<T, Refused> {
    Err((status, reason.into()))
}

/// The checks of the module docs, in order. Reads the resource under its lock only to copy what
/// the checks need.
fn check_and_decrypt(
    state: &Shared,
    token: &str,
    origin: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Received, Refused> {
    let (ua_secret, auth, application_server_key) = {
        let resources = state.resources.lock().unwrap();
        match resources.get(token) {
            Some(r) => (
                r.ua_secret.clone(),
                r.auth.clone(),
                r.application_server_key.clone(),
            ),
            None => return refuse(StatusCode::NOT_FOUND, "no such push resource"),
        }
    };

    // 2. VAPID (RFC 8292).
    let Some(authorization) = header_str(headers, header::AUTHORIZATION.as_str())? else {
        return refuse(StatusCode::UNAUTHORIZED, "no Authorization header");
    };
    let (token_jwt, key) =
        parse_vapid(authorization).map_err(|reason| (StatusCode::UNAUTHORIZED, reason))?;
    let public = encryption::public_key_from_base64url(&key)
        .map_err(|e| (StatusCode::UNAUTHORIZED, format!("k: {e}")))?;
    if encryption::public_key_to_base64url(&public) != application_server_key {
        return refuse(
            StatusCode::FORBIDDEN,
            "k is not the key this subscription is restricted to",
        );
    }
    let claims = verify_jwt(&token_jwt, &public, origin)
        .map_err(|reason| (StatusCode::UNAUTHORIZED, reason))?;

    // 3. RFC 8030 headers.
    let Some(ttl) = header_str(headers, "ttl")? else {
        return refuse(StatusCode::BAD_REQUEST, "no TTL header (RFC 8030 §5.2)");
    };
    let ttl: u64 = ttl.parse().map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            format!("TTL {ttl:?} is not delta-seconds"),
        )
    })?;
    let urgency = match header_str(headers, "urgency")? {
        None => None,
        Some(u) => Some(
            u.parse::<Urgency>()
                .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?,
        ),
    };
    let topic = match header_str(headers, "topic")? {
        None => None,
        Some(t) => Some(Topic::parse(t).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?),
    };

    // 4. Content coding and size.
    if header_str(headers, header::CONTENT_ENCODING.as_str())? != Some("aes128gcm") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding must be aes128gcm (RFC 8291 §4)",
        );
    }
    if body.len() > MAX_BODY {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is {} bytes; at most {MAX_BODY}", body.len()),
        );
    }

    // 5. What the browser does.
    let payload = encryption::decrypt(body, &ua_secret, &auth).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the browser could not decrypt it: {e}"),
        )
    })?;

    Ok(Received {
        payload,
        ttl,
        urgency,
        topic,
        vapid: claims,
        vapid_key: key,
        body: body.to_vec(),
    })
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Refused> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| (StatusCode::BAD_REQUEST, format!("{name} is not text"))),
    }
}

/// `vapid t=<jwt>, k=<key>` (RFC 8292 §3): the scheme, then two auth-params in any order.
fn parse_vapid(value: &str) -> Result<(String, String), String> {
    let Some((scheme, params)) = value.split_once(' ') else {
        return Err("Authorization is not `vapid t=…, k=…`".into());
    };
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(format!("Authorization scheme {scheme:?} is not vapid"));
    }
    let (mut t, mut k) = (None, None);
    for param in params.split(',') {
        let Some((name, value)) = param.trim().split_once('=') else {
            return Err(format!("malformed auth-param {param:?}"));
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "t" => t = Some(value.trim().to_owned()),
            "k" => k = Some(value.trim().to_owned()),
            other => return Err(format!("unknown auth-param {other:?}")),
        }
    }
    match (t, k) {
        (Some(t), Some(k)) => Ok((t, k)),
        _ => Err("Authorization needs both t= and k=".into()),
    }
}

/// Verifies the JWT's ES256 signature under `key` and its claims (RFC 8292 §2).
fn verify_jwt(token: &str, key: &p256::PublicKey, origin: &str) -> Result<VapidClaims, String> {
    let point = key.to_encoded_point(false);
    let decoding = DecodingKey::from_ec_components(
        &b64::URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point")),
        &b64::URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point")),
    )
    .map_err(|e| format!("k: {e}"))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[origin]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    // No grace: sender and service share this machine's clock.
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<VapidClaims>(token, &decoding, &validation)
        .map_err(|e| format!("VAPID JWT refused: {e}"))?
        .claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    if claims.exp > now + Duration::from_secs(24 * 3600).as_secs() {
        return Err(format!(
            "exp is {} s ahead; RFC 8292 §2 allows 24 hours",
            claims.exp - now
        ));
    }
    if !(claims.sub.starts_with("mailto:") || claims.sub.starts_with("https:")) {
        return Err(format!(
            "sub {:?} is not a mailto: or https: contact",
            claims.sub
        ));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vapid_headers_parse_in_either_order_and_refuse_other_schemes() {
        assert_eq!(
            parse_vapid("vapid t=a.b.c, k=BKEY").unwrap(),
            ("a.b.c".to_owned(), "BKEY".to_owned())
        );
        assert_eq!(
            parse_vapid("vapid k=BKEY,t=a.b.c").unwrap(),
            ("a.b.c".to_owned(), "BKEY".to_owned())
        );
        assert!(parse_vapid("WebPush a.b.c").is_err());
        assert!(parse_vapid("vapid t=a.b.c").is_err());
        assert!(parse_vapid("Bearer x").is_err());
    }
}
