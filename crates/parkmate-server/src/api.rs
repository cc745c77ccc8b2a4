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
use parkmate_db::{NewNotification, UnreadState};
use parkmate_protocol::{Audience, Level, NotificationFrame, Role};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::error::Error;
use crate::state::AppState;

/// Longest message accepted: toasts show a sentence, not an essay.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Largest `data` object, serialised.
pub const MAX_DATA_BYTES: usize = 16 * 1024;
/// Most recipients in one `user_ids` call.
pub const MAX_USER_IDS: usize = 1000;
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

/// The publish body, mirroring the original `send_ws_notification(user_id, level, message)`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub level: String,
    pub message: String,
    pub event: Option<String>,
    pub data: Option<serde_json::Value>,
    pub user_id: Option<i64>,
    pub user_ids: Option<Vec<i64>>,
    pub role: Option<String>,
    pub broadcast: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PublishResponse {
    pub ids: Vec<i64>,
}

fn audiences(req: &PublishRequest) -> Result<Vec<Audience>, ApiError> {
    let bad = |m: &str| ApiError::unprocessable("invalid_recipient", m.to_owned());
    let given = [
        req.user_id.is_some(),
        req.user_ids.is_some(),
        req.role.is_some(),
        req.broadcast.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err(bad(
            "give exactly one of user_id, user_ids, role, broadcast",
        ));
    }
    let user = |id: i64| {
        if id < 0 {
            Err(bad("user ids are non-negative"))
        } else {
            Ok(Audience::User(id))
        }
    };
    if let Some(id) = req.user_id {
        return Ok(vec![user(id)?]);
    }
    if let Some(ids) = &req.user_ids {
        if ids.is_empty() || ids.len() > MAX_USER_IDS {
            return Err(bad(&format!("user_ids must hold 1 to {MAX_USER_IDS} ids")));
        }
        let mut seen = std::collections::HashSet::new();
        return ids
            .iter()
            .filter(|id| seen.insert(**id))
            .map(|id| user(*id))
            .collect();
    }
    if let Some(role) = &req.role {
        return role
            .parse::<Role>()
            .map(|r| vec![Audience::Role(r)])
            .map_err(|e| bad(&e.to_string()));
    }
    match req.broadcast {
        Some(true) => Ok(vec![Audience::All]),
        _ => Err(bad("broadcast must be true when given")),
    }
}

/// Validates a publish request into the notifications to store.
pub fn validate(
    req: &PublishRequest,
    idempotency_key: Option<&str>,
) -> Result<Vec<NewNotification>, ApiError> {
    let level: Level = req
        .level
        .parse()
        .map_err(|e: parkmate_protocol::ParseEnumError| {
            ApiError::unprocessable("invalid_level", e.to_string())
        })?;
    if req.message.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "empty_message",
            "message must not be empty",
        ));
    }
    if req.message.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::unprocessable(
            "message_too_long",
            format!("message is longer than {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    let event = req.event.clone().unwrap_or_else(|| "custom".to_owned());
    if event.is_empty()
        || event.len() > 64
        || !event
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ApiError::unprocessable(
            "invalid_event",
            "event must be 1-64 characters of a-z, 0-9 and _",
        ));
    }
    let data = match &req.data {
        None => serde_json::Value::Object(Default::default()),
        Some(v @ serde_json::Value::Object(_)) if v.to_string().len() <= MAX_DATA_BYTES => {
            v.clone()
        }
        Some(serde_json::Value::Object(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_data",
                format!("data is larger than {MAX_DATA_BYTES} bytes"),
            ));
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_data",
                "data must be a JSON object",
            ));
        }
    };
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > 200)
    {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-200 characters",
        ));
    }
    Ok(audiences(req)?
        .into_iter()
        .enumerate()
        .map(|(i, audience)| {
            let n = NewNotification::new(audience, level, &event, req.message.clone())
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct InboxEntry {
    #[serde(flatten)]
    notification: NotificationFrame,
    read: bool,
}

#[derive(Serialize)]
struct InboxResponse {
    items: Vec<InboxEntry>,
    next_before: Option<i64>,
    unread_count: i64,
}

#[derive(Serialize)]
struct CountResponse {
    count: i64,
}

#[derive(Serialize)]
struct ReadResponse {
    unread_count: i64,
}

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

async fn read_one(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
    PathId(id): PathId,
) -> Result<Json<ReadResponse>, Error> {
    let s = state.store.mark_read(who.viewer(), id).await?;
    Ok(announce(&state, who.user_id, s).await)
}

async fn read_all(
    State(state): State<AppState>,
    AuthUser(who): AuthUser,
) -> Result<Json<ReadResponse>, Error> {
    let s = state.store.mark_all_read(who.viewer()).await?;
    Ok(announce(&state, who.user_id, s).await)
}

async fn healthz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Error> {
    // Healthy means the store answers: a node that cannot read cannot replay.
    state.store.max_id().await?;
    Ok(Json(
        serde_json::json!({ "status": "ok", "connections": state.hub.connection_count() }),
    ))
}

/// The process is up and serving HTTP. Nothing else is checked: an orchestrator restarts a node
/// whose liveness fails, and an outage of the database is no reason to restart every node.
async fn livez() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Whether to send this node traffic: 200 `{"status":"ready",…}`, or 503 with the error shape
/// (`code` `not_ready`, a `message` naming what is wrong) and each check's state.
async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state.is_draining();
    let store = matches!(
        tokio::time::timeout(READY_TIMEOUT, state.store.max_id()).await,
        Ok(Ok(_))
    );
    let broker = state.broker.as_ref().is_none_or(|b| b.is_up());
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    if !draining && store && broker {
        return Json(serde_json::json!({ "status": "ready", "store": "ok", "broker": "ok" }))
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
    fn exactly_one_recipient() {
        let r = req(serde_json::json!({"level":"info","message":"m"}));
        assert_eq!(validate(&r, None).unwrap_err().code, "invalid_recipient");
        let r = req(serde_json::json!({"level":"info","message":"m","user_id":1,"broadcast":true}));
        assert_eq!(validate(&r, None).unwrap_err().code, "invalid_recipient");
        let r = req(serde_json::json!({"level":"info","message":"m","user_ids":[1,2,2]}));
        assert_eq!(validate(&r, None).unwrap().len(), 2);
        let r = req(serde_json::json!({"level":"info","message":"m","role":"pilot"}));
        assert_eq!(validate(&r, None).unwrap_err().code, "invalid_recipient");
    }

    #[test]
    fn level_message_event_and_data_are_checked() {
        let r = req(serde_json::json!({"level":"loud","message":"m","user_id":1}));
        assert_eq!(validate(&r, None).unwrap_err().code, "invalid_level");
        let r = req(serde_json::json!({"level":"info","message":"  ","user_id":1}));
        assert_eq!(validate(&r, None).unwrap_err().code, "empty_message");
        let r =
            req(serde_json::json!({"level":"info","message":"m","user_id":1,"event":"Bad Event"}));
        assert_eq!(validate(&r, None).unwrap_err().code, "invalid_event");
        let r = req(serde_json::json!({"level":"info","message":"m","user_id":1,"data":[1]}));
        assert_eq!(validate(&r, None).unwrap_err().code, "invalid_data");
    }
}
