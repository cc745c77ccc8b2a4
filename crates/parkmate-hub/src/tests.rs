//! The hub's unit tests: registration, audiences, queues and their overflow policy.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::*;

fn frame(id: i64) -> Bytes {
    Bytes::from(format!("{{\"id\":{id}}}"))
}

/// Every notification id queued for `s`, in order, leaving other deliveries out.
fn ids(s: &Subscription) -> Vec<i64> {
    let mut v = vec![];
    while let Some(d) = s.try_recv() {
        if let Delivery::Notification { id, .. } = d {
            v.push(id);
        }
    }
    v
}

/// The shards' own view: sockets by slot, and indexes that agree with them.
fn check_indexes(hub: &Hub) -> usize {
    let mut total = 0;
    for shard in 0..SHARDS {
        let s = hub.read(shard);
        let occupied = s.slots.iter().flatten().count();
        assert_eq!(occupied + s.free.len(), s.slots.len(), "shard {shard}");
        assert_eq!(s.by_role.iter().map(Vec::len).sum::<usize>(), occupied);
        for (r, list) in s.by_role.iter().enumerate() {
            for (pos, &slot) in list.iter().enumerate() {
                let e = s.entry(slot);
                assert_eq!((role_index(e.role), e.role_pos as usize), (r, pos));
            }
        }
        let mut listed = 0;
        for (&user, &head) in &s.by_user {
            assert_eq!(shard_of(user), shard);
            let (mut prev, mut slot) = (NIL, head);
            while slot != NIL {
                let e = s.entry(slot);
                assert_eq!((e.user_id, e.prev), (user, prev));
                (prev, slot) = (slot, e.next);
                listed += 1;
            }
        }
        assert_eq!(listed, occupied, "every socket is in its user's list");
        total += occupied;
    }
    assert_eq!(total, hub.connection_count());
    total
}

#[tokio::test]
async fn unicast_role_and_broadcast_reach_exactly_their_sockets_across_shards() {
    let hub = Hub::new(8);
    // 256 users over every shard and role; every fifth user has a second socket.
    let mut subs = Vec::new();
    for user in 1..=256i64 {
        let role = Role::ALL[user as usize % ROLES];
        subs.push(hub.subscribe(user, role));
        if user % 5 == 0 {
            subs.push(hub.subscribe(user, role));
        }
    }
    let shards: BTreeSet<usize> = (1..=256).map(shard_of).collect();
    assert_eq!(shards.len(), SHARDS, "the users cover every shard");
    assert_eq!(check_indexes(&hub), subs.len());

    for user in 1..=256i64 {
        let out = hub.publish_notification(Audience::User(user), 1000 + user, frame(user));
        let sockets = if user % 5 == 0 { 2 } else { 1 };
        assert_eq!(
            out,
            FanOut {
                delivered: sockets,
                slow: 0
            },
            "user {user}"
        );
    }
    for role in Role::ALL {
        let id = 2000 + role_index(role) as i64;
        let out = hub.publish_notification(Audience::Role(role), id, frame(id));
        let of_role = subs.iter().filter(|s| s.role == role).count();
        assert_eq!(out.delivered, of_role);
    }
    let out = hub.publish_notification(Audience::All, 3000, frame(3000));
    assert_eq!(out.delivered, subs.len());
    // A user with no socket here: nobody hears it.
    assert_eq!(
        hub.publish_notification(Audience::User(999), 1, frame(1))
            .delivered,
        0
    );

    for s in &subs {
        let want = [1000 + s.user_id, 2000 + role_index(s.role) as i64, 3000];
        assert_eq!(ids(s), want, "user {}", s.user_id);
    }

    hub.publish_read_state(10, 4, 3000);
    for s in &subs {
        let got = s.try_recv();
        if s.user_id == 10 {
            assert!(matches!(
                got,
                Some(Delivery::ReadState {
                    count: 4,
                    as_of: 3000
                })
            ));
        } else {
            assert!(
                got.is_none(),
                "user {} heard user 10's read state",
                s.user_id
            );
        }
    }
}

