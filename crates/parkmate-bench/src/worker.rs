//! A worker holds up to ~18k sockets (one process may hold 20,000 file descriptors here) and
//! answers the coordinator's [`Command`]s. It runs either as a child process (`parkmate-bench
//! worker`, JSON lines on stdin/stdout) or, in tests, as a task in the caller's runtime.
//!
//! Every socket is one task that only reads: it counts notifications, records publish→receive
//! latency from the `data.t` stamp (µs since the Unix epoch, put there by the publisher on this same
//! machine) and remembers the last id, so a reconnect can ask for `since`.
//!
//! Over 500 lines on purpose: the worker protocol and the socket task that measures are one unit:
//! every command acts on the sockets' shared counters.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use parkmate_auth::TokenKeys;
use parkmate_protocol::Role;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use crate::proto::{
    Command, ConnectReport, ConnectSpec, Reply, WorkerStats, histogram_pairs, new_histogram,
};
use crate::pusher::{self, PusherApp};

/// Lifetime of the tokens the worker mints: longer than any run (the global deadline is shorter).
const TOKEN_TTL_SECS: u64 = 6 * 3600;
/// Handshake attempts per socket before it counts as failed (refusals, resets, 503 when full).
const MAX_ATTEMPTS: u32 = 20;
/// Distinct error messages kept for the report.
const MAX_ERRORS: usize = 5;

/// Microseconds since the Unix epoch: the clock publishers stamp and workers compare against.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Counters shared by all socket tasks of a worker.
struct Counters {
    open: AtomicUsize,
    received: AtomicU64,
    duplicates: AtomicU64,
    dropped: AtomicU64,
    closes: Mutex<BTreeMap<u16, u64>>,
    /// Uncontended in practice: a worker process runs on one thread.
    latency: Mutex<Histogram<u64>>,
}

impl Counters {
    fn new() -> Counters {
        Counters {
            open: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            closes: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(new_histogram()),
        }
    }
}

/// One user's socket slot: survives reconnects.
struct Slot {
    index: usize,
    user_id: i64,
    last_id: Arc<AtomicI64>,
}

/// The part of the server's frames the generator looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    id: Option<i64>,
    data: Option<Stamp>,
}

#[derive(Deserialize)]
struct Stamp {
    t: Option<u64>,
}

pub struct WorkerCore {
    spec: Option<ConnectSpec>,
    keys: Option<TokenKeys>,
    slots: Vec<Slot>,
    counters: Arc<Counters>,
    /// Cancelling it ends every socket task of the current generation.
    kill: CancellationToken,
    tasks: JoinSet<()>,
    /// Whether this worker is its own process (then its RSS is reported).
    own_process: bool,
}

impl WorkerCore {
    pub fn new(own_process: bool) -> WorkerCore {
        WorkerCore {
            spec: None,
            keys: None,
            slots: Vec::new(),
            counters: Arc::new(Counters::new()),
            kill: CancellationToken::new(),
            tasks: JoinSet::new(),
            own_process,
        }
    }

    pub async fn handle(&mut self, cmd: Command) -> Reply {
        match cmd {
            Command::Connect(spec) => {
                if let Err(e) = crate::check_loopback_all(&spec.targets, &spec.sources) {
                    return Reply::Error {
                        message: e.to_string(),
                    };
                }
                self.keys = Some(TokenKeys::new(spec.jwt_secret.as_bytes()));
                self.slots = (0..spec.count)
                    .map(|i| Slot {
                        index: spec.first_index + i,
                        user_id: spec.first_user + i as i64,
                        last_id: Arc::new(AtomicI64::new(0)),
                    })
                    .collect();
                let deadline = Duration::from_millis(spec.deadline_ms);
                self.spec = Some(spec);
                Reply::Connected(self.open_all(false, deadline).await)
            }
            Command::DropAll => {
                self.drop_all().await;
                Reply::Ok
            }
            Command::Reconnect { deadline_ms } => {
                if self.spec.is_none() {
                    return Reply::Error {
                        message: "reconnect before connect".into(),
                    };
                }
                self.drop_all().await;
                Reply::Connected(
                    self.open_all(true, Duration::from_millis(deadline_ms))
                        .await,
                )
            }
            Command::Stats => Reply::Stats(self.stats()),
            Command::ResetStats => {
                let c = &self.counters;
                c.received.store(0, Ordering::Relaxed);
                c.duplicates.store(0, Ordering::Relaxed);
                c.dropped.store(0, Ordering::Relaxed);
                c.closes.lock().unwrap_or_else(|p| p.into_inner()).clear();
                c.latency.lock().unwrap_or_else(|p| p.into_inner()).reset();
                Reply::Ok
            }
            Command::Quit => {
                self.drop_all().await;
                Reply::Ok
            }
        }
    }

