//! The cluster engine: one PostgreSQL database shared by every node. Only what PostgreSQL does
//! differently lives here; the SQL both engines share is in the topic modules.
//!
//! Nodes write at once under READ COMMITTED, so what SQLite's single writer gives for free is
//! explicit here:
//! - **id order is commit order.** A sequence hands out ids in call order, not commit order:
//!   transaction A takes id 10, B takes 11 and commits first, a dispatcher or a replaying socket
//!   sees 11 and moves its cursor past it, then A commits 10 behind the cursor — lost for
//!   `since=11` and for the outbox. So every transaction that writes notifications first takes one
//!   transaction-scoped advisory lock ([`NOTIFICATION_WRITE_LOCK`]) and only then draws ids:
//!   writers of notifications queue on the lock, each one's ids are above the previous one's, and
//!   the lock is only released after the commit is visible. The price is that
//!   notification-writing transactions are serial across the cluster, as on SQLite; the writer's
//!   group commit keeps that cheap, and callers hold the lock briefly by writing notifications
//!   last;
//! - a write path reads the booking it changes `FOR UPDATE` ([`DIALECT`]), so its checks hold
//!   until its commit; the scheduler's updates lock their rows in deadline order and re-check
//!   them, so two nodes never fire one deadline twice;
//! - overlaps are refused by the `slot_taken` exclusion constraint (SQLSTATE 23P01);
//! - one node leads the cluster (a session advisory lock, [`LEADER_LOCK`]), and every commit of
//!   notifications sends `NOTIFY` on [`COMMIT_CHANNEL`] so the leader publishes at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres, Row as _};

use crate::exec::{Arg, Dialect, Row, Stmt};
use crate::{DbError, NewNotification, StoredNotification, from_millis, notifications};

/// The advisory lock key every notification-writing transaction holds until it ends (see the
/// module docs). An arbitrary constant: "parkmate" in ASCII, so it is recognisable in `pg_locks`
/// and does not collide with locks other applications in the same database might take.
pub const NOTIFICATION_WRITE_LOCK: i64 = 0x7061_726b_6d61_7465;
/// The session advisory lock whose holder is the cluster's leader: the one node that runs the
/// jobs that must run once per cluster (the outbox dispatcher, the booking scheduler).
pub const LEADER_LOCK: i64 = NOTIFICATION_WRITE_LOCK + 1;
/// The transaction-scoped advisory lock demo seeding holds, so nodes starting together on one
/// empty database seed it once.
pub const SEED_LOCK: i64 = NOTIFICATION_WRITE_LOCK + 2;
/// The `LISTEN`/`NOTIFY` channel on which every commit of notifications tells the leader's
/// dispatcher to publish: without it a row committed on a follower waited for the dispatcher's poll.
pub const COMMIT_CHANNEL: &str = "parkmate_outbox";

/// Connections per node: replay and inbox reads of a busy node plus the writer and the dispatcher,
/// kept small because every node of a cluster opens its own pool against one server
/// (PostgreSQL's default `max_connections` is 100).
const POOL_CONNECTIONS: u32 = 10;
/// How long a query waits for a free connection, and how long start-up waits for the server:
/// an unreachable database must fail start-up promptly, not hang it.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a query waits for a connection while the server is known to be unreachable (the last
/// acquire failed): sqlx retries a refused connection until [`ACQUIRE_TIMEOUT`], so without this
/// every request of an outage would wait that long before its 503. Long enough for a connect on
/// a healthy network, so the first query after the server returns succeeds and clears the mark:
/// nodes reconnect by themselves.
const ACQUIRE_WHILE_DOWN: Duration = Duration::from_millis(500);
/// How often a follower tries to take the lead, and how often the leader checks that its lock
/// connection is alive: a dead leader is replaced within about this long.
const LEADER_POLL: Duration = Duration::from_secs(1);
/// SQLSTATE `exclusion_violation`: refused by an exclusion constraint.
const EXCLUSION_VIOLATION: &str = "23P01";

pub(crate) const DIALECT: Dialect = Dialect {
    lock_booking: " FOR UPDATE OF b",
    lock_rows: " FOR UPDATE",
};

#[derive(Clone, Debug)]
pub(crate) struct Pools {
    pool: PgPool,
    /// Whether the server is known to be unreachable: set when an acquire or the leader lease's
    /// connection (every node's probe, once per [`LEADER_POLL`]) fails for want of it, cleared by
    /// the next success. While set, acquires wait [`ACQUIRE_WHILE_DOWN`] at most, and setting it
    /// ends the acquires already waiting: an outage answers 503 within about a second.
    down: Arc<tokio::sync::watch::Sender<bool>>,
    /// For the leader lease's dedicated connection (a pooled one could be recycled under it).
    /// Boxed: the options are large and `Db` is passed by value.
    options: Box<PgConnectOptions>,
}

