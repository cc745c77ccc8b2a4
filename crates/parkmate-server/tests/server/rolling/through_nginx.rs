//! The same rolling restart **through nginx**, done as `docs/deployment.md` says: each node in
//! turn is stopped with its drain (not ready, sockets closed with 1012 in waves), started again,
//! and the next one only once the restarted node is ready *and* nginx sends it sockets again
//! (its `fail_timeout`). Meanwhile a publisher publishes through nginx and never retries by
//! itself: every publish must be answered 201, so nginx's retries (`proxy_next_upstream`) and
//! the drain between them lose no request. Clients reconnect through nginx on every 1012 and,
//! besides, every few notifications by themselves, always with `since`: each ends with
//! everything addressed to it exactly once, and the sockets spread back over all three nodes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use parkmate_auth::TokenKeys;
use parkmate_protocol::{Role, ServerFrame};
use parkmate_server::config::RateSetting;
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::{ClientLog, Targets, total_connections};
use crate::common::nginx::{Nginx, nginx_or_skip};
use crate::common::tls::{self, TestCert};
use crate::common::{API_KEY, Cluster, JWT_SECRET, TestApp, WAIT};

const USERS: i64 = 9;
/// A client closes its socket itself after this many notifications and comes back with
/// `since`: the reconnecting traffic that spreads sockets back onto restarted nodes (between
/// restarts only).
const CHURN: usize = 5;
const MAX_PUBLISHES: usize = 4000;
const BETWEEN_RESTARTS: usize = 30;

