//! Several nodes sharing one PostgreSQL database and one Redis, as deployed behind a load
//! balancer: cross-node delivery, a Redis restart while publishing, and clients hopping between
//! nodes with `since` while two nodes publish at once. Uses the real PostgreSQL and Redis of the
//! machine (missing: a failure under `CI=true`, a loud skip elsewhere).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, Cluster, TestApp, WAIT};
use parkmate_protocol::{Role, Viewer};
use serde_json::json;

/// Tests that restart the machine's Redis take this exclusively; the others share it, so a
/// restart never lands in the middle of a test that does not expect one.
static REDIS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Every id `viewer` can see, in order: what a lossless client must end up with.
async fn store_sequence(app: &TestApp, user_id: i64, role: Role) -> Vec<i64> {
    app.state
        .store
        .replay(Viewer { user_id, role }, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect()
}

#[tokio::test]
async fn a_client_on_one_node_receives_what_another_node_publishes() {
    let _shared = REDIS.read().await;
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let a = cluster.spawn_node().await;
    let b = cluster.spawn_node().await;
    let mut driver_on_a = a.connect(1, Role::User, None).await;
    let mut owner_on_b = b.connect(2, Role::Owner, None).await;

    // To one user, published on the other node.
    let id = b.send(1, "published on B").await;
    let n = driver_on_a.next_notification().await;
    assert_eq!((n.id, n.message.as_str()), (id, "published on B"));

    // To a role, published on A, heard on B.
    let (status, body) = a
        .publish(json!({"level":"info","message":"owners","role":"owner"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let n = owner_on_b.next_notification().await;
    assert_eq!(n.message, "owners");

    // A broadcast reaches both nodes' sockets, once each.
    let (status, body) = b
        .publish(json!({"level":"warning","message":"everyone","broadcast":true}))
        .await;
    assert_eq!(status, 201, "{body}");
    let all = body["ids"][0].as_i64().unwrap();
    assert_eq!(driver_on_a.next_notification().await.id, all);
    assert_eq!(owner_on_b.next_notification().await.id, all);
    driver_on_a
        .assert_no_notification(Duration::from_millis(300))
        .await;
    owner_on_b
        .assert_no_notification(Duration::from_millis(10))
        .await;

    a.stop().await;
    b.stop().await;
}

/// Restarts the machine's redis-server when dropped, so a failing test never leaves it down.
struct RedisRestart;

impl RedisRestart {
    fn stop() -> RedisRestart {
        let status = std::process::Command::new("redis-cli")
            .args(["shutdown", "nosave"])
            .status()
            .expect("redis-cli runs");
        // redis-cli reports the closed connection of a successful shutdown as an error.
        let _ = status;
        RedisRestart
    }
}

impl Drop for RedisRestart {
    fn drop(&mut self) {
        let status = std::process::Command::new("redis-server")
            .args([
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1 -::1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
                "--logfile",
                "/var/log/redis/ci.log",
            ])
            .status()
            .expect("redis-server runs");
        assert!(status.success(), "redis-server restarted");
    }
}

async fn redis_answers() -> bool {
    tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .is_ok()
}

#[tokio::test]
async fn nodes_ride_out_a_redis_restart_while_publishing_and_clients_lose_nothing() {
    let _exclusive = REDIS.write().await;
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let a = Arc::new(cluster.spawn_node().await);
    let b = Arc::new(cluster.spawn_node().await);
    // Users 1..=4 as drivers, one owner; half on each node, all resuming from the start.
    let mut clients: Vec<(i64, Role, Client)> = Vec::new();
    for user in 1..=5 {
        let role = if user == 5 { Role::Owner } else { Role::User };
        let node = if user % 2 == 0 { &a } else { &b };
        clients.push((user, role, node.connect(user, role, Some(0)).await));
    }

    // Publish continuously on both nodes while Redis goes down and comes back.
    let publisher = {
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..150i64 {
                let node = if i % 2 == 0 { &a } else { &b };
                let body = match i % 10 {
                    0 => json!({"level":"info","message":format!("all {i}"),"broadcast":true}),
                    5 => json!({"level":"info","message":format!("owners {i}"),"role":"owner"}),
                    _ => json!({"level":"info","message":format!("n {i}"),"user_id":1 + i % 4}),
                };
                let (status, body) = node.publish(body).await;
                assert_eq!(status, 201, "{body}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    {
        let _restart = RedisRestart::stop();
        tokio::time::timeout(WAIT, async {
            while redis_answers().await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("redis stops");
        // Down for a while, with publishing going on (the store takes it; pub/sub cannot).
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    tokio::time::timeout(WAIT, async {
        while !redis_answers().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("redis is back");
    tokio::time::timeout(Duration::from_secs(30), publisher)
        .await
        .expect("publishing finishes")
        .unwrap();

    // Every socket stayed open and ends with exactly the store's sequence.
    a.wait_for_connections(2).await;
    b.wait_for_connections(3).await;
    for (user, role, client) in &mut clients {
        let expected = store_sequence(&a, *user, *role).await;
        let got = client.ids_through(*expected.last().unwrap()).await;
        assert_eq!(got, expected, "user {user} on its node");
    }
    drop(clients);
    for node in [a, b] {
        let node = Arc::into_inner(node).expect("publisher finished");
        node.stop().await;
    }
}

#[tokio::test]
async fn concurrent_publishers_and_clients_hopping_nodes_with_since_see_exact_sequences() {
    let _shared = REDIS.read().await;
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let nodes = Arc::new([cluster.spawn_node().await, cluster.spawn_node().await]);
    const PER_NODE: i64 = 120;
    let publishers: Vec<_> = (0..2)
        .map(|n| {
            let nodes = nodes.clone();
            tokio::spawn(async move {
                for i in 0..PER_NODE {
                    let body = if i % 15 == 0 {
                        json!({"level":"info","message":format!("all {n}/{i}"),"broadcast":true})
                    } else {
                        json!({"level":"info","message":format!("{n}/{i}"),"user_id":1 + i % 3})
                    };
                    let (status, body) = nodes[n].publish(body).await;
                    assert_eq!(status, 201, "{body}");
                }
            })
        })
        .collect();

    // Each user hops between the nodes every few notifications, resuming with `since`.
    let hoppers: Vec<_> = (1..=3i64)
        .map(|user| {
            let nodes = nodes.clone();
            tokio::spawn(async move {
                let mut seen: Vec<i64> = Vec::new();
                let mut hop = 0usize;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let node = &nodes[hop % 2];
                    let mut c = node.connect(user, Role::User, seen.last().copied()).await;
                    // Read a few, then leave for the other node.
                    for _ in 0..7 {
                        let Ok(n) =
                            tokio::time::timeout(Duration::from_millis(500), c.next_notification())
                                .await
                        else {
                            break;
                        };
                        if let Some(&prev) = seen.last() {
                            assert!(n.id > prev, "user {user}: id {} after {prev}", n.id);
                        }
                        seen.push(n.id);
                    }
                    drop(c);
                    hop += 1;
                    let expected = store_sequence(&nodes[0], user, Role::User).await;
                    // Publishing is done once every publisher's last row is in; stop when caught up.
                    if expected.len() as i64 == expected_total(user, PER_NODE) && seen == expected {
                        return seen;
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "user {user} never caught up"
                    );
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    for (i, h) in hoppers.into_iter().enumerate() {
        let user = i as i64 + 1;
        let seen = h.await.unwrap();
        assert_eq!(seen, store_sequence(&nodes[0], user, Role::User).await);
    }
    let [a, b] = Arc::into_inner(nodes).expect("tasks finished");
    a.stop().await;
    b.stop().await;
}

/// How many notifications user `user` (1..=3) sees once both publishers are done.
fn expected_total(user: i64, per_node: i64) -> i64 {
    let mut total = 0;
    for _node in 0..2 {
        for i in 0..per_node {
            if i % 15 == 0 || 1 + i % 3 == user {
                total += 1;
            }
        }
    }
    total
}

/// Counts, per notification id, how often it crossed the cluster's Redis channel.
async fn spy_on_the_bus(
    cluster: &Cluster,
) -> Arc<std::sync::Mutex<std::collections::BTreeMap<i64, usize>>> {
    use futures_util::StreamExt;
    let client = redis::Client::open(cluster.redis_url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(parkmate_broker::redis::channel_name(&cluster.prefix))
        .await
        .unwrap();
    let counts = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let c = counts.clone();
    tokio::spawn(async move {
        let mut stream = pubsub.into_on_message();
        while let Some(msg) = stream.next().await {
            if let Some(parkmate_broker::BusEvent::Notification(p)) =
                parkmate_broker::redis::decode(msg.get_payload_bytes())
            {
                *c.lock().unwrap().entry(p.id).or_insert(0) += 1;
            }
        }
    });
    counts
}

/// The index of the one node that leads, once exactly one does.
async fn the_leader(nodes: &[Option<TestApp>]) -> usize {
    tokio::time::timeout(WAIT, async {
        loop {
            let leaders: Vec<usize> = nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.as_ref().is_some_and(|n| *n.state.leader.borrow()))
                .map(|(i, _)| i)
                .collect();
            if let [one] = leaders[..] {
                return one;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("exactly one leader")
}

#[tokio::test]
async fn three_nodes_publish_each_notification_once_and_the_lead_moves_when_the_leader_stops() {
    let _shared = REDIS.read().await;
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let bus = spy_on_the_bus(&cluster).await;
    let mut nodes = vec![
        Some(cluster.spawn_node().await),
        Some(cluster.spawn_node().await),
        Some(cluster.spawn_node().await),
    ];
    let mut last = 0;
    for round in 0..2 {
        let leader = the_leader(&nodes).await;
        // A client on a node that does not lead, publishing through every node still up.
        let follower = (0..3).find(|&i| i != leader && nodes[i].is_some()).unwrap();
        let mut client = nodes[follower]
            .as_ref()
            .unwrap()
            .connect(7, Role::User, Some(last))
            .await;
        for i in 0..30 {
            let node = nodes.iter().flatten().nth(i % 2).unwrap();
            last = node.send(7, &format!("round {round} #{i}")).await;
        }
        let got = client.ids_through(last).await;
        assert_eq!(got.len(), 30, "round {round}: {got:?}");
        drop(client);
        // Stop the leader: another node must take over and carry on.
        let stopped = nodes[leader].take().unwrap();
        stopped.stop().await;
    }
    // The last node standing leads and publishes what is sent now.
    let survivor = the_leader(&nodes).await;
    let node = nodes[survivor].as_ref().unwrap();
    let mut client = node.connect(7, Role::User, Some(last)).await;
    let id = node.send(7, "after two leaders died").await;
    assert_eq!(client.ids_through(id).await, [id]);

    // Nothing crossed the bus twice: only one dispatcher published at any time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = bus.lock().unwrap().clone();
    assert_eq!(counts.len(), 61, "every notification was published");
    let repeats: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeats.is_empty(), "published more than once: {repeats:?}");
    drop(client);
    for node in nodes.into_iter().flatten() {
        node.stop().await;
    }
}
