//! The Redis broker against the machine's real Redis (missing: a failure under `CI=true`, a loud
//! skip elsewhere): a unicast reaches only the nodes holding its user; a user whose first socket
//! arrives while its notifications are being published misses none and gets none twice; a channel
//! lingers after its user left, then goes; a user arriving while the subscription is down is heard
//! again before the sockets are told to resync. Each test uses a Redis prefix of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use parkmate_broker::redis::{Interest, LINGER, RedisBroker, user_channel};
use parkmate_broker::{Broker, BusEvent, BusSink, Published};
use parkmate_protocol::{Audience, Role};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long any one awaited condition may take.
const WAIT: Duration = Duration::from_secs(10);

/// The Redis URL when Redis answers; otherwise `None` after the shared missing-service rule.
async fn redis_or_skip() -> Option<String> {
    let url = std::env::var("PARKMATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let answered = async {
        let client = ::redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        ::redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), answered).await {
        Ok(Ok(_)) => Some(url),
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "PING timed out".into(),
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("Redis not reachable at {url} ({why}); CI=true requires it");
            }
            eprintln!("\n==========\nSKIPPED: Redis not reachable at {url} ({why})\n==========\n");
            None
        }
    }
}

fn fresh_prefix() -> String {
    format!("parkmate-broker-test-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

fn notification(id: i64, audience: Audience) -> BusEvent {
    BusEvent::Notification(Arc::new(Published {
        id,
        audience,
        frame: Bytes::from(format!("{{\"id\":{id}}}")),
    }))
}

/// A node's hub reduced to what the tests check: every event in arrival order, per-user "sockets"
/// fed like the hub feeds them, and the resyncs.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<BusEvent>>,
    /// Notification ids queued for each registered user's socket (their own and broadcasts).
    sockets: Mutex<HashMap<i64, Vec<i64>>>,
    resyncs: AtomicUsize,
    /// Run at each resync, before it is counted.
    on_resync: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl BusSink for Recorder {
    fn deliver(&self, event: &BusEvent) {
        self.events.lock().unwrap().push(event.clone());
        if let BusEvent::Notification(p) = event {
            let mut sockets = self.sockets.lock().unwrap();
            match p.audience {
                Audience::User(u) => {
                    if let Some(q) = sockets.get_mut(&u) {
                        q.push(p.id);
                    }
                }
                Audience::All => sockets.values_mut().for_each(|q| q.push(p.id)),
                Audience::Role(_) | Audience::Lot(_) => {}
            }
        }
    }

    fn resync(&self) {
        if let Some(hook) = &*self.on_resync.lock().unwrap() {
            hook();
        }
        self.resyncs.fetch_add(1, Ordering::SeqCst);
    }
}

impl Recorder {
    /// What this node heard, as (id, or -1 for a read state) in order.
    fn heard(&self) -> Vec<i64> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                BusEvent::Notification(p) => p.id,
                BusEvent::ReadState { .. } => -1,
            })
            .collect()
    }
}