impl Pools {
    /// Connects and migrates. An unreachable server is an error (never a fallback to SQLite).
    pub(crate) async fn open(url: &str) -> Result<Pools, DbError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|_| DbError::UnsupportedUrl(crate::redact_url(url)))?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(classify)?;
        // sqlx takes a database-wide advisory lock while migrating, so nodes starting together
        // migrate once.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Pools {
            pool,
            down: Arc::new(tokio::sync::watch::channel(false).0),
            options: Box::new(options),
        })
    }

    /// A pooled connection; an outage answers within [`ACQUIRE_WHILE_DOWN`] once it is known.
    pub(crate) async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<Postgres>, DbError> {
        self.watched(self.pool.acquire()).await
    }

    /// A transaction on a pooled connection, like [`Pools::acquire`].
    pub(crate) async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>, DbError> {
        self.watched(self.pool.begin()).await
    }

    /// Marks the server down when `e` says it is unreachable (logged by the caller).
    fn note_outage(&self, e: sqlx::Error) {
        if matches!(classify(e), DbError::Unavailable(_)) {
            self.set_down(true);
        }
    }

    fn set_down(&self, down: bool) {
        self.down
            .send_if_modified(|d| std::mem::replace(d, down) != down);
    }

    /// Runs an acquire (cancel-safe in sqlx), bounded while the server is known down, and keeps
    /// the mark up to date with its outcome.
    async fn watched<T>(
        &self,
        acquire: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, DbError> {
        let mut down = self.down.subscribe();
        let result = if *down.borrow_and_update() {
            tokio::time::timeout(ACQUIRE_WHILE_DOWN, acquire)
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut))
        } else {
            tokio::select! {
                r = acquire => r,
                // The lease's probe found the server gone while this waited: stop waiting.
                Ok(_) = down.wait_for(|d| *d) => Err(sqlx::Error::PoolTimedOut),
            }
        }
        .map_err(classify);
        match &result {
            Ok(_) => self.set_down(false),
            Err(DbError::Unavailable(_)) => self.set_down(true),
            Err(_) => {}
        }
        result
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// Competes for the cluster's lead until `stop` resolves; `leader` says whether this node
    /// holds it right now.
    ///
    /// The lease is a session advisory lock ([`LEADER_LOCK`]) on a dedicated connection: it is
    /// held exactly as long as that connection lives, so when the leader's process dies (or its
    /// connection does) PostgreSQL releases it and another node takes over within [`LEADER_POLL`].
    /// A leader whose lock connection fails its health check steps down at once. For a moment two
    /// nodes may both believe they lead (a partition seen from one side first): the jobs behind
    /// the lease are idempotent (clients dedupe by id), so that costs duplicates, never losses.
    pub(crate) async fn lead(
        &self,
        leader: tokio::sync::watch::Sender<bool>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::select! {
            _ = self.campaign(&leader) => {}
            _ = stop => {}
        }
        // Dropping the connection (when `campaign` is dropped) releases the lock for the next node.
    }

    async fn campaign(&self, leader: &tokio::sync::watch::Sender<bool>) {
        use sqlx::ConnectOptions;
        loop {
            // The lease's connection is every node's probe of the server, once per LEADER_POLL:
            // it marks an outage before a request has to wait for one, and its end.
            let mut conn = match self.options.connect().await {
                Ok(conn) => {
                    self.set_down(false);
                    conn
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leader lease: cannot connect");
                    self.note_outage(e);
                    tokio::time::sleep(LEADER_POLL).await;
                    continue;
                }
            };
            loop {
                let held = if *leader.borrow() {
                    sqlx::query("SELECT 1")
                        .execute(&mut conn)
                        .await
                        .map(|_| true)
                } else {
                    sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                        .bind(LEADER_LOCK)
                        .fetch_one(&mut conn)
                        .await
                };
                match held {
                    Ok(held) => {
                        if held != *leader.borrow() {
                            tracing::info!(leader = held, "leader lease changed hands");
                            leader.send_replace(held);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "leader lease: connection lost, stepping down");
                        self.note_outage(e);
                        leader.send_replace(false);
                        break;
                    }
                }
                tokio::time::sleep(LEADER_POLL).await;
            }
        }
    }

    /// Calls `wake` whenever any node commits notifications (a `NOTIFY` sent by
    /// [`insert_notifications`], delivered at commit), until `stop` resolves. Notifications sent
    /// while the listening connection was down are not replayed by PostgreSQL; the dispatcher's
    /// poll covers that gap, so `wake` is also called after each reconnect.
    pub(crate) async fn listen_commits(
        &self,
        wake: impl Fn() + Send + Sync + 'static,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let listen = async {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&self.pool).await
                {
                    Ok(l) => l,
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "commit listener: cannot connect");
                        tokio::time::sleep(LEADER_POLL).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen(COMMIT_CHANNEL).await {
                    tracing::warn!(error = %e, "commit listener: LISTEN failed");
                    tokio::time::sleep(LEADER_POLL).await;
                    continue;
                }
                wake();
                loop {
                    match listener.try_recv().await {
                        // None: the connection dropped and the next call reconnects and
                        // re-listens; what was sent meanwhile is lost, so look anyway.
                        Ok(_) => wake(),
                        // The pool closes only on the way out: not a fault to report.
                        Err(sqlx::Error::PoolClosed) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "commit listener failed; reconnecting");
                            break;
                        }
                    }
                }
                tokio::time::sleep(LEADER_POLL).await;
            }
        };
        tokio::select! {
            _ = listen => {}
            _ = stop => {}
        }
    }
}

