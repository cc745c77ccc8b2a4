//! [`Db`], [`Tx`] and [`Read`]: the only place that matches on the engine. Everything above them
//! (the notification store, accounts, lots, bookings, the scheduler's queries) is written once
//! against [`Exec`]; everything below them is one engine's file (`sqlite.rs`, `postgres.rs`).

use std::future::Future;

use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Sqlite, Transaction};

use crate::exec::{Dialect, Exec, Row, Stmt};
use crate::{DbError, NewNotification, StoredNotification, postgres, sqlite};

/// Which engine a [`Db`] runs on (for logs and tests; code never branches on it outside this
/// module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Sqlite,
    Postgres,
}

/// The database: every query and transaction of Parkmate goes through it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    engine: Engine,
}

#[derive(Clone, Debug)]
enum Engine {
    Sqlite(sqlite::Pools),
    Postgres(postgres::Pools),
}

impl Db {
    /// Opens (and migrates) the database a URL names: `sqlite://path`, `sqlite::memory:`, or
    /// `postgres://…` / `postgresql://…`. An unknown scheme or an unreachable server is an error,
    /// never a fallback. Nodes starting together migrate once (sqlx holds a database-wide lock).
    pub async fn open(url: &str) -> Result<Db, DbError> {
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite(sqlite::Pools::open(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Engine::Postgres(postgres::Pools::open(url).await?)
        } else {
            return Err(DbError::UnsupportedUrl(crate::redact_url(url)));
        };
        Ok(Db { engine })
    }

    pub fn kind(&self) -> EngineKind {
        match self.engine {
            Engine::Sqlite(_) => EngineKind::Sqlite,
            Engine::Postgres(_) => EngineKind::Postgres,
        }
    }

    /// A write transaction. On SQLite it waits for the single write connection (writers queue
    /// in-process, so no `SQLITE_BUSY` and id order is commit order); on PostgreSQL any pooled
    /// connection. Dropped without [`Tx::commit`] it rolls back.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(Tx(match &self.engine {
            Engine::Sqlite(p) => TxInner::Sqlite(p.write.begin().await.map_err(sqlite::classify)?),
            Engine::Postgres(p) => TxInner::Postgres(p.begin().await?),
        }))
    }

    /// Stores a batch atomically on its own (the notifier's group commit); returns the rows in
    /// input order, as [`Tx::insert_notifications`] does. On SQLite a batch that fits one
    /// statement needs no `BEGIN`/`COMMIT` around it (`sqlite::store_alone`).
    pub async fn insert_batch(
        &self,
        batch: &[NewNotification],
    ) -> Result<Vec<StoredNotification>, DbError> {
        if let Engine::Sqlite(p) = &self.engine
            && let Some(stored) = sqlite::store_alone(p, batch).await
        {
            return stored;
        }
        let mut tx = self.begin().await?;
        let stored = tx.insert_notifications(batch).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// A read connection outside any transaction (SQLite: the read pool, which WAL keeps from
    /// ever waiting for the writer).
    pub async fn read(&self) -> Result<Read, DbError> {
        Ok(Read(match &self.engine {
            Engine::Sqlite(p) => {
                ReadInner::Sqlite(p.read.acquire().await.map_err(sqlite::classify)?)
            }
            Engine::Postgres(p) => ReadInner::Postgres(p.acquire().await?),
        }))
    }

    /// Whether this node leads the cluster (runs the once-per-cluster jobs), kept up to date until
    /// `stop` resolves. On SQLite there is one node, always the leader; on PostgreSQL nodes
    /// compete for a lease (see `postgres::Pools::lead`).
    pub fn leadership(
        &self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::sync::watch::Receiver<bool> {
        match &self.engine {
            Engine::Sqlite(_) => tokio::sync::watch::channel(true).1,
            Engine::Postgres(p) => {
                let (tx, rx) = tokio::sync::watch::channel(false);
                let pools = p.clone();
                tokio::spawn(async move { pools.lead(tx, stop).await });
                rx
            }
        }
    }

    /// Calls `wake` when another process may have committed notifications or bookings, until
    /// `stop`: on PostgreSQL every node's commits (`LISTEN`); on SQLite nothing, since only this
    /// process writes and its writers wake their readers themselves. The listener holds one of
    /// the pool's connections: await the handle after `stop` and before [`Db::close`], or the
    /// closing pool reads as a lost connection to it.
    pub fn on_foreign_commits(
        &self,
        wake: impl Fn() + Send + Sync + 'static,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        match &self.engine {
            Engine::Sqlite(_) => None,
            Engine::Postgres(p) => {
                let pools = p.clone();
                Some(tokio::spawn(async move {
                    pools.listen_commits(wake, stop).await
                }))
            }
        }
    }

    pub async fn close(&self) {
        match &self.engine {
            Engine::Sqlite(p) => p.close().await,
            Engine::Postgres(p) => p.close().await,
        }
    }
}

