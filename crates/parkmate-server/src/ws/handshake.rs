//! The handshake: authenticate (sub-protocol `bearer.<jwt>`, `Authorization`, or `?token=`), check
//! the path's user is the token's, check the browser `Origin`, read `since`, take a connection slot
//! — or refuse with an [`ApiError`] (HTTP status + JSON body), counted by reason. An admitted
//! socket is configured (buffers, frame limit) and handed to its own task
//! ([`Connection::run`](super::connection::Connection::run)).

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parkmate_auth::{ApiError, Identity};
use parkmate_protocol::{BEARER_PROTOCOL_PREFIX, SUBPROTOCOL};
use tokio::sync::OwnedSemaphorePermit;

use super::connection::Connection;
use crate::state::AppState;

/// tungstenite's write buffer: queued frames are coalesced in it and written on flush; above it
/// they go out early. 16 KiB holds a burst of notifications.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// A handshake refused: why (the `reason` label of `parkmate_handshake_refusals_total`) and the
/// answer.
struct Refusal {
    reason: &'static str,
    error: ApiError,
}

fn refuse(reason: &'static str, error: ApiError) -> Refusal {
    Refusal { reason, error }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        metrics::counter!("parkmate_handshake_refusals_total", "reason" => self.reason)
            .increment(1);
        self.error.into_response()
    }
}

/// What an accepted handshake carries into its socket.
struct Admission {
    upgrade: WebSocketUpgrade,
    identity: Identity,
    since: Option<i64>,
    slot: OwnedSemaphorePermit,
}

pub async fn handshake(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let admission = match admit(&state, path, query, &headers, upgrade) {
        Ok(a) => a,
        Err(refusal) => return refusal.into_response(),
    };
    let Admission {
        upgrade,
        identity,
        since,
        slot,
    } = admission;
    let ws = &state.settings.ws;
    let upgrade = upgrade
        .protocols([SUBPROTOCOL])
        .read_buffer_size(ws.read_buffer_bytes.get())
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(ws.max_frame_bytes.get())
        .max_frame_size(ws.max_frame_bytes.get());
    let tracker = state.tracker.clone();
    upgrade.on_upgrade(move |socket| {
        // A task of its own rather than running inside axum's upgrade task: that task's future
        // also keeps the upgrade's captures (~1 KiB) for as long as the socket lives.
        tracker.spawn(Connection::new(state, socket, identity, since, slot).run());
        std::future::ready(())
    })
}

/// Every check of the handshake, in the order a client learns about them: not a WebSocket, no or
/// a bad token (401), another user's path (403), a foreign origin (403), a bad `since` (400), a
/// full node (503).
fn admit(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Admission, Refusal> {
    let upgrade = upgrade.map_err(|e| {
        refuse(
            "not_websocket",
            ApiError::new(e.status(), "not_websocket", e.body_text()),
        )
    })?;
    let Query(query) = query.map_err(|e| {
        refuse(
            "invalid_query",
            ApiError::bad_request("invalid_query", e.body_text()),
        )
    })?;
    let token = offered_token(headers, &query).ok_or_else(|| {
        refuse(
            "missing_token",
            ApiError::unauthorized("missing_token", "a token is required"),
        )
    })?;
    let identity = state.keys.verify(token).map_err(|e| {
        refuse(
            "invalid_token",
            ApiError::unauthorized("invalid_token", e.to_string()),
        )
    })?;
    let path_user = path
        .ok()
        .and_then(|Path(user)| user.parse::<i64>().ok())
        .ok_or_else(|| {
            refuse(
                "invalid_user_id",
                ApiError::bad_request("invalid_user_id", "user id must be an integer"),
            )
        })?;
    if path_user != identity.user_id {
        return Err(refuse(
            "forbidden",
            ApiError::forbidden("this token may not listen to that user"),
        ));
    }
    if !origin_allowed(state, headers) {
        return Err(refuse(
            "origin",
            ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "origin not allowed",
            ),
        ));
    }
    let since = match query.get("since").map(|s| s.parse::<i64>()) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => {
            return Err(refuse(
                "invalid_since",
                ApiError::bad_request("invalid_since", "since must be a non-negative integer"),
            ));
        }
    };
    let slot = state
        .connection_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            refuse(
                "full",
                ApiError::unavailable("too_many_connections", "this node is full, retry later"),
            )
        })?;
    Ok(Admission {
        upgrade,
        identity,
        since,
        slot,
    })
}

/// The token a client offered: sub-protocol `bearer.<jwt>`, then `Authorization` (parsed by
/// [`parkmate_auth::bearer`], like every other credential), then `?token=`.
fn offered_token<'a>(
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
) -> Option<&'a str> {
    let from_protocol = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX));
    from_protocol
        .or_else(|| parkmate_auth::bearer(headers))
        .or_else(|| query.get("token").map(String::as_str))
        .filter(|t| !t.is_empty())
}

/// Same-origin, or listed in `ws.allowed_origins`. Non-browser clients send no `Origin` and pass.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if state.settings.ws.allowed_origins.contains(origin) {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host))
}
