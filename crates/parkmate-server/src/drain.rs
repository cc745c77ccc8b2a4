//! The drain before a stop (`shutdown_drain`): the node says it is not ready (`/readyz` 503),
//! takes no new socket (503 `shutting_down`, which a load balancer passes on to another node),
//! asks keep-alive clients to reconnect (`Connection: close`), and closes its open sockets with
//! 1012 a wave at a time, so their clients come back through the load balancer a few at a time
//! and spread over the other nodes instead of all landing on one. HTTP is served throughout;
//! `startup.rs` runs it before the stop proper.

use crate::state::AppState;

/// The drain closes sockets in this many waves, one every `shutdown_drain / DRAIN_WAVES`: small
/// enough groups that clients reconnecting together do not pile onto one node, few enough timer
/// ticks to be nothing.
pub const DRAIN_WAVES: usize = 10;

/// The drain (`shutdown_drain`): not ready, no new sockets, open sockets closed wave by wave.
/// Skipped when the node holds no socket, or ends early once none is left; `shutdown` (which
/// follows) closes whatever remains.
pub async fn drain(state: &AppState) {
    state.draining.cancel();
    let period = state.settings.shutdown_drain;
    if period.is_zero() || state.hub.connection_count() == 0 {
        return;
    }
    tracing::info!(
        ?period,
        sockets = state.hub.connection_count(),
        "draining: not ready, refusing new sockets, closing open ones with 1012"
    );
    // Never a zero period (which `interval` refuses), however short the drain.
    let step = (period / DRAIN_WAVES as u32).max(std::time::Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    for wave in &state.close_waves {
        if state.hub.connection_count() == 0 || state.shutdown.is_cancelled() {
            return;
        }
        wave.cancel();
        tick.tick().await;
    }
}
