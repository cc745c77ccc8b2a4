//! Logs (tracing) and metrics (Prometheus). Both are process-global, so both are installed once
//! however many applications a test process builds.

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
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("parkmate_connections", "WebSockets open on this node");
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
    describe_histogram!(
        "parkmate_group_commit_size",
        "Notifications per group-commit transaction"
    );
}

/// Installs the log subscriber (first call wins); `filter` is an EnvFilter directive.
pub fn init_logs(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
