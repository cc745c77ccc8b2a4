//! Several nodes sharing one PostgreSQL database and one Redis, as deployed behind a load
//! balancer: cross-node delivery, a Redis restart while publishing, clients hopping between
//! nodes with `since` while two nodes publish at once, and the booking API on every node with its
//! timers firing once per cluster. Uses the real PostgreSQL and Redis of the
//! machine (missing: a failure under `CI=true`, a loud skip elsewhere).
//!
//! Over 500 lines on purpose: each cluster scenario needs its nodes, PostgreSQL and Redis set up
//! the same way; keeping them together keeps that set-up in one place.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Client, Cluster, TestApp, WAIT};
use parkmate_protocol::{Role, Viewer};
use parkmate_server::config::ClockKind;
use serde_json::json;

/// One replay page holding every notification a test stores.
const EVERYTHING: parkmate_db::PageBudget = parkmate_db::PageBudget {
    rows: 1000,
    bytes: u32::MAX,
};

#[tokio::test]
async fn a_client_on_one_node_receives_what_another_node_publishes() {
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

/// A redis-server of this test's own, on a free port, so stopping it disturbs no other test (the
/// machine's Redis is shared by every test of this binary and by other runs). Killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// `None` when there is no `redis-server` binary (a loud skip, a failure under `CI=true`).
    async fn start() -> Option<PrivateRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = PrivateRedis { port, child: None };
        if let Err(e) = redis.launch() {
            parkmate_db::test_support::service_missing("redis-server", "PATH", &e);
            return None;
        }
        redis.wait_until(true).await;
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits (bounded) until the server answers, or until it no longer does.
    async fn wait_until(&self, up: bool) {
        let addr = format!("127.0.0.1:{}", self.port);
        tokio::time::timeout(WAIT, async {
            while tokio::net::TcpStream::connect(&addr).await.is_ok() != up {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "redis-server never became {}",
                if up { "ready" } else { "unreachable" }
            )
        });
    }
}

