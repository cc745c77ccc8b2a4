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
