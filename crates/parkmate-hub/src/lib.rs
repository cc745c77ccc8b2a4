//! The hub: which sockets this node holds, and the fan-out of already-serialised frames to them.
//!
//! It knows users, roles and notification ids, nothing of bookings, stores or brokers. Every socket
//! has a bounded queue; the hub only ever `try_send`s into it, so one slow reader never slows a
//! broadcast. The policy when a queue is full is **disconnect**: the socket is removed and its
//! `slow` token cancelled, its task closes it with 4008, and the client's replay (`since`) makes
//! that lossless.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use parkmate_protocol::{Audience, Role};
use tokio_util::sync::CancellationToken;

/// What a socket's queue carries.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A notification frame, serialised once and shared by every recipient.
    Notification { id: i64, frame: Bytes },
    /// The user's unread count changed (from any device); `as_of` is the highest notification id
    /// the count accounts for.
    ReadState { count: i64, as_of: i64 },
    /// Live delivery may have missed something (the broker reconnected): catch up from the store.
    Resync,
}

/// How many deliveries one publish reached, and how many sockets it had to drop as too slow.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanOut {
    pub delivered: usize,
    pub slow: usize,
}

struct Entry {
    user_id: i64,
    role: Role,
    tx: flume::Sender<Delivery>,
    slow: CancellationToken,
}

#[derive(Default)]
struct Maps {
    conns: HashMap<u64, Entry>,
    by_user: HashMap<i64, Vec<u64>>,
}

struct Shared {
    maps: RwLock<Maps>,
    next_id: AtomicU64,
    /// Capacity of each socket's queue. Sized so a burst (a broadcast storm, a replay racing live
    /// traffic) fits, while a reader that stopped reading is found within that many frames.
    queue_capacity: usize,
}

/// Cheap to clone; all clones share one map.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

/// A socket's place in the hub. Dropping it unregisters the socket.
pub struct Subscription {
    id: u64,
    pub user_id: i64,
    pub role: Role,
    /// The socket's bounded queue (see [`Hub::new`] for its size).
    pub rx: flume::Receiver<Delivery>,
    /// Cancelled when the hub dropped this socket for a full queue.
    pub slow: CancellationToken,
    hub: Hub,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(&[self.id]);
    }
}

impl Hub {
    pub fn new(queue_capacity: usize) -> Hub {
        Hub {
            shared: Arc::new(Shared {
                maps: RwLock::new(Maps::default()),
                next_id: AtomicU64::new(1),
                queue_capacity: queue_capacity.max(1),
            }),
        }
    }

