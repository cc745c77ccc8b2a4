//! The scenarios. A [`Bench`] owns a fleet of workers holding `sockets` authenticated sockets
//! (user ids `first_user ..`, one socket each, spread round-robin over the targets and source
//! addresses) and a publisher; each scenario returns named numbers ([`RunResult`]) that the CLI
//! tabulates, takes medians of, and prints as JSON.
//!
//! Over 500 lines on purpose: one function per benchmark scenario over the shared Bench, each read
//! top to bottom as the experiment it runs.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::fleet::{Fleet, MAX_SOCKETS_PER_WORKER};
use crate::proto::{Command, ConnectReport, ConnectSpec, Reply, merge_pairs, new_histogram};
use crate::publish::{Publisher, To};
use crate::pusher::PusherApp;
use crate::server;

/// Everything a run needs to know. Built by the CLI, or directly by tests.
#[derive(Debug, Clone)]
pub struct Setup {
    pub targets: Vec<SocketAddr>,
    /// Local addresses to bind (empty: let the kernel choose).
    pub sources: Vec<IpAddr>,
    pub jwt_secret: String,
    pub api_key: String,
    /// Server processes whose RSS is read (idle scenario).
    pub server_pids: Vec<u32>,
    pub sockets: usize,
    pub first_user: i64,
    /// Handshakes in flight, over all the workers.
    pub connect_concurrency: usize,
    /// Each worker's read buffer, bytes: one for all its sockets.
    pub read_buffer_bytes: usize,
    /// HTTP publishers (connections) working at once.
    pub publishers: usize,
    /// After publishing, how long to wait for deliveries before counting the rest as lost.
    pub drain: Duration,
    /// The global deadline: nothing waits past it.
    pub until: tokio::time::Instant,
    /// Drive a Pusher-protocol peer (Sockudo) instead of Parkmate: sockets subscribe to
    /// `private-user-{id}` and `broadcast`, publishes go through its HTTP events API.
    pub pusher: Option<PusherApp>,
}

impl Setup {
    /// `n` loopback source addresses, 127.0.0.2 onwards (127.0.0.1 is where servers listen).
    pub fn default_sources(sockets: usize, per_address: usize) -> Vec<IpAddr> {
        let n = sockets.div_ceil(per_address.max(1)).max(1);
        (0..n.min(250))
            .map(|i| IpAddr::from([127, 0, 0, (2 + i) as u8]))
            .collect()
    }

    fn remaining(&self) -> Duration {
        self.until
            .saturating_duration_since(tokio::time::Instant::now())
    }
}

/// One run's numbers, in display order, plus remarks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    pub metrics: Vec<(String, f64)>,
    pub notes: Vec<String>,
}

impl RunResult {
    pub(crate) fn put(&mut self, name: &str, value: f64) {
        self.metrics.push((name.to_owned(), value));
    }

    fn set(&mut self, name: &str, value: f64) {
        match self.metrics.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value,
            None => self.put(name, value),
        }
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    fn latency(&mut self, prefix: &str, h: &Histogram<u64>) {
        let ms = |us: u64| us as f64 / 1e3;
        if h.is_empty() {
            return;
        }
        self.put(&format!("{prefix}p50_ms"), ms(h.value_at_quantile(0.50)));
        self.put(&format!("{prefix}p90_ms"), ms(h.value_at_quantile(0.90)));
        self.put(&format!("{prefix}p99_ms"), ms(h.value_at_quantile(0.99)));
        self.put(&format!("{prefix}max_ms"), ms(h.max()));
    }
}

/// All workers' counters together.
#[derive(Debug)]
pub struct Totals {
    pub open: usize,
    pub received: u64,
    pub duplicates: u64,
    pub dropped: u64,
    pub server_closes: Vec<(u16, u64)>,
    pub latency_us: Histogram<u64>,
    /// Summed RSS of the worker processes, kB (0 for in-process workers).
    pub workers_rss_kb: u64,
}

