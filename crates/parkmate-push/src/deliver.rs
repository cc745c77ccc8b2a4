//! Delivery of a push message to a push service (RFC 8030 §5, "Requesting Push Message
//! Delivery"), with the typed outcome the caller branches on.
//!
//! One attempt is one `POST` of the encrypted body to the subscription's endpoint with:
//! `TTL` (§5.2), `Urgency` (§5.3), `Topic` when set (§5.4), `Content-Encoding: aes128gcm`
//! (RFC 8291 §4) and `Authorization: vapid …` (RFC 8292 §3). The answer becomes an [`Outcome`]:
//!
//! | push service says | outcome | the caller |
//! |---|---|---|
//! | 2xx (201 Created per §5; some answer 202) | [`Outcome::Delivered`] | counts it |
//! | 404, 410 (§7.3: expired or unsubscribed) | [`Outcome::Gone`] | removes the subscription |
//! | 429, 5xx, timeout, connection failure | [`Outcome::RetryLater`] (with `Retry-After`) | retried here; after that, may schedule later |
//! | other 4xx (400, 401/403 VAPID, 413 …) | [`Outcome::Rejected`] (with the body, bounded) | logs it; retrying will not help |
//!
//! Before any request, what no retry can fix is a [`SendError`]: an endpoint the policy refuses
//! (also when its name resolves only to private addresses), a payload that cannot be encrypted,
//! a VAPID header that cannot be signed.
//!
//! [`Pusher::send`] retries `RetryLater` under a [`RetryPolicy`] (see `retry.rs`). The encrypted
//! body and the VAPID header are made once per send and reused by its retries, so a retry is the
//! same message, never a second one.
//!
//! Bounds: each request has a deadline (`request_timeout`, covering connect, upload, response
//! and the error body) and a connect deadline; an error body is read to at most
//! [`MAX_ERROR_BODY`] bytes; redirects are not followed (a push service answers, it does not
//! redirect, and a redirect would be a way around the endpoint policy); no proxy is used, so
//! the address checked is the address connected to.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::encryption::{self, EncryptError};
use crate::endpoint::{BlockedAddress, EndpointError, EndpointPolicy, PublicOnlyResolver};
use crate::message::Message;
use crate::retry::{RetryPolicy, with_retries};
use crate::subscription::Subscription;
use crate::vapid::{Vapid, VapidError};

/// The most of an error response's body kept for the log. Push services answer errors with a
/// short JSON or text reason; anything longer is not read.
pub const MAX_ERROR_BODY: usize = 4096;

/// Timeouts and retries of a [`Pusher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSettings {
    /// Deadline of one request: connect, send, response and the bounded error body. Push
    /// services answer in well under a second; 15 s only cuts off a hung one.
    pub request_timeout: Duration,
    /// Deadline of the TCP + TLS connection within it.
    pub connect_timeout: Duration,
    /// Retries of [`Outcome::RetryLater`].
    pub retry: RetryPolicy,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }
}

/// What the push service made of one attempt (or of the last of a send's attempts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted for delivery. `location` is the push message's resource (§5), if given.
    Delivered {
        status: StatusCode,
        location: Option<String>,
    },
    /// The subscription no longer exists (404 or 410): remove it.
    Gone { status: StatusCode },
    /// Try again later: the push service is overloaded or failing, or did not answer.
    /// `retry_after` is its `Retry-After`, when it sent one.
    RetryLater {
        reason: RetryReason,
        retry_after: Option<Duration>,
    },
    /// Refused for good (any other status); `body` is the start of its answer, for the log.
    Rejected { status: StatusCode, body: String },
}

/// Why an attempt is worth repeating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryReason {
    /// 429 Too Many Requests or a 5xx.
    Status(StatusCode),
    /// No answer within `request_timeout` (or no connection within `connect_timeout`).
    Timeout,
    /// The connection failed or broke (refused, reset, TLS, DNS).
    Transport(String),
}

/// The result of [`Pusher::send`]: the final outcome and how many attempts it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub outcome: Outcome,
    pub attempts: u32,
}