#[tokio::test]
async fn a_full_queue_drops_exactly_that_socket() {
    let hub = Hub::new(2);
    let subs: Vec<_> = (1..=100).map(|u| hub.subscribe(u, Role::User)).collect();
    let stuck = 37;
    for id in 1..=2 {
        assert_eq!(
            hub.publish_notification(Audience::All, id, frame(id))
                .delivered,
            100
        );
        for s in subs.iter().filter(|s| s.user_id != stuck) {
            assert_eq!(ids(s), [id]);
        }
    }
    let out = hub.publish_notification(Audience::Role(Role::User), 3, frame(3));
    assert_eq!(
        out,
        FanOut {
            delivered: 99,
            slow: 1
        }
    );
    for s in &subs {
        assert_eq!(s.is_dropped(), s.user_id == stuck, "user {}", s.user_id);
    }
    assert_eq!(hub.connection_count(), 99);
    check_indexes(&hub);

    // The dropped socket keeps what was queued, then hears that it is closed.
    let slow = &subs[stuck as usize - 1];
    assert!(matches!(
        slow.recv().await,
        Some(Delivery::Notification { id: 1, .. })
    ));
    assert!(matches!(
        slow.recv().await,
        Some(Delivery::Notification { id: 2, .. })
    ));
    assert!(slow.recv().await.is_none());
    // Later deliveries no longer try it.
    assert_eq!(
        hub.publish_notification(Audience::User(stuck), 4, frame(4))
            .delivered,
        0
    );
    drop(subs);
    assert_eq!(hub.connection_count(), 0);
    check_indexes(&hub);
}

#[tokio::test]
async fn a_socket_dropped_as_slow_never_unregisters_the_one_that_reused_its_slot() {
    let hub = Hub::new(1);
    let old = hub.subscribe(1, Role::User);
    hub.publish_notification(Audience::User(1), 1, frame(1));
    assert_eq!(
        hub.publish_notification(Audience::User(1), 2, frame(2))
            .slow,
        1
    );
    let new = hub.subscribe(1, Role::User);
    assert_eq!(new.slot, old.slot, "the freed slot is reused");
    drop(old);
    assert_eq!(hub.connection_count(), 1);
    assert_eq!(
        hub.publish_notification(Audience::User(1), 3, frame(3))
            .delivered,
        1
    );
    assert_eq!(ids(&new), [3]);
}

#[tokio::test]
async fn dropping_subscriptions_unregisters_them_and_keeps_the_rest() {
    let hub = Hub::new(8);
    let a = hub.subscribe(1, Role::User);
    let b = hub.subscribe(1, Role::User);
    let c = hub.subscribe(1, Role::Owner);
    assert_eq!(hub.connection_count(), 3);
    drop(b); // the middle of user 1's list
    assert_eq!(hub.connection_count(), 2);
    check_indexes(&hub);
    assert_eq!(
        hub.publish_notification(Audience::User(1), 1, frame(1))
            .delivered,
        2
    );
    assert_eq!((ids(&a), ids(&c)), (vec![1], vec![1]));
    drop(c); // the head
    drop(a);
    assert_eq!(hub.connection_count(), 0);
    check_indexes(&hub);
    assert_eq!(
        hub.publish_notification(Audience::User(1), 2, frame(2))
            .delivered,
        0
    );
    assert_eq!(
        hub.publish_notification(Audience::All, 3, frame(3))
            .delivered,
        0
    );
}

/// Records what a hub tells its presence; `ready` waits while `hold` is set.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(&'static str, i64)>>,
    hold: Mutex<Option<oneshot::Sender<()>>>,
    held: std::sync::atomic::AtomicBool,
}

impl Presence for Recorder {
    fn arrived(&self, user_id: i64) {
        self.events.lock().unwrap().push(("arrived", user_id));
    }
    fn left(&self, user_id: i64) {
        self.events.lock().unwrap().push(("left", user_id));
    }
    fn ready(&self, _user_id: i64) -> Option<oneshot::Receiver<()>> {
        if !self.held.load(Ordering::SeqCst) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        *self.hold.lock().unwrap() = Some(tx);
        Some(rx)
    }
}

