//! The hub: which sockets this node holds, and the fan-out of already-serialised frames to them.
//!
//! It knows users, roles and notification ids, nothing of bookings, stores or brokers. Every socket
//! has a bounded queue; the hub only ever `try_send`s into it, so one slow reader never slows a
//! broadcast. The policy when a queue is full is **disconnect**: the socket is removed, which
//! drops the queue's sending half ([`Subscription::is_dropped`] turns true, [`Subscription::recv`]
//! ends once the queue is drained), its task closes it with 4008, and the client's replay
//! (`since`) makes that lossless. The queue itself is `queue.rs`: waiting on it allocates nothing.
//!
//! The map is split into [`SHARDS`] shards by user id, each behind its own lock (centrifuge's
//! `hub.go` does the same), and each shard indexes its sockets by user and by role:
//! - a user's notification or read state takes one shard's read lock and touches that user's
//!   sockets only;
//! - a role notification visits, shard after shard, only the sockets of that role;
//! - a broadcast visits every shard one after the other, never holding more than one lock, so a
//!   socket arriving or leaving waits for one shard's part of a broadcast, not all of it.
//!
//! Both indexes are positions in the shard's slot array (the user's sockets are a list threaded
//! through their slots), so registering a socket allocates nothing beyond its queue's handles:
//! idle sockets stay cheap (BENCHMARKS.md, idle memory).
//!
//! A [`Presence`] (optional) is told when this node's first socket of a user arrives and its last
//! one leaves, and says when a new socket may read the store: a cluster's broker uses it to route
//! a user's events only to the nodes holding that user (see `parkmate_broker::redis`).

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use parkmate_protocol::{Audience, Role};
use tokio::sync::oneshot;

mod queue;
use queue::TrySendError;

/// Shards of the socket map, a power of two. 64 as in centrifuge: with a few threads contention
/// is already rare at that count, and 64 empty shards cost a few KiB per hub.
pub const SHARDS: usize = 64;
const _: () = assert!(SHARDS.is_power_of_two());

/// Roles a socket can have; `by_role` has one list each (see [`role_index`]).
const ROLES: usize = Role::ALL.len();

/// End of a user's list of slots.
const NIL: u32 = u32::MAX;

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

/// Told which users this node holds sockets of. The hub calls `arrived` and `left` while it holds
/// the lock of the user's shard, so the calls for one user are never reordered; they must be
/// quick, must not block, and must not call back into the hub.
pub trait Presence: Send + Sync + 'static {
    /// The node's first socket of `user_id` just registered.
    fn arrived(&self, user_id: i64);
    /// The node's last socket of `user_id` just left.
    fn left(&self, user_id: i64);
    /// `None` when every event for `user_id` published from now on reaches this node's hub;
    /// otherwise a receiver that completes (or whose sender is dropped) once that holds, or once
    /// waiting can no longer help (the sockets are then told to [`Delivery::Resync`] later).
    fn ready(&self, user_id: i64) -> Option<oneshot::Receiver<()>>;
}

/// A socket in its shard.
struct Entry {
    /// Unique for the hub's life. Slots are reused, and a `Subscription` dropped after the hub
    /// already removed it (too slow) must not remove the socket that took its slot since.
    id: u64,
    user_id: i64,
    /// The sending half of the socket's bounded queue (capacity: [`Hub::new`]); the only one,
    /// so removing the entry is what tells the socket it was dropped.
    tx: queue::Sender<Delivery>,
    role: Role,
    /// Where this slot sits in its shard's `by_role[role]`, which stays dense (swap-remove).
    role_pos: u32,
    /// The user's other sockets in this shard, as a doubly linked list of slots (`NIL` ends).
    prev: u32,
    next: u32,
}

/// One shard: its sockets and their two indexes.
#[derive(Default)]
struct Shard {
    /// Sockets by slot; `None` slots are listed in `free` and reused first. Never shrinks: it
    /// holds the shard's peak, 48 bytes a slot.
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// The first slot of every user with a socket in this shard.
    by_user: HashMap<i64, u32>,
    /// The slots of every role's sockets.
    by_role: [Vec<u32>; ROLES],
}

