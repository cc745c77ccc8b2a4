//! Issue 12, point 10: `kill -9` of a node in the middle of publishing. Every notification the
//! publish API acknowledged (201) is committed, so after the restart a client resuming with
//! `since` receives each of them exactly once, in id order: nothing acknowledged is lost by the
//! crash, and nothing the restarted dispatcher publishes again (its cursor is saved at most every
//! 250 ms) reaches the client twice.
//!
//! These tests run the real `parkmate` binary as child processes (a `kill -9` needs a process of
//! its own): on SQLite one node, on PostgreSQL two nodes with Redis between them, the client on
//! the node that is killed. Publishing is bounded: about 2,000 publishes per second for at most
//! [`PUBLISH_FOR`], the kill after [`KILL_AFTER`].

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parkmate_protocol::{Role, ServerFrame};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::*;

/// How long the publishers run at most (they stop early once the node is gone).
const PUBLISH_FOR: Duration = Duration::from_secs(3);
/// When the node is killed, counted from the first publish.
const KILL_AFTER: Duration = Duration::from_millis(1500);
/// Concurrent publishers, each sending one request per [`PUBLISH_EVERY`]: 2,000/s together.
const PUBLISHERS: usize = 16;
const PUBLISH_EVERY: Duration = Duration::from_millis(8);
/// The user every notification is for.
const USER: i64 = 77;

/// One `parkmate serve` child process on a fixed loopback port.
struct Node {
    addr: SocketAddr,
    child: Child,
}

