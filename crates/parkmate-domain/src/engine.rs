//! The two database engines behind one surface, so the business rules in `lib.rs` are written
//! once. `sqlite.rs` and `postgres.rs` hold every SQL statement (twins: the same functions with the
//! same signatures, differing only where the dialects do; what reads alike is written once in
//! `shared_sql.rs`); this module holds what they share and the enums that dispatch to them:
//! - [`Pools`]: where transactions begin and reads run;
//! - [`Tx`]: a write transaction, committed by [`Tx::commit`], notifications added last by
//!   [`Tx::insert_notifications`];
//! - [`Conn`]: a read connection outside any transaction.
//!
//! What SQLite gave for free with its single write connection (writers serialised, so a state read
//! inside a transaction stays true until its commit) PostgreSQL gets explicitly: a write path
//! reads the booking it changes with [`Tx::booking_for_update`] (a row lock there), the scheduler's
//! updates lock their rows in deadline order, overlaps are refused by an exclusion constraint, and
//! notification ids follow commit order through the store's advisory lock.

use chrono::{DateTime, TimeZone, Utc};
use parkmate_protocol::Role;
use parkmate_store::{Database, NewNotification, StoreError};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::model::{Booking, Lot, User};
use crate::types::{BookingStatus, BookingWindow, PaymentMethod, PaymentStatus};
use crate::{DomainError, corrupt, postgres, sqlite};

/// Active statuses, as a SQL list; the same set as `BookingStatus::holds_slot`, the SQLite trigger
/// and the PostgreSQL exclusion constraint.
pub(crate) const ACTIVE: &str = "('requested', 'confirmed')";

/// The 5-minute warning lead, in milliseconds.
pub(crate) const WARN_LEAD_MS: i64 = 5 * 60 * 1000;

/// Most rows a listing answers: the API has no paging yet, and a screen shows far fewer.
pub(crate) const MAX_LISTED: i64 = 1000;

/// The booking columns every booking query answers (both engines name them alike).
pub(crate) const BOOKING_SELECT: &str = "SELECT b.id, b.user_id, u.name AS user_name, l.id AS lot_id, l.name AS lot_name, \
        l.owner_id AS lot_owner_id, b.slot_id, s.number AS slot_number, b.start_at_ms, b.end_at_ms, \
        b.duration_minutes, b.status, b.payment_method, b.payment_status, b.amount_cents, b.car_wash_status, \
        b.decline_reason, b.created_at_ms, b.renewed_at_ms \
    FROM bookings b JOIN users u ON u.id = b.user_id JOIN slots s ON s.id = b.slot_id JOIN lots l ON l.id = s.lot_id";

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn parse_role(s: &str) -> Result<Role, DomainError> {
    s.parse()
        .map_err(|e: parkmate_protocol::ParseEnumError| corrupt(e.to_string()))
}

/// Whether an error is the database refusing an overlapping active booking (SQLite's trigger or
/// PostgreSQL's exclusion constraint). Asking both is harmless: each recognises only its own
/// driver's error, so callers need not carry the engine along.
pub(crate) fn is_slot_taken(e: &sqlx::Error) -> bool {
    sqlite::is_slot_taken(e) || postgres::is_slot_taken(e)
}

/// What booking a slot needs to know about it.
pub(crate) struct SlotInfo {
    pub price_per_hour_cents: i64,
    pub car_wash: bool,
}

/// Whose bookings a listing shows.
pub(crate) enum BookingScope {
    All,
    Driver(i64),
    Owner(i64),
    /// Car-wash jobs at the lots the employee works at.
    Employee(i64),
}

pub(crate) struct NewBookingRow<'a> {
    pub user_id: i64,
    pub slot_id: i64,
    pub window: BookingWindow,
    pub duration_minutes: u32,
    pub payment_method: PaymentMethod,
    pub payment_status: PaymentStatus,
    pub payment_ref: Option<&'a str>,
    pub amount_cents: i64,
    pub car_wash: bool,
    pub now: DateTime<Utc>,
}

pub(crate) struct Renewal<'a> {
    pub id: i64,
    pub window: BookingWindow,
    pub duration_minutes: u32,
    pub payment_method: PaymentMethod,
    pub payment_status: PaymentStatus,
    pub payment_ref: Option<&'a str>,
    pub amount_cents: i64,
    pub now: DateTime<Utc>,
}

/// The domain's handles on the store's database.
pub(crate) enum Pools {
    Sqlite {
        /// The store's single-connection write pool: every transaction of the domain begins
        /// here, so writers queue in-process (no `SQLITE_BUSY`) and notification ids follow
        /// commit order.
        writer: SqlitePool,
        reader: SqlitePool,
    },
    /// The store's pool (10 connections per node, see `parkmate_store::postgres`): writers run
    /// concurrently across the cluster, so the write paths lock what they read (module docs).
    Postgres(PgPool),
}

impl Pools {
    pub(crate) fn of(db: &Database) -> Pools {
        match db {
            Database::Sqlite(store) => Pools::Sqlite {
                writer: store.writer().clone(),
                reader: store.reader().clone(),
            },
            Database::Postgres(store) => Pools::Postgres(store.pool().clone()),
        }
    }

    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pools::Sqlite { writer, .. } => Tx::Sqlite(writer.begin().await?),
            Pools::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    pub(crate) async fn read(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Pools::Sqlite { reader, .. } => Conn::Sqlite(reader.acquire().await?),
            Pools::Postgres(pool) => Conn::Postgres(pool.acquire().await?),
        })
    }
}