pub struct Bench {
    pub setup: Setup,
    pub fleet: Fleet,
    pub publisher: Publisher,
    pub http: reqwest::Client,
    /// The connect phase, merged over workers.
    pub connected: ConnectReport,
    /// Server RSS (kB, summed over `server_pids`) before any socket was opened.
    pub rss_before_kb: u64,
}

fn merge_connect(replies: Vec<Reply>) -> ConnectReport {
    let mut all = ConnectReport::default();
    for r in replies {
        if let Reply::Connected(c) = r {
            all.ok += c.ok;
            all.failed += c.failed;
            all.retries += c.retries;
            all.elapsed_ms = all.elapsed_ms.max(c.elapsed_ms);
            for e in c.errors {
                if all.errors.len() < 5 && !all.errors.contains(&e) {
                    all.errors.push(e);
                }
            }
        }
    }
    all
}

/// Worker `w`'s part of `total` split as evenly as it goes over `workers` (the first ones take
/// one more when it does not divide).
fn share_of(total: usize, workers: usize, w: usize) -> usize {
    total / workers + usize::from(w < total % workers)
}

fn servers_rss_kb(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| server::rss_kb(*p)).sum()
}

/// The servers' CPU time so far, in ns (`None` when a pid cannot be read: a remote server).
fn cpu_ns_of(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| server::cpu_ns(*p)).sum()
}

/// CPU readings of both sides of a run, taken before it: the servers' and the generator's own
/// worker processes (workers that are tasks of this process have no pid of their own and are
/// not counted).
struct CpuBefore {
    servers: Option<u64>,
    generator: Option<u64>,
}

/// `server_cpu_us_per_<unit>` and `generator_cpu_us_per_<unit>`: each side's CPU between two
/// readings over `count` units (deliveries, sockets back). Both sides share the cores, so a run's
/// wall time is bounded by their sum; the server's share shows apart from the generator's.
fn put_cpu(
    r: &mut RunResult,
    before: &CpuBefore,
    (pids, workers): (&[u32], &[u32]),
    unit: &str,
    count: u64,
) {
    if count == 0 {
        return;
    }
    for (label, before, pids) in [
        ("server", before.servers, pids),
        ("generator", before.generator, workers),
    ] {
        if let (Some(before), Some(after)) = (before, cpu_ns_of(pids)) {
            let us = after.saturating_sub(before) as f64 / 1e3;
            r.put(&format!("{label}_cpu_ms"), us / 1e3);
            r.put(&format!("{label}_cpu_us_per_{unit}"), us / count as f64);
        }
    }
}

impl Bench {
    fn worker_pids(&self) -> Vec<u32> {
        self.fleet.workers.iter().filter_map(|w| w.pid()).collect()
    }

    fn cpu_before(&self) -> CpuBefore {
        CpuBefore {
            servers: cpu_ns_of(&self.setup.server_pids),
            generator: cpu_ns_of(&self.worker_pids()),
        }
    }

    fn note_cpu(&self, r: &mut RunResult, before: &CpuBefore, unit: &str, count: u64) {
        let workers = self.worker_pids();
        put_cpu(r, before, (&self.setup.server_pids, &workers), unit, count);
    }