impl Node {
    /// Starts the binary with `env` on `addr` and waits (bounded) until `/healthz` answers 200.
    async fn start(addr: SocketAddr, data_dir: &Path, env: &[(&str, String)]) -> Node {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join(format!("node-{}.log", addr.port())))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_parkmate"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PARKMATE_BIND", addr.to_string())
            .env("PARKMATE_DATA_DIR", data_dir)
            .env("PARKMATE_WEB_DIR", data_dir.join("no-web"))
            .env("PARKMATE_JWT_SECRET", JWT_SECRET)
            .env("PARKMATE_API_KEY", API_KEY)
            .env("PARKMATE_ENV", "test")
            .env("PARKMATE_BOOKING_DEMO_DATA", "false")
            .env("PARKMATE_LIMITS_PUBLISH", "off")
            .env("PARKMATE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the parkmate binary starts");
        let node = Node { addr, child };
        let http = reqwest::Client::new();
        for _ in 0..300 {
            let healthy = http
                .get(format!("http://{addr}/healthz"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node {addr} did not become healthy");
    }

    /// `kill -9`: no shutdown, no last cursor save, no goodbye to its sockets.
    async fn kill9(&mut self) {
        self.child.start_kill().expect("SIGKILL is delivered");
        self.child.wait().await.unwrap();
    }
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Publishes to [`USER`] at ~2,000/s through `targets` (round robin) until [`PUBLISH_FOR`] has
/// passed or `stop` is set; returns the ids answered 201. Failed requests (the node is gone) are
/// not acknowledged and so promise nothing.
async fn publish_until(targets: Vec<SocketAddr>, stop: Arc<Mutex<bool>>) -> Vec<i64> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let deadline = tokio::time::Instant::now() + PUBLISH_FOR;
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let (http, acked, stop, targets) =
            (http.clone(), acked.clone(), stop.clone(), targets.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(PUBLISH_EVERY);
            // A slow answer delays the next request rather than bunching them: never above the rate.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0usize;
            while tokio::time::Instant::now() < deadline && !*stop.lock().unwrap() {
                tick.tick().await;
                let target = targets[(p + i) % targets.len()];
                i += 1;
                let r = http
                    .post(format!("http://{target}/api/notifications"))
                    .bearer_auth(API_KEY)
                    .json(&serde_json::json!({
                        "level": "info", "message": format!("p{p} n{i}"), "user_id": USER
                    }))
                    .send()
                    .await;
                let Ok(r) = r else { continue };
                if r.status().as_u16() != 201 {
                    continue;
                }
                if let Ok(body) = r.json::<serde_json::Value>().await
                    && let Some(id) = body["ids"][0].as_i64()
                {
                    acked.lock().unwrap().push(id);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut ids = acked.lock().unwrap().clone();
    ids.sort_unstable();
    ids
}

/// A socket for [`USER`] on `addr`, resuming after `since`.
async fn open(addr: SocketAddr, since: i64) -> Client {
    let keys = parkmate_auth::TokenKeys::new(JWT_SECRET.as_bytes());
    let url = format!("ws://{addr}/ws/notifications/{USER}/?since={since}");
    let mut req = url.into_client_request().unwrap();
    let auth = format!("Bearer {}", keys.mint(USER, Role::User, 3600));
    req.headers_mut()
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    let mut c = Client::open(req).await.expect("handshake succeeds");
    assert!(matches!(c.next_frame().await, ServerFrame::Hello { .. }));
    c
}

/// Reads notification ids from `c` into `seen` until the socket ends (the node died) or, when
/// `until` is given, until every id of it has been seen.
async fn collect(c: &mut Client, seen: &mut Vec<i64>, until: Option<&[i64]>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        if let Some(want) = until {
            let have: std::collections::BTreeSet<i64> = seen.iter().copied().collect();
            if want.iter().all(|id| have.contains(id)) {
                return;
            }
        }
        let msg = match tokio::time::timeout(WAIT, c.ws.next()).await {
            Ok(Some(Ok(m))) => m,
            // The node is gone (reset, closed) — or, after the restart, the wait ran out, which
            // the caller's assertion reports with what is missing.
            Ok(Some(Err(_)) | None) | Err(_) => return,
        };
        if let Message::Text(t) = msg
            && let Ok(ServerFrame::Notification(n)) = serde_json::from_str(&t)
        {
            seen.push(n.id);
        }
    }
}

/// Every acknowledged id exactly once, and the whole sequence strictly increasing (no repeat).
fn assert_exactly_once(seen: &[i64], acked: &[i64]) {
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "the client saw a repeat or a reordering"
    );
    let seen: std::collections::BTreeSet<i64> = seen.iter().copied().collect();
    let missing: Vec<_> = acked.iter().filter(|id| !seen.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged notifications never arrived, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

/// Publishes, kills `victim` mid-way with a client on it, restarts it, resumes the client there.
async fn crash_while_publishing(
    mut victim: Node,
    others: &[SocketAddr],
    restart: impl AsyncFnOnce(SocketAddr) -> Node,
) {
    let mut client = open(victim.addr, 0).await;
    let stop = Arc::new(Mutex::new(false));
    let mut targets = vec![victim.addr];
    targets.extend_from_slice(others);
    let publishing = tokio::spawn(publish_until(targets, stop.clone()));
    let mut seen = Vec::new();
    let reading = async {
        collect(&mut client, &mut seen, None).await;
    };
    let killing = async {
        tokio::time::sleep(KILL_AFTER).await;
        victim.kill9().await;
    };
    tokio::join!(reading, killing);
    *stop.lock().unwrap() = true;
    let acked = publishing.await.unwrap();
    assert!(
        acked.len() > 100,
        "the test must publish for real before the kill ({} acknowledged)",
        acked.len()
    );
    let before_kill = seen.len();

    let node = restart(victim.addr).await;
    let since = seen.last().copied().unwrap_or(0);
    let mut client = open(node.addr, since).await;
    collect(&mut client, &mut seen, Some(&acked)).await;
    assert_exactly_once(&seen, &acked);
    eprintln!(
        "crash test: {} acknowledged, {} seen live before the kill, {} in all after the resume",
        acked.len(),
        before_kill,
        seen.len()
    );
}

#[tokio::test]
async fn kill_9_on_sqlite_loses_no_acknowledged_notification() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![(
        "PARKMATE_DATABASE_URL",
        format!("sqlite://{}", dir.path().join("p.db").display()),
    )];
    let addr = free_addr();
    let node = Node::start(addr, dir.path(), &env).await;
    crash_while_publishing(node, &[], async |addr| {
        Node::start(addr, dir.path(), &env).await
    })
    .await;
}

#[tokio::test]
async fn kill_9_of_one_of_two_postgres_nodes_loses_no_acknowledged_notification() {
    let Some(redis_url) = redis_or_skip().await else {
        return;
    };
    let Some(pg) = parkmate_db::test_support::fresh_postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("PARKMATE_DATABASE_URL", pg.url.clone()),
        ("PARKMATE_REDIS_URL", redis_url),
        (
            "PARKMATE_REDIS_PREFIX",
            format!("parkmate-crash-{:016x}", rand::random::<u64>()),
        ),
    ];
    // The first node leads (dispatcher and scheduler); it is the one killed, so the survivor
    // must take the lead and publish from the persisted cursor.
    let victim = Node::start(free_addr(), dir.path(), &env).await;
    let survivor = Node::start(free_addr(), dir.path(), &env).await;
    crash_while_publishing(victim, &[survivor.addr], async |addr| {
        Node::start(addr, dir.path(), &env).await
    })
    .await;
    drop(survivor);
}

/// A PostgreSQL server of the test's own (never the machine's): `initdb` into a temporary
/// directory, `pg_ctl` on a free loopback port, stopped with `-m immediate` (as a crash would)
/// and started again on the same data. As root the tools run as the `postgres` user (initdb
/// refuses root).
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl PrivatePostgres {
    fn tool(name: &str) -> std::process::Command {
        let path = format!("{PG_BIN}/{name}");
        // SAFETY-free check of the effective user: `id -u` prints it.
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    fn run(mut cmd: std::process::Command) -> Result<(), String> {
        let out = cmd.output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `None` (after `service_missing`: a failure under CI=true) when the tools are not here.
    fn start() -> Option<PrivatePostgres> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            parkmate_db::test_support::service_missing(
                "PostgreSQL 15 tools",
                PG_BIN,
                &"initdb not found",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let owner = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let _ = owner; // not root: the directory is already ours
        let port = free_addr().port();
        let data = dir.path().join("data");
        let mut initdb = Self::tool("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        Self::run(initdb).expect("initdb");
        let pg = PrivatePostgres { dir, port };
        pg.start_again();
        Some(pg)
    }

    fn start_again(&self) {
        let mut ctl = Self::tool("pg_ctl");
        ctl.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("pg.log"))
            .args(["-w", "-t", "30", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.dir.path().display()
            ))
            .arg("start");
        Self::run(ctl).expect("pg_ctl start");
    }

    /// `-m immediate`: every backend is killed, no checkpoint, like a crash of the server.
    fn stop(&self) {
        let mut ctl = Self::tool("pg_ctl");
        ctl.arg("-D").arg(self.dir.path().join("data")).args([
            "-m",
            "immediate",
            "-w",
            "-t",
            "30",
            "stop",
        ]);
        Self::run(ctl).expect("pg_ctl stop");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut ctl = Self::tool("pg_ctl");
        ctl.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = ctl.output();
    }
}

/// One publish to [`USER`] through `addr`: its status, `Retry-After`, and the id when 201. A
/// request that takes longer than 15 s is a hang, and fails the test.
async fn publish_once(addr: SocketAddr, message: &str) -> (u16, Option<String>, Option<i64>) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/notifications"))
        .bearer_auth(API_KEY)
        .json(&serde_json::json!({"level": "info", "message": message, "user_id": USER}))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("an answer, not a hang");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let id = r
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|b| b["ids"][0].as_i64());
    (status, retry, id)
}

/// PostgreSQL goes away under two nodes (killed with `-m immediate`) and comes back: meanwhile
/// every publish is answered 503 with `Retry-After` (never a hang, never a 500); afterwards both
/// nodes publish again by themselves (no restart), the leader's dispatcher delivers live again,
/// and a client resuming with `since` gets every acknowledged notification exactly once.
///
/// Measured here: each 503 within ~0.5-0.7 s (the leader lease's probe marks the server down
/// and acquires stop waiting, `parkmate_db`'s `postgres::Pools::watched`; before that mark every
/// publish waited out the API's 5 s deadline), and the nodes publish again within ~50 ms of
/// PostgreSQL's return. The test does not time either (a request over 15 s fails it as a hang).
#[tokio::test]
async fn a_postgres_outage_answers_503_and_the_nodes_reconnect_by_themselves() {
    let Some(redis_url) = redis_or_skip().await else {
        return;
    };
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("PARKMATE_DATABASE_URL", pg.url()),
        ("PARKMATE_REDIS_URL", redis_url),
        (
            "PARKMATE_REDIS_PREFIX",
            format!("parkmate-outage-{:016x}", rand::random::<u64>()),
        ),
    ];
    let a = Node::start(free_addr(), dir.path(), &env).await;
    let b = Node::start(free_addr(), dir.path(), &env).await;
    let mut acked = Vec::new();
    for (i, node) in [&a, &b].into_iter().enumerate() {
        let (status, _, id) = publish_once(node.addr, &format!("before {i}")).await;
        assert_eq!(status, 201);
        acked.push(id.unwrap());
    }

    pg.stop();
    for node in [&a, &b] {
        for i in 0..3 {
            let started = std::time::Instant::now();
            let (status, retry, _) = publish_once(node.addr, &format!("during {i}")).await;
            eprintln!(
                "outage: publish {i} on {} answered {status} in {:?}",
                node.addr,
                started.elapsed()
            );
            assert_eq!(status, 503, "a publish while PostgreSQL is down");
            assert!(retry.is_some(), "503 says Retry-After");
        }
    }

    pg.start_again();
    let restarted = std::time::Instant::now();
    for node in [&a, &b] {
        let mut back = None;
        for attempt in 0..300 {
            let (status, _, id) = publish_once(node.addr, &format!("after {attempt}")).await;
            match status {
                201 => {
                    back = id;
                    break;
                }
                503 => tokio::time::sleep(Duration::from_millis(100)).await,
                other => panic!("while reconnecting: {other}"),
            }
        }
        acked.push(back.expect("the node publishes again by itself"));
        eprintln!(
            "outage: {} publishes again {:?} after the restart",
            node.addr,
            restarted.elapsed()
        );
    }

    // Live again across the nodes: published on `a`, heard on `b` (the leader's dispatcher and
    // Redis are back), then the whole history once on a resume from 0.
    let last = *acked.iter().max().unwrap();
    let mut live = open(b.addr, last).await;
    let (status, _, id) = publish_once(a.addr, "live after the outage").await;
    assert_eq!(status, 201);
    let id = id.unwrap();
    acked.push(id);
    assert_eq!(live.next_notification().await.id, id);

    acked.sort_unstable();
    let mut resumed = open(b.addr, 0).await;
    let mut seen = Vec::new();
    collect(&mut resumed, &mut seen, Some(&acked)).await;
    assert_exactly_once(&seen, &acked);
}