struct Node {
    broker: RedisBroker,
    interest: Arc<Interest>,
    sink: Arc<Recorder>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Node {
    async fn start(url: &str, prefix: &str, linger: Duration) -> Node {
        let interest = Arc::new(Interest::with_linger(linger));
        let sink = Arc::new(Recorder::default());
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let broker = RedisBroker::connect(
            url,
            prefix,
            interest.clone(),
            sink.clone(),
            &tracker,
            shutdown.clone(),
        )
        .await
        .expect("the broker connects");
        Node {
            broker,
            interest,
            sink,
            tracker,
            shutdown,
        }
    }

    /// A socket of `user` arrives, as the hub and a socket task do it: registered first, the
    /// node's interest told, then wait until the channel is heard.
    async fn arrive(&self, user: i64) {
        self.sink.sockets.lock().unwrap().entry(user).or_default();
        self.interest.arrived(user);
        if let Some(wait) = self.interest.ready(user) {
            let _ = tokio::time::timeout(WAIT, wait)
                .await
                .expect("the channel is confirmed in time");
        }
    }

    async fn publish(&self, event: BusEvent) {
        self.broker.publish(event).await.expect("published");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(WAIT, self.tracker.wait())
            .await
            .expect("the subscriber stops");
    }
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn subscribers(url: &str, channel: &str) -> i64 {
    let client = ::redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = ::redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn a_unicast_reaches_only_the_nodes_holding_its_user_and_a_broadcast_every_node() {
    let Some(url) = redis_or_skip().await else {
        return;
    };
    let prefix = fresh_prefix();
    let a = Node::start(&url, &prefix, LINGER).await;
    let b = Node::start(&url, &prefix, LINGER).await;
    let c = Node::start(&url, &prefix, LINGER).await;
    a.arrive(1).await;
    b.arrive(2).await;
    assert_eq!(subscribers(&url, &user_channel(&prefix, 1)).await, 1);

    c.publish(notification(1, Audience::User(1))).await;
    c.publish(notification(2, Audience::User(2))).await;
    c.publish(notification(3, Audience::User(3))).await; // held nowhere
    c.publish(notification(4, Audience::Role(Role::Owner)))
        .await;
    c.publish(notification(5, Audience::All)).await;
    c.publish(BusEvent::ReadState {
        user_id: 1,
        count: 0,
        as_of: 5,
    })
    .await;
    // A last broadcast: one connection hears in publish order, so once a node has it, it has
    // everything published before that it will ever hear.
    c.publish(notification(6, Audience::All)).await;
    for n in [&a, &b, &c] {
        until("the last broadcast", || n.sink.heard().last() == Some(&6)).await;
    }
    assert_eq!(a.sink.heard(), [1, 4, 5, -1, 6]);
    assert_eq!(b.sink.heard(), [2, 4, 5, 6]);
    assert_eq!(c.sink.heard(), [4, 5, 6]);
    for n in [a, b, c] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_arriving_while_their_notifications_are_published_miss_none_and_get_none_twice() {
    let Some(url) = redis_or_skip().await else {
        return;
    };
    let prefix = fresh_prefix();
    let a = Arc::new(Node::start(&url, &prefix, LINGER).await);
    let b = Arc::new(Node::start(&url, &prefix, LINGER).await);
    const USERS: i64 = 40;
    // The store: every notification is in it before it is published (invariant 1).
    let store: Arc<Mutex<Vec<(i64, Audience)>>> = Arc::default();
    let for_user = |store: &[(i64, Audience)], user: i64| -> Vec<i64> {
        store
            .iter()
            .filter(|(_, aud)| matches!(aud, Audience::All) || *aud == Audience::User(user))
            .map(|(id, _)| *id)
            .collect()
    };
    let stored = |store: &Arc<Mutex<Vec<(i64, Audience)>>>| store.lock().unwrap().len();

    // B publishes back to back, to whichever user is about to arrive on A (and every tenth
    // notification to everyone, on the shared channel), so each user's first socket arrives in
    // the middle of a stream of its own notifications.
    let target = Arc::new(std::sync::atomic::AtomicI64::new(1));
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (b, store, target, done) = (b.clone(), store.clone(), target.clone(), done.clone());
        tokio::spawn(async move {
            let mut id = 0;
            while !done.load(Ordering::SeqCst) && id < 100_000 {
                id += 1;
                let audience = if id % 10 == 0 {
                    Audience::All
                } else {
                    Audience::User(target.load(Ordering::SeqCst))
                };
                store.lock().unwrap().push((id, audience));
                b.publish(notification(id, audience)).await;
            }
            id
        })
    };
    let mut replays = HashMap::new();
    for user in 1..=USERS {
        target.store(user, Ordering::SeqCst);
        let switched = stored(&store);
        until("notifications before the arrival", || {
            stored(&store) >= switched + 8
        })
        .await;
        a.arrive(user).await;
        // Only now the socket reads the store (a resume from `since = 0`).
        replays.insert(user, for_user(&store.lock().unwrap(), user));
        let arrived = stored(&store);
        until("notifications after the arrival", || {
            stored(&store) >= arrived + 8
        })
        .await;
    }
    done.store(true, Ordering::SeqCst);
    let last = publisher.await.unwrap();
    let fence = last + 1;
    store.lock().unwrap().push((fence, Audience::All));
    b.publish(notification(fence, Audience::All)).await;
    until("every socket has the fence", || {
        a.sink
            .sockets
            .lock()
            .unwrap()
            .values()
            .all(|q| q.last() == Some(&fence))
    })
    .await;

    // Each socket sends its replay, then live ids above the last it sent (ws.rs's seam).
    let store = store.lock().unwrap().clone();
    let sockets = a.sink.sockets.lock().unwrap().clone();
    let mut caught_live = 0;
    for user in 1..=USERS {
        let mut sent = replays[&user].clone();
        let replayed = sent.len();
        for &id in &sockets[&user] {
            if sent.last().is_none_or(|&last| id > last) {
                sent.push(id);
            }
        }
        caught_live += sent.len() - replayed;
        assert_eq!(sent, for_user(&store, user), "user {user}");
    }
    assert!(caught_live > 0);
    let a = Arc::into_inner(a).unwrap();
    let b = Arc::into_inner(b).unwrap();
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_channel_lingers_after_its_users_last_socket_then_goes() {
    let Some(url) = redis_or_skip().await else {
        return;
    };
    let prefix = fresh_prefix();
    let linger = Duration::from_millis(300);
    let a = Node::start(&url, &prefix, linger).await;
    let b = Node::start(&url, &prefix, linger).await;
    let channel = user_channel(&prefix, 5);
    a.arrive(5).await;
    assert!(a.interest.hears(5));

    // Left and back within the linger: still heard, nothing to wait for.
    a.interest.left(5);
    assert!(a.interest.hears(5));
    a.interest.arrived(5);
    assert!(a.interest.ready(5).is_none());
    assert_eq!(subscribers(&url, &channel).await, 1);

    // Left for good: the channel goes after the linger.
    let left_at = tokio::time::Instant::now();
    a.interest.left(5);
    until("the channel to go", || !a.interest.hears(5)).await;
    assert!(left_at.elapsed() >= linger);
    assert_eq!(subscribers(&url, &channel).await, 0);
    b.publish(notification(1, Audience::User(5))).await;
    b.publish(notification(2, Audience::All)).await;
    until("the broadcast", || a.sink.heard().last() == Some(&2)).await;
    assert_eq!(a.sink.heard(), [2], "a channel no longer heard");

    // Back again: subscribed again before the socket may read the store.
    a.arrive(5).await;
    assert!(a.interest.hears(5));
    b.publish(notification(3, Audience::User(5))).await;
    until("the unicast", || a.sink.heard().last() == Some(&3)).await;
    a.stop().await;
    b.stop().await;
}

/// A TCP relay to Redis that a test can cut (every connection dropped, new ones refused) and
/// restore: a Redis outage for one node only, without touching the shared Redis.
struct Relay {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    cut: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (d, c, s) = (down.clone(), cut.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let mut client = tokio::select! {
                    _ = s.cancelled() => return,
                    accepted = listener.accept() => accepted.unwrap().0,
                };
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: refused while down
                }
                let cut = c.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.cancelled() => {}
                    }
                });
            }
        });
        Relay {
            addr,
            down,
            cut,
            stop,
        }
    }

    fn cut_and_hold(&self) {
        self.down.store(true, Ordering::SeqCst);
        let old = std::mem::take(&mut *self.cut.lock().unwrap());
        old.cancel();
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut.lock().unwrap().cancel();
    }
}

