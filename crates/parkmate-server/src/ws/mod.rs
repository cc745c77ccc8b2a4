//! The socket: `GET /ws/notifications/{user_id}/` (the trailing slash optional).
//!
//! Two halves: [`handshake`] decides whether a request becomes a socket (token, user, origin,
//! `since`, a connection slot) and refuses with an HTTP status and JSON otherwise; [`connection`]
//! is the life of an accepted socket, one task each: a loop over one `select!` whose every way out
//! is an [`connection::End`], from which one `match` picks the close code.

mod connection;
mod handshake;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// The handshake, as the OpenAPI document shows it (a plain `GET` answers what a refused one
/// does; `docs/protocol.md` has the frames that follow an accepted one). The route without the
/// trailing slash is the same handler.
#[utoipa::path(get, path = "/ws/notifications/{user_id}/", tag = "socket",
    security(("bearer_subprotocol" = []), ("bearer" = [])),
    params(("user_id" = i64, Path, description = "The token's own user id"),
           ("since" = Option<i64>, Query, minimum = 0, description = "Replay every notification after this id first"),
           ("token" = Option<String>, Query, description = "Development only (`ws.query_token`); refused in production")),
    responses((status = 101, description = "Switching protocols: `parkmate.v1` (docs/protocol.md)"),
              (status = 400, description = "`not_websocket` (a plain GET), `invalid_user_id`, `invalid_since`, `invalid_query`", body = parkmate_booking_http::dto::ErrorBody),
              (status = 401, description = "`missing_token`, `invalid_token`, `token_revoked`, `query_token_disabled`", body = parkmate_booking_http::dto::ErrorBody),
              (status = 403, description = "`forbidden` (another user's path), `origin_not_allowed`", body = parkmate_booking_http::dto::ErrorBody),
              (status = 426, description = "`not_websocket`: the connection cannot be upgraded", body = parkmate_booking_http::dto::ErrorBody),
              (status = 429, description = "`rate_limited`, `connection_limit` (`Retry-After`)", body = parkmate_booking_http::dto::ErrorBody),
              (status = 503, description = "`too_many_connections`, `busy`, `unavailable` (`Retry-After`)", body = parkmate_booking_http::dto::ErrorBody)))]
#[allow(dead_code)] // only its documentation: the route is `handshake::handshake`
pub(crate) fn handshake_doc() {}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ws/notifications/{user_id}", get(handshake::handshake))
        .route("/ws/notifications/{user_id}/", get(handshake::handshake))
}
