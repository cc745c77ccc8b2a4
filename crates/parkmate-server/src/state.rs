//! What every handler shares.

use std::sync::Arc;

use axum::extract::FromRef;
use parkmate_auth::{Authenticator, ExpectedApiKey, TrustedProxies};
use parkmate_db::Db;
use parkmate_hub::Hub;
use parkmate_notifier::Notifier;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::limits::EdgeLimits;

/// Cheap to clone: one pointer. Every socket task keeps a clone for its whole life, so the fields
/// live once behind an `Arc` rather than being copied into each task (BENCHMARKS.md, idle memory).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub settings: Arc<Settings>,
    /// Verifies user tokens, and checks the accounts behind the ones this server minted.
    pub auth: Authenticator,
    /// `http.trusted_proxies`, for [`parkmate_auth::ClientIp`].
    pub trusted_proxies: TrustedProxies,
    /// Handshakes per address, publishes per key, sockets per user and per address.
    pub limits: EdgeLimits,
    /// The backends' key, checked by the [`parkmate_auth::ApiKey`] extractor.
    pub api_key: ExpectedApiKey,
    pub store: Db,
    pub notifier: Notifier,
    pub hub: Hub,
    /// One permit per open socket, `ws.max_connections` in all: a handshake that finds none gets 503.
    pub connection_slots: Arc<Semaphore>,
    /// `ws.max_handshakes_in_flight`: a handshake holds one from its token check to the end of
    /// its greeting and replay; the rest queue for one (fairly, in arrival order).
    pub handshake_turns: Arc<Semaphore>,
    /// Cancelled at shutdown, after the drain: the accept loops, the notifier and every other
    /// task stop; sockets still open are closed with 1012.
    pub shutdown: CancellationToken,
    /// Cancelled when the drain begins (before `shutdown`): `/readyz` answers 503, handshakes
    /// are refused 503 `shutting_down`, responses say `Connection: close`.
    pub draining: CancellationToken,
    /// The drain closes sockets in these waves, one after the other across `shutdown_drain`;
    /// each is a child of `shutdown`, so a stop without a drain closes them all at once. A socket
    /// watches the wave it was dealt ([`Shared::close_wave`]): one token per socket, as before.
    pub close_waves: Vec<CancellationToken>,
    /// Deals sockets to waves in turn, so the waves are even.
    pub next_wave: std::sync::atomic::AtomicUsize,
    /// The Redis subscriber's state, for `/readyz`; `None` with the in-process broker.
    pub broker: Option<Arc<parkmate_broker::redis::Interest>>,
    /// Tracks socket tasks so shutdown can wait for them to say goodbye.
    pub tracker: TaskTracker,
    /// "Now" as the application sees it (`hello.server_time`): the system clock, or the booking
    /// domain's manual clock under `clock = manual`, so clients correct countdowns by the same time
    /// the scheduler uses.
    pub now: Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>,
    /// Whether this node holds the cluster's leader lease (runs the once-per-cluster jobs); always
    /// true on SQLite.
    pub leader: tokio::sync::watch::Receiver<bool>,
    /// Web Push (`[push]`), `None` when it is off: the subscription routes then answer 404
    /// `push_disabled`, and nothing escalates.
    pub push: Option<crate::push::Push>,
}

impl Shared {
    /// The close wave of the next socket: its 1012 comes when this token is cancelled.
    pub fn close_wave(&self) -> CancellationToken {
        let n = self
            .next_wave
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.close_waves[n % self.close_waves.len()].clone()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for TrustedProxies {
    fn from_ref(state: &AppState) -> Self {
        state.trusted_proxies.clone()
    }
}

impl FromRef<AppState> for ExpectedApiKey {
    fn from_ref(state: &AppState) -> Self {
        state.api_key.clone()
    }
}
