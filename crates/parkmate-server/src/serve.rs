//! The accept loop: HTTP/1.1 connections, each in its own task, until a stop token fires.
//!
//! Our own rather than `axum::serve`, for three things it does not do:
//! - **a deadline for request heads** (`http.header_read_timeout`): hyper's, with a timer. A peer
//!   that sends half a request line and then nothing (a slowloris), or a keep-alive connection
//!   left idle, is closed when it passes; `axum::serve` sets no timer, so such a peer held its
//!   connection forever;
//! - **a cap on connections not yet upgraded** (`http.max_connections`): a permit per
//!   connection, taken before `accept`, so heads still arriving can never use the file
//!   descriptors the sockets need (the kernel's backlog queues the rest). A connection that
//!   upgrades to a WebSocket gives its permit back: hyper's connection future ends at the upgrade,
//!   and the socket counts against `ws.max_connections` instead;
//! - **a shutdown that ends on time**: at stop, every connection is told to finish its request
//!   and close; whatever is still open at the deadline the caller gives is dropped
//!   ([`Connections::drain`]), so a peer that never finishes a request cannot hold the shutdown.
//!
//! Each request carries the peer's address (`ConnectInfo<SocketAddr>`) for per-address limits.
//! Plain TCP and native TLS go through the same loop: [`crate::tls::TlsListener`] yields
//! connections whose handshake is done.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How one listener serves.
#[derive(Debug, Clone, Copy)]
pub struct HttpOptions {
    /// A request head must arrive within this (also between keep-alive requests).
    pub header_read_timeout: Duration,
    /// Connections served at once, upgraded ones not counted.
    pub max_connections: usize,
}

/// The connections of one listener, for the shutdown to wait on.
pub struct Connections {
    tasks: TaskTracker,
    /// Cancelled when the drain's deadline passes: tasks drop their connection at once.
    force: CancellationToken,
}

impl Connections {
    /// Waits until every connection has closed, or until `deadline`; then drops the rest.
    /// `true` when all closed by themselves.
    pub async fn drain(&self, deadline: Instant) -> bool {
        self.tasks.close();
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_ok()
        {
            return true;
        }
        tracing::warn!(
            open = self.tasks.len(),
            "HTTP connections still open at the shutdown deadline: dropping them"
        );
        self.force.cancel();
        self.tasks.wait().await;
        false
    }
}

/// Accepts on `listener` until `stop` fires, serving `router` on each connection; returns the
/// connections still open, to [`Connections::drain`]. The listener is closed on return.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    options: HttpOptions,
    stop: CancellationToken,
) -> Connections
where
    L: Listener<Addr = SocketAddr>,
{
    let connections = Connections {
        tasks: TaskTracker::new(),
        force: CancellationToken::new(),
    };
    let permits = Arc::new(Semaphore::new(options.max_connections));
    loop {
        // The permit first: at the cap the loop stops accepting, and the backlog waits.
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (io, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let router = router.clone();
        let stop = stop.clone();
        let force = connections.force.clone();
        connections.tasks.spawn(async move {
            let service =
                hyper::service::service_fn(move |mut req: axum::http::Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(req.map(Body::new))
                });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(options.header_read_timeout)
                .keep_alive(true);
            let conn = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => Some(result),
                _ = stop.cancelled() => {
                    // Finish the request in flight (if any), then close.
                    conn.as_mut().graceful_shutdown();
                    tokio::select! {
                        result = conn.as_mut() => Some(result),
                        _ = force.cancelled() => None,
                    }
                }
                _ = force.cancelled() => None,
            };
            if let Some(Err(e)) = result {
                // A peer that vanished, timed out or spoke garbage: its own problem, and common.
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    connections
}