#[tokio::test]
async fn presence_hears_each_users_first_arrival_and_last_departure() {
    let presence = Arc::new(Recorder::default());
    let hub = Hub::with_presence(1, presence.clone());
    let a1 = hub.subscribe(1, Role::User);
    let a2 = hub.subscribe(1, Role::User);
    let b = hub.subscribe(2, Role::Owner);
    drop(a1);
    drop(a2);
    // Dropped as too slow counts as leaving, and its later drop changes nothing.
    hub.publish_notification(Audience::User(2), 1, frame(1));
    hub.publish_notification(Audience::User(2), 2, frame(2));
    drop(b);
    let events = presence.events.lock().unwrap().clone();
    assert_eq!(
        events,
        [("arrived", 1), ("arrived", 2), ("left", 1), ("left", 2)]
    );
}

#[tokio::test]
async fn ready_waits_for_the_presence_and_is_immediate_without_one() {
    Hub::new(1).subscribe(1, Role::User).ready().await;

    let presence = Arc::new(Recorder::default());
    presence.held.store(true, Ordering::SeqCst);
    let hub = Hub::with_presence(1, presence.clone());
    let sub = hub.subscribe(1, Role::User);
    let waiting = tokio::spawn(async move { sub.ready().await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "ready before the presence said so");
    let tx = presence.hold.lock().unwrap().take().expect("a waiter");
    tx.send(()).unwrap();
    waiting.await.unwrap();

    // A dropped sender lets the socket go ahead too.
    let sub = hub.subscribe(2, Role::User);
    let waiting = tokio::spawn(async move { sub.ready().await });
    while presence.hold.lock().unwrap().is_none() {
        tokio::task::yield_now().await;
    }
    drop(presence.hold.lock().unwrap().take());
    waiting.await.unwrap();
}

/// Asserts that what `s` heard from each publisher (ids `p * 1_000_000 + k`) is in order.
fn assert_in_publish_order(s: &Subscription) {
    let got = ids(s);
    for p in 0..2 {
        let mine: Vec<_> = got.iter().filter(|&&id| id / 1_000_000 == p).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
    }
}

#[test]
fn concurrent_subscribers_and_publishers_keep_every_index_consistent() {
    let presence = Arc::new(Recorder::default());
    let hub = Hub::with_presence(4096, presence.clone());
    const USERS: i64 = 40;
    let survivors: Vec<Subscription> = std::thread::scope(|scope| {
        // Two publishers, each with ids of its own, in increasing order.
        for p in 0..2i64 {
            let hub = hub.clone();
            scope.spawn(move || {
                for k in 0..400 {
                    let id = p * 1_000_000 + k;
                    let audience = match k % 3 {
                        0 => Audience::All,
                        1 => Audience::Role(Role::ALL[k as usize % ROLES]),
                        _ => Audience::User(k % USERS),
                    };
                    hub.publish_notification(audience, id, frame(id));
                }
            });
        }
        // Four threads churning sockets of the same 40 users while that goes on.
        let churners: Vec<_> = (0..4usize)
            .map(|t| {
                let hub = hub.clone();
                scope.spawn(move || {
                    let mut held = std::collections::VecDeque::new();
                    for i in 0..2000usize {
                        let user = ((t * 7 + i) as i64) % USERS;
                        held.push_back(hub.subscribe(user, Role::ALL[(t + i) % ROLES]));
                        if held.len() > 50 {
                            assert_in_publish_order(&held.pop_front().unwrap());
                        }
                    }
                    held
                })
            })
            .collect();
        churners
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    assert_eq!(survivors.len(), 4 * 50);
    assert_eq!(check_indexes(&hub), survivors.len());
    survivors.iter().for_each(assert_in_publish_order);
    drop(survivors);
    assert_eq!(check_indexes(&hub), 0);
    // Per user, arrivals and departures alternate, starting with an arrival.
    let events = presence.events.lock().unwrap().clone();
    for user in 0..USERS {
        let mine: Vec<_> = events.iter().filter(|e| e.1 == user).map(|e| e.0).collect();
        assert!(!mine.is_empty());
        assert!(
            mine.chunks(2).all(|c| c == ["arrived", "left"]),
            "user {user}: {mine:?}"
        );
    }
}
