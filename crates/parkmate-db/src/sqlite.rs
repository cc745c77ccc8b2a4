//! The embedded engine: one SQLite file (WAL), so `parkmate serve` runs with nothing installed.
//! Only what SQLite does differently lives here; the SQL itself is in the topic modules.
//!
//! Writes go through a pool of exactly one connection: SQLite allows one writer at a time anyway,
//! and queuing writers in-process (instead of letting them race for the file lock) means no
//! `SQLITE_BUSY` for callers, id order equal to commit order, and a row read inside a write
//! transaction stays as read until its commit (so no row locks are needed: [`DIALECT`]). Reads
//! use a separate pool and, thanks to WAL, never wait for the writer.
//!
//! The write-ahead log is copied back into the database file by a [`Checkpointer`] on a
//! connection of its own, not by the committing writer. SQLite's default makes the commit that
//! takes the log past 1,000 pages do it, with an `fsync` of both files, and every notification
//! queued behind that commit waited for it: at 10,000 notifications/s the unicast p99 was 6.6 ms
//! with it and 3.1 ms with no checkpoint at all (BENCHMARKS.md, fifth round). The writer still
//! checkpoints past [`WRITER_CHECKPOINT_PAGES`], a backstop that bounds the log should the
//! checkpointer fall behind or be gone.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};

use crate::exec::{Arg, Dialect, Row, Stmt};
use crate::{DbError, NewNotification, StoredNotification, from_millis, notifications};

/// Readers in the pool: enough for replay and inbox queries of a busy node on a 2-core machine.
const READ_CONNECTIONS: u32 = 4;
/// How long a writer waits in line for the single write connection before failing.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the [`Checkpointer`] copies the write-ahead log back into the database file. At
/// 10,000 notifications/s the log gains a few thousand pages a second; a checkpoint of a log with
/// nothing new is one look at its header.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Past this many pages of log (64 MiB of 4 KiB pages) the committing writer checkpoints
/// itself, as SQLite does by default at 1,000: only when the [`Checkpointer`] cannot keep up.
const WRITER_CHECKPOINT_PAGES: u32 = 16_384;

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
    /// `None` for an in-memory database (no log to checkpoint).
    checkpointer: Option<Arc<Checkpointer>>,
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
            .statement_cache_capacity(STATEMENT_CACHE)
            .foreign_keys(true);
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let in_memory = url.contains(":memory:");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            // No liveness ping on every checkout: an in-process connection cannot have gone
            // stale, and the ping is a round trip to the driver's thread before each transaction
            // and each read (a reconnect storm's greetings, every group commit).
            .test_before_acquire(false)
            .acquire_timeout(WRITE_QUEUE_TIMEOUT)
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string()),
            )
            .await
            .map_err(classify)?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        // An in-memory database exists per connection: readers must share the writer's.
        let (read, checkpointer) = if in_memory {
            (write.clone(), None)
        } else {
            let read = SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .test_before_acquire(false)
                .connect_with(options.clone().read_only(true))
                .await
                .map_err(classify)?;
            (read, Some(Arc::new(Checkpointer::start(&options).await?)))
        };
        Ok(Pools {
            read,
            write,
            checkpointer,
        })
    }

    pub(crate) async fn close(&self) {
        if let Some(c) = &self.checkpointer {
            c.stop().await;
        }
        self.read.close().await;
        self.write.close().await;
    }
}