/// Applies the domain's migrations (1001 and up) next to the store's (0001 and up, not in these
/// directories, hence `ignore_missing`).
pub(crate) async fn migrate(db: &Database) -> Result<(), sqlx::migrate::MigrateError> {
    match db {
        Database::Sqlite(store) => {
            let mut migrator = sqlx::migrate!("./migrations/sqlite");
            migrator.set_ignore_missing(true);
            migrator.run(store.writer()).await
        }
        Database::Postgres(store) => {
            let mut migrator = sqlx::migrate!("./migrations/postgres");
            migrator.set_ignore_missing(true);
            // sqlx holds a database-wide advisory lock while migrating: nodes starting together
            // migrate once.
            migrator.run(store.pool()).await
        }
    }
}

/// A write transaction on either engine. Dropped without [`commit`](Tx::commit) it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    /// Adds notifications to this transaction through the store's own insert (the only way in
    /// that keeps id order = commit order). Call it last: on PostgreSQL it takes the cluster-wide
    /// notification lock until the commit.
    pub(crate) async fn insert_notifications(
        &mut self,
        notes: &[NewNotification],
    ) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => parkmate_store::sqlite::insert_notifications(tx, notes).await?,
            Tx::Postgres(tx) => parkmate_store::postgres::insert_notifications(tx, notes).await?,
        };
        Ok(())
    }

    /// Serialises demo seeding across the nodes of a cluster until this transaction ends. On
    /// SQLite the single write connection already does.
    pub(crate) async fn lock_seeding(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(_) => Ok(()),
            Tx::Postgres(tx) => postgres::lock_seeding(tx).await,
        }
    }
}

/// A read connection on either engine.
pub(crate) enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// Stamps one method per query on [`Tx`] and on [`Conn`] (the same body for both: their variants
/// share names), each calling the function of the same name in `sqlite.rs` or `postgres.rs`. The
/// twins must keep identical signatures; the compiler holds them to it.
macro_rules! queries {
    (@on $on:ident $( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        impl $on {
            $(
                $(#[$doc])*
                #[allow(dead_code)]
                pub(crate) async fn $name(&mut self, $($arg: $ty),*) -> $ret {
                    match self {
                        Self::Sqlite(c) => sqlite::$name(c, $($arg),*).await,
                        Self::Postgres(c) => postgres::$name(c, $($arg),*).await,
                    }
                }
            )*
        }
    };
    ($($fns:tt)*) => {
        queries!(@on Tx $($fns)*);
        queries!(@on Conn $($fns)*);
    };
}

queries! {
    fn insert_user(name: &str, email: &str, hash: &str, role: Role, now: DateTime<Utc>) -> Result<i64, sqlx::Error>;
    fn user(id: i64) -> Result<Option<User>, DomainError>;
    /// The user and their password hash, for login.
    fn user_by_email(email: &str) -> Result<Option<(User, String)>, DomainError>;
    fn users(role: Option<Role>) -> Result<Vec<User>, DomainError>;
    fn count_users() -> Result<i64, sqlx::Error>;
    fn insert_lot(owner_id: i64, name: &str, price_per_hour_cents: i64, slots: &[(i64, bool)]) -> Result<i64, sqlx::Error>;
    /// Adds an employee to a lot; `false` when they already worked there.
    fn insert_lot_employee(lot_id: i64, user_id: i64, now: DateTime<Utc>) -> Result<bool, sqlx::Error>;
    fn works_at(user_id: i64, lot_id: i64) -> Result<bool, sqlx::Error>;
    /// Lots with their owner, employees and slots; `owner` filters to one owner's lots.
    fn lots(only_id: Option<i64>, owner: Option<i64>, now: DateTime<Utc>) -> Result<Vec<Lot>, DomainError>;
    fn slot_info(slot_id: i64) -> Result<Option<SlotInfo>, DomainError>;
    fn booking(id: i64) -> Result<Option<Booking>, DomainError>;
    /// The booking a write path is about to change, locked until the transaction ends (on
    /// PostgreSQL; SQLite's single writer already excludes every other writer).
    fn booking_for_update(id: i64) -> Result<Option<Booking>, DomainError>;
    fn bookings(scope: BookingScope) -> Result<Vec<Booking>, DomainError>;
    /// Inserts a `requested` booking; the database refuses an overlap (see [`is_slot_taken`]).
    fn insert_booking(b: NewBookingRow<'_>) -> Result<i64, sqlx::Error>;
    /// Whether an active booking other than `except` holds `slot_id` during `window`.
    fn slot_busy(slot_id: i64, window: BookingWindow, except: Option<i64>) -> Result<bool, sqlx::Error>;
    /// The driver's own active booking of this slot made since `since` with this duration.
    fn recent_same_booking(user_id: i64, slot_id: i64, duration_minutes: u32, since: DateTime<Utc>) -> Result<Option<i64>, sqlx::Error>;
    /// Moves a booking from `from` to `to`; `false` when it was not in `from`.
    fn transition(id: i64, from: BookingStatus, to: BookingStatus, decline_reason: Option<&str>) -> Result<bool, sqlx::Error>;
    fn mark_cash_paid(id: i64) -> Result<bool, sqlx::Error>;
    fn mark_car_wash_done(id: i64) -> Result<bool, sqlx::Error>;
    /// `expired` → `confirmed` with a new window; `false` when no longer expired.
    fn renew(r: Renewal<'_>) -> Result<bool, sqlx::Error>;
    /// Expires up to `limit` active bookings whose window has ended; answers their ids.
    fn expire_due(now: DateTime<Utc>, limit: i64) -> Result<Vec<i64>, sqlx::Error>;
    /// Records the 5-minute warning for up to `limit` bookings; answers their ids.
    fn warn_due(now: DateTime<Utc>, limit: i64) -> Result<Vec<i64>, sqlx::Error>;
    /// The earliest pending deadline: a warning not yet sent, or an end.
    fn next_deadline() -> Result<Option<DateTime<Utc>>, sqlx::Error>;
}
