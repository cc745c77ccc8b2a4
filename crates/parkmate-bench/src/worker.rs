//! A worker holds up to ~18k sockets (one process may hold 20,000 file descriptors here) and
//! answers the coordinator's [`Command`]s. It runs either as a child process (`parkmate-bench
//! worker`, JSON lines on stdin/stdout) or, in tests, as a task in the caller's runtime.
//!
//! Every socket is a task only until its TCP connection is up (the handshake gate, retries,
//! deadlines); then the worker's reader thread (`crate::reader`) upgrades and reads it: it counts
//! notifications, records publish→receive latency from the `data.t` stamp (µs since the Unix
//! epoch, put there by the publisher on this same machine) and remembers the last id, so a
//! reconnect can ask for `since`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parkmate_auth::TokenKeys;
use parkmate_protocol::Role;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

use crate::proto::{Command, ConnectReport, ConnectSpec, Reply, WorkerStats, histogram_pairs};
use crate::pusher::PusherApp;
use crate::reader::{Counters, Opening, Order, Reader, ReaderTx};

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

/// One user's socket slot: survives reconnects.
struct Slot {
    index: usize,
    user_id: i64,
    last_id: Arc<AtomicI64>,
}

pub struct WorkerCore {
    spec: Option<ConnectSpec>,
    keys: Option<TokenKeys>,
    slots: Vec<Slot>,
    counters: Arc<Counters>,
    /// Cancelling it ends every socket task of the current generation (those still connecting).
    kill: CancellationToken,
    tasks: JoinSet<()>,
    /// Owns the sockets once connected; `None` if its thread could not start.
    reader: Option<Reader>,
    /// Bumped by every drop: an opening of an older one is closed by the reader.
    generation: u64,
    /// Whether this worker is its own process (then its RSS is reported).
    own_process: bool,
}

impl WorkerCore {
    pub fn new(own_process: bool) -> WorkerCore {
        let counters = Arc::new(Counters::new());
        let reader = match Reader::start(counters.clone()) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("bench worker: cannot start its reader thread: {e}");
                None
            }
        };
        WorkerCore {
            spec: None,
            keys: None,
            slots: Vec::new(),
            counters,
            kill: CancellationToken::new(),
            tasks: JoinSet::new(),
            reader,
            generation: 0,
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

    /// Ends the connecting tasks, then has the reader close every socket it holds.
    async fn drop_all(&mut self) {
        self.kill.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.kill = CancellationToken::new();
        self.generation += 1;
        if let Some(reader) = &self.reader {
            let (done, closed) = oneshot::channel();
            if reader.tx().send(Order::DropAll {
                generation: self.generation,
                done,
            }) {
                let _ = closed.await;
            }
        }
    }

    /// Opens a socket per slot (with `since` = its last id when `resume`), and waits until each is
    /// ready or `deadline` passes.
    async fn open_all(&mut self, resume: bool, deadline: Duration) -> ConnectReport {
        let Some(spec) = self.spec.clone() else {
            return ConnectReport::default();
        };
        let (Some(keys), Some(reader)) = (self.keys.as_ref(), self.reader.as_ref()) else {
            return ConnectReport {
                failed: self.slots.len(),
                errors: vec!["the worker's reader thread is not running".into()],
                ..ConnectReport::default()
            };
        };
        let pusher = spec.pusher.clone().map(Arc::new);
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
                pusher: pusher.clone(),
                index: slot.index,
                user_id: slot.user_id,
                // A Pusher socket authenticates per channel (`crate::reader`): no token.
                token: match spec.pusher {
                    Some(_) => String::new(),
                    None => keys.mint(slot.user_id, Role::User, TOKEN_TTL_SECS),
                },
                since,
                last_id: slot.last_id.clone(),
                kill: self.kill.clone(),
                gate: gate.clone(),
                give_up,
                reader: reader.tx(),
                generation: self.generation,
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
        // The tasks have all handed their sockets over (or given up) by now.
        while self.tasks.try_join_next().is_some() {}
        report.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        report.errors = errors.into_iter().collect();
        report
    }
}

/// Everything one socket's connecting task needs.
struct Conn {
    spec: Arc<ConnectSpec>,
    pusher: Option<Arc<PusherApp>>,
    index: usize,
    user_id: i64,
    token: String,
    since: Option<i64>,
    last_id: Arc<AtomicI64>,
    kill: CancellationToken,
    gate: Arc<Semaphore>,
    give_up: tokio::time::Instant,
    reader: ReaderTx,
    generation: u64,
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

    /// The TCP connection, as a plain non-blocking stream for the reader.
    async fn connect(&self) -> Result<std::net::TcpStream, String> {
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
        // Out of tokio's reactor; it stays non-blocking, as the reader's epoll loop needs.
        stream.into_std().map_err(|e| e.to_string())
    }

    /// The upgrade request: our path (with `since` on a resume) and bearer token, or the Pusher
    /// app's path (a Pusher socket authenticates per channel, after it connects); and the
    /// `Sec-WebSocket-Accept` its answer must carry.
    fn request(&self) -> (Vec<u8>, String) {
        let path = match (&self.spec.pusher, self.since) {
            (Some(app), _) => app.socket_path(),
            (None, Some(s)) => format!("/ws/notifications/{}/?since={s}", self.user_id),
            (None, None) => format!("/ws/notifications/{}/", self.user_id),
        };
        let bearer = format!("Bearer {}", self.token);
        let extra: &[(&str, &str)] = match self.spec.pusher {
            Some(_) => &[],
            None => &[("Authorization", &bearer)],
        };
        let key = generate_key();
        let request = crate::wire::upgrade_request(&self.target().to_string(), &path, &key, extra);
        (request, derive_accept_key(key.as_bytes()))
    }

    /// Connects, and has the reader upgrade the connection: `Ok` with a receiver that tells
    /// when the socket is ready.
    async fn open(&self) -> Result<oneshot::Receiver<Result<(), String>>, String> {
        let stream = self.connect().await?;
        let (request, accept) = self.request();
        let (upgraded_tx, upgraded) = oneshot::channel();
        let (ready_tx, ready) = oneshot::channel();
        let opening = Opening {
            stream,
            request,
            accept,
            read_buffer: self.spec.read_buffer_bytes,
            generation: self.generation,
            user_id: self.user_id,
            resume: self.since.is_some(),
            last_id: self.last_id.clone(),
            pusher: self.pusher.clone(),
            upgraded: upgraded_tx,
            ready: ready_tx,
        };
        if !self.reader.send(Order::Open(Box::new(opening))) {
            return Err("the worker's reader thread is gone".into());
        }
        match upgraded.await {
            Ok(Ok(())) => Ok(ready),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the reader dropped the socket during the handshake".into()),
        }
    }

    async fn run(self, ready: Ready) {
        let mut attempt = 0u32;
        let became_ready = loop {
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
                Ok(became_ready) => break became_ready,
                Err(e)
                    if attempt >= MAX_ATTEMPTS || tokio::time::Instant::now() >= self.give_up =>
                {
                    let _ = ready.send(Err(e));
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
        // The reader owns the socket now; this task only relays when it is ready.
        let outcome = tokio::select! {
            _ = self.kill.cancelled() => return,
            r = became_ready => r.unwrap_or_else(|_| Err("closed before it was ready".into())),
        };
        let _ = ready.send(outcome.map(|()| retries));
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
