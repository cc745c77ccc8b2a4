//! Logs (tracing) and metrics (Prometheus). Both are process-global, so both are installed once
//! however many applications a test process builds.
//!
//! Every metric is registered at zero when the recorder is installed, so a fresh node's
//! `/metrics` already lists them all (an alert on a series that does not exist yet never fires).
//! `docs/operations.md` lists them with what to alert on; a test holds that list to [`METRICS`].

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed in this process");
            describe();
            register_at_zero();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "parkmate_build_info",
        "Always 1; the `version` label is the running build's"
    );
    describe_gauge!(
        "parkmate_leader",
        "1 while this node holds the cluster's leader lease (runs the dispatcher and the booking scheduler)"
    );
    describe_gauge!("parkmate_connections", "WebSockets open on this node");
    describe_counter!(
        "parkmate_password_hash_refusals_total",
        "Logins and registrations refused 503 because every password-hashing slot stayed busy"
    );
    describe_counter!(
        "parkmate_notifications_stored_total",
        "Notifications committed by the publish API's writer"
    );
    describe_counter!(
        "parkmate_notifications_published_total",
        "Notifications handed to the broker by the dispatcher"
    );
    describe_counter!(
        "parkmate_bus_messages_received_total",
        "Messages this node took off the Redis bus (any channel; 0 without Redis)"
    );
    describe_gauge!(
        "parkmate_bus_user_channels",
        "Users whose Redis channel this node hears (held now, or left less than 30 s ago)"
    );
    describe_counter!(
        "parkmate_deliveries_total",
        "Frames queued for sockets by the hub"
    );
    describe_counter!(
        "parkmate_slow_consumer_closes_total",
        "Sockets closed because their send queue was full (4008)"
    );
    describe_counter!(
        "parkmate_write_timeouts_total",
        "Sockets dropped because a write did not finish in time"
    );
    describe_counter!(
        "parkmate_replayed_total",
        "Notifications sent from the store on reconnect (since)"
    );
    describe_counter!(
        "parkmate_handshake_refusals_total",
        "Refused WebSocket handshakes, by reason"
    );
    describe_counter!(
        "parkmate_heartbeat_timeouts_total",
        "Sockets closed for silence (4002)"
    );
    describe_counter!(
        "parkmate_tls_handshake_failures_total",
        "Connections dropped because their TLS handshake failed or timed out (native TLS)"
    );
    describe_counter!(
        "parkmate_notifications_pruned_total",
        "Notifications deleted by retention (database.retention), on the leader"
    );
    describe_counter!(
        "parkmate_push_notifications_total",
        "Web Push escalations by event kind and outcome (pushed, failed, retry, held)"
    );
    describe_counter!(
        "parkmate_push_requests_total",
        "Requests to push services by outcome (delivered, gone, retry_later, rejected)"
    );
    describe_counter!(
        "parkmate_acks_total",
        "Notifications a client acknowledged as shown, by event kind"
    );
    describe_histogram!(
        "parkmate_group_commit_size",
        "Notifications per group-commit transaction"
    );
}

/// Every metric this process exports, by name: what `docs/operations.md` documents.
pub const METRICS: &[&str] = &[
    "parkmate_build_info",
    "parkmate_leader",
    "parkmate_connections",
    "parkmate_notifications_stored_total",
    "parkmate_notifications_published_total",
    "parkmate_bus_messages_received_total",
    "parkmate_bus_user_channels",
    "parkmate_deliveries_total",
    "parkmate_slow_consumer_closes_total",
    "parkmate_write_timeouts_total",
    "parkmate_replayed_total",
    "parkmate_handshake_refusals_total",
    "parkmate_heartbeat_timeouts_total",
    "parkmate_tls_handshake_failures_total",
    "parkmate_password_hash_refusals_total",
    "parkmate_group_commit_size",
    "parkmate_notifications_pruned_total",
    "parkmate_push_notifications_total",
    "parkmate_push_requests_total",
    "parkmate_acks_total",
];

/// The `reason` labels of `parkmate_handshake_refusals_total` (`ws/handshake.rs`), each
/// registered at zero so a rate over any of them exists from the start.
pub const HANDSHAKE_REFUSAL_REASONS: &[&str] = &[
    "not_websocket",
    "rate_limited",
    "invalid_query",
    "missing_token",
    "query_token_disabled",
    "invalid_token",
    "token_revoked",
    "unavailable",
    "invalid_user_id",
    "forbidden",
    "origin",
    "invalid_since",
    "connection_limit",
    "full",
    "draining",
];

fn register_at_zero() {
    use metrics::{counter, gauge, histogram};
    gauge!("parkmate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!("parkmate_leader").set(0.0);
    gauge!("parkmate_connections").set(0.0);
    gauge!("parkmate_bus_user_channels").set(0.0);
    for name in [
        "parkmate_notifications_stored_total",
        "parkmate_notifications_published_total",
        "parkmate_bus_messages_received_total",
        "parkmate_deliveries_total",
        "parkmate_slow_consumer_closes_total",
        "parkmate_write_timeouts_total",
        "parkmate_replayed_total",
        "parkmate_heartbeat_timeouts_total",
        "parkmate_tls_handshake_failures_total",
        "parkmate_password_hash_refusals_total",
        "parkmate_notifications_pruned_total",
    ] {
        counter!(name).absolute(0);
    }
    // Push and ack counters per event kind: the known kinds and `other` (`push::event_label`).
    let events = crate::push::KNOWN_EVENTS.iter().chain(&["other"]);
    for event in events {
        counter!("parkmate_acks_total", "event" => *event).absolute(0);
        for outcome in ["pushed", "failed", "retry", "held"] {
            counter!("parkmate_push_notifications_total", "event" => *event, "outcome" => outcome)
                .absolute(0);
        }
    }
    for outcome in ["delivered", "gone", "retry_later", "rejected"] {
        counter!("parkmate_push_requests_total", "outcome" => outcome).absolute(0);
    }
    for reason in HANDSHAKE_REFUSAL_REASONS {
        counter!("parkmate_handshake_refusals_total", "reason" => *reason).absolute(0);
    }
    // Touching the handle registers the histogram; it reports a count of 0 until a commit.
    let _ = histogram!("parkmate_group_commit_size");
}

/// Installs the log subscriber (first call wins); `filter` is an EnvFilter directive. Text is
/// coloured only when stdout is a terminal: a file or a pipe gets plain lines, never ANSI codes.
pub fn init_logs(filter: &str, format: crate::config::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
        crate::config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// `parkmate_leader` follows the lease: 1 while this node holds it, until `stop` (the lease's
/// release).
pub fn spawn_leader_gauge(
    mut leader: tokio::sync::watch::Receiver<bool>,
    stop: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let held = *leader.borrow_and_update();
            metrics::gauge!("parkmate_leader").set(if held { 1.0 } else { 0.0 });
            tokio::select! {
                // No sender (SQLite: this node always leads): the value is final.
                changed = leader.changed() => if changed.is_err() {
                    stop.cancelled().await;
                    break;
                },
                _ = stop.cancelled() => break,
            }
        }
        metrics::gauge!("parkmate_leader").set(0.0);
    });
}

#[cfg(test)]
mod tests {
    /// `docs/operations.md` is the operator's list: every metric this process exports is in it.
    #[test]
    fn the_operations_guide_lists_every_metric() {
        let doc = include_str!("../../../docs/operations.md");
        for name in super::METRICS {
            assert!(
                doc.contains(&format!("`{name}")),
                "docs/operations.md does not list {name}"
            );
        }
    }
}
