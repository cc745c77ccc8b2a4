//! The `parkmate` binary as an operator runs it: started with `PARKMATE_*` variables only, stopped
//! with SIGTERM, its log read from a pipe (as a log shipper or `journald` would). A clean stop
//! logs no warning (an operator's alerting would page on one); a log that is not a terminal has no
//! ANSI colours, and `PARKMATE_LOG_FORMAT=json` writes one JSON object per line. And the systemd
//! unit of `docs/deployment.md` passes `systemd-analyze verify`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::{API_KEY, Client, JWT_SECRET, WAIT, redis_or_skip};
use parkmate_auth::TokenKeys;
use parkmate_protocol::{Role, ServerFrame};
use parkmate_server::Settings;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A running `parkmate serve`, its stdout read line by line.
struct Node {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    log: Vec<String>,
}

impl Node {
    /// Starts the binary in `dir` with exactly these settings (no other `PARKMATE_*` variable of
    /// the test's environment leaks in) and waits for its "listening on" line.
    fn start(dir: &Path, settings: &[(&str, String)]) -> Node {
        // A web client of sorts, so the start has nothing to warn about either.
        std::fs::create_dir_all(dir.join("web")).unwrap();
        std::fs::write(dir.join("web/index.html"), "<!doctype html>").unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_parkmate"));
        for (var, _) in std::env::vars() {
            if var.starts_with("PARKMATE_") || var == "RUST_LOG" {
                cmd.env_remove(var);
            }
        }
        cmd.current_dir(dir)
            .arg("serve")
            .env("PARKMATE_CONFIG", dir.join("none.toml"))
            .env("PARKMATE_BIND", "127.0.0.1:0")
            .env("PARKMATE_DATA_DIR", dir.join("data"))
            .env("PARKMATE_WEB_DIR", dir.join("web"))
            .env("PARKMATE_JWT_SECRET", JWT_SECRET)
            .env("PARKMATE_API_KEY", API_KEY)
            .env("PARKMATE_BOOKING_DEMO_DATA", "false")
            // Configured like production: no development key pair to generate (and warn about).
            .env("PARKMATE_PUSH_ENABLED", "false")
            .envs(settings.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the parkmate binary starts");
        let (tx, lines) = mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let mut log = Vec::new();
        let deadline = std::time::Instant::now() + WAIT;
        let addr = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let addr = line
                        .split_once("listening on http://")
                        .map(|(_, rest)| rest.trim_end_matches(['"', '}']).to_owned());
                    log.push(line);
                    if let Some(addr) = addr {
                        break addr.parse().expect("a socket address");
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("the node did not start:\n{}", log.join("\n"));
                }
            }
        };
        Node {
            child,
            addr,
            lines,
            log,
        }
    }

    /// Waits (bounded) until `/readyz` answers 200.
    async fn ready(&self) {
        let url = format!("http://{}/readyz", self.addr);
        tokio::time::timeout(WAIT, async {
            while !reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the node becomes ready");
    }

    /// SIGTERM, as systemd or an orchestrator stops it.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the exit; answers the whole log. The node must exit 0.
    async fn exited(mut self) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the node did not exit after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The pipes close at exit: read what is left.
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            self.log.push(line);
        }
        assert!(status.success(), "exit {status}:\n{}", self.log.join("\n"));
        std::mem::take(&mut self.log)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A socket to `node` as `user`, its `hello` read.
async fn connect(node: &Node, user: i64) -> Client {
    let keys = TokenKeys::new(JWT_SECRET.as_bytes());
    let mut req = format!("ws://{}/ws/notifications/{user}/", node.addr)
        .into_client_request()
        .unwrap();
    let auth = format!("Bearer {}", keys.mint(user, Role::User, 3600));
    req.headers_mut()
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    let mut c = Client::open(req).await.expect("handshake succeeds");
    assert!(matches!(c.next_frame().await, ServerFrame::Hello { .. }));
    c
}

#[tokio::test]
async fn a_clean_sigterm_of_a_cluster_node_logs_no_warning_and_no_colour() {
    let Some(redis) = redis_or_skip().await else {
        return;
    };
    let Some(pg) = parkmate_db::test_support::fresh_postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("parkmate-test-{:016x}", rand::random::<u64>());
    let settings = [
        ("PARKMATE_DATABASE_URL", pg.url.clone()),
        ("PARKMATE_REDIS_URL", redis),
        ("PARKMATE_REDIS_PREFIX", prefix),
        ("PARKMATE_SHUTDOWN_DRAIN", "200ms".to_owned()),
    ];
    // The warning came from a race at the end of the stop (in 10 of 17 stops): several stops,
    // each with a socket to drain and the commit listener and the lease held.
    for round in 0..3 {
        let node = Node::start(dir.path(), &settings);
        node.ready().await;
        let mut socket = connect(&node, 1).await;
        node.terminate();
        let close = socket.closed().await;
        assert_eq!(close.map(|f| u16::from(f.code)), Some(1012));
        let log = node.exited().await;
        let text = log.join("\n");
        assert!(
            !text.contains('\u{1b}'),
            "round {round}: ANSI escapes in a log that is not a terminal:\n{text}"
        );
        let noisy: Vec<&String> = log
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            // sqlx's "slow statement" is the machine being busy, not the stop.
            .filter(|l| !l.contains("slow statement"))
            .collect();
        assert!(
            noisy.is_empty(),
            "round {round}: a clean stop logged {noisy:?}\n{text}"
        );
        assert!(text.contains("draining"), "round {round}:\n{text}");
    }
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line_and_metrics_say_who_leads() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("parkmate.db").display());
    let node = Node::start(
        dir.path(),
        &[
            ("PARKMATE_DATABASE_URL", db),
            ("PARKMATE_LOG_FORMAT", "json".to_owned()),
        ],
    );
    node.ready().await;
    // The binary's own metrics recorder (in-process tests share one): on SQLite the node leads,
    // and nothing has happened yet, yet every metric is listed.
    let text = reqwest::get(format!("http://{}/metrics", node.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.lines().any(|l| l == "parkmate_leader 1"), "{text}");
    assert!(
        text.lines().any(|l| l == "parkmate_connections 0"),
        "{text}"
    );
    node.terminate();
    let log = node.exited().await;
    let mut messages = Vec::new();
    for line in log.iter().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        messages.push(v["message"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        messages.iter().any(|m| m.contains("listening on")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("shutting down")),
        "{messages:?}"
    );
}

/// A `key=value` of the unit file (the last one wins, as in systemd).
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .unwrap_or_else(|| panic!("the unit sets {key}"))
        .trim()
}

#[test]
fn the_systemd_unit_verifies_and_is_sized_for_the_drain() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/parkmate.service");
    let unit = std::fs::read_to_string(&path).expect("deploy/parkmate.service");

    // Its stop timeout covers the drain and the grace that follows it, with room to spare: a
    // unit that kills the node mid-drain loses the graceful hand-over.
    let defaults = Settings::default();
    let stop = unit_value(&unit, "TimeoutStopSec")
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .expect("TimeoutStopSec in seconds (`30s`)");
    assert!(
        stop >= 2 * (defaults.shutdown_drain + defaults.shutdown_grace),
        "TimeoutStopSec={stop:?}"
    );
    // Enough descriptors for every socket a node admits, its HTTP connections and its pools.
    let nofile: usize = unit_value(&unit, "LimitNOFILE").parse().unwrap();
    assert!(
        nofile >= defaults.ws.max_connections.get() + defaults.http.max_connections.get() + 100,
        "LimitNOFILE={nofile}"
    );
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");

    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if !analyze.is_ok_and(|o| o.status.success()) {
        parkmate_db::test_support::service_missing(
            "systemd-analyze",
            "PATH",
            &"not installed (apt-get install systemd)",
        );
        return;
    }
    // Verified with ExecStart pointing at the binary just built: `verify` checks it exists.
    let dir = tempfile::tempdir().unwrap();
    let exec = unit_value(&unit, "ExecStart");
    let binary = exec.split_whitespace().next().unwrap();
    let local = unit.replace(binary, env!("CARGO_BIN_EXE_parkmate"));
    let copy = dir.path().join("parkmate.service");
    std::fs::write(&copy, local).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify:\n{said}");
    let about_ours: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("parkmate.service"))
        .collect();
    assert!(about_ours.is_empty(), "systemd-analyze verify:\n{said}");
}