/// A write transaction on either engine. Dropped without [`commit`](Tx::commit) it rolls back.
pub struct Tx(TxInner);

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> Result<(), DbError> {
        match self.0 {
            TxInner::Sqlite(tx) => tx.commit().await.map_err(sqlite::classify),
            TxInner::Postgres(tx) => tx.commit().await.map_err(postgres::classify),
        }
    }

    /// Adds notifications to this transaction; answers the stored rows in input order (a row
    /// whose dedupe key is already stored answers the original). The only way notifications are
    /// written: it keeps id order equal to commit order. Call it **last** in a transaction: on
    /// PostgreSQL it takes the cluster-wide notification lock until the commit.
    pub async fn insert_notifications(
        &mut self,
        batch: &[NewNotification],
    ) -> Result<Vec<StoredNotification>, DbError> {
        match &mut self.0 {
            TxInner::Sqlite(tx) => sqlite::insert_notifications(tx, batch).await,
            TxInner::Postgres(tx) => postgres::insert_notifications(tx, batch).await,
        }
    }

    /// Serialises demo seeding across the nodes of a cluster until this transaction ends. On
    /// SQLite the single write connection already does.
    pub async fn lock_seeding(&mut self) -> Result<(), DbError> {
        match &mut self.0 {
            TxInner::Sqlite(_) => Ok(()),
            TxInner::Postgres(tx) => postgres::lock_seeding(tx).await,
        }
    }
}

/// A read connection on either engine.
pub struct Read(ReadInner);

enum ReadInner {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Exec for Tx {
    fn dialect(&self) -> &'static Dialect {
        match self.0 {
            TxInner::Sqlite(_) => &sqlite::DIALECT,
            TxInner::Postgres(_) => &postgres::DIALECT,
        }
    }

    async fn fetch_all<'s>(&'s mut self, stmt: Stmt<'s>) -> Result<Vec<Row>, DbError> {
        match &mut self.0 {
            TxInner::Sqlite(c) => sqlite::fetch_all(c, stmt).await,
            TxInner::Postgres(c) => postgres::fetch_all(c, stmt).await,
        }
    }

    async fn fetch_optional<'s>(&'s mut self, stmt: Stmt<'s>) -> Result<Option<Row>, DbError> {
        match &mut self.0 {
            TxInner::Sqlite(c) => sqlite::fetch_optional(c, stmt).await,
            TxInner::Postgres(c) => postgres::fetch_optional(c, stmt).await,
        }
    }

    async fn execute<'s>(&'s mut self, stmt: Stmt<'s>) -> Result<u64, DbError> {
        match &mut self.0 {
            TxInner::Sqlite(c) => sqlite::execute(c, stmt).await,
            TxInner::Postgres(c) => postgres::execute(c, stmt).await,
        }
    }
}

impl Exec for Read {
    fn dialect(&self) -> &'static Dialect {
        match self.0 {
            ReadInner::Sqlite(_) => &sqlite::DIALECT,
            ReadInner::Postgres(_) => &postgres::DIALECT,
        }
    }

    async fn fetch_all<'s>(&'s mut self, stmt: Stmt<'s>) -> Result<Vec<Row>, DbError> {
        match &mut self.0 {
            ReadInner::Sqlite(c) => sqlite::fetch_all(c, stmt).await,
            ReadInner::Postgres(c) => postgres::fetch_all(c, stmt).await,
        }
    }

    async fn fetch_optional<'s>(&'s mut self, stmt: Stmt<'s>) -> Result<Option<Row>, DbError> {
        match &mut self.0 {
            ReadInner::Sqlite(c) => sqlite::fetch_optional(c, stmt).await,
            ReadInner::Postgres(c) => postgres::fetch_optional(c, stmt).await,
        }
    }

    async fn execute<'s>(&'s mut self, stmt: Stmt<'s>) -> Result<u64, DbError> {
        match &mut self.0 {
            ReadInner::Sqlite(c) => sqlite::execute(c, stmt).await,
            ReadInner::Postgres(c) => postgres::execute(c, stmt).await,
        }
    }
}