/// PostgreSQL's driver errors in our terms: the `slot_taken` exclusion constraint (by name too:
/// another exclusion constraint added later must not read as a double booking), a unique
/// constraint, or what every engine shares.
pub(crate) fn classify(e: sqlx::Error) -> DbError {
    if let sqlx::Error::Database(db) = &e {
        if db.code().as_deref() == Some(EXCLUSION_VIOLATION)
            && db.constraint() == Some("slot_taken")
        {
            return DbError::SlotTaken;
        }
        if db.is_unique_violation() {
            return DbError::Duplicate;
        }
    }
    DbError::from_driver(e)
}

fn query<'q>(sql: &'q str, args: Vec<Arg<'q>>) -> sqlx::query::Query<'q, Postgres, PgArguments> {
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
    conn: &mut PgConnection,
    stmt: Stmt<'_>,
) -> Result<Vec<Row>, DbError> {
    let rows = query(&stmt.sql, stmt.args)
        .fetch_all(conn)
        .await
        .map_err(classify)?;
    Ok(rows.into_iter().map(Row::Postgres).collect())
}

pub(crate) async fn fetch_optional(
    conn: &mut PgConnection,
    stmt: Stmt<'_>,
) -> Result<Option<Row>, DbError> {
    let row = query(&stmt.sql, stmt.args)
        .fetch_optional(conn)
        .await
        .map_err(classify)?;
    Ok(row.map(Row::Postgres))
}

pub(crate) async fn execute(conn: &mut PgConnection, stmt: Stmt<'_>) -> Result<u64, DbError> {
    let done = query(&stmt.sql, stmt.args)
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(done.rows_affected())
}

/// Waits for [`SEED_LOCK`]; released when the caller's transaction ends.
pub(crate) async fn lock_seeding(conn: &mut PgConnection) -> Result<(), DbError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SEED_LOCK)
        .execute(conn)
        .await
        .map_err(classify)?;
    Ok(())
}