async fn client(
    user: i64,
    nginx: SocketAddr,
    trust: Arc<rustls::ClientConfig>,
    mut targets: Targets,
    stopping: Arc<AtomicBool>,
) -> ClientLog {
    let keys = TokenKeys::new(JWT_SECRET.as_bytes());
    let mut log = ClientLog {
        ids: Vec::new(),
        closes: Vec::new(),
        abrupt: 0,
    };
    let mut refused_in_a_row = 0;
    loop {
        let since = log.ids.last().copied().unwrap_or(0);
        let url = format!("wss://{nginx}/ws/notifications/{user}/?since={since}");
        let token = keys.mint(user, Role::User, 3600);
        let mut c = match tls::open(&url, &token, trust.clone()).await {
            Ok(c) => c,
            Err(e) => {
                // nginx passes a refused or draining handshake on to another node, so
                // this is rare; back off a little as a real client would.
                refused_in_a_row += 1;
                assert!(refused_in_a_row < 50, "user {user}: no node answers: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        refused_in_a_row = 0;
        let mut read_here = 0;
        loop {
            let done = targets
                .borrow()
                .as_ref()
                .is_some_and(|t| log.ids.last().copied().unwrap_or(0) >= t[&user]);
            if done {
                let _ = c.ws.close(None).await;
                return log;
            }
            // No churn while a node stops: a client that left on its own just before the
            // drain reached it would hide the 1012 the drain is tested for (how often depends
            // on how fast notifications flow).
            if read_here >= CHURN && !stopping.load(Ordering::SeqCst) {
                let _ = c.ws.close(None).await;
                break;
            }
            tokio::select! {
                msg = c.ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let frame: ServerFrame = serde_json::from_str(&t).expect("server frames parse");
                        if let ServerFrame::Notification(n) = frame {
                            if let Some(&prev) = log.ids.last() {
                                assert!(n.id > prev, "user {user}: id {} after {prev}", n.id);
                            }
                            log.ids.push(n.id);
                            read_here += 1;
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        log.closes.push(frame.map_or(1005, |f| u16::from(f.code)));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        log.abrupt += 1;
                        break;
                    }
                },
                _ = targets.changed() => {}
            }
        }
    }
}

/// What the publisher did: ids per user, failures, and how many publishes it sent while a
/// node was draining, down or not yet back in nginx's turn.
struct Published {
    per_user: BTreeMap<i64, Vec<i64>>,
    failures: Vec<String>,
    during_restarts: usize,
}

/// Publishes through nginx until told to stop; every answer must be 201.
async fn publisher(
    nginx: SocketAddr,
    http: reqwest::Client,
    restarting: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    progress: watch::Sender<usize>,
) -> Published {
    let mut per_user: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut during_restarts = 0;
    for i in 0..MAX_PUBLISHES {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if restarting.load(Ordering::SeqCst) {
            during_restarts += 1;
        }
        let broadcast = i % 20 == 0;
        let user = 1 + i as i64 % USERS;
        let body = if broadcast {
            json!({"level":"info","message":format!("all {i}"),"broadcast":true})
        } else {
            json!({"level":"info","message":format!("n {i}"),"user_id":user})
        };
        let r = http
            .post(format!("https://{nginx}/api/notifications"))
            .bearer_auth(API_KEY)
            .header("idempotency-key", format!("through-nginx-{i}"))
            .json(&body)
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 201 => {
                let body: serde_json::Value = r.json().await.unwrap();
                let id = body["ids"][0].as_i64().unwrap();
                if broadcast {
                    for u in 1..=USERS {
                        per_user.entry(u).or_default().push(id);
                    }
                } else {
                    per_user.entry(user).or_default().push(id);
                }
            }
            Ok(r) => failures.push(format!(
                "publish {i}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )),
            Err(e) => failures.push(format!("publish {i}: {e}")),
        }
        progress.send_replace(i + 1);
        // Paced, so the restarts happen among a steady stream rather than a flood.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Published {
        per_user,
        failures,
        during_restarts,
    }
}

/// Nodes of this test: a drain of 1 s, and no per-address handshake limit (every socket
/// comes from nginx's address, and the clients reconnect often).
async fn node(cluster: &Cluster, addr: SocketAddr) -> TestApp {
    cluster
        .spawn_node_at_with(addr, |s| {
            s.shutdown_drain = Duration::from_secs(1);
            s.limits.handshakes_per_ip = RateSetting::try_from("off".to_owned()).unwrap();
        })
        .await
}

/// Waits (bounded) until `pred` holds of the nodes.
async fn until(nodes: &[Option<TestApp>], what: &str, pred: impl Fn(&[Option<TestApp>]) -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !pred(nodes) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

#[tokio::test]
async fn a_rolling_restart_through_nginx_fails_no_publish_and_loses_nothing() {
    let Some(binary) = nginx_or_skip() else {
        return;
    };
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut nodes = vec![
        Some(node(&cluster, any).await),
        Some(node(&cluster, any).await),
        Some(node(&cluster, any).await),
    ];
    let addrs: Vec<SocketAddr> = nodes.iter().flatten().map(|n| n.addr).collect();
    let certs = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(certs.path());
    let nginx = Nginx::start(&binary, &addrs, &cert).await;
    let trust = cert.client_config();

    let (targets_tx, targets_rx) = watch::channel(None);
    let stopping = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (1..=USERS)
        .map(|u| {
            tokio::spawn(client(
                u,
                nginx.addr,
                trust.clone(),
                targets_rx.clone(),
                stopping.clone(),
            ))
        })
        .collect();
    until(&nodes, "every client connects", |n| {
        total_connections(n) == USERS as usize
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let restarting = Arc::new(AtomicBool::new(false));
    let (progress_tx, mut progress) = watch::channel(0usize);
    let publishing = tokio::spawn(publisher(
        nginx.addr,
        cert.http_client(),
        restarting.clone(),
        stop.clone(),
        progress_tx,
    ));
    let http = reqwest::Client::new();
    for k in 0..3 {
        let now = *progress.borrow();
        tokio::time::timeout(WAIT, progress.wait_for(|&n| n >= now + BETWEEN_RESTARTS))
            .await
            .expect("publishing goes on")
            .unwrap();
        restarting.store(true, Ordering::SeqCst);
        let old = nodes[k].take().unwrap();
        stopping.store(true, Ordering::SeqCst);
        old.stop().await;
        stopping.store(false, Ordering::SeqCst);
        nodes[k] = Some(node(&cluster, addrs[k]).await);
        // As the guide says: ready, then taken back by nginx (after its fail_timeout) —
        // seen here as sockets arriving through it — before the next node goes.
        let ready = format!("http://{}/readyz", addrs[k]);
        tokio::time::timeout(WAIT, async {
            while !http
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the restarted node becomes ready");
        until(&nodes, "nginx sends sockets to the restarted node", |n| {
            n[k].as_ref().unwrap().state.hub.connection_count() > 0
        })
        .await;
        restarting.store(false, Ordering::SeqCst);
    }
    // Sockets spread back over every node.
    until(&nodes, "sockets on every node", |n| {
        n.iter()
            .flatten()
            .all(|n| n.state.hub.connection_count() > 0)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let Published {
        per_user,
        failures,
        during_restarts,
    } = tokio::time::timeout(Duration::from_secs(30), publishing)
        .await
        .expect("publishing stops")
        .unwrap();
    assert!(
        during_restarts > 0,
        "some publishing happened while a node was restarting"
    );
    assert!(
        failures.is_empty(),
        "{} publishes failed through nginx: {failures:#?}\n{}",
        failures.len(),
        nginx.error_log()
    );
    let published: usize = *progress.borrow();
    assert!(published < MAX_PUBLISHES, "publishing ran to its cap");

    let last: BTreeMap<i64, i64> = per_user
        .iter()
        .map(|(&u, ids)| (u, *ids.last().unwrap()))
        .collect();
    targets_tx.send_replace(Some(Arc::new(last)));
    let mut closes = 0;
    for (i, handle) in clients.into_iter().enumerate() {
        let user = i as i64 + 1;
        let log = tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .unwrap_or_else(|_| panic!("user {user} never caught up"))
            .unwrap();
        assert_eq!(
            log.ids, per_user[&user],
            "user {user}: every notification exactly once, in id order"
        );
        assert!(
            log.closes.iter().all(|&c| c == 1012),
            "user {user} was only ever told 1012: {:?}",
            log.closes
        );
        assert_eq!(log.abrupt, 0, "user {user}: a socket ended without a close");
        closes += log.closes.len();
    }
    assert!(closes >= 3, "the drains closed {closes} sockets");
    let any_node = nodes[0].as_ref().unwrap();
    for user in 1..=USERS {
        assert_eq!(
            any_node.stored_ids(user, Role::User).await,
            per_user[&user],
            "user {user} in the store: nothing stored twice"
        );
    }
    eprintln!(
        "rolling restart through nginx: {published} published ({during_restarts} while a node was draining, down or not yet back), none failed, {closes} sockets closed with 1012"
    );
    for node in nodes.into_iter().flatten() {
        node.stop().await;
    }
}