    fn stats(&self) -> WorkerStats {
        let c = &self.counters;
        WorkerStats {
            open: c.open.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            server_closes: c
                .closes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect(),
            latency_us: histogram_pairs(&c.latency.lock().unwrap_or_else(|p| p.into_inner())),
            rss_kb: if self.own_process {
                crate::server::rss_kb(std::process::id())
            } else {
                None
            },
        }
    }

    async fn drop_all(&mut self) {
        self.kill.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.kill = CancellationToken::new();
    }

    /// Opens a socket per slot (with `since` = its last id when `resume`), and waits until each is
    /// ready or `deadline` passes.
    async fn open_all(&mut self, resume: bool, deadline: Duration) -> ConnectReport {
        let Some(spec) = self.spec.clone() else {
            return ConnectReport::default();
        };
        let Some(keys) = self.keys.as_ref() else {
            return ConnectReport::default();
        };
        let spec = Arc::new(spec);
        let gate = Arc::new(Semaphore::new(spec.concurrency.max(1)));
        let started = Instant::now();
        let give_up = tokio::time::Instant::now() + deadline;
        let mut waits = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let (ready_tx, ready_rx) = oneshot::channel();
            let since = resume.then(|| slot.last_id.load(Ordering::Relaxed));
            let conn = Conn {
                spec: spec.clone(),
                index: slot.index,
                user_id: slot.user_id,
                // A Pusher socket authenticates per channel (`read_loop_pusher`): no token.
                token: match spec.pusher {
                    Some(_) => String::new(),
                    None => keys.mint(slot.user_id, Role::User, TOKEN_TTL_SECS),
                },
                since,
                last_id: slot.last_id.clone(),
                counters: self.counters.clone(),
                kill: self.kill.clone(),
                gate: gate.clone(),
                give_up,
            };
            self.tasks.spawn(conn.run(ready_tx));
            waits.push(ready_rx);
        }
        let mut report = ConnectReport::default();
        let mut errors = BTreeSet::new();
        for w in waits {
            match tokio::time::timeout_at(give_up, w).await {
                Ok(Ok(Ok(retries))) => {
                    report.ok += 1;
                    report.retries += retries as usize;
                }
                Ok(Ok(Err(e))) => {
                    report.failed += 1;
                    if errors.len() < MAX_ERRORS {
                        errors.insert(e);
                    }
                }
                Ok(Err(_)) => report.failed += 1,
                Err(_) => {
                    report.failed += 1;
                    if errors.len() < MAX_ERRORS {
                        errors.insert("not ready before the deadline".to_owned());
                    }
                }
            }
        }
        report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        report.errors = errors.into_iter().collect();
        report
    }
}

/// Everything one socket task needs.
struct Conn {
    spec: Arc<ConnectSpec>,
    index: usize,
    user_id: i64,
    token: String,
    since: Option<i64>,
    last_id: Arc<AtomicI64>,
    counters: Arc<Counters>,
    kill: CancellationToken,
    gate: Arc<Semaphore>,
    give_up: tokio::time::Instant,
}

/// `Ok(retries)` once ready, or why it never was.
type Ready = oneshot::Sender<Result<u32, String>>;

impl Conn {
    fn target(&self) -> SocketAddr {
        self.spec.targets[self.index % self.spec.targets.len()]
    }

    fn source(&self) -> Option<IpAddr> {
        (!self.spec.sources.is_empty())
            .then(|| self.spec.sources[self.index % self.spec.sources.len()])
    }

