//! [`Interest`]: the users this node holds, and whether Redis confirmed their channels.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::LINGER;

/// Which users this node holds sockets of, and whether Redis has confirmed that the node hears
/// their channels. The hub feeds it (through a `parkmate_hub::Presence`, see the server's
/// start-up); the broker's subscriber task acts on it. Every method takes one short lock and never
/// waits on Redis, so the hub may call them under its own locks.
pub struct Interest {
    table: Mutex<Table>,
    /// Wakes the subscriber task when `pending` gained a user.
    pub(super) wake: Notify,
    /// How long a channel outlives its user's last socket here ([`LINGER`] but in tests).
    pub(super) linger: Duration,
}

impl Default for Interest {
    fn default() -> Self {
        Interest::with_linger(LINGER)
    }
}

#[derive(Default)]
struct Table {
    users: HashMap<i64, UserChannel>,
    /// Users whose channel the subscriber should subscribe to. May list a user twice, or one that
    /// left or got subscribed meanwhile: [`Interest::take_pending`] checks each.
    pending: Vec<i64>,
    /// Sockets waiting in [`Interest::ready`] for their user's channel; empty once they are heard.
    waiters: HashMap<i64, Vec<oneshot::Sender<()>>>,
    /// The subscriber's connection is up, and every channel marked subscribed really is.
    up: bool,
    /// User channels subscribed now (the `parkmate_bus_user_channels` gauge).
    subscribed: usize,
}

