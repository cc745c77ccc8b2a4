//! The embedded engine: one SQLite file (WAL), so `parkmate serve` runs with nothing installed.
//! Only what SQLite does differently lives here; the SQL itself is in the topic modules.
//!
//! Writes go through a pool of exactly one connection: SQLite allows one writer at a time anyway,
//! and queuing writers in-process (instead of letting them race for the file lock) means no
//! `SQLITE_BUSY` for callers, id order equal to commit order, and a row read inside a write
//! transaction stays as read until its commit (so no row locks are needed: [`DIALECT`]). Reads
//! use a separate pool and, thanks to WAL, never wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use crate::exec::{Arg, Dialect, Row, Stmt};
use crate::{DbError, NewNotification, StoredNotification, from_millis, notifications};

/// Readers in the pool: enough for replay and inbox queries of a busy node on a 2-core machine.
const READ_CONNECTIONS: u32 = 4;
/// How long a writer waits in line for the single write connection before failing.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// The single writer excludes every other writer until its commit: nothing to lock.
pub(crate) const DIALECT: Dialect = Dialect {
    lock_booking: "",
    lock_rows: "",
};

#[derive(Clone, Debug)]
pub(crate) struct Pools {
    pub(crate) read: SqlitePool,
    /// Exactly one connection: see the module docs.
    pub(crate) write: SqlitePool,
}

impl Pools {
    pub(crate) async fn open(url: &str) -> Result<Pools, DbError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| DbError::UnsupportedUrl(crate::redact_url(url)))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode is durable against process crashes; only an OS crash can lose
            // the last commits. That is the trade every embedded server makes for write speed.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let in_memory = url.contains(":memory:");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(WRITE_QUEUE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(classify)?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        // An in-memory database exists per connection: readers must share the writer's.
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .connect_with(options.read_only(true))
                .await
                .map_err(classify)?
        };
        Ok(Pools { read, write })
    }

    pub(crate) async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// SQLite's driver errors in our terms: the overlap trigger's `RAISE(ABORT, 'slot_taken')`, a
/// unique constraint, or what every engine shares.
pub(crate) fn classify(e: sqlx::Error) -> DbError {
    if let sqlx::Error::Database(db) = &e {
        if db.message().contains("slot_taken") {
            return DbError::SlotTaken;
        }
        if db.is_unique_violation() {
            return DbError::Duplicate;
        }
    }
    DbError::from_driver(e)
}

fn query<'q>(
    sql: &'q str,
    args: Vec<Arg<'q>>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    let mut q = sqlx::query(sql);
    for arg in args {
        q = match arg {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
        };
    }
    q
}

pub(crate) async fn fetch_all(
    conn: &mut SqliteConnection,
    stmt: Stmt<'_>,
) -> Result<Vec<Row>, DbError> {
    let rows = query(&stmt.sql, stmt.args)
        .fetch_all(conn)
        .await
        .map_err(classify)?;
    Ok(rows.into_iter().map(Row::Sqlite).collect())
}

pub(crate) async fn fetch_optional(
    conn: &mut SqliteConnection,
    stmt: Stmt<'_>,
) -> Result<Option<Row>, DbError> {
    let row = query(&stmt.sql, stmt.args)
        .fetch_optional(conn)
        .await
        .map_err(classify)?;
    Ok(row.map(Row::Sqlite))
}

pub(crate) async fn execute(conn: &mut SqliteConnection, stmt: Stmt<'_>) -> Result<u64, DbError> {
    let done = query(&stmt.sql, stmt.args)
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(done.rows_affected())
}

/// Inserts notifications inside the caller's transaction on the single write connection, one
/// statement per row (in-process, so a round trip costs microseconds; PostgreSQL batches them into
/// one `UNNEST` instead). Ids follow commit order because writers are serialised. A row whose
/// dedupe key is already stored answers the original row.
pub(crate) async fn insert_notifications(
    conn: &mut SqliteConnection,
    batch: &[NewNotification],
) -> Result<Vec<StoredNotification>, DbError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut stored = Vec::with_capacity(batch.len());
    for n in batch {
        let a = notifications::audience_columns(n.audience);
        let inserted = fetch_optional(
            &mut *conn,
            Stmt::new(
                "INSERT INTO notifications \
                 (audience_kind, user_id, role, level, event, message, data, created_at_ms, dedupe_key, lot_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            )
            .bind(a.kind)
            .bind(a.user_id)
            .bind(a.role)
            .bind(n.level.as_str())
            .bind(n.event.as_str())
            .bind(n.message.as_str())
            .bind(n.data.to_string())
            .bind(now)
            .bind(n.dedupe_key.as_deref())
            .bind(a.lot_id),
        )
        .await?;
        let row = match inserted {
            Some(row) => StoredNotification {
                id: row.get("id")?,
                audience: n.audience,
                level: n.level,
                event: n.event.clone(),
                message: n.message.clone(),
                data: n.data.clone(),
                created_at: from_millis(now),
            },
            // A retry of an already stored notification: answer the original row.
            None => {
                let sql = format!(
                    "SELECT {} FROM notifications WHERE dedupe_key = $1",
                    notifications::COLUMNS
                );
                let row = fetch_optional(&mut *conn, Stmt::new(&sql).bind(n.dedupe_key.as_deref()))
                    .await?
                    .ok_or_else(|| DbError::corrupt("a skipped notification has no original"))?;
                notifications::row_to_notification(&row)?
            }
        };
        stored.push(row);
    }
    Ok(stored)
}
