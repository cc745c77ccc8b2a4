//! The Parkmate Notify server: the edge where HTTP and WebSockets meet the hub, the store and the
//! notifier. `startup` wires it together; `main.rs` only calls [`cli::main`].

mod accounts;
pub mod api;
pub mod cli;
pub mod config;
pub mod drain;
pub mod error;
pub mod limits;
pub mod openapi;
pub mod push;
pub mod serve;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod web;
pub mod ws;

pub use config::Settings;
pub use startup::Application;