struct UserChannel {
    /// `None` while this node holds a socket of the user; since when it holds none otherwise.
    idle_since: Option<Instant>,
    state: ChannelState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChannelState {
    Unsubscribed,
    /// A `SUBSCRIBE` is on its way; Redis has not confirmed it yet.
    Subscribing,
    Subscribed,
    /// An `UNSUBSCRIBE` is on its way; messages may still arrive.
    Unsubscribing,
}

impl Table {
    /// Users to subscribe now, marked as on their way. Users that left before their turn are
    /// forgotten; users listed twice, or already on their way, are skipped.
    fn take_pending(&mut self) -> Vec<i64> {
        let Table { users, pending, .. } = self;
        let mut batch = Vec::new();
        for user_id in pending.drain(..) {
            match users.get_mut(&user_id) {
                Some(u) if u.state == ChannelState::Unsubscribed && u.idle_since.is_none() => {
                    u.state = ChannelState::Subscribing;
                    batch.push(user_id);
                }
                Some(u) if u.state == ChannelState::Unsubscribed => {
                    users.remove(&user_id);
                }
                _ => {}
            }
        }
        batch
    }
}

impl Interest {
    /// A table whose channels linger `linger` after their user's last socket left (tests use a
    /// short one; nodes use [`LINGER`] through `default()`).
    pub fn with_linger(linger: Duration) -> Interest {
        Interest {
            table: Mutex::default(),
            wake: Notify::new(),
            linger,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's first socket of `user_id` arrived: hear the user's channel.
    pub fn arrived(&self, user_id: i64) {
        let mut t = self.lock();
        let user = t.users.entry(user_id).or_insert(UserChannel {
            idle_since: None,
            state: ChannelState::Unsubscribed,
        });
        user.idle_since = None;
        if user.state == ChannelState::Unsubscribed {
            t.pending.push(user_id);
            drop(t);
            self.wake.notify_one();
        }
    }

    /// The node's last socket of `user_id` left: its channel lingers, then goes.
    pub fn left(&self, user_id: i64) {
        if let Some(user) = self.lock().users.get_mut(&user_id) {
            user.idle_since = Some(Instant::now());
        }
    }

    /// `None` when every event for `user_id` published from now on reaches this node (its channel
    /// is confirmed, or the connection is down and a resync follows the reconnection); otherwise
    /// a receiver that completes once that holds (its sender is dropped instead if the connection
    /// is lost meanwhile or the broker stops: go ahead then too).
    pub fn ready(&self, user_id: i64) -> Option<oneshot::Receiver<()>> {
        let mut t = self.lock();
        if !t.up {
            return None;
        }
        match t.users.get(&user_id) {
            Some(user) if user.state != ChannelState::Subscribed => {}
            // Subscribed, or never announced (nothing to wait for).
            _ => return None,
        }
        let (tx, rx) = oneshot::channel();
        t.waiters.entry(user_id).or_default().push(tx);
        Some(rx)
    }

    /// Whether the subscriber's connection is up (and every channel it counts as heard is).
    pub fn is_up(&self) -> bool {
        self.lock().up
    }

    /// Whether Redis has confirmed this node hears `user_id`'s channel.
    pub fn hears(&self, user_id: i64) -> bool {
        let t = self.lock();
        t.up && t
            .users
            .get(&user_id)
            .is_some_and(|u| u.state == ChannelState::Subscribed)
    }

    /// Users to subscribe now, marked as on their way.
    pub(super) fn take_pending(&self) -> Vec<i64> {
        self.lock().take_pending()
    }

    /// Like [`take_pending`](Self::take_pending), but when nothing is left it marks the connection
    /// up, under the same lock: a user arriving after that waits for its own subscription, and
    /// one arriving before is in this batch or in the next.
    pub(super) fn take_pending_or_mark_up(&self) -> Vec<i64> {
        let mut t = self.lock();
        let batch = t.take_pending();
        if batch.is_empty() {
            t.up = true;
        }
        batch
    }

    /// Redis confirmed these users' channels: their waiting sockets may read the store.
    pub(super) fn confirmed(&self, batch: &[i64]) {
        let mut t = self.lock();
        for user_id in batch {
            if let Some(u) = t.users.get_mut(user_id)
                && u.state == ChannelState::Subscribing
            {
                u.state = ChannelState::Subscribed;
                t.subscribed += 1;
            }
            for waiter in t.waiters.remove(user_id).into_iter().flatten() {
                let _ = waiter.send(());
            }
        }
        metrics::gauge!("parkmate_bus_user_channels").set(t.subscribed as f64);
    }

    /// Channels whose user left at least `linger` before `now`, marked as on their way out.
    pub(super) fn take_lingering(&self, now: Instant) -> Vec<i64> {
        let linger = self.linger;
        let mut t = self.lock();
        let mut batch = Vec::new();
        for (&user_id, u) in t.users.iter_mut() {
            if u.state == ChannelState::Subscribed
                && u.idle_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= linger)
            {
                u.state = ChannelState::Unsubscribing;
                batch.push(user_id);
            }
        }
        batch
    }

    /// Redis confirmed these channels are no longer heard. A user who came back meanwhile is
    /// subscribed again.
    pub(super) fn unsubscribed(&self, batch: &[i64]) {
        let mut t = self.lock();
        let mut again = false;
        for &user_id in batch {
            match t.users.get_mut(&user_id) {
                Some(u) if u.idle_since.is_none() => {
                    u.state = ChannelState::Unsubscribed;
                    t.pending.push(user_id);
                    again = true;
                }
                Some(_) => {
                    t.users.remove(&user_id);
                }
                None => continue,
            }
            t.subscribed -= 1;
        }
        metrics::gauge!("parkmate_bus_user_channels").set(t.subscribed as f64);
        drop(t);
        if again {
            self.wake.notify_one();
        }
    }

    /// The subscriber's connection is gone (or the broker stops): nothing is heard any more. Every
    /// user still held is to be subscribed again, and waiting sockets go ahead (the reconnection
    /// resyncs them).
    pub(super) fn lost(&self) {
        let mut t = self.lock();
        t.up = false;
        t.subscribed = 0;
        t.users.retain(|_, u| u.idle_since.is_none());
        t.pending = t.users.keys().copied().collect();
        for u in t.users.values_mut() {
            u.state = ChannelState::Unsubscribed;
        }
        t.waiters.clear();
        metrics::gauge!("parkmate_bus_user_channels").set(0.0);
    }
}