    /// Opens `setup.sockets` sockets across `fleet` and waits until the servers count them all.
    pub async fn start(setup: Setup, mut fleet: Fleet) -> anyhow::Result<Bench> {
        crate::check_loopback_all(&setup.targets, &setup.sources)?;
        let workers = fleet.workers.len();
        if setup.sockets > workers * MAX_SOCKETS_PER_WORKER {
            bail!(
                "{} sockets need at least {} workers",
                setup.sockets,
                setup.sockets.div_ceil(MAX_SOCKETS_PER_WORKER)
            );
        }
        let http = reqwest::Client::new();
        let publisher = match &setup.pusher {
            Some(app) => Publisher::for_pusher(setup.targets.clone(), app.clone()),
            None => Publisher::new(setup.targets.clone(), &setup.api_key),
        };
        let rss_before_kb = servers_rss_kb(&setup.server_pids);
        let mut connected = ConnectReport::default();
        if setup.sockets > 0 {
            let share = |w: usize| share_of(setup.sockets, workers, w);
            let first = |w: usize| (0..w).map(share).sum::<usize>();
            let deadline_ms = setup.remaining().as_millis() as u64;
            let replies = fleet
                .call_each(|w| {
                    Command::Connect(ConnectSpec {
                        targets: setup.targets.clone(),
                        sources: setup.sources.clone(),
                        first_index: first(w),
                        total: setup.sockets,
                        port_base: 10_000,
                        port_span: 55_000,
                        first_user: setup.first_user + first(w) as i64,
                        count: share(w),
                        jwt_secret: setup.jwt_secret.clone(),
                        // The crowd's handshakes in flight, split over the workers.
                        concurrency: share_of(setup.connect_concurrency, workers, w).max(1),
                        read_buffer_bytes: setup.read_buffer_bytes,
                        deadline_ms,
                        pusher: setup.pusher.clone(),
                    })
                })
                .await?;
            connected = merge_connect(replies);
            // The server registers a socket in its hub before it says hello, so this is quick.
            // A Pusher peer has no /healthz: its `subscription_succeeded` already said so.
            if setup.pusher.is_none() {
                let within = setup.remaining().min(Duration::from_secs(10));
                server::wait_for_connections(&http, &setup.targets, connected.ok, within).await?;
            }
        }
        Ok(Bench {
            setup,
            fleet,
            publisher,
            http,
            connected,
            rss_before_kb,
        })
    }

    pub async fn totals(&mut self) -> anyhow::Result<Totals> {
        let replies = self.fleet.call_all(&Command::Stats).await?;
        let mut t = Totals {
            open: 0,
            received: 0,
            duplicates: 0,
            dropped: 0,
            server_closes: Vec::new(),
            latency_us: new_histogram(),
            workers_rss_kb: 0,
        };
        for r in replies {
            let Reply::Stats(s) = r else { continue };
            t.open += s.open;
            t.received += s.received;
            t.duplicates += s.duplicates;
            t.dropped += s.dropped;
            t.workers_rss_kb += s.rss_kb.unwrap_or(0);
            merge_pairs(&mut t.latency_us, &s.latency_us);
            for (code, n) in s.server_closes {
                match t.server_closes.iter_mut().find(|(c, _)| *c == code) {
                    Some(e) => e.1 += n,
                    None => t.server_closes.push((code, n)),
                }
            }
        }
        Ok(t)
    }

    async fn reset(&mut self) -> anyhow::Result<()> {
        self.fleet.call_all(&Command::ResetStats).await.map(|_| ())
    }