/// Inserts notifications **inside the caller's transaction**, so a state change and its
/// notifications commit (or roll back) together.
///
/// Takes [`NOTIFICATION_WRITE_LOCK`] for the rest of the caller's transaction before drawing ids:
/// that is what keeps id order equal to commit order across nodes (module docs).
///
/// The whole batch is one `INSERT … SELECT … FROM UNNEST(…) WITH ORDINALITY ORDER BY ordinality`
/// (one round trip however large the writer's group commit, instead of one per row as on
/// SQLite). Ids are drawn in the order the `SELECT` produces rows, so they follow the batch order.
/// A row whose dedupe key is already stored — before this call, or earlier in the same batch — is
/// skipped by `ON CONFLICT DO NOTHING` and answered with the stored row, read back in one more
/// statement only when the batch had such rows: exactly what inserting row by row answers.
pub(crate) async fn insert_notifications(
    conn: &mut PgConnection,
    batch: &[NewNotification],
) -> Result<Vec<StoredNotification>, DbError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(NOTIFICATION_WRITE_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    let now = chrono::Utc::now().timestamp_millis();

    let len = batch.len();
    let mut kinds = Vec::with_capacity(len);
    let mut user_ids = Vec::with_capacity(len);
    let mut roles = Vec::with_capacity(len);
    let mut levels = Vec::with_capacity(len);
    let mut events = Vec::with_capacity(len);
    let mut messages = Vec::with_capacity(len);
    let mut data = Vec::with_capacity(len);
    let mut keys = Vec::with_capacity(len);
    let mut lot_ids = Vec::with_capacity(len);
    for n in batch {
        let a = notifications::audience_columns(n.audience);
        kinds.push(a.kind);
        user_ids.push(a.user_id);
        roles.push(a.role);
        lot_ids.push(a.lot_id);
        levels.push(n.level.as_str());
        events.push(n.event.as_str());
        messages.push(n.message.as_str());
        data.push(n.data.to_string());
        keys.push(n.dedupe_key.as_deref());
    }
    // `ORDER BY ord` makes the production order, and so the order `nextval` is called in, the
    // batch order (the identity default is evaluated above the ordered subquery).
    let inserted = sqlx::query(
        "INSERT INTO notifications \
         (audience_kind, user_id, role, level, event, message, data, created_at_ms, dedupe_key, lot_id) \
         SELECT b.audience_kind, b.user_id, b.role, b.level, b.event, b.message, b.data::jsonb, \
                $9, b.dedupe_key, b.lot_id \
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
                     $7::text[], $8::text[], $10::bigint[]) \
              WITH ORDINALITY \
              AS b(audience_kind, user_id, role, level, event, message, data, dedupe_key, lot_id, ord) \
         ORDER BY b.ord \
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key",
    )
    .bind(&kinds)
    .bind(&user_ids)
    .bind(&roles)
    .bind(&levels)
    .bind(&events)
    .bind(&messages)
    .bind(&data)
    .bind(&keys)
    .bind(now)
    .bind(&lot_ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(classify)?;
    let mut inserted = inserted
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<i64, _>("id")?,
                row.try_get::<Option<String>, _>("dedupe_key")?,
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(classify)?;
    // Ids follow the batch order, so in id order the inserted rows are the batch's rows minus the
    // skipped ones, in batch order.
    inserted.sort_unstable_by_key(|(id, _)| *id);

    // Walk the batch against the inserted rows: a row is the next inserted one when its key
    // matches (a row without a key is always inserted). A skipped row's key is stored already,
    // either from before or from its first occurrence in this batch; only a first occurrence can
    // have been inserted, so a match is never a later duplicate.
    let mut next = inserted.iter().peekable();
    let mut stored: Vec<Option<StoredNotification>> = Vec::with_capacity(len);
    let mut skipped: Vec<&str> = Vec::new();
    for n in batch {
        match next.next_if(|(_, key)| key.as_deref() == n.dedupe_key.as_deref()) {
            Some((id, _)) => stored.push(Some(StoredNotification {
                id: *id,
                audience: n.audience,
                level: n.level,
                event: n.event.clone(),
                message: n.message.clone(),
                data: n.data.clone(),
                created_at: from_millis(now),
            })),
            None => {
                let Some(key) = n.dedupe_key.as_deref() else {
                    return Err(DbError::corrupt(
                        "a notification without a dedupe key was not inserted in batch order",
                    ));
                };
                skipped.push(key);
                stored.push(None);
            }
        }
    }
    if next.next().is_some() {
        return Err(DbError::corrupt(
            "inserted notifications do not match the batch order",
        ));
    }

    if !skipped.is_empty() {
        // A retry of an already stored notification: answer the original row (read after the
        // insert, so a key repeated within this batch answers the row its first occurrence
        // inserted).
        let rows = sqlx::query(&format!(
            "SELECT {}, dedupe_key FROM notifications WHERE dedupe_key = ANY($1::text[])",
            notifications::COLUMNS
        ))
        .bind(&skipped)
        .fetch_all(&mut *conn)
        .await
        .map_err(classify)?;
        let mut originals = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get("dedupe_key").map_err(classify)?;
            originals.insert(
                key,
                notifications::row_to_notification(&Row::Postgres(row))?,
            );
        }
        for (slot, n) in stored.iter_mut().zip(batch) {
            if slot.is_none() {
                let key = n.dedupe_key.as_deref().unwrap_or_default();
                let original = originals
                    .get(key)
                    .ok_or_else(|| DbError::corrupt("a skipped notification has no original"))?;
                *slot = Some(original.clone());
            }
        }
    }
    // Delivered to listeners only when (and if) the caller's transaction commits.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(COMMIT_CHANNEL)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    stored
        .into_iter()
        .map(|n| n.ok_or_else(|| DbError::corrupt("unanswered notification")))
        .collect()
}
