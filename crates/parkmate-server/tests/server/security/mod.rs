//! Issue 12, "production-safe": every hole an attacker or an outage finds first, each shown
//! closed over real sockets (raw TCP where the point is what a well-behaved client would never
//! send). One module per point; `docs/security.md` lists the limits these tests hold.

mod budgets;
mod caps;
mod frames;
mod hashing;
mod production;
mod rates;
mod raw;
mod slowloris;
mod tokens;
mod wire;