#[tokio::test]
async fn a_user_arriving_while_the_subscription_is_down_is_heard_before_the_resync() {
    let Some(url) = redis_or_skip().await else {
        return;
    };
    let upstream: SocketAddr = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("a redis://ip:port URL");
    let relay = Relay::start(upstream).await;
    let prefix = fresh_prefix();
    let a = Node::start(&format!("redis://{}", relay.addr), &prefix, LINGER).await;
    let b = Node::start(&url, &prefix, LINGER).await;
    a.arrive(8).await;

    relay.cut_and_hold();
    until("node A to notice", || !a.interest.is_up()).await;
    // Arriving now: nothing to wait for (nothing is heard until the reconnection, which
    // resyncs every socket), so the socket goes ahead and reads the store.
    a.sink.sockets.lock().unwrap().entry(9).or_default();
    a.interest.arrived(9);
    assert!(a.interest.ready(9).is_none());
    // Published while A is away: pub/sub loses it, the store has it.
    b.publish(notification(1, Audience::User(9))).await;

    let heard_at_resync = Arc::new(Mutex::new(None));
    {
        let (interest, seen) = (a.interest.clone(), heard_at_resync.clone());
        *a.sink.on_resync.lock().unwrap() = Some(Box::new(move || {
            *seen.lock().unwrap() = Some((interest.hears(8), interest.hears(9)));
        }));
    }
    relay.restore();
    until("the resync", || a.sink.resyncs.load(Ordering::SeqCst) == 1).await;
    assert_eq!(
        *heard_at_resync.lock().unwrap(),
        Some((true, true)),
        "both channels were heard again before the sockets were told to catch up"
    );
    b.publish(notification(2, Audience::User(9))).await;
    b.publish(notification(3, Audience::User(8))).await;
    until("both unicasts", || a.sink.heard().ends_with(&[2, 3])).await;
    assert_eq!(a.sink.heard(), [2, 3], "nothing from while it was away");
    a.stop().await;
    b.stop().await;
}