fn role_index(role: Role) -> usize {
    // A match rather than a position in `Role::ALL`: a new role fails to compile here.
    match role {
        Role::User => 0,
        Role::Owner => 1,
        Role::Admin => 2,
        Role::Employee => 3,
    }
}

/// The shard of a user: Fibonacci hashing, so sequential ids (and strided ones) spread evenly.
fn shard_of(user_id: i64) -> usize {
    let bits = SHARDS.trailing_zeros();
    ((user_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

/// Which sockets of a shard a fan-out is for.
#[derive(Clone, Copy)]
enum Pick {
    User(i64),
    Role(Role),
    All,
}

impl Shard {
    fn entry(&self, slot: u32) -> &Entry {
        self.slots[slot as usize]
            .as_ref()
            .expect("indexes list occupied slots only")
    }

    fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        self.slots[slot as usize]
            .as_mut()
            .expect("indexes list occupied slots only")
    }

    /// Stores a socket; true when it is its user's first in this shard (so on this node).
    fn insert(&mut self, mut e: Entry) -> (u32, bool) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).expect("fewer than 4 billion sockets")
            }
        };
        let roles = &mut self.by_role[role_index(e.role)];
        e.role_pos = roles.len() as u32;
        roles.push(slot);
        e.prev = NIL;
        let first = match self.by_user.entry(e.user_id) {
            MapEntry::Occupied(mut head) => {
                e.next = *head.get();
                head.insert(slot);
                false
            }
            MapEntry::Vacant(v) => {
                e.next = NIL;
                v.insert(slot);
                true
            }
        };
        if e.next != NIL {
            self.entry_mut(e.next).prev = slot;
        }
        self.slots[slot as usize] = Some(e);
        (slot, first)
    }

    /// Removes socket `id` from `slot` if it is still there: its user, and whether it was that
    /// user's last socket in this shard (so on this node); `None` when it was gone already.
    fn remove(&mut self, slot: u32, id: u64) -> Option<(i64, bool)> {
        let cell = self.slots.get_mut(slot as usize)?;
        if cell.as_ref()?.id != id {
            return None;
        }
        let e = cell.take()?;
        let roles = &mut self.by_role[role_index(e.role)];
        roles.swap_remove(e.role_pos as usize);
        if let Some(&moved) = roles.get(e.role_pos as usize) {
            self.entry_mut(moved).role_pos = e.role_pos;
        }
        let mut last = false;
        if e.prev != NIL {
            self.entry_mut(e.prev).next = e.next;
        } else if e.next != NIL {
            self.by_user.insert(e.user_id, e.next);
        } else {
            self.by_user.remove(&e.user_id);
            last = true;
        }
        if e.next != NIL {
            self.entry_mut(e.next).prev = e.prev;
        }
        self.free.push(slot);
        Some((e.user_id, last))
    }

    /// Offers `delivery` to the picked sockets; full queues go to `slow` as (slot, id).
    fn fan_out(
        &self,
        pick: Pick,
        delivery: &Delivery,
        out: &mut FanOut,
        slow: &mut Vec<(u32, u64)>,
    ) {
        let mut offer = |slot: u32| {
            let e = self.entry(slot);
            match e.tx.try_send(delivery.clone()) {
                Ok(()) => out.delivered += 1,
                // Removed right after this shard's pass, which drops `tx`.
                Err(TrySendError::Full(_)) => slow.push((slot, e.id)),
                // The socket is closing; its Subscription's drop removes it.
                Err(TrySendError::Disconnected(_)) => {}
            }
        };
        match pick {
            Pick::User(user_id) => {
                let mut slot = self.by_user.get(&user_id).copied().unwrap_or(NIL);
                while slot != NIL {
                    offer(slot);
                    slot = self.entry(slot).next;
                }
            }
            Pick::Role(role) => self.by_role[role_index(role)]
                .iter()
                .for_each(|&slot| offer(slot)),
            Pick::All => self.by_role.iter().flatten().for_each(|&slot| offer(slot)),
        }
    }
}

