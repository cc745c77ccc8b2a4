//! The HTTP API of the notification core: publishing (for backends, with the API key), the
//! signed-in user's inbox (with their JWT), health and metrics. See `docs/protocol.md`.
//!
//! Health, for load balancers and orchestrators (`docs/operations.md`), public and cheap:
//! `/livez` (the process serves: touches nothing), `/readyz` (send it traffic: the store answers
//! within [`READY_TIMEOUT`], the broker's subscriber is connected, and the node is not draining
//! for a stop), and `/healthz` (the store answers; with the socket count).
//!
//! A publish is checked cheapest first, and its body is parsed last: the declared size
//! (`Content-Length` over `http.max_body_bytes`: 413 before a byte is read, for every route,
//! [`refuse_oversized`]), the API key (401), the key's rate limit (`limits.publish`, 429), the
//! size again while reading (a chunked body passing the limit: 413), and only then the JSON. `/metrics` is a router of its own
//! ([`metrics_router`]): on the main address (behind `metrics.token` if set, and in production
//! only then) or on `metrics.bind`.

use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parkmate_auth::{ApiError, ApiJson, ApiKey, ApiQuery, AuthUser, ExpectedApiKey, PathId};
use parkmate_booking_http::dto::ErrorBody;
use parkmate_db::{NewNotification, UnreadState};
use parkmate_protocol::NotificationFrame;
pub use parkmate_protocol::publish::{
    MAX_DATA_BYTES, MAX_MESSAGE_CHARS, MAX_USER_IDS, Publish, PublishRequest,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::config::Settings;
use crate::error::Error;
use crate::state::AppState;

/// A publisher waiting longer than this for the writer queue gets 503 instead of hanging.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// `/readyz` calls the store unreachable when it has not answered within this: a probe must
/// answer before the prober's own timeout (commonly 1–5 s).
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/notifications", post(publish))
        .route("/api/inbox", get(inbox))
        .route("/api/inbox/unread-count", get(unread_count))
        .route("/api/inbox/read-all", post(read_all))
        .route("/api/inbox/{id}/read", post(read_one))
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
}

/// `GET /metrics`, behind `Authorization: Bearer <metrics.token>` when one is set.
pub fn metrics_router<S: Clone + Send + Sync + 'static>(settings: &Settings) -> Router<S> {
    let token = settings
        .metrics
        .token
        .as_ref()
        .map(|t| ExpectedApiKey::new(t.expose_secret()));
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| async move {
            if let Some(token) = token
                && !parkmate_auth::bearer(&headers).is_some_and(|k| token.matches(k))
            {
                return ApiError::unauthorized(
                    "unauthorized",
                    "Authorization: Bearer <metrics token> is required",
                )
                .into_response();
            }
            metrics().await.into_response()
        }),
    )
}

/// Middleware: a request whose `Content-Length` is over `max` is answered 413
/// `payload_too_large` before a byte of its body is read. (A body without a length, chunked, is
/// cut by the extractors' limit as soon as it passes `max`.)
pub async fn refuse_oversized(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return ApiError::too_large(format!(
            "the request body is larger than this server accepts ({max} bytes)"
        ))
        .into_response();
    }
    next.run(req).await
}

/// Middleware: while the node drains for a stop, every response says `Connection: close`, so
/// keep-alive clients (a proxy's pooled connections, a publisher's HTTP client) open their next
/// request afresh, through the load balancer to a node that is staying.
pub async fn close_while_draining(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = next.run(req).await;
    // Never on a 101: the connection becomes the socket, which the drain closes in its turn.
    if state.is_draining() && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Extractor: one call of the API key's rate limit (`limits.publish`), taken before the body is
/// read; 429 with `Retry-After` when it is spent.
struct PublishAllowance;

impl FromRequestParts<AppState> for PublishAllowance {
    type Rejection = Response;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Response> {
        state
            .limits
            .publish
            .check()
            .map(|()| PublishAllowance)
            .map_err(IntoResponse::into_response)
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PublishResponse {
    /// The stored notifications' ids, one per recipient (a role or everyone is one).
    pub ids: Vec<i64>,
}

/// Validates a publish request into the notifications to store: the body's rules are
/// [`PublishRequest::parse`]'s (422 with its code), the `Idempotency-Key` header's are here (400).
pub fn validate(
    req: &PublishRequest,
    idempotency_key: Option<&str>,
) -> Result<Vec<NewNotification>, ApiError> {
    let publish = req
        .parse()
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > 200)
    {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-200 characters",
        ));
    }
    let Publish {
        level,
        event,
        message,
        data,
        audiences,
    } = publish;
    Ok(audiences
        .into_iter()
        .enumerate()
        .map(|(i, audience)| {
            let n = NewNotification::new(audience, level, &event, message.clone())
                .with_data(data.clone());
            match idempotency_key {
                Some(key) => n.with_dedupe_key(format!("api:{key}:{i}")),
                None => n,
            }
        })
        .collect())
}