    async fn open(&self) -> Result<WebSocketStream<TcpStream>, String> {
        let target = self.target();
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| e.to_string())?;
        if let Some(src) = self.source() {
            // Take the address now, the port at connect(): bind(addr, 0) alone reserves a port
            // out of the whole bind table, a search that grew with every socket and took most
            // of the generator's CPU (BENCHMARKS.md, generator findings). Deferred, the port
            // need only make this (source, destination) pair unique. Best effort: without it
            // the bind still works, only slower.
            if src.is_ipv4() {
                let _ = nix::sys::socket::setsockopt(
                    &socket,
                    nix::sys::socket::sockopt::IpBindAddressNoPort,
                    &true,
                );
            }
            socket
                .bind(SocketAddr::new(src, 0))
                .map_err(|e| format!("bind {src}: {e}"))?;
        }
        let stream = socket
            .connect(target)
            .await
            .map_err(|e| format!("connect {target}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let url = match (&self.spec.pusher, self.since) {
            // A Pusher socket authenticates per channel, after it connects (`read_loop_pusher`).
            (Some(app), _) => format!("ws://{target}{}", app.socket_path()),
            (None, Some(s)) => {
                format!("ws://{target}/ws/notifications/{}/?since={s}", self.user_id)
            }
            (None, None) => format!("ws://{target}/ws/notifications/{}/", self.user_id),
        };
        let mut req = url.into_client_request().map_err(|e| e.to_string())?;
        if self.spec.pusher.is_none() {
            let auth = HeaderValue::from_str(&format!("Bearer {}", self.token))
                .map_err(|e| e.to_string())?;
            req.headers_mut().insert("authorization", auth);
        }
        // The generator only reads small frames: a 4 KiB buffer instead of 128 KiB keeps 18k
        // sockets per worker lean.
        let config = WebSocketConfig::default()
            .read_buffer_size(self.spec.read_buffer_bytes)
            .write_buffer_size(0)
            .max_message_size(Some(1 << 20))
            .max_frame_size(Some(1 << 20));
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, Some(config))
            .await
            .map_err(|e| match e {
                WsError::Http(r) => format!("handshake refused: HTTP {}", r.status()),
                e => format!("handshake: {e}"),
            })?;
        Ok(ws)
    }

    async fn run(self, ready: Ready) {
        let mut ready = Some(ready);
        let mut attempt = 0u32;
        let ws = loop {
            attempt += 1;
            let opened = {
                let Ok(_permit) = self.gate.acquire().await else {
                    return;
                };
                tokio::select! {
                    _ = self.kill.cancelled() => return,
                    r = tokio::time::timeout_at(self.give_up, self.open()) => r.unwrap_or_else(|_| Err("handshake timed out".into())),
                }
            };
            match opened {
                Ok(ws) => break ws,
                Err(e)
                    if attempt >= MAX_ATTEMPTS || tokio::time::Instant::now() >= self.give_up =>
                {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e));
                    }
                    return;
                }
                Err(_) => {
                    // Back off with jitter, as a real client would, so a refused crowd spreads out.
                    let ms = 20 * u64::from(attempt.min(10)) + rand::random_range(0..50u64);
                    tokio::select! {
                        _ = self.kill.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    }
                }
            }
        };
        let retries = attempt - 1;
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        match &self.spec.pusher {
            Some(app) => self.read_loop_pusher(ws, app, &mut ready, retries).await,
            None => self.read_loop(ws, &mut ready, retries).await,
        }
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(r) = ready.take() {
            let _ = r.send(Err("closed before it was ready".into()));
        }
    }

    async fn read_loop(
        &self,
        mut ws: WebSocketStream<TcpStream>,
        ready: &mut Option<Ready>,
        retries: u32,
    ) {
        let c = &self.counters;
        // Made once: a fresh `cancelled()` per frame registered and dropped a waiter under the
        // token's lock every time, which showed in the generator's broadcast profile.
        let killed = self.kill.cancelled();
        tokio::pin!(killed);
        loop {
            let Some(msg) = next_unless_killed(&mut ws, killed.as_mut()).await else {
                return;
            };
            match msg {
                Some(Ok(Message::Text(text))) => {
                    let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
                        continue;
                    };
                    match frame.kind {
                        "notification" => {
                            self.count(frame.id.unwrap_or(0), frame.data.and_then(|d| d.t), false)
                        }
                        "hello" if self.since.is_none() => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(Ok(retries));
                            }
                        }
                        "replayed" => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(Ok(retries));
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(frame))) => return self.closed_by_server(frame),
                // Pings are answered by tungstenite on the next read.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// Counts a notification numbered `id` (a server id, or a Pusher publisher's sequence number)
    /// stamped with its send time `t`.
    fn count(&self, id: i64, t: Option<u64>, exact_duplicates_only: bool) {
        let c = &self.counters;
        let last = self.last_id.load(Ordering::Relaxed);
        let duplicate = if exact_duplicates_only {
            id == last
        } else {
            id <= last
        };
        if duplicate {
            c.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.last_id.store(id.max(last), Ordering::Relaxed);
        c.received.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = t {
            let lat = now_us().saturating_sub(t).max(1);
            c.latency
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .saturating_record(lat);
        }
    }

    fn closed_by_server(
        &self,
        frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
    ) {
        let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
        *self
            .counters
            .closes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code)
            .or_default() += 1;
    }

    /// The Pusher side of a socket: subscribe to the user's private channel and to
    /// `broadcast` once the connection is established; ready when both succeeded. Events carry
    /// no server id, so duplicates are the same publisher sequence number twice in a row (two
    /// unicasts to one user may cross on their way, which is not a duplicate).
    async fn read_loop_pusher(
        &self,
        mut ws: WebSocketStream<TcpStream>,
        app: &PusherApp,
        ready: &mut Option<Ready>,
        retries: u32,
    ) {
        let killed = self.kill.cancelled();
        tokio::pin!(killed);
        let mut subscribed = 0;
        loop {
            let Some(msg) = next_unless_killed(&mut ws, killed.as_mut()).await else {
                return;
            };
            let text = match msg {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => return self.closed_by_server(frame),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let Ok(frame) = serde_json::from_str::<pusher::Frame>(text.as_str()) else {
                continue;
            };
            let reply = match frame.event {
                pusher::EVENT => {
                    let doc = pusher::data_document(frame.data).unwrap_or_default();
                    let id = doc["id"].as_i64().unwrap_or(0);
                    self.count(id, doc["t"].as_u64(), true);
                    continue;
                }
                "pusher:connection_established" => {
                    let doc = pusher::data_document(frame.data).unwrap_or_default();
                    let socket_id = doc["socket_id"].as_str().unwrap_or_default();
                    let private = PusherApp::user_channel(self.user_id);
                    let auth = app.channel_auth(socket_id, &private);
                    let public = json!({"event": "pusher:subscribe",
                        "data": {"channel": pusher::BROADCAST_CHANNEL}});
                    if ws.send(Message::text(public.to_string())).await.is_err() {
                        continue;
                    }
                    json!({"event": "pusher:subscribe",
                        "data": {"channel": private, "auth": auth}})
                }
                "pusher_internal:subscription_succeeded" => {
                    subscribed += 1;
                    if subscribed == 2
                        && let Some(r) = ready.take()
                    {
                        let _ = r.send(Ok(retries));
                    }
                    continue;
                }
                "pusher:ping" => json!({"event": "pusher:pong", "data": {}}),
                "pusher:error" => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(format!("pusher:error {text}")));
                    }
                    continue;
                }
                _ => continue,
            };
            // A failed write shows as the read error that follows it.
            let _ = ws.send(Message::text(reply.to_string())).await;
        }
    }
}