struct Shared {
    /// One lock per shard; nothing ever holds two at once.
    shards: Box<[RwLock<Shard>]>,
    next_id: AtomicU64,
    /// Sockets registered, over all shards (`connection_count`, without visiting the shards).
    count: AtomicUsize,
    /// Capacity of each socket's queue. Sized so a burst (a broadcast storm, a replay racing live
    /// traffic) fits, while a reader that stopped reading is found within that many frames.
    queue_capacity: usize,
    presence: Option<Arc<dyn Presence>>,
}

/// Cheap to clone; all clones share one map.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

/// A socket's place in the hub. Dropping it unregisters the socket.
pub struct Subscription {
    id: u64,
    /// The socket's slot in its user's shard.
    slot: u32,
    pub user_id: i64,
    pub role: Role,
    /// The socket's bounded queue (see [`Hub::new`] for its size); read it with [`recv`] and
    /// [`try_recv`].
    ///
    /// [`recv`]: Subscription::recv
    /// [`try_recv`]: Subscription::try_recv
    rx: queue::Receiver<Delivery>,
    hub: Hub,
}

impl Subscription {
    /// The next delivery, waiting for one; `None` once the hub has dropped this socket (it was
    /// too slow) and the queue is drained. Cancel-safe: dropping the future loses nothing.
    pub fn recv(&self) -> Recv<'_> {
        Recv(&self.rx)
    }

    /// The next delivery if one is queued.
    pub fn try_recv(&self) -> Option<Delivery> {
        self.rx.try_recv()
    }

    /// Whether the hub dropped this socket because its queue was full. An atomic load, where a
    /// cancellation token per socket cost an allocation and a mutex on every wake-up (both
    /// showed in the idle-memory and broadcast profiles). Only the hub removes an entry, and a
    /// subscription keeps the hub alive, so a dropped sending half means exactly that.
    pub fn is_dropped(&self) -> bool {
        self.rx.is_disconnected()
    }

    /// Resolves once every event for this socket's user published from now on is sure to reach
    /// this socket: at once on a single node; in a cluster once the node's broker subscription
    /// for the user is confirmed (or Redis is unreachable, and the socket will be told to resync
    /// when it is back). A socket reads the store only after this, so whatever was published
    /// before is in that read and whatever is published after is in its queue
    /// (ARCHITECTURE.md, invariant 3).
    pub async fn ready(&self) {
        let presence = self.hub.shared.presence.as_ref();
        if let Some(wait) = presence.and_then(|p| p.ready(self.user_id)) {
            // A dropped sender also means "go ahead" (see `Presence::ready`).
            let _ = wait.await;
        }
    }
}

/// The future of [`Subscription::recv`]: a reference to the queue, nothing more, so waiting
/// adds nothing to an idle socket's task (an `async fn`'s state machine would).
pub struct Recv<'a>(&'a queue::Receiver<Delivery>);

impl Future for Recv<'_> {
    type Output = Option<Delivery>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.0.poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.user_id, &[(self.slot, self.id)]);
    }
}

impl Hub {
    /// A hub for a single node: every event reaches it, so sockets never wait.
    pub fn new(queue_capacity: usize) -> Hub {
        Hub::build(queue_capacity, None)
    }

    /// A hub that tells `presence` which users it holds (a cluster node's broker).
    pub fn with_presence(queue_capacity: usize, presence: Arc<dyn Presence>) -> Hub {
        Hub::build(queue_capacity, Some(presence))
    }