/// Publishes a notification (backends, with the API key). The key and its rate limit are checked
/// before the body is read, so an unauthenticated caller learns nothing about it and a flood
/// costs no parsing.
#[utoipa::path(post, path = "/api/notifications", tag = "notifications", security(("api_key" = [])),
    request_body = PublishRequest,
    params(("Idempotency-Key" = Option<String>, Header,
            description = "1-200 characters; a retry with the same key stores nothing twice and answers the same ids")),
    responses((status = 201, body = PublishResponse),
              (status = 400, description = "`invalid_json`, `invalid_body`, `invalid_idempotency_key`", body = ErrorBody),
              (status = 401, description = "`unauthorized`: no or a wrong API key", body = ErrorBody),
              (status = 413, description = "`payload_too_large`: over `http.max_body_bytes`", body = ErrorBody),
              (status = 415, description = "`unsupported_media_type`: not `application/json`", body = ErrorBody),
              (status = 422, description = "`invalid_body`, `invalid_level`, `empty_message`, `message_too_long`, `invalid_event`, `invalid_data`, `invalid_recipient`", body = ErrorBody),
              (status = 429, description = "`rate_limited`: the key's `limits.publish` (`Retry-After`)", body = ErrorBody),
              (status = 503, description = "`overloaded` or `unavailable` (the store) or `shutting_down` (`Retry-After`)", body = ErrorBody)))]
async fn publish(
    State(state): State<AppState>,
    _key: ApiKey,
    _allowed: PublishAllowance,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PublishRequest>,
) -> Result<impl IntoResponse, Error> {
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or(""));
    let batch = validate(&req, idempotency_key)?;
    let stored = tokio::time::timeout(PUBLISH_TIMEOUT, state.notifier.submit(batch))
        .await
        .map_err(|_| {
            ApiError::unavailable("overloaded", "the notification queue is full, retry later")
                .retry_after(Duration::from_secs(1))
        })??;
    let ids = stored.iter().map(|n| n.id).collect();
    Ok((StatusCode::CREATED, Json(PublishResponse { ids })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InboxQuery {
    /// Only notifications with a smaller id (the previous page's `next_before`).
    before: Option<i64>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct InboxEntry {
    #[serde(flatten)]
    notification: NotificationFrame,
    read: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct InboxResponse {
    /// Newest first.
    items: Vec<InboxEntry>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next_before: Option<i64>,
    unread_count: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CountResponse {
    count: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ReadResponse {
    unread_count: i64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HealthResponse {
    /// `ok`.
    status: String,
    /// Sockets open on this node.
    connections: u64,
}

/// The signed-in user's notifications, newest first.
#[utoipa::path(get, path = "/api/inbox", tag = "inbox", security(("bearer" = [])), params(InboxQuery),
    responses((status = 200, body = InboxResponse),
              (status = 400, description = "`invalid_query`", body = ErrorBody),
              (status = 401, description = "`missing_token`, `invalid_token`, `token_revoked`", body = ErrorBody),
              (status = 503, description = "`unavailable` (the store) or `shutting_down` (`Retry-After`)", body = ErrorBody)))]
async fn inbox(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> Result<Json<InboxResponse>, Error> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(
            ApiError::bad_request("invalid_query", "limit must be between 1 and 100").into(),
        );
    }
    let page = state.store.inbox(who.viewer(), q.before, limit).await?;
    let unread = state.store.unread(who.viewer()).await?;
    Ok(Json(InboxResponse {
        items: page
            .items
            .into_iter()
            .map(|i| InboxEntry {
                notification: i.notification.frame(),
                read: i.read,
            })
            .collect(),
        next_before: page.next_before,
        unread_count: unread.count,
    }))
}

/// The signed-in user's unread count.
#[utoipa::path(get, path = "/api/inbox/unread-count", tag = "inbox", security(("bearer" = [])),
    responses((status = 200, body = CountResponse),
              (status = 401, description = "`missing_token`, `invalid_token`, `token_revoked`", body = ErrorBody),
              (status = 503, description = "`unavailable` (the store) or `shutting_down` (`Retry-After`)", body = ErrorBody)))]
async fn unread_count(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
) -> Result<Json<CountResponse>, Error> {
    let s = state.store.unread(who.viewer()).await?;
    Ok(Json(CountResponse { count: s.count }))
}

async fn announce(state: &AppState, user_id: i64, s: UnreadState) -> Json<ReadResponse> {
    state.notifier.publish_read_state(user_id, s).await;
    Json(ReadResponse {
        unread_count: s.count,
    })
}

/// Marks one notification read (every socket of the user hears the new count).
#[utoipa::path(post, path = "/api/inbox/{id}/read", tag = "inbox", security(("bearer" = [])),
    params(("id" = i64, Path, description = "A notification id the user can see")),
    responses((status = 200, body = ReadResponse),
              (status = 400, description = "`invalid_id`", body = ErrorBody),
              (status = 401, description = "`missing_token`, `invalid_token`, `token_revoked`", body = ErrorBody),
              (status = 404, description = "`not_found`: no such notification for this user", body = ErrorBody),
              (status = 503, description = "`unavailable` (the store) or `shutting_down` (`Retry-After`)", body = ErrorBody)))]
