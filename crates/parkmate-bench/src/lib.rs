//! `parkmate-bench`: the load generator of Parkmate Notify. See `BENCHMARKS.md` for how to run it
//! and what it measured.
//!
//! - [`worker`]: one process (or test task) holding up to ~18k client sockets, which its reader
//!   thread (`reader`) upgrades and reads in one epoll loop, with the little of RFC 6455 it needs
//!   (`wire`);
//! - [`fleet`]: the coordinator's handles on its workers (JSON lines over stdin/stdout);
//! - [`publish`]: the HTTP publisher, stamping each notification with its send time;
//! - [`server`]: the server under test (RSS, health, or a `parkmate serve` we spawn);
//! - [`scenario`]: idle, unicast, broadcast, reconnect, throughput and cluster runs;
//! - [`pusher`]: the Pusher protocol, to run the same scenarios against a peer server (Sockudo);
//! - [`floor`]: the kernel's own cost of a broadcast on this machine (raw writes, no server).
//!
//! Loopback only: every target and source address must be in 127.0.0.0/8 or be ::1. Every wait is
//! bounded by the run's deadline.

pub mod fleet;
pub mod floor;
pub mod proto;
pub mod publish;
pub mod pusher;
mod reader;
pub mod scenario;
pub mod server;
mod wire;
pub mod worker;

use std::net::{IpAddr, SocketAddr};

/// Refuses anything that is not a loopback address: this tool floods what it points at.
pub fn check_loopback(ip: IpAddr) -> anyhow::Result<()> {
    if ip.is_loopback() {
        Ok(())
    } else {
        anyhow::bail!(
            "{ip} is not a loopback address: parkmate-bench only drives 127.0.0.0/8 or ::1"
        )
    }
}

pub fn check_loopback_all(targets: &[SocketAddr], sources: &[IpAddr]) -> anyhow::Result<()> {
    if targets.is_empty() {
        anyhow::bail!("no target server");
    }
    for t in targets {
        check_loopback(t.ip())?;
    }
    for s in sources {
        check_loopback(*s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_accepted() {
        assert!(check_loopback("127.0.0.1".parse().unwrap()).is_ok());
        assert!(check_loopback("127.0.0.9".parse().unwrap()).is_ok());
        assert!(check_loopback("::1".parse().unwrap()).is_ok());
        assert!(check_loopback("10.0.0.1".parse().unwrap()).is_err());
        assert!(check_loopback("0.0.0.0".parse().unwrap()).is_err());
        assert!(check_loopback("192.168.1.1".parse().unwrap()).is_err());
        assert!(check_loopback_all(&[], &[]).is_err());
    }
}
