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

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ws/notifications/{user_id}", get(handshake::handshake))
        .route("/ws/notifications/{user_id}/", get(handshake::handshake))
}