/// The socket's next message, or `None` once the worker kills its sockets. A killed socket is
/// closed abortively (RST): a drop leaves no TIME_WAIT entry behind for the reconnect storm's
/// connect() calls to step over in their search for a source port (BENCHMARKS.md, third round),
/// a generator cost that real clients on their own machines never pay. The server sees a reset
/// instead of a FIN: the same dropped socket to it.
async fn next_unless_killed(
    ws: &mut WebSocketStream<TcpStream>,
    killed: std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
) -> Option<Option<Result<Message, WsError>>> {
    tokio::select! {
        biased;
        _ = killed => {
            let _ = socket2::SockRef::from(ws.get_ref()).set_linger(Some(Duration::ZERO));
            None
        }
        m = ws.next() => Some(m),
    }
}

/// The `worker` subcommand: JSON lines in, JSON lines out, until `quit` or end of input.
pub fn run_stdio() -> anyhow::Result<()> {
    // One thread per worker: the machine has 2 cores, shared with the server under test.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut core = WorkerCore::new(true);
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut out = tokio::io::stdout();
        while let Some(line) = lines.next_line().await? {
            let reply = match serde_json::from_str::<Command>(&line) {
                Ok(Command::Quit) => {
                    core.handle(Command::Quit).await;
                    write_reply(&mut out, &Reply::Ok).await?;
                    break;
                }
                Ok(cmd) => core.handle(cmd).await,
                Err(e) => Reply::Error {
                    message: format!("bad command: {e}"),
                },
            };
            write_reply(&mut out, &reply).await?;
        }
        core.drop_all().await;
        Ok(())
    })
}

async fn write_reply(out: &mut tokio::io::Stdout, reply: &Reply) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(reply)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await?;
    Ok(())
}
