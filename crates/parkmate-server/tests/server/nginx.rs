//! Three nodes behind Debian's nginx, as `docs/deployment.md` deploys them: nginx terminates TLS
//! (a certificate made for the test) and proxies WebSocket upgrades to the nodes. A client
//! connected through nginx hears what another node publishes; when its node stops (1012) it comes
//! back through nginx to another node with `since` and gets exactly what it missed.
//!
//! Uses the machine's PostgreSQL, Redis and nginx (missing: a failure under `CI=true`, a loud skip
//! elsewhere).

use std::collections::BTreeMap;

use crate::common::nginx::{Nginx, nginx_or_skip};
use crate::common::tls::{self, TestCert};
use crate::common::{Client, Cluster, JWT_SECRET, TestApp};
use parkmate_auth::TokenKeys;
use parkmate_protocol::Role;
use serde_json::json;

/// Sockets held by each node (a stopped node holds none).
fn counts(nodes: &[Option<TestApp>]) -> Vec<usize> {
    nodes
        .iter()
        .map(|n| n.as_ref().map_or(0, |n| n.state.hub.connection_count()))
        .collect()
}

/// The node whose hub gained the socket just opened. A socket joins its node's hub before the
/// `hello` is written, so once the client has read its `hello` the count is there to see.
fn landed_on(nodes: &[Option<TestApp>], before: &[usize]) -> usize {
    let now = counts(nodes);
    let gained: Vec<usize> = (0..nodes.len())
        .filter(|&i| now[i] == before[i] + 1)
        .collect();
    match gained[..] {
        [node] => node,
        _ => panic!("expected one node to gain a socket: {before:?} -> {now:?}"),
    }
}

struct Conn {
    user: i64,
    node: usize,
    client: Client,
    /// Every id this client read, in order: its `since` when it comes back.
    seen: Vec<i64>,
}

