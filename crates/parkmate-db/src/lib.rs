//! Every SQL statement and transaction of Parkmate Notify, on one of two engines: SQLite (the
//! embedded default: one file, nothing to install) or PostgreSQL (a cluster of nodes on one
//! database), picked from the URL's scheme by [`Db::open`].
//!
//! How it is cut:
//! - [`Db`], [`Tx`] and [`Read`] (`db.rs`) are the only code that matches on the engine.
//! - The SQL is written once, by topic, as plain functions over [`Exec`] (`exec.rs` says why
//!   that small trait and not sqlx's generics): [`notifications`] (the store: insert, replay,
//!   inbox, read state, the outbox cursor — as methods of [`Db`]), [`accounts`], [`lots`],
//!   [`bookings`] (with their windows, and the scheduler's queries), [`payments`] (the ledger of
//!   gateway calls that makes every charge end booked or refunded), [`push`] (Web Push's
//!   subscriptions and delivery funnel).
//! - `sqlite.rs` and `postgres.rs` hold only what truly differs: opening and migrating, error
//!   classification, row locks ([`exec::Dialect`]), inserting notifications (row by row on the
//!   single SQLite writer; one `UNNEST` under an advisory lock on PostgreSQL), and the cluster's
//!   machinery (the leader lease, `LISTEN`/`NOTIFY` commit wake-ups, the seeding lock).
//! - Each engine has one `migrations/` directory: `0001` the notification store, `1001` the
//!   booking domain, `1002` its money (payments, booking windows, the `lapsed` status), `1003`
//!   the lot-staff notification audience (which reads the domain's `lot_employees`), `1005` Web
//!   Push ([`push`]: subscriptions, the delivery funnel and what still owes a push, preferences).
//!
//! Invariants every caller relies on (ARCHITECTURE.md has the whole list):
//! - **id order is commit order**: a reader that has seen notification id N has seen every
//!   committed id below N (notifications are written only by [`Tx::insert_notifications`]);
//! - **a state change and its notifications commit together**: callers write both in one [`Tx`],
//!   notifications last, then wake the outbox ([`OutboxSignal`]);
//! - **no two active bookings overlap on a slot**, enforced by the database ([`DbError::SlotTaken`]).

pub mod accounts;
pub mod bookings;
mod db;
mod error;
pub mod exec;
pub mod lots;
mod model;
pub mod notifications;
mod outbox;
pub mod payments;
mod postgres;
pub mod push;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use db::{Db, EngineKind, Read, Tx};
pub use error::{DbError, redact_url};
pub use exec::Exec;
pub use model::*;
pub use notifications::{MAX_PAGE, PageBudget, ReplayPage};
pub use outbox::OutboxSignal;
pub use push::{
    DeliveryStatus, EventPreference, OwedPush, PushRecord, PushSubscriptionRow, QuietHours,
    SubscriptionSaved,
};
/// The driver error inside [`DbError`] variants, for callers that build one (tests).
pub use sqlx::Error as SqlxError;

pub(crate) use notifications::from_millis;
