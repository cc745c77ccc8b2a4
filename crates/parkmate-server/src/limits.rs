//! The node's own limits at the edge (the booking API's login limits live with it, in
//! `parkmate-booking-http`): handshakes per client address, publishes per API key, and the socket
//! caps per user and per address ([`SocketCounts`]), each a setting (`docs/security.md`).
//!
//! The caps are counts, not rates: a [`SocketTicket`] is taken at the handshake and given back
//! when the socket's task ends, like the node-wide slot of `ws.max_connections`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parkmate_auth::{ApiError, KeyedLimit, SingleLimit};

use crate::config::Settings;

/// What a client over a socket cap is told to wait: sockets close at their owners' pace, so this
/// is a polite guess, long enough that a loop does not hammer the node.
pub const CAP_RETRY_AFTER: Duration = Duration::from_secs(10);

pub struct EdgeLimits {
    /// `limits.handshakes_per_ip`.
    pub handshakes_per_ip: KeyedLimit<IpAddr>,
    /// `limits.publish`: one bucket, there is one API key.
    pub publish: SingleLimit,
    pub sockets: Arc<SocketCounts>,
}

impl EdgeLimits {
    pub fn new(settings: &Settings) -> EdgeLimits {
        EdgeLimits {
            handshakes_per_ip: KeyedLimit::new(
                settings.limits.handshakes_per_ip.rate(),
                "socket handshakes from this address",
            ),
            publish: SingleLimit::new(settings.limits.publish.rate(), "publishes for this key"),
            sockets: Arc::new(SocketCounts::new(
                settings.ws.max_connections_per_user.get(),
                settings.ws.max_connections_per_ip.get(),
            )),
        }
    }
}

/// Open sockets per user and per client address, against their caps. One lock for both maps, so
/// a handshake checks and takes both at once; it is held for two map operations, never across
/// an `.await`.
pub struct SocketCounts {
    per_user: usize,
    per_ip: usize,
    /// Only keys with at least one socket are present, so the maps hold what is open now.
    open: Mutex<(HashMap<i64, usize>, HashMap<IpAddr, usize>)>,
}

/// One socket's place in [`SocketCounts`]; dropping it gives the place back.
pub struct SocketTicket {
    counts: Arc<SocketCounts>,
    user: i64,
    ip: IpAddr,
}

impl SocketCounts {
    pub fn new(per_user: usize, per_ip: usize) -> SocketCounts {
        SocketCounts {
            per_user,
            per_ip,
            open: Mutex::new((HashMap::new(), HashMap::new())),
        }
    }

    /// A place for one more socket of `user` from `ip` (a [`parkmate_auth::ClientIp::bucket`]),
    /// or 429 `connection_limit` naming the cap that is full.
    pub fn admit(self: &Arc<Self>, user: i64, ip: IpAddr) -> Result<SocketTicket, ApiError> {
        let mut open = self.open.lock().expect("socket counts are never poisoned");
        let (users, ips) = &mut *open;
        let full = |what: String| ApiError::too_many("connection_limit", what, CAP_RETRY_AFTER);
        if users.get(&user).copied().unwrap_or(0) >= self.per_user {
            return Err(full(format!(
                "this user already has {} sockets open on this node",
                self.per_user
            )));
        }
        if ips.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            return Err(full(format!(
                "this address already has {} sockets open on this node",
                self.per_ip
            )));
        }
        *users.entry(user).or_default() += 1;
        *ips.entry(ip).or_default() += 1;
        Ok(SocketTicket {
            counts: self.clone(),
            user,
            ip,
        })
    }

    /// Sockets open for `user` now.
    pub fn of_user(&self, user: i64) -> usize {
        let open = self.open.lock().expect("socket counts are never poisoned");
        open.0.get(&user).copied().unwrap_or(0)
    }
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let Entry::Occupied(mut e) = map.entry(key) {
        *e.get_mut() -= 1;
        if *e.get() == 0 {
            e.remove();
        }
    }
}

impl Drop for SocketTicket {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .expect("socket counts are never poisoned");
        let (users, ips) = &mut *open;
        release(users, self.user);
        release(ips, self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_user_and_per_address_and_tickets_give_places_back() {
        let counts = Arc::new(SocketCounts::new(2, 3));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t1 = counts.admit(1, a).unwrap();
        let _t2 = counts.admit(1, b).unwrap();
        let e = counts.admit(1, a).err().unwrap();
        assert_eq!((e.status.as_u16(), e.code), (429, "connection_limit"));
        assert!(e.message.contains("user"), "{}", e.message);
        assert_eq!(e.retry_after, Some(CAP_RETRY_AFTER));
        let _t3 = counts.admit(2, a).unwrap();
        let _t4 = counts.admit(3, a).unwrap();
        let e = counts.admit(4, a).err().unwrap();
        assert!(e.message.contains("address"), "{}", e.message);
        drop(t1);
        assert_eq!(counts.of_user(1), 1);
        counts.admit(4, a).unwrap();
        let open = counts.open.lock().unwrap();
        assert!(!open.0.contains_key(&4) && open.1[&a] == 2, "{open:?}");
    }
}