#[tokio::test]
async fn wss_through_nginx_reaches_every_node_and_a_stopped_nodes_clients_resume_elsewhere() {
    let Some(binary) = nginx_or_skip() else {
        return;
    };
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let mut nodes = vec![
        Some(cluster.spawn_node().await),
        Some(cluster.spawn_node().await),
        Some(cluster.spawn_node().await),
    ];
    let upstreams: Vec<_> = nodes.iter().flatten().map(|n| n.addr).collect();
    let certs = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(certs.path());
    let nginx = Nginx::start(&binary, &upstreams, &cert).await;
    let keys = TokenKeys::new(JWT_SECRET.as_bytes());
    let trust = cert.client_config();

    // Six users connect through nginx one after the other; round robin spreads them.
    let mut conns: Vec<Conn> = Vec::new();
    for user in 1..=6 {
        let before = counts(&nodes);
        let url = nginx.ws_url(user, Some(0));
        let client = tls::connect(&url, &keys, user, Role::User, trust.clone()).await;
        let node = landed_on(&nodes, &before);
        conns.push(Conn {
            user,
            node,
            client,
            seen: Vec::new(),
        });
    }
    for node in 0..3 {
        assert!(
            conns.iter().any(|c| c.node == node),
            "nginx sent no client to node {node}: {:?}",
            conns.iter().map(|c| c.node).collect::<Vec<_>>()
        );
    }

    // A page served from nginx's address may open sockets through it: nginx passes the Host with
    // its port, so the node's same-origin check sees the page's own origin. Another site may not.
    let token = keys.mint(9, Role::User, 3600);
    let own = format!("https://{}", nginx.addr);
    let page = tls::open_with(&nginx.ws_url(9, None), &token, Some(&own), trust.clone()).await;
    page.expect("same origin through nginx")
        .ws
        .close(None)
        .await
        .unwrap();
    // Gone from its node before anyone else connects, so later counts see only newcomers.
    tokio::time::timeout(crate::common::WAIT, async {
        while counts(&nodes).iter().sum::<usize>() != conns.len() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the page's socket closes: {:?}", counts(&nodes)));
    let elsewhere = tls::open_with(
        &nginx.ws_url(9, None),
        &token,
        Some("https://evil.example"),
        trust.clone(),
    )
    .await;
    assert!(
        elsewhere.is_err(),
        "a foreign origin is refused through nginx"
    );

    // Each client hears a notification published straight to another node's API.
    for c in &mut conns {
        let other = (c.node + 1) % 3;
        let publisher = nodes[other].as_ref().unwrap();
        let id = publisher
            .send(c.user, &format!("to {} from node {other}", c.user))
            .await;
        let got = c.client.ids_through(id).await;
        assert_eq!(got, [id], "user {} on node {}", c.user, c.node);
        c.seen.extend(got);
    }

    // Stop the first client's node: its clients are told 1012 (through nginx).
    let victim = conns[0].node;
    let (mut away, mut staying): (Vec<Conn>, Vec<Conn>) =
        conns.into_iter().partition(|c| c.node == victim);
    nodes[victim].take().unwrap().stop().await;
    for c in &mut away {
        let close = c.client.closed().await;
        assert_eq!(
            close.map(|f| u16::from(f.code)),
            Some(1012),
            "user {} was told to reconnect",
            c.user
        );
    }

    // While they are away: notifications for them, and for everyone, published on the others.
    let survivors: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let mut missed: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut broadcasts = Vec::new();
    for i in 0..12 {
        let node = nodes[survivors[i % 2]].as_ref().unwrap();
        if i % 4 == 3 {
            let (status, body) = node
                .publish(json!({"level":"info","message":format!("all {i}"),"broadcast":true}))
                .await;
            assert_eq!(status, 201, "{body}");
            let id = body["ids"][0].as_i64().unwrap();
            broadcasts.push(id);
            for c in &away {
                missed.entry(c.user).or_default().push(id);
            }
        } else {
            let user = away[i % away.len()].user;
            let id = node.send(user, &format!("while away {i}")).await;
            missed.entry(user).or_default().push(id);
        }
    }

    // Back through nginx with `since`: nginx skips the stopped node, and each client gets exactly
    // what it missed, in order, then live notifications again.
    for c in &mut away {
        let before = counts(&nodes);
        let since = *c.seen.last().unwrap();
        let url = nginx.ws_url(c.user, Some(since));
        c.client = tls::connect(&url, &keys, c.user, Role::User, trust.clone()).await;
        c.node = landed_on(&nodes, &before);
        assert_ne!(c.node, victim);
        let expected = &missed[&c.user];
        let got = c.client.ids_through(*expected.last().unwrap()).await;
        assert_eq!(
            &got, expected,
            "user {} replayed on node {}",
            c.user, c.node
        );
        c.seen.extend(got);

        let live = nodes[third_node(c.node, victim)]
            .as_ref()
            .unwrap()
            .send(c.user, "back")
            .await;
        assert_eq!(c.client.ids_through(live).await, [live]);
        c.seen.push(live);
    }

    // The clients that stayed heard the broadcasts live, once each.
    for c in &mut staying {
        let got = c.client.ids_through(*broadcasts.last().unwrap()).await;
        assert_eq!(got, broadcasts, "user {} on node {}", c.user, c.node);
    }

    drop((away, staying));
    for node in nodes.into_iter().flatten() {
        node.stop().await;
    }
    assert!(
        !nginx.error_log().contains("[emerg]"),
        "{}",
        nginx.error_log()
    );
}

/// The node that is neither `node` nor the stopped one: publishes a returning client's live check.
fn third_node(node: usize, victim: usize) -> usize {
    (0..3).find(|&i| i != node && i != victim).unwrap()
}

/// nginx's own answers, as `docs/deployment.md` configures them: when no node can answer, its 502
/// is the API's JSON error shape with `Retry-After`, and `/metrics` is never proxied.
#[tokio::test]
async fn nginx_answers_its_own_errors_in_the_api_shape_and_never_proxies_metrics() {
    let Some(binary) = nginx_or_skip() else {
        return;
    };
    let app = crate::common::spawn_app().await;
    // One node up, for /metrics (which it would serve outside production), one address down.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let certs = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(certs.path());
    let http = cert.http_client();

    let nginx = Nginx::start(&binary, &[app.addr], &cert).await;
    let r = http
        .get(format!("https://{}/metrics", nginx.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found", "{body}");
    drop(nginx);

    let nginx = Nginx::start(&binary, &[down], &cert).await;
    let r = http
        .get(format!("https://{}/readyz", nginx.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(
        r.headers().get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body: serde_json::Value = r.json().await.expect("a JSON body");
    assert_eq!(body["code"], "bad_gateway", "{body}");
    assert!(body["message"].is_string(), "{body}");
    app.stop().await;
}