/// Copies the write-ahead log into the database file every [`CHECKPOINT_EVERY`], on a
/// read-write connection of its own (a checkpoint writes the database file, which the read
/// pool's connections may not). `PASSIVE`: it waits for no reader and no writer; what it cannot
/// copy yet (a page a reader still needs) it copies next time. Stops on [`Checkpointer::stop`]
/// or when the last [`Pools`] clone is dropped.
#[derive(Debug)]
struct Checkpointer {
    stop: tokio::sync::watch::Sender<()>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Checkpointer {
    async fn start(options: &SqliteConnectOptions) -> Result<Checkpointer, DbError> {
        let mut conn = SqliteConnection::connect_with(options)
            .await
            .map_err(classify)?;
        let (stop, mut stopped) = tokio::sync::watch::channel(());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    // A stop, or every sender dropped with the pools.
                    _ = stopped.changed() => break,
                    _ = tick.tick() => {}
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut conn)
                    .await
                {
                    // Not fatal: the next tick tries again, and the writer's backstop bounds
                    // the log meanwhile.
                    tracing::warn!(error = %e, "SQLite checkpoint failed");
                }
            }
            let _ = conn.close().await;
        });
        Ok(Checkpointer {
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Ends the task after the checkpoint it may be running.
    async fn stop(&self) {
        self.stop.send_replace(());
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
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

/// Rows per `INSERT` at most: a batch of up to this many is one statement (so the notifier's
/// group commit, which rarely holds more, needs no transaction around it: [`store_alone`]), a
/// larger one a statement per full chunk and one for the rest. One prepared statement per size,
/// which the connection's statement cache ([`STATEMENT_CACHE`]) keeps.
const INSERT_CHUNK: usize = 32;
/// Columns bound per row (the `$N` of one row's `VALUES` tuple).
const INSERT_COLUMNS: usize = 10;
/// Prepared statements kept per connection: sqlx's default (100) plus the [`INSERT_CHUNK`]
/// shapes of the notification insert, with room for the booking domain's statements.
const STATEMENT_CACHE: usize = 256;

/// The multi-row `INSERT` for 1 ..= [`INSERT_CHUNK`] rows (index: rows - 1), built once.
static INSERT_SQL: std::sync::LazyLock<[String; INSERT_CHUNK]> = std::sync::LazyLock::new(|| {
    std::array::from_fn(|shape| {
        let rows = shape + 1;
        let tuples: Vec<String> = (0..rows)
            .map(|r| {
                let params: Vec<String> = (1..=INSERT_COLUMNS)
                    .map(|c| format!("${}", r * INSERT_COLUMNS + c))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect();
        format!(
            "INSERT INTO notifications \
             (audience_kind, user_id, role, level, event, message, data, created_at_ms, dedupe_key, lot_id) \
             VALUES {} ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key",
            tuples.join(", ")
        )
    })
});

/// Stores a batch that fits one statement on the write connection without `BEGIN`/`COMMIT`: a
/// single `INSERT` is atomic by itself, and holding the only write connection keeps the dedupe
/// look-ups that may follow consistent with it. Two round trips to the driver's thread fewer
/// per group commit than a transaction (`None`: the batch is too large for that).
pub(crate) async fn store_alone(
    pools: &Pools,
    batch: &[NewNotification],
) -> Option<Result<Vec<StoredNotification>, DbError>> {
    if batch.len() > INSERT_CHUNK {
        return None;
    }
    let stored = async {
        let mut conn = pools.write.acquire().await.map_err(classify)?;
        insert_notifications(&mut conn, batch).await
    };
    Some(stored.await)
}

/// Inserts notifications inside the caller's transaction on the single write connection, many
/// rows per statement: each statement is a hop to the driver's SQLite thread and back (two
/// futex wake-ups), which one statement per row paid for every notification (BENCHMARKS.md,
/// unicast profile). Ids follow batch order: the single writer runs the `VALUES` rows in order
/// and `AUTOINCREMENT` numbers them upwards. A row whose dedupe key is already stored (or appears
/// earlier in the batch) answers the original row.
pub(crate) async fn insert_notifications(
    conn: &mut SqliteConnection,
    batch: &[NewNotification],
) -> Result<Vec<StoredNotification>, DbError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut stored = Vec::with_capacity(batch.len());
    let mut rest = batch;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(INSERT_CHUNK));
        insert_chunk(conn, chunk, now, &mut stored).await?;
        rest = tail;
    }
    Ok(stored)
}

async fn insert_chunk(
    conn: &mut SqliteConnection,
    chunk: &[NewNotification],
    now: i64,
    stored: &mut Vec<StoredNotification>,
) -> Result<(), DbError> {
    let mut stmt = Stmt::new(INSERT_SQL[chunk.len() - 1].as_str());
    for n in chunk {
        let a = notifications::audience_columns(n.audience);
        stmt = stmt
            .bind(a.kind)
            .bind(a.user_id)
            .bind(a.role)
            .bind(n.level.as_str())
            .bind(n.event.as_str())
            .bind(n.message.as_str())
            .bind(n.data.to_string())
            .bind(now)
            .bind(n.dedupe_key.as_deref())
            .bind(a.lot_id);
    }
    // RETURNING emits rows in no promised order (SQLite's documentation says so), so they are
    // matched back: a keyed row by its key, the unkeyed ones by ascending id in batch order.
    let mut keyed = std::collections::HashMap::new();
    let mut unkeyed = Vec::new();
    for row in fetch_all(&mut *conn, stmt).await? {
        let id: i64 = row.get("id")?;
        match row.get::<Option<String>>("dedupe_key")? {
            Some(key) => {
                keyed.insert(key, id);
            }
            None => unkeyed.push(id),
        }
    }
    unkeyed.sort_unstable();
    let mut unkeyed = unkeyed.into_iter();
    for n in chunk {
        let id = match n.dedupe_key.as_deref() {
            None => unkeyed.next(),
            // Taken by the first row with that key; a later one in the batch finds it gone.
            Some(key) => keyed.remove(key),
        };
        let row = match id {
            Some(id) => StoredNotification {
                id,
                audience: n.audience,
                level: n.level,
                event: n.event.clone(),
                message: n.message.clone(),
                data: n.data.clone(),
                created_at: from_millis(now),
            },
            None if n.dedupe_key.is_none() => {
                return Err(DbError::corrupt("an inserted notification returned no id"));
            }
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
    Ok(())
}
