//! The server under test: its memory (`/proc/<pid>/status`), its health endpoint, and — for the
//! handiest runs — a `parkmate serve` we start ourselves on a temporary SQLite database.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Child;

/// The node's limits a benchmark lifts (`--server-env` can still set any of them).
pub const BENCH_LIMITS: [(&str, &str); 5] = [
    ("PARKMATE_WS_MAX_CONNECTIONS_PER_IP", "18000"),
    ("PARKMATE_LIMITS_HANDSHAKES_PER_IP", "off"),
    ("PARKMATE_LIMITS_PUBLISH", "off"),
    ("PARKMATE_LIMITS_CLIENT_FRAMES", "off"),
    ("PARKMATE_HTTP_MAX_CONNECTIONS", "4096"),
];
/// Resident set size of a process in kB (`VmRSS`), if it can be read.
pub fn rss_kb(pid: u32) -> Option<u64> {
    proc_status_kb(pid, "VmRSS:")
}

/// CPU time the process has run, all its threads together, in nanoseconds: the first field of
/// each `/proc/<pid>/task/<tid>/schedstat`. Nanoseconds rather than `/proc/<pid>/stat`'s clock
/// ticks (10 ms here), which are coarser than one broadcast's server time. A thread that exits
/// between two readings takes its time with it; the server's threads (tokio's workers, sqlx's)
/// live as long as it does.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Peak resident set size (`VmHWM`) in kB.
pub fn hwm_kb(pid: u32) -> Option<u64> {
    proc_status_kb(pid, "VmHWM:")
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The server's own count of registered sockets, from `GET /healthz`.
pub async fn connections(http: &reqwest::Client, target: SocketAddr) -> anyhow::Result<usize> {
    let v: serde_json::Value = http
        .get(format!("http://{target}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .context("healthz")?
        .json()
        .await
        .context("healthz body")?;
    Ok(v["connections"].as_u64().unwrap_or(0) as usize)
}

/// The value of the unlabelled counter or gauge `name` in a node's Prometheus text
/// (`GET /metrics`); `None` when the node does not report it (yet, or an older build).
pub async fn metric(
    http: &reqwest::Client,
    target: SocketAddr,
    name: &str,
) -> anyhow::Result<Option<f64>> {
    let text = http
        .get(format!("http://{target}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .context("metrics")?
        .text()
        .await
        .context("metrics body")?;
    Ok(text.lines().find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    }))
}

/// Polls `/healthz` until the servers together hold `want` sockets, or `within` passes.
pub async fn wait_for_connections(
    http: &reqwest::Client,
    targets: &[SocketAddr],
    want: usize,
    within: Duration,
) -> anyhow::Result<usize> {
    let until = tokio::time::Instant::now() + within;
    loop {
        let mut total = 0;
        for t in targets {
            total += connections(http, *t).await?;
        }
        if total == want || tokio::time::Instant::now() >= until {
            return Ok(total);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `parkmate serve` child on a free loopback port and a temporary database; killed on drop.
pub struct SpawnedServer {
    pub addr: SocketAddr,
    pub child: Child,
    pub pid: u32,
    _dir: tempfile::TempDir,
}

impl SpawnedServer {
    /// Starts `exe serve` with the given secrets and extra `PARKMATE_*` settings, and waits until
    /// `/healthz` answers.
    pub async fn start(
        exe: &Path,
        jwt_secret: &str,
        api_key: &str,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<SpawnedServer> {
        let dir = tempfile::tempdir()?;
        // Ask the kernel for a free port, then hand it to the server (it binds with a deep backlog).
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut cmd = tokio::process::Command::new(exe);
        // A configuration file that does not exist: no parkmate.toml of the working directory.
        cmd.arg("--config")
            .arg(dir.path().join("none.toml"))
            .arg("serve");
        // Only our settings: nothing inherited from the operator's shell or a parkmate.toml.
        for (k, _) in std::env::vars() {
            if k.starts_with("PARKMATE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("PARKMATE_BIND", addr.to_string())
            .env(
                "PARKMATE_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("bench.db").display()),
            )
            .env("PARKMATE_JWT_SECRET", jwt_secret)
            .env("PARKMATE_API_KEY", api_key)
            .env("PARKMATE_DATA_DIR", dir.path())
            .env("PARKMATE_WEB_DIR", dir.path().join("no-web"))
            .env("PARKMATE_BOOKING_DEMO_DATA", "false")
            .env("PARKMATE_LOG", "warn");
        // A load generator is one client at a few loopback addresses doing what thousands of
        // clients would: the per-address and per-key limits that protect a real node would
        // measure themselves instead of the server (docs/security.md).
        for (k, v) in BENCH_LIMITS {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            // MALLOC_* (glibc tunables such as MALLOC_ARENA_MAX) and MIMALLOC_* (the allocator the
            // server links) for memory experiments.
            if !["PARKMATE_", "MALLOC_", "MIMALLOC_"]
                .iter()
                .any(|p| k.starts_with(p))
            {
                bail!(
                    "--server-env {k}: only PARKMATE_*, MALLOC_* and MIMALLOC_* settings may be passed to the server"
                );
            }
            cmd.env(k, v);
        }
        let (mut child, pid) = spawn_quiet(&mut cmd, exe)?;
        let http = reqwest::Client::new();
        wait_until_up(
            &mut child,
            "the server",
            Duration::from_secs(10),
            || async { connections(&http, addr).await.is_ok() },
        )
        .await?;
        Ok(SpawnedServer {
            addr,
            child,
            pid,
            _dir: dir,
        })
    }

    /// Kills the server (SIGKILL: each run starts a fresh one) and reaps it.
    pub async fn stop(mut self) {
        stop_child(&mut self.child).await;
    }
}

/// Starts `cmd` (the program `exe`) with no input, no output and its errors on ours; killed on
/// drop. Answers the child and its pid.
pub(crate) fn spawn_quiet(
    cmd: &mut tokio::process::Command,
    exe: &Path,
) -> anyhow::Result<(Child, u32)> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let pid = child.id().context("child pid")?;
    Ok((child, pid))
}

/// Polls `up` every 50 ms until it answers true; fails when `child` exits first or `within`
/// passes.
pub(crate) async fn wait_until_up<F, Fut>(
    child: &mut Child,
    what: &str,
    within: Duration,
    mut up: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < until {
        if up().await {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited during start-up: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what} was not up within {within:?}")
}

/// Kills a child and reaps it (at most 5 s).
pub(crate) async fn stop_child(child: &mut Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}
