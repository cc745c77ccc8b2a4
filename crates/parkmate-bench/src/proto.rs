//! What the coordinator and its workers say to each other: one JSON object per line, one reply per
//! command, in order. The same types travel over a channel when the workers run in-process (tests).

use std::net::{IpAddr, SocketAddr};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The sockets one worker owns and how to open them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectSpec {
    /// Servers; socket `i` of the whole run goes to `targets[i % len]`.
    pub targets: Vec<SocketAddr>,
    /// Local addresses to bind; socket `i` binds `sources[i % len]` (each address has its own
    /// ~28k ephemeral ports).
    pub sources: Vec<IpAddr>,
    /// Global index of this worker's first socket (for the target/source round robin).
    pub first_index: usize,
    /// Sockets of the whole run (all workers), to lay out source ports.
    pub total: usize,
    /// Source ports are chosen by us from `port_base .. port_base + port_span`, not by the kernel:
    /// `bind(addr, 0)` makes Linux search its bind hash for a free port, which grows with every
    /// socket bound (measured: >90% of the generator's CPU at 18k, 400 connects/s). An explicit
    /// port is one hash lookup.
    pub port_base: u16,
    pub port_span: u16,
    /// This worker's users: one socket each, user ids `first_user .. first_user + count`.
    pub first_user: i64,
    pub count: usize,
    /// HS256 secret to mint tokens with (sent over the pipe, never on a command line).
    pub jwt_secret: String,
    /// Handshakes in flight at once in this worker.
    pub concurrency: usize,
    /// The worker's read buffer, bytes: one for all its sockets (`crate::reader`).
    pub read_buffer_bytes: usize,
    /// Give up connecting after this long.
    pub deadline_ms: u64,
    /// Speak the Pusher protocol to a peer server instead of ours (`crate::pusher`).
    #[serde(default)]
    pub pusher: Option<crate::pusher::PusherApp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Open the sockets of `spec`; ready = `hello` received.
    Connect(ConnectSpec),
    /// Close every socket abruptly (TCP reset, no WebSocket close frame), as a network drop would.
    DropAll,
    /// Reopen every socket with `since` = the last id it saw; ready = `replayed` received.
    Reconnect {
        deadline_ms: u64,
    },
    /// Counters and latencies since the last reset.
    Stats,
    ResetStats,
    Quit,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectReport {
    pub ok: usize,
    pub failed: usize,
    /// Time until the last socket was ready.
    pub elapsed_ms: f64,
    /// Handshakes that had to be retried (refused, reset, 503).
    pub retries: usize,
    /// A few distinct error messages, for the operator.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Sockets currently open.
    pub open: usize,
    /// Notifications with an id above the socket's last one.
    pub received: u64,
    /// Notifications at or below the socket's last id (must stay 0: the server promises no duplicate).
    pub duplicates: u64,
    /// Close frames the server sent, as (code, count).
    pub server_closes: Vec<(u16, u64)>,
    /// Sockets that ended without a close frame.
    pub dropped: u64,
    /// publish→receive latency in µs, as (value, count) pairs of an HdrHistogram.
    pub latency_us: Vec<(u64, u64)>,
    /// The worker's own resident memory (kB), when it is a separate process.
    pub rss_kb: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Connected(ConnectReport),
    Stats(WorkerStats),
    Ok,
    Error { message: String },
}

/// Latencies are kept in µs up to a minute with 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

pub fn histogram_pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub fn merge_pairs(h: &mut Histogram<u64>, pairs: &[(u64, u64)]) {
    for &(v, c) in pairs {
        h.saturating_record_n(v, c);
    }
}