    /// Polls the workers until `want` notifications arrived, or the drain time (or the deadline)
    /// passes.
    async fn wait_received(&mut self, want: u64) -> anyhow::Result<Totals> {
        let until = (tokio::time::Instant::now() + self.setup.drain).min(self.setup.until);
        loop {
            let t = self.totals().await?;
            if t.received >= want || tokio::time::Instant::now() >= until {
                return Ok(t);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Every target's count of messages taken off the Redis bus
    /// (`parkmate_bus_messages_received_total`), read once it stops moving: after every socket
    /// has its copy, a node that holds none of the recipients may still be reading its own.
    /// `None` when a node does not report the counter (no Redis, or a build without it).
    pub async fn bus_received(&self) -> anyhow::Result<Option<Vec<f64>>> {
        let mut last = self.bus_received_now().await?;
        let until = (tokio::time::Instant::now() + Duration::from_secs(3)).min(self.setup.until);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.bus_received_now().await?;
            if now == last || tokio::time::Instant::now() >= until {
                return Ok(now);
            }
            last = now;
        }
    }

    async fn bus_received_now(&self) -> anyhow::Result<Option<Vec<f64>>> {
        let mut all = Vec::with_capacity(self.setup.targets.len());
        for t in &self.setup.targets {
            match server::metric(&self.http, *t, "parkmate_bus_messages_received_total").await? {
                Some(v) => all.push(v),
                None => return Ok(None),
            }
        }
        Ok(Some(all))
    }

    fn note_totals(r: &mut RunResult, t: &Totals) {
        if !t.server_closes.is_empty() {
            r.notes.push(format!(
                "server close codes (code, sockets): {:?}",
                t.server_closes
            ));
        }
        if t.dropped > 0 {
            r.notes
                .push(format!("{} sockets ended without a close frame", t.dropped));
        }
    }

    fn note_connect(&self, r: &mut RunResult) {
        if self.connected.failed > 0 {
            r.notes.push(format!(
                "{} sockets failed to connect: {:?}",
                self.connected.failed, self.connected.errors
            ));
        }
    }

    /// `idle`: the servers' RSS growth per open, authenticated, idle socket.
    pub async fn idle(&mut self, settle: Duration) -> anyhow::Result<RunResult> {
        tokio::time::sleep(settle.min(self.setup.remaining())).await;
        let after = servers_rss_kb(&self.setup.server_pids);
        let t = self.totals().await?;
        let n = self.connected.ok.max(1) as f64;
        let mut r = RunResult::default();
        r.put("sockets", self.connected.ok as f64);
        r.put("failed", self.connected.failed as f64);
        r.put("connect_s", self.connected.elapsed_ms / 1e3);
        r.put(
            "connects_per_s",
            self.connected.ok as f64 / (self.connected.elapsed_ms / 1e3).max(1e-9),
        );
        r.put("server_rss_before_kib", self.rss_before_kb as f64);
        r.put("server_rss_after_kib", after as f64);
        r.put(
            "server_bytes_per_socket",
            (after as f64 - self.rss_before_kb as f64) * 1024.0 / n,
        );
        r.put(
            "server_kib_per_socket",
            (after as f64 - self.rss_before_kb as f64) / n,
        );
        if t.workers_rss_kb > 0 {
            r.put("client_kib_per_socket", t.workers_rss_kb as f64 / n);
        }
        if self.setup.server_pids.is_empty() {
            r.notes
                .push("no server pid: pass --server-pid or --spawn-server to measure RSS".into());
        }
        self.note_connect(&mut r);
        Self::note_totals(&mut r, &t);
        Ok(r)
    }

    /// `broadcast --repeat n`: `n` broadcasts one after the other on the same sockets; each
    /// number is the median over them.
    pub async fn broadcasts(&mut self, n: usize) -> anyhow::Result<RunResult> {
        if n == 0 || n > 1000 {
            bail!("--repeat must be 1..=1000");
        }
        let mut each = Vec::with_capacity(n);
        for _ in 0..n {
            each.push(self.broadcast().await?);
        }
        if n == 1 {
            return Ok(each.remove(0));
        }
        let mut r = medians(&each);
        // A loss in any one broadcast must show, not be outvoted by the others.
        for total in ["lost", "duplicates"] {
            let sum = each.iter().filter_map(|b| b.get(total)).sum();
            r.set(total, sum);
        }
        r.notes = vec![format!(
            "medians of {n} broadcasts on the same sockets; lost and duplicates are totals"
        )];
        Ok(r)
    }

    /// `broadcast`: one `broadcast: true` publish; time until the last socket has it.
    pub async fn broadcast(&mut self) -> anyhow::Result<RunResult> {
        self.reset().await?;
        let cpu_before = self.cpu_before();
        let sent = Instant::now();
        let ids = self
            .publisher
            .publish(0, To::Everyone)
            .await
            .map_err(anyhow::Error::msg)?;
        let http_ms = sent.elapsed().as_secs_f64() * 1e3;
        let want = self.connected.ok as u64;
        let t = self.wait_received(want).await?;
        let h = &t.latency_us;
        let mut r = RunResult::default();
        r.put("sockets", want as f64);
        r.put("delivered", t.received as f64);
        r.put("lost", want.saturating_sub(t.received) as f64);
        r.put("duplicates", t.duplicates as f64);
        r.put("publish_http_ms", http_ms);
        if !h.is_empty() {
            r.put("first_ms", h.min() as f64 / 1e3);
            r.put("p50_ms", h.value_at_quantile(0.5) as f64 / 1e3);
            r.put("p99_ms", h.value_at_quantile(0.99) as f64 / 1e3);
            r.put("last_ms", h.max() as f64 / 1e3);
            r.put(
                "deliveries_per_s",
                t.received as f64 / (h.max() as f64 / 1e6).max(1e-9),
            );
        }
        self.note_cpu(&mut r, &cpu_before, "delivery", t.received);
        r.notes.push(format!("notification id {ids:?}"));
        Self::note_totals(&mut r, &t);
        Ok(r)
    }

    fn random_user(&self) -> impl Fn(usize) -> To + Send + Sync + 'static {
        let (first, n) = (self.setup.first_user, self.setup.sockets.max(1) as i64);
        move |_| To::User(first + rand::random_range(0..n))
    }

    /// `unicast`: `count` notifications at `rate`/s to random connected users.
    pub async fn unicast(&mut self, count: usize, rate: f64) -> anyhow::Result<RunResult> {
        if self.connected.ok == 0 {
            bail!("unicast needs sockets");
        }
        self.reset().await?;
        let cpu_before = self.cpu_before();
        let p = self
            .publisher
            .paced(
                count,
                rate,
                self.setup.publishers,
                self.setup.until,
                self.random_user(),
            )
            .await;
        let t = self.wait_received(p.ok).await?;
        let mut r = RunResult::default();
        r.put("sockets", self.connected.ok as f64);
        r.put("published", p.ok as f64);
        r.put("publish_failed", p.failed as f64);
        r.put("rate_target", rate);
        r.put("rate_achieved", p.rate());
        r.put("received", t.received as f64);
        r.put("lost", p.ok.saturating_sub(t.received) as f64);
        r.put("duplicates", t.duplicates as f64);
        self.note_cpu(&mut r, &cpu_before, "delivery", t.received);
        r.latency("", &t.latency_us);
        if let Some(h) = &p.http_us {
            r.latency("http_", h);
        }
        if let Some(e) = p.first_error {
            r.notes.push(format!("first publish error: {e}"));
        }
        Self::note_totals(&mut r, &t);
        Ok(r)
    }

    /// `reconnect`: every socket drops at once; `missed` notifications are published while they
    /// are away; all come back with `since` = their last id. Caught up = `replayed` received.
    pub async fn reconnect(&mut self, missed: usize) -> anyhow::Result<RunResult> {
        if self.connected.ok == 0 {
            bail!("reconnect needs sockets");
        }
        // Give every socket a last id first, so `since` is a real resume point.
        self.reset().await?;
        self.publisher
            .publish(0, To::Everyone)
            .await
            .map_err(anyhow::Error::msg)?;
        let primed = self.wait_received(self.connected.ok as u64).await?;
        if primed.received < self.connected.ok as u64 {
            bail!(
                "only {} of {} sockets got the priming broadcast",
                primed.received,
                self.connected.ok
            );
        }
        self.reset().await?;

        self.fleet.call_all(&Command::DropAll).await?;
        // Until the servers have noticed, a publish could still reach an old socket's queue.
        let within = self.setup.remaining().min(Duration::from_secs(15));
        let left = if self.setup.pusher.is_none() {
            server::wait_for_connections(&self.http, &self.setup.targets, 0, within).await?
        } else {
            // No count to poll: the resets reach a loopback peer in well under this.
            tokio::time::sleep(Duration::from_millis(500)).await;
            0
        };
        let p = self
            .publisher
            .paced(
                missed,
                0.0,
                self.setup.publishers,
                self.setup.until,
                self.random_user(),
            )
            .await;

        let deadline_ms = self.setup.remaining().as_millis() as u64;
        let cpu_before = self.cpu_before();
        let back = merge_connect(
            self.fleet
                .call_all(&Command::Reconnect { deadline_ms })
                .await?,
        );
        let t = self.wait_received(p.ok).await?;
        let mut r = RunResult::default();
        r.put("sockets", self.connected.ok as f64);
        r.put("back", back.ok as f64);
        r.put("failed", back.failed as f64);
        r.put("handshake_retries", back.retries as f64);
        r.put("caught_up_s", back.elapsed_ms / 1e3);
        r.put("missed_published", p.ok as f64);
        r.put("received", t.received as f64);
        r.put("lost", p.ok.saturating_sub(t.received) as f64);
        r.put("duplicates", t.duplicates as f64);
        // Per socket back: its handshake, token check, resume read, greeting and replay.
        self.note_cpu(&mut r, &cpu_before, "socket", back.ok as u64);
        if left > 0 {
            r.notes.push(format!(
                "{left} server-side sockets were still registered when publishing began"
            ));
        }
        if back.failed > 0 {
            r.notes.push(format!("reconnect errors: {:?}", back.errors));
        }
        self.connected.ok = back.ok;
        Self::note_totals(&mut r, &t);
        Ok(r)
    }

    /// `throughput`: `publishers` closed-loop HTTP publishers, as fast as the server stores.
    pub async fn throughput(
        &mut self,
        count: usize,
        duration: Duration,
    ) -> anyhow::Result<RunResult> {
        let until = (tokio::time::Instant::now() + duration).min(self.setup.until);
        let (first, n) = (self.setup.first_user, self.setup.sockets.max(1000) as i64);
        let p = self
            .publisher
            .paced(count, 0.0, self.setup.publishers, until, move |_| {
                To::User(first + rand::random_range(0..n))
            })
            .await;
        let mut r = RunResult::default();
        r.put("publishers", self.setup.publishers as f64);
        r.put("published", p.ok as f64);
        r.put("publish_failed", p.failed as f64);
        r.put("elapsed_s", p.elapsed.as_secs_f64());
        r.put("per_s", p.rate());
        if let Some(h) = &p.http_us {
            r.latency("http_", h);
        }
        if let Some(e) = p.first_error {
            r.notes.push(format!("first publish error: {e}"));
        }
        Ok(r)
    }

    pub async fn finish(self) {
        self.fleet.quit().await;
    }
}

/// Median of each metric over runs (metrics in the first run's order).
pub fn medians(runs: &[RunResult]) -> RunResult {
    let mut out = RunResult::default();
    let Some(first) = runs.first() else {
        return out;
    };
    for (name, _) in &first.metrics {
        let mut v: Vec<f64> = runs.iter().filter_map(|r| r.get(name)).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            continue;
        }
        let m = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        out.put(name, m);
    }
    out
}

/// A human table: one row per metric, one column per run, then the median.
pub fn table(runs: &[RunResult]) -> String {
    let med = medians(runs);
    let mut s = format!("{:<26}", "metric");
    for i in 0..runs.len() {
        s += &format!("{:>14}", format!("run {}", i + 1));
    }
    s += &format!("{:>14}\n", "median");
    let fmt = |v: f64| {
        if v.fract() == 0.0 && v.abs() < 1e12 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        }
    };
    for (name, m) in &med.metrics {
        s += &format!("{name:<26}");
        for r in runs {
            s += &format!("{:>14}", r.get(name).map(fmt).unwrap_or_default());
        }
        s += &format!("{:>14}\n", fmt(*m));
    }
    for (i, r) in runs.iter().enumerate() {
        for n in &r.notes {
            s += &format!("run {}: {n}\n", i + 1);
        }
    }
    s
}

/// Context for errors from a whole run.
pub fn in_run<T>(r: anyhow::Result<T>, i: usize) -> anyhow::Result<T> {
    r.with_context(|| format!("run {}", i + 1))
}
