//! The server's integration tests, one binary (one link instead of ten), one module per topic.
//! Every test spawns the real application on `127.0.0.1:0` (`common::TestApp`, which owns the
//! helpers every module uses: sockets, publishing, HTTP calls, signing in, moving the test clock)
//! and talks to it over real sockets; the cluster modules add PostgreSQL, Redis and nginx.

mod common;

mod api;
mod channels;
mod cluster;
mod crash;
mod delivery;
mod events;
mod handshake;
mod nginx;
mod ops;
mod process;
mod push;
mod replay;
mod rolling;
mod security;
mod tls;
