//! The handshake: count it against its address's rate (`limits.handshakes_per_ip`), authenticate
//! (sub-protocol `bearer.<jwt>`, `Authorization`, or `?token=` where `ws.query_token` allows it;
//! a token this server minted is also checked against its account), check the path's user is the
//! token's, check the browser `Origin`, read `since`, take the user's and the address's places
//! (`ws.max_connections_per_user`, `_per_ip`) and a node slot — or refuse with an [`ApiError`]
//! (HTTP status + JSON body, `Retry-After` on 429 and 503), counted by reason, before anything is
//! upgraded. Past the cheap checks a handshake waits for a turn (`ws.max_handshakes_in_flight`),
//! held until its socket has said hello and replayed. An admitted socket is configured (buffers,
//! frame limit), answered with the sub-protocol of its [`Dialect`] (`parkmate.v1`, or
//! `parkmate.channels` when the client asked for the original consumer's frames) and handed to
//! its own task ([`Connection::run`](super::connection::Connection::run)).

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parkmate_auth::{ApiError, AuthError, ClientIp, Identity};
use parkmate_protocol::{BEARER_PROTOCOL_PREFIX, Dialect};
use tokio::sync::OwnedSemaphorePermit;

use super::connection::{Connection, Places};
use crate::limits::CAP_RETRY_AFTER;
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
    dialect: Dialect,
    places: Places,
    /// Its turn among `ws.max_handshakes_in_flight`, given back once the socket has greeted.
    turn: OwnedSemaphorePermit,
}

pub async fn handshake(
    State(state): State<AppState>,
    ip: ClientIp,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let admission = match admit(&state, ip, path, query, &headers, upgrade).await {
        Ok(a) => a,
        Err(refusal) => return refusal.into_response(),
    };
    let Admission {
        upgrade,
        identity,
        since,
        dialect,
        places,
        turn,
    } = admission;
    let ws = &state.settings.ws;
    let upgrade = upgrade
        .protocols([dialect.subprotocol()])
        .read_buffer_size(ws.read_buffer_bytes.get())
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(ws.max_frame_bytes.get())
        .max_frame_size(ws.max_frame_bytes.get());
    let tracker = state.tracker.clone();
    upgrade.on_upgrade(move |socket| {
        // A task of its own rather than running inside axum's upgrade task: that task's future
        // also keeps the upgrade's captures (~1 KiB) for as long as the socket lives.
        let connection = Connection::new(state, socket, identity, since, dialect, places);
        tracker.spawn(connection.run(turn));
        std::future::ready(())
    })
}

/// Every check of the handshake, in the order a client learns about them: not a WebSocket, a
/// draining node (503), too
/// many handshakes from its address (429), no or a bad token (401), another user's path (403), a
/// foreign origin (403), a bad `since` (400), the user's or the address's sockets at their cap
/// (429), a full node (503).
async fn admit(
    state: &AppState,
    ip: ClientIp,
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
    // A draining node takes no new socket: a load balancer passes the handshake on to another
    // node (nginx: `proxy_next_upstream http_503`), a direct client retries after a second.
    if state.is_draining() {
        return Err(refuse(
            "draining",
            ApiError::unavailable(
                "shutting_down",
                "this node is shutting down; reconnect (to another node)",
            )
            .retry_after(std::time::Duration::from_secs(1)),
        ));
    }
    // First, before any work: a flood of handshakes (with bad tokens, say) costs a map lookup.
    state
        .limits
        .handshakes_per_ip
        .check(&ip.bucket())
        .map_err(|e| refuse("rate_limited", e))?;
    // Then a turn: past the cheap refusals, so a flood of them does not hold the queue.
    let turn = tokio::time::timeout(
        state.settings.ws.handshake_queue_timeout,
        state.handshake_turns.clone().acquire_owned(),
    )
    .await
    .map_err(|_| {
        refuse(
            "busy",
            ApiError::unavailable("busy", "too many handshakes at once here, retry later")
                .retry_after(CAP_RETRY_AFTER),
        )
    })?
    .expect("the semaphore is never closed");
    let Query(query) = query.map_err(|e| {
        refuse(
            "invalid_query",
            ApiError::bad_request("invalid_query", e.body_text()),
        )
    })?;
    let token = match offered_token(headers, &query) {
        Offered::Token(t) => t,
        Offered::Nothing => {
            return Err(refuse(
                "missing_token",
                ApiError::unauthorized("missing_token", "a token is required"),
            ));
        }
        Offered::InQuery(t) if state.settings.query_token() => t,
        Offered::InQuery(_) => {
            return Err(refuse(
                "query_token_disabled",
                ApiError::unauthorized(
                    "query_token_disabled",
                    "this server does not read tokens from the URL (proxies log URLs): send it \
                     as Sec-WebSocket-Protocol: bearer.<jwt> or Authorization: Bearer <jwt>",
                ),
            ));
        }
    };
    let identity = state.auth.authenticate(token).await.map_err(|e| {
        let reason = match e {
            AuthError::Invalid(_) => "invalid_token",
            AuthError::Revoked => "token_revoked",
            AuthError::Unavailable => "unavailable",
        };
        refuse(reason, e.into())
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
    let ticket = state
        .limits
        .sockets
        .admit(identity.user_id, ip.bucket())
        .map_err(|e| refuse("connection_limit", e))?;
    let slot: OwnedSemaphorePermit =
        state
            .connection_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                refuse(
                    "full",
                    ApiError::unavailable("too_many_connections", "this node is full, retry later")
                        .retry_after(CAP_RETRY_AFTER),
                )
            })?;
    Ok(Admission {
        upgrade,
        identity,
        since,
        dialect: Dialect::negotiate(offered_protocols(headers)),
        places: Places {
            _slot: slot,
            _ticket: ticket,
        },
        turn,
    })
}

/// Where a client put its token.
enum Offered<'a> {
    /// In a header (the sub-protocol or `Authorization`).
    Token(&'a str),
    /// In the URL's `?token=`.
    InQuery(&'a str),
    Nothing,
}

/// The sub-protocols a client offered, in its order.
fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The token a client offered: sub-protocol `bearer.<jwt>`, then `Authorization` (parsed by
/// [`parkmate_auth::bearer`], like every other credential), then `?token=`.
fn offered_token<'a>(headers: &'a HeaderMap, query: &'a HashMap<String, String>) -> Offered<'a> {
    let from_protocol =
        offered_protocols(headers).find_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX));
    if let Some(t) = from_protocol
        .or_else(|| parkmate_auth::bearer(headers))
        .filter(|t| !t.is_empty())
    {
        return Offered::Token(t);
    }
    match query.get("token").map(String::as_str) {
        Some(t) if !t.is_empty() => Offered::InQuery(t),
        _ => Offered::Nothing,
    }
}

/// Same-origin, or listed in `ws.allowed_origins`. Non-browser clients send no `Origin` and pass.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if state.settings.allowed_origins().contains(origin) {
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