async fn read_one(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    PathId(id): PathId,
) -> Result<Json<ReadResponse>, Error> {
    let s = state.store.mark_read(who.viewer(), id).await?;
    Ok(announce(&state, who.user_id, s).await)
}

/// Marks everything the user can see read.
#[utoipa::path(post, path = "/api/inbox/read-all", tag = "inbox", security(("bearer" = [])),
    responses((status = 200, body = ReadResponse),
              (status = 401, description = "`missing_token`, `invalid_token`, `token_revoked`", body = ErrorBody),
              (status = 503, description = "`unavailable` (the store) or `shutting_down` (`Retry-After`)", body = ErrorBody)))]
async fn read_all(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
) -> Result<Json<ReadResponse>, Error> {
    let s = state.store.mark_all_read(who.viewer()).await?;
    Ok(announce(&state, who.user_id, s).await)
}

/// Whether this node can serve: its store answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = HealthResponse),
              (status = 503, description = "`unavailable` (the store) or `shutting_down` (`Retry-After`)", body = ErrorBody)))]
async fn healthz(State(state): State<AppState>) -> Result<Json<HealthResponse>, Error> {
    // Healthy means the store answers: a node that cannot read cannot replay.
    state.store.max_id().await?;
    Ok(Json(HealthResponse {
        status: "ok".to_owned(),
        connections: state.hub.connection_count() as u64,
    }))
}

/// `/livez`'s and `/readyz`'s 200 body.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProbeResponse {
    /// `ok` (`/livez`) or `ready` (`/readyz`).
    status: String,
    /// `/readyz` only: `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<String>,
    /// `/readyz` only: `ok` (also without Redis: nothing to be connected to).
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<String>,
}

/// The process is up and serving HTTP. Nothing else is checked: an orchestrator restarts a node
/// whose liveness fails, and an outage of the database is no reason to restart every node.
#[utoipa::path(get, path = "/livez", tag = "operations", security(()),
    responses((status = 200, body = ProbeResponse)))]
async fn livez() -> Json<ProbeResponse> {
    Json(ProbeResponse {
        status: "ok".into(),
        store: None,
        broker: None,
    })
}

/// Whether to send this node traffic: 200 `{"status":"ready",…}`, or 503 with the error shape
/// (`code` `not_ready`, a `message` naming what is wrong) and each check's state.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = ProbeResponse),
              (status = 503, description = "`not_ready`: draining, the store does not answer, or Redis is not connected; with `draining`, `store` and `broker` beside `code` and `message`", body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state.is_draining();
    let store = matches!(
        tokio::time::timeout(READY_TIMEOUT, state.store.max_id()).await,
        Ok(Ok(_))
    );
    let broker = state.broker.as_ref().is_none_or(|b| b.is_up());
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    if !draining && store && broker {
        return Json(ProbeResponse {
            status: "ready".into(),
            store: Some("ok".into()),
            broker: Some("ok".into()),
        })
        .into_response();
    }
    let message = if draining {
        "this node is draining for a stop"
    } else if !store {
        "the store does not answer"
    } else {
        "the broker (Redis) is not connected"
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({
            "code": "not_ready",
            "message": message,
            "status": "not_ready",
            "draining": draining,
            "store": word(store),
            "broker": word(broker),
        })),
    )
        .into_response()
}

/// Prometheus metrics, on this address unless `metrics.bind` moves them (then 404 here); behind
/// `Authorization: Bearer <metrics.token>` when one is set (required in production).
#[utoipa::path(get, path = "/metrics", tag = "operations", security((), ("metrics_token" = [])),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
              (status = 401, description = "`unauthorized`: the metrics token is missing or wrong", body = ErrorBody),
              (status = 404, description = "`not_found`: metrics are served on `metrics.bind`", body = ErrorBody)))]
#[allow(dead_code)] // only its documentation: the route is `metrics_router`'s closure
fn metrics_doc() {}

async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::telemetry::prometheus().render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: serde_json::Value) -> PublishRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_body_rules_answer_422_and_the_idempotency_key_400() {
        let r = req(serde_json::json!({"level":"loud","message":"m","user_id":1}));
        let e = validate(&r, None).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (422, "invalid_level"));
        let r = req(serde_json::json!({"level":"info","message":"m","user_ids":[1,2,2]}));
        let stored = validate(&r, Some("k")).unwrap();
        assert_eq!(stored.len(), 2);
        let e = validate(&r, Some("")).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code),
            (400, "invalid_idempotency_key")
        );
    }
}