    /// Registers a socket; from now on it receives every delivery for its user, role and everyone.
    pub fn subscribe(&self, user_id: i64, role: Role) -> Subscription {
        // flume rather than tokio's mpsc: tokio allocates the queue's first block (32 slots,
        // ~1.5 KiB with its channel state) up front, which every idle socket then carries;
        // flume's queue is empty until a delivery is waiting (BENCHMARKS.md, idle memory).
        let (tx, rx) = flume::bounded(self.shared.queue_capacity);
        let slow = CancellationToken::new();
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut maps = self.shared.maps.write().unwrap_or_else(|p| p.into_inner());
            maps.conns.insert(
                id,
                Entry {
                    user_id,
                    role,
                    tx,
                    slow: slow.clone(),
                },
            );
            maps.by_user.entry(user_id).or_default().push(id);
            metrics::gauge!("parkmate_connections").set(maps.conns.len() as f64);
        }
        Subscription {
            id,
            user_id,
            role,
            rx,
            slow,
            hub: self.clone(),
        }
    }

    pub fn connection_count(&self) -> usize {
        self.shared
            .maps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .len()
    }

    /// Hands a notification frame to every local socket of its audience.
    pub fn publish_notification(&self, audience: Audience, id: i64, frame: Bytes) -> FanOut {
        let delivery = Delivery::Notification { id, frame };
        self.fan_out(
            |e| match audience {
                Audience::User(u) => e.user_id == u,
                Audience::Role(r) => e.role == r,
                Audience::All => true,
            },
            Some(audience),
            &delivery,
        )
    }

    pub fn publish_read_state(&self, user_id: i64, count: i64, as_of: i64) -> FanOut {
        self.fan_out(
            |_| true,
            Some(Audience::User(user_id)),
            &Delivery::ReadState { count, as_of },
        )
    }

    /// Tells every local socket to catch up from the store.
    pub fn resync_all(&self) -> FanOut {
        self.fan_out(|_| true, None, &Delivery::Resync)
    }

    fn fan_out(
        &self,
        wanted: impl Fn(&Entry) -> bool,
        audience: Option<Audience>,
        delivery: &Delivery,
    ) -> FanOut {
        let mut out = FanOut::default();
        let mut slow = Vec::new();
        {
            let maps = self.shared.maps.read().unwrap_or_else(|p| p.into_inner());
            let mut offer = |id: u64, e: &Entry| {
                if !wanted(e) {
                    return;
                }
                match e.tx.try_send(delivery.clone()) {
                    Ok(()) => out.delivered += 1,
                    Err(flume::TrySendError::Full(_)) => {
                        e.slow.cancel();
                        slow.push(id);
                    }
                    // The socket is closing; its Subscription drop removes it.
                    Err(flume::TrySendError::Disconnected(_)) => {}
                }
            };
            match audience {
                // A user's sockets are indexed; roles and everyone mean a walk over all sockets.
                Some(Audience::User(u)) => {
                    for id in maps.by_user.get(&u).into_iter().flatten() {
                        if let Some(e) = maps.conns.get(id) {
                            offer(*id, e);
                        }
                    }
                }
                _ => {
                    for (id, e) in &maps.conns {
                        offer(*id, e);
                    }
                }
            }
        }
        out.slow = slow.len();
        if !slow.is_empty() {
            metrics::counter!("parkmate_slow_consumer_closes_total").increment(slow.len() as u64);
            self.remove(&slow);
        }
        metrics::counter!("parkmate_deliveries_total").increment(out.delivered as u64);
        out
    }

    fn remove(&self, ids: &[u64]) {
        let mut maps = self.shared.maps.write().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            if let Some(e) = maps.conns.remove(id)
                && let Some(list) = maps.by_user.get_mut(&e.user_id)
            {
                list.retain(|x| x != id);
                if list.is_empty() {
                    maps.by_user.remove(&e.user_id);
                }
            }
        }
        metrics::gauge!("parkmate_connections").set(maps.conns.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: i64) -> Bytes {
        Bytes::from(format!("{{\"id\":{id}}}"))
    }

    #[tokio::test]
    async fn delivers_to_user_role_and_everyone() {
        let hub = Hub::new(8);
        let mut a1 = hub.subscribe(1, Role::User);
        let mut a2 = hub.subscribe(1, Role::User);
        let mut b = hub.subscribe(2, Role::Owner);

        assert_eq!(
            hub.publish_notification(Audience::User(1), 1, frame(1))
                .delivered,
            2
        );
        assert_eq!(
            hub.publish_notification(Audience::Role(Role::Owner), 2, frame(2))
                .delivered,
            1
        );
        assert_eq!(
            hub.publish_notification(Audience::All, 3, frame(3))
                .delivered,
            3
        );

        let ids = |s: &mut Subscription| {
            let mut v = vec![];
            while let Ok(Delivery::Notification { id, .. }) = s.rx.try_recv() {
                v.push(id);
            }
            v
        };
        assert_eq!(ids(&mut a1), [1, 3]);
        assert_eq!(ids(&mut a2), [1, 3]);
        assert_eq!(ids(&mut b), [2, 3]);
    }

    #[tokio::test]
    async fn a_full_queue_drops_only_that_socket() {
        let hub = Hub::new(2);
        let slow = hub.subscribe(1, Role::User);
        let fast = hub.subscribe(2, Role::User);
        for id in 1..=2 {
            hub.publish_notification(Audience::All, id, frame(id));
            fast.rx.try_recv().unwrap();
        }
        let out = hub.publish_notification(Audience::All, 3, frame(3));
        assert_eq!(
            out,
            FanOut {
                delivered: 1,
                slow: 1
            }
        );
        assert!(slow.slow.is_cancelled());
        assert!(!fast.slow.is_cancelled());
        assert_eq!(hub.connection_count(), 1);
        drop(slow);
        assert_eq!(hub.connection_count(), 1);
    }

    #[tokio::test]
    async fn dropping_a_subscription_unregisters_it() {
        let hub = Hub::new(2);
        let s = hub.subscribe(1, Role::User);
        assert_eq!(hub.connection_count(), 1);
        drop(s);
        assert_eq!(hub.connection_count(), 0);
        assert_eq!(
            hub.publish_notification(Audience::User(1), 1, frame(1))
                .delivered,
            0
        );
    }
}