/// What no retry can fix; nothing was delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The endpoint is refused by the policy (drop the subscription).
    #[error("push endpoint refused: {0}")]
    Endpoint(#[from] EndpointError),
    #[error(transparent)]
    Encrypt(#[from] EncryptError),
    #[error(transparent)]
    Vapid(#[from] VapidError),
}

/// The HTTP client could not be built (TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the push HTTP client: {0}")]
pub struct BuildError(#[source] reqwest::Error);

/// Sends push messages. Cheap to clone (one connection pool, one key pair, shared).
#[derive(Debug, Clone)]
pub struct Pusher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    vapid: Vapid,
    policy: EndpointPolicy,
    settings: PushSettings,
}

impl Pusher {
    /// A pusher signing with `vapid`, sending only where `policy` allows.
    pub fn new(
        vapid: Vapid,
        policy: EndpointPolicy,
        settings: PushSettings,
    ) -> Result<Self, BuildError> {
        let http = http_client(&policy, &settings)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                vapid,
                policy,
                settings,
            }),
        })
    }

    pub fn vapid(&self) -> &Vapid {
        &self.inner.vapid
    }

    /// The policy subscriptions must be parsed under to be sent to.
    pub fn policy(&self) -> EndpointPolicy {
        self.inner.policy
    }

    pub fn settings(&self) -> &PushSettings {
        &self.inner.settings
    }

    /// Sends `message` to `subscription`, retrying [`Outcome::RetryLater`] under the settings'
    /// [`RetryPolicy`]. The outcome is the first that is not "retry later", or the last one.
    pub async fn send(
        &self,
        subscription: &Subscription,
        message: &Message,
    ) -> Result<Delivery, SendError> {
        let request = self.prepare(subscription, message)?;
        with_retries(&self.inner.settings.retry, || self.attempt(&request)).await
    }

    /// One attempt, no retry.
    pub async fn send_once(
        &self,
        subscription: &Subscription,
        message: &Message,
    ) -> Result<Outcome, SendError> {
        let request = self.prepare(subscription, message)?;
        self.attempt(&request).await
    }

    /// Checks the endpoint, encrypts, signs: everything a retry does not repeat.
    fn prepare(
        &self,
        subscription: &Subscription,
        message: &Message,
    ) -> Result<Prepared, SendError> {
        let endpoint = subscription.endpoint().clone();
        // Again here, not only when the subscription was parsed: it may have been parsed under
        // another policy (stored in development, sent in production).
        self.inner.policy.check(&endpoint)?;
        let body = encryption::encrypt(
            message.payload(),
            subscription.p256dh(),
            subscription.auth(),
        )?;
        let authorization = self.inner.vapid.authorization(&endpoint)?;
        Ok(Prepared {
            endpoint,
            body,
            authorization,
            ttl: message.ttl_header(),
            urgency: message.urgency().as_str(),
            topic: message.topic().map(|t| t.as_str().to_owned()),
        })
    }

    async fn attempt(&self, request: &Prepared) -> Result<Outcome, SendError> {
        let mut builder = self
            .inner
            .http
            .post(request.endpoint.clone())
            .header("TTL", request.ttl)
            .header("Urgency", request.urgency)
            .header(CONTENT_ENCODING, "aes128gcm")
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(AUTHORIZATION, &request.authorization)
            .body(request.body.clone());
        if let Some(topic) = &request.topic {
            builder = builder.header("Topic", topic);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(e) => return classify_transport(e),
        };
        let status = response.status();
        let outcome = if status.is_success() {
            Outcome::Delivered {
                status,
                location: header_text(&response, LOCATION),
            }
        } else if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            Outcome::Gone { status }
        } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Outcome::RetryLater {
                reason: RetryReason::Status(status),
                retry_after: header_text(&response, RETRY_AFTER)
                    .and_then(|v| parse_retry_after(&v, SystemTime::now())),
            }
        } else {
            Outcome::Rejected {
                status,
                body: read_bounded(response, MAX_ERROR_BODY).await,
            }
        };
        Ok(outcome)
    }
}

/// The pusher's HTTP client: bounded, no redirects, no proxy, and in production only public
/// addresses (see the module docs).
fn http_client(
    policy: &EndpointPolicy,
    settings: &PushSettings,
) -> Result<reqwest::Client, BuildError> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .connect_timeout(settings.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(!policy.allows_http())
        .user_agent(concat!("parkmate-push/", env!("CARGO_PKG_VERSION")));
    if !policy.allows_private_addresses() {
        builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
    }
    builder.build().map_err(BuildError)
}

/// One send's request, made once and reused by its retries.
struct Prepared {
    endpoint: Url,
    body: Vec<u8>,
    authorization: String,
    ttl: u64,
    urgency: &'static str,
    topic: Option<String>,
}

/// A failed request: refused by the resolver (permanent), or a network failure (retry later).
fn classify_transport(e: reqwest::Error) -> Result<Outcome, SendError> {
    // The resolver's refusal travels inside reqwest's connect error; find it by type.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(blocked) = err.downcast_ref::<BlockedAddress>() {
            return Err(SendError::Endpoint(EndpointError::PrivateAddress {
                host: blocked.host.clone(),
                addr: blocked.addr,
            }));
        }
        source = err.source();
    }
    let reason = if e.is_timeout() {
        RetryReason::Timeout
    } else {
        RetryReason::Transport(error_chain(&e))
    };
    Ok(Outcome::RetryLater {
        reason,
        retry_after: None,
    })
}

/// `e: cause: cause …`, for the log (reqwest's own message names only the outermost layer).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn header_text(response: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; a date in the past means now.
/// Anything else is ignored (the backoff applies).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads at most `limit` bytes of the body (lossy UTF-8), dropping the rest unread.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            // The status is what matters; a body cut short by a timeout still says something.
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `localhost` is refused by the policy's text check before any request; this goes around it
    /// to show the resolver's refusal surviving reqwest's error wrapping as a typed error.
    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_connection_in_production() {
        let http = http_client(&EndpointPolicy::PRODUCTION, &PushSettings::default()).unwrap();
        let err = http
            .post("https://localhost:9/wpush/x")
            .send()
            .await
            .unwrap_err();
        match classify_transport(err) {
            Err(SendError::Endpoint(EndpointError::PrivateAddress { host, addr })) => {
                assert_eq!(host, "localhost");
                assert!(addr.is_loopback());
            }
            other => panic!("not refused as private: {other:?}"),
        }
        // In development the same request is just a connection failure, worth retrying.
        let http = http_client(&EndpointPolicy::DEVELOPMENT, &PushSettings::default()).unwrap();
        let err = http
            .post("http://localhost:9/wpush/x")
            .send()
            .await
            .unwrap_err();
        assert!(matches!(
            classify_transport(err),
            Ok(Outcome::RetryLater {
                reason: RetryReason::Transport(_),
                ..
            })
        ));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