    fn build(queue_capacity: usize, presence: Option<Arc<dyn Presence>>) -> Hub {
        Hub {
            shared: Arc::new(Shared {
                shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
                next_id: AtomicU64::new(1),
                count: AtomicUsize::new(0),
                queue_capacity: queue_capacity.max(1),
                presence,
            }),
        }
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        self.shared.shards[shard]
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shared.shards[shard]
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a socket; from now on it receives every delivery for its user, role and everyone
    /// that reaches this node (see [`Subscription::ready`] for when that is everything).
    pub fn subscribe(&self, user_id: i64, role: Role) -> Subscription {
        // Empty until a delivery is waiting (see `queue` for why not tokio's mpsc or flume).
        let (tx, rx) = queue::bounded(self.shared.queue_capacity);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            id,
            user_id,
            tx,
            role,
            role_pos: 0,
            prev: NIL,
            next: NIL,
        };
        let slot = {
            let mut shard = self.write(shard_of(user_id));
            let (slot, first) = shard.insert(entry);
            if first && let Some(p) = &self.shared.presence {
                p.arrived(user_id);
            }
            slot
        };
        self.shared.count.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("parkmate_connections").increment(1.0);
        Subscription {
            id,
            slot,
            user_id,
            role,
            rx,
            hub: self.clone(),
        }
    }

    pub fn connection_count(&self) -> usize {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// Hands a notification frame to every local socket of its audience.
    ///
    /// A lot's staff is not an audience the hub can resolve (membership lives in the store and
    /// changes with assignments): the notifier's dispatcher publishes such a notification to each
    /// member's user stream instead, so it never arrives here as [`Audience::Lot`]. If one did,
    /// it reaches nobody live; the store still replays it to the lot's staff.
    pub fn publish_notification(&self, audience: Audience, id: i64, frame: Bytes) -> FanOut {
        let delivery = Delivery::Notification { id, frame };
        let pick = match audience {
            Audience::User(u) => Pick::User(u),
            Audience::Role(r) => Pick::Role(r),
            Audience::All => Pick::All,
            Audience::Lot(lot) => {
                tracing::warn!(lot, id, "a lot audience reached the hub unresolved");
                return FanOut::default();
            }
        };
        self.fan_out(pick, &delivery)
    }

    pub fn publish_read_state(&self, user_id: i64, count: i64, as_of: i64) -> FanOut {
        self.fan_out(Pick::User(user_id), &Delivery::ReadState { count, as_of })
    }

    /// Tells every local socket to catch up from the store.
    pub fn resync_all(&self) -> FanOut {
        self.fan_out(Pick::All, &Delivery::Resync)
    }

    fn fan_out(&self, pick: Pick, delivery: &Delivery) -> FanOut {
        let mut out = FanOut::default();
        let mut slow = Vec::new();
        let mut visit = |shard: usize| {
            self.read(shard)
                .fan_out(pick, delivery, &mut out, &mut slow);
            // Removed shard by shard, under that shard's write lock only.
            if !slow.is_empty() {
                out.slow += slow.len();
                self.remove_in(shard, &slow);
                slow.clear();
            }
        };
        match pick {
            Pick::User(u) => visit(shard_of(u)),
            Pick::Role(_) | Pick::All => (0..SHARDS).for_each(visit),
        }
        if out.slow > 0 {
            metrics::counter!("parkmate_slow_consumer_closes_total").increment(out.slow as u64);
        }
        metrics::counter!("parkmate_deliveries_total").increment(out.delivered as u64);
        out
    }

    fn remove(&self, user_id: i64, sockets: &[(u32, u64)]) {
        self.remove_in(shard_of(user_id), sockets);
    }

    /// Removes `(slot, id)` sockets of one shard, skipping those already gone.
    fn remove_in(&self, shard: usize, sockets: &[(u32, u64)]) {
        let mut removed = 0;
        {
            let mut s = self.write(shard);
            for &(slot, id) in sockets {
                let Some((user_id, last)) = s.remove(slot, id) else {
                    continue;
                };
                removed += 1;
                if last && let Some(p) = &self.shared.presence {
                    p.left(user_id);
                }
            }
        }
        if removed > 0 {
            self.shared.count.fetch_sub(removed, Ordering::Relaxed);
            metrics::gauge!("parkmate_connections").decrement(removed as f64);
        }
    }
}

#[cfg(test)]
mod tests;