/// Waits (bounded) until the store holds a notification with id `id` or above.
async fn stored_at_least(node: &TestApp, id: i64) {
    tokio::time::timeout(WAIT, async {
        while node.state.store.max_id().await.unwrap() < id {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the publisher keeps storing");
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn nodes_ride_out_a_redis_restart_while_publishing_and_clients_lose_nothing() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let Some(cluster) = Cluster::with_redis(redis.url()).await else {
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
    // Publishing is underway, then Redis goes down while 30 more notifications are stored (the
    // store takes them; pub/sub cannot).
    stored_at_least(&a, 20).await;
    redis.kill();
    redis.wait_until(false).await;
    let down_at = a.state.store.max_id().await.unwrap();
    stored_at_least(&a, down_at + 30).await;
    redis.launch().expect("redis-server starts again");
    redis.wait_until(true).await;
    tokio::time::timeout(Duration::from_secs(30), publisher)
        .await
        .expect("publishing finishes")
        .unwrap();

    // Every socket stayed open and ends with exactly the store's sequence.
    a.wait_for_connections(2).await;
    b.wait_for_connections(3).await;
    for (user, role, client) in &mut clients {
        let expected = a.stored_ids(*user, *role).await;
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
                    let expected = nodes[0].stored_ids(user, Role::User).await;
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
        assert_eq!(seen, nodes[0].stored_ids(user, Role::User).await);
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

/// Counts, per notification id, how often it crossed the cluster's Redis channels (the shared
/// one and every user's).
async fn spy_on_the_bus(
    cluster: &Cluster,
) -> Arc<std::sync::Mutex<std::collections::BTreeMap<i64, usize>>> {
    use futures_util::StreamExt;
    let client = redis::Client::open(cluster.redis_url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .psubscribe(format!("{}:*", cluster.prefix))
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

    // Nothing crossed the bus twice: only one dispatcher published at any time. The spy hears
    // the bus in publish order, so once it has the last id it has heard everything before it.
    tokio::time::timeout(WAIT, async {
        while !bus.lock().unwrap().contains_key(&id) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the spy hears the last notification");
    let counts = bus.lock().unwrap().clone();
    assert_eq!(counts.len(), 61, "every notification was published");
    let repeats: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeats.is_empty(), "published more than once: {repeats:?}");
    drop(client);
    for node in nodes.into_iter().flatten() {
        node.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The booking API on a cluster: every node serves it on the one PostgreSQL database.

/// Three nodes with demo data started at the same moment on one empty database: the seed must
/// happen once, and no start may fail on it.
async fn three_demo_nodes(cluster: &Cluster, clock: ClockKind) -> Vec<Option<TestApp>> {
    let configure = move |raw: &mut parkmate_server::Settings| {
        raw.booking.demo_data = Some(true);
        raw.clock = clock;
    };
    let (a, b, c) = tokio::join!(
        cluster.spawn_node_with(configure),
        cluster.spawn_node_with(configure),
        cluster.spawn_node_with(configure),
    );
    vec![Some(a), Some(b), Some(c)]
}

/// Olga's lot's slot with this number, as `node` lists it.
async fn olga_slot(node: &TestApp, olga: &str, number: i64) -> (i64, i64) {
    let (status, body) = node
        .call("GET", "/api/lots?mine=true", Some(olga), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let lot = &body["items"][0];
    let slot = lot["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["number"] == number)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    (lot["id"].as_i64().unwrap(), slot)
}

/// How many notifications of `event` the store holds for `user`.
async fn stored(node: &TestApp, user: i64, role: Role, event: &str) -> usize {
    node.state
        .store
        .replay(
            Viewer {
                user_id: user,
                role,
            },
            0,
            EVERYTHING,
        )
        .await
        .unwrap()
        .notifications
        .iter()
        .filter(|n| n.event == event)
        .count()
}

#[tokio::test]
async fn a_booking_action_on_one_node_notifies_sockets_on_another() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let nodes = three_demo_nodes(&cluster, ClockKind::System).await;
    let (a, b) = (nodes[0].as_ref().unwrap(), nodes[1].as_ref().unwrap());
    // Each demo user exists once, whichever node seeded: every node signs them in alike.
    let (dana, _, dana_token) = a.login("dana", "driver-demo-123").await;
    let (olga, _, olga_token) = b.login("olga", "owner-demo-123").await;
    let (_, _, admin_token) = b.login("admin", "admin-demo-123").await;
    // Seeded once although three nodes started together on an empty database: two lots in all,
    // and every node lists the same demo accounts (a node that lost a seeding race would list none).
    let (status, lots) = a.call("GET", "/api/lots", Some(&dana_token), None).await;
    assert_eq!(status, 200, "{lots}");
    assert_eq!(lots["items"].as_array().map(Vec::len), Some(2), "{lots}");
    let (_, accounts) = a.call("GET", "/api/auth/demo-accounts", None, None).await;
    assert_eq!(
        accounts["accounts"].as_array().map(Vec::len),
        Some(6),
        "{accounts}"
    );
    for node in [b, nodes[2].as_ref().unwrap()] {
        assert_eq!(
            node.call("GET", "/api/auth/demo-accounts", None, None)
                .await
                .1,
            accounts
        );
    }
    let mut dana_on_b = b.connect(dana, Role::User, None).await;
    let mut olga_on_b = b.connect(olga, Role::Owner, None).await;

    // Dana books through node A: Olga, on node B, hears of it (event 8).
    let (lot, slot) = olga_slot(a, &olga_token, 3).await;
    let (status, booking) = a.call("POST",
        "/api/bookings",
        Some(&dana_token),
        Some(json!({"slot_id": slot, "duration_minutes": 60, "car_wash": false, "payment_method": "cash"})),
    )
    .await;
    assert_eq!(status, 201, "{booking}");
    let n = olga_on_b.next_notification().await;
    assert_eq!(
        (n.event.as_str(), n.message.clone()),
        (
            "booking_created",
            format!("New booking received for Lot #{lot}")
        )
    );
    assert_eq!(n.data["booking_id"], booking["id"]);

    // The admin declines it through node A: Dana, on node B, hears of it (event 6), once.
    let (status, body) = a
        .call(
            "POST",
            &format!("/api/bookings/{}/decline", booking["id"]),
            Some(&admin_token),
            Some(json!({"reason": "maintenance"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let n = dana_on_b.next_notification().await;
    assert_eq!(
        (n.event.as_str(), n.message.as_str()),
        ("booking_declined", "Admin declined your booking request")
    );
    assert_eq!(n.data["booking_id"], booking["id"]);
    // Olga, the lot's owner, hears of the change on her dashboard's stream (no event of the ten).
    let n = olga_on_b.next_notification().await;
    assert_eq!(n.event, "lot_activity");
    assert_eq!(n.data["booking_id"], booking["id"]);
    assert_eq!(n.data["status"], "declined");
    dana_on_b
        .assert_no_notification(Duration::from_millis(300))
        .await;
    olga_on_b
        .assert_no_notification(Duration::from_millis(10))
        .await;

    drop((dana_on_b, olga_on_b));
    for node in nodes.into_iter().flatten() {
        node.stop().await;
    }
}

#[tokio::test]
async fn booking_timers_fire_once_on_the_leader_and_carry_on_when_it_stops() {
    let Some(cluster) = Cluster::new().await else {
        return;
    };
    let mut nodes = three_demo_nodes(&cluster, ClockKind::Manual).await;
    let leader = the_leader(&nodes).await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let node = |i: usize| nodes[i].as_ref().unwrap();
    let (dana, _, dana_token) = node(followers[0]).login("dana", "driver-demo-123").await;
    let (_, _, olga_token) = node(followers[1]).login("olga", "owner-demo-123").await;
    // Dana listens on a follower, the one that will still be up at the end.
    let mut dana_socket = node(followers[0]).connect(dana, Role::User, None).await;

    // A 60-minute booking, made through the other follower.
    let (_, slot) = olga_slot(node(followers[1]), &olga_token, 4).await;
    let (status, booking) = node(followers[1]).call("POST",
        "/api/bookings",
        Some(&dana_token),
        Some(json!({"slot_id": slot, "duration_minutes": 60, "car_wash": false, "payment_method": "cash"})),
    )
    .await;
    assert_eq!(status, 201, "{booking}");
    // Approved (through the leader): a request nobody approves lapses after the hold, long
    // before its warning.
    let (_, _, admin_token) = node(leader).login("admin", "admin-demo-123").await;
    let (status, body) = node(leader)
        .call(
            "POST",
            &format!("/api/bookings/{}/approve", booking["id"]),
            Some(&admin_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // 56 minutes later on every node: the warning fires once, on the leader (the followers only
    // move their clocks; the leader's advance answers once the warning is stored).
    for &i in followers.iter().chain([&leader]) {
        node(i).advance(Duration::from_secs(56 * 60)).await;
    }
    let n = dana_socket.next_notification().await;
    assert_eq!(
        (n.event.as_str(), n.message.as_str()),
        ("booking_expiring", "Your booking will expire in 5 minutes!")
    );
    assert_eq!(n.data["booking_id"], booking["id"]);
    assert_eq!(
        stored(node(leader), dana, Role::User, "booking_expiring").await,
        1
    );

    // The followers' clocks pass the end; the leader's does not. Followers run no timers, so
    // nothing expires yet.
    for &i in &followers {
        node(i).advance(Duration::from_secs(5 * 60)).await;
    }
    dana_socket
        .assert_no_notification(Duration::from_millis(500))
        .await;
    assert_eq!(
        stored(node(leader), dana, Role::User, "booking_expired").await,
        0
    );

    // The leader stops. A follower takes the lead and its scheduler's first pass fires the expiry
    // that fell due by its clock, once.
    nodes[leader].take().unwrap().stop().await;
    let n = dana_socket.next_notification().await;
    assert_eq!(
        (n.event.as_str(), n.message.as_str()),
        ("booking_expired", "Your booking for Slot #4 expired")
    );
    assert_eq!(n.data["booking_id"], booking["id"]);
    let new_leader = the_leader(&nodes).await;
    assert_ne!(new_leader, leader);
    dana_socket
        .assert_no_notification(Duration::from_millis(500))
        .await;
    let survivor = nodes[new_leader].as_ref().unwrap();
    assert_eq!(
        stored(survivor, dana, Role::User, "booking_expiring").await,
        1
    );
    assert_eq!(
        stored(survivor, dana, Role::User, "booking_expired").await,
        1
    );
    // The booking is expired for every node.
    let (status, body) = survivor
        .call(
            "GET",
            &format!("/api/bookings/{}", booking["id"]),
            Some(&dana_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "expired");

    drop(dana_socket);
    for node in nodes.into_iter().flatten() {
        node.stop().await;
    }
}
