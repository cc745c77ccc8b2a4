//! The cluster engine: one PostgreSQL database shared by every node.
//!
//! Same tables and the same queries as the SQLite engine (`migrations/postgres`), with one thing
//! SQLite gives for free made explicit: **id order is commit order.** A sequence hands out ids in
//! call order, not commit order: transaction A takes id 10, transaction B takes id 11 and commits
//! first, a dispatcher or a replaying socket sees 11 and moves its cursor past it, then A commits 10
//! behind the cursor — lost for `since=11` and for the outbox. So every transaction that writes
//! notifications first takes one transaction-scoped advisory lock ([`NOTIFICATION_WRITE_LOCK`]) and
//! only then draws ids: writers of notifications queue on the lock, each one's ids are above the
//! previous one's, and the lock is only released after the commit is visible. A reader that has
//! seen id N has therefore seen every committed id below N, exactly as with SQLite.
//!
//! The price is that notification-writing transactions are serial across the cluster, just as
//! they are on SQLite's single writer; the writer's group commit keeps that cheap, and callers keep
//! the lock briefly by writing notifications last in their transactions.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use parkmate_protocol::{Level, Viewer};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};

use crate::{
    InboxItem, InboxPage, MAX_PAGE, NewNotification, NotificationStore, StoreError,
    StoredNotification, UnreadState, audience_columns, audience_from_columns, from_millis,
};

/// The advisory lock key every notification-writing transaction holds until it ends (see the
/// module docs). An arbitrary constant: "parkmate" in ASCII, so it is recognisable in `pg_locks`
/// and does not collide with locks other applications in the same database might take.
pub const NOTIFICATION_WRITE_LOCK: i64 = 0x7061_726b_6d61_7465;

/// Connections per node: replay and inbox reads of a busy node plus the writer and the dispatcher,
/// kept small because every node of a cluster opens its own pool against one server
/// (PostgreSQL's default `max_connections` is 100).
const POOL_CONNECTIONS: u32 = 10;
/// How long a query waits for a free connection, and how long start-up waits for the server:
/// an unreachable database must fail start-up promptly, not hang it.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

const COLUMNS: &str =
    "id, audience_kind, user_id, role, level, event, message, data::text AS data, created_at_ms";

/// The rows a viewer can see: its own, its role's and everyone's, one partial index per branch.
/// `$1` user id, `$2` role.
fn visible(extra: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'user' AND user_id = $1 {extra} \
         UNION ALL SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'role' AND role = $2 {extra} \
         UNION ALL SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'all' {extra}"
    )
}

/// The session advisory lock whose holder is the cluster's leader: the one node that runs the
/// jobs that must run once per cluster (the outbox dispatcher; the domain's scheduler later).
pub const LEADER_LOCK: i64 = NOTIFICATION_WRITE_LOCK + 1;
/// The `LISTEN`/`NOTIFY` channel on which every commit of notifications tells the leader's
/// dispatcher to publish: without it a row committed on a follower waited for the dispatcher's poll.
pub const COMMIT_CHANNEL: &str = "parkmate_outbox";

/// How often a follower tries to take the lead, and how often the leader checks that its lock
/// connection is alive: a dead leader is replaced within about this long.
const LEADER_POLL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// For the leader lease's dedicated connection (a pooled one could be recycled under it).
    /// Boxed: the options are large and `Database` is passed by value.
    options: Box<PgConnectOptions>,
}

impl PgStore {
    /// Connects and migrates. An unreachable server is an error (never a fallback to SQLite).
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        // The booking domain keeps its own migrations (1001+) in the same database.
        migrator.set_ignore_missing(true);
        // sqlx takes a database-wide advisory lock while migrating, so nodes starting together
        // migrate once.
        migrator.run(&pool).await?;
        Ok(PgStore {
            pool,
            options: Box::new(options),
        })
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
    pub async fn lead(
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
            let mut conn = match self.options.connect().await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "leader lease: cannot connect");
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
    pub async fn listen_commits(
        &self,
        wake: impl Fn() + Send + Sync + 'static,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let listen = async {
            loop {
                let mut listener = match sqlx::postgres::PgListener::connect_with(&self.pool).await
                {
                    Ok(l) => l,
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
                // `try_recv` answers None when the connection dropped (it reconnects on the
                // next call); either way wake the dispatcher to look for what it may have missed.
                loop {
                    match listener.try_recv().await {
                        // None: the connection dropped and the next call reconnects and
                        // re-listens; what was sent meanwhile is lost, so look anyway.
                        Ok(_) => wake(),
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

    /// The pool; the booking domain begins its transactions here and writes its notifications
    /// with [`insert_notifications`] so state change and notifications commit together.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn row_to_notification(row: &PgRow) -> Result<StoredNotification, StoreError> {
    let kind: String = row.try_get("audience_kind")?;
    let user_id: Option<i64> = row.try_get("user_id")?;
    let role: Option<String> = row.try_get("role")?;
    let level: String = row.try_get("level")?;
    let data: String = row.try_get("data")?;
    Ok(StoredNotification {
        id: row.try_get("id")?,
        audience: audience_from_columns(&kind, user_id, role.as_deref())?,
        level: level
            .parse::<Level>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        event: row.try_get("event")?,
        message: row.try_get("message")?,
        data: serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: from_millis(row.try_get("created_at_ms")?),
    })
}

/// Inserts notifications on a connection the caller controls — **inside a transaction** the
/// caller commits — so a state change and its notifications commit (or roll back) together. The
/// twin of [`crate::sqlite::insert_notifications`].
///
/// Takes [`NOTIFICATION_WRITE_LOCK`] for the rest of the caller's transaction before drawing ids:
/// that is what keeps id order equal to commit order across nodes (module docs). Outside a
/// transaction the lock would be released right after this call, before the commit, and the
/// guarantee would be lost. Call it last in a transaction, to hold the lock briefly.
///
/// The whole batch is one `INSERT … SELECT … FROM UNNEST(…) WITH ORDINALITY ORDER BY ordinality`
/// (one round trip however large the writer's group commit, instead of one per row). Ids are
/// drawn in the order the `SELECT` produces rows, so they follow the batch order. A row whose
/// dedupe key is already stored — before this call, or earlier in the same batch — is skipped by
/// `ON CONFLICT DO NOTHING` and answered with the stored row, read back in one more statement
/// only when the batch had such rows: exactly what inserting row by row answered.
pub async fn insert_notifications(
    conn: &mut PgConnection,
    batch: &[NewNotification],
) -> Result<Vec<StoredNotification>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(NOTIFICATION_WRITE_LOCK)
        .execute(&mut *conn)
        .await?;
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
    for n in batch {
        let (kind, user_id, role) = audience_columns(n.audience);
        kinds.push(kind);
        user_ids.push(user_id);
        roles.push(role);
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
         (audience_kind, user_id, role, level, event, message, data, created_at_ms, dedupe_key) \
         SELECT b.audience_kind, b.user_id, b.role, b.level, b.event, b.message, b.data::jsonb, \
                $9, b.dedupe_key \
         FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
                     $7::text[], $8::text[]) \
              WITH ORDINALITY \
              AS b(audience_kind, user_id, role, level, event, message, data, dedupe_key, ord) \
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
    .fetch_all(&mut *conn)
    .await?;
    let mut inserted = inserted
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<i64, _>("id")?,
                row.try_get::<Option<String>, _>("dedupe_key")?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
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
                    return Err(StoreError::Corrupt(
                        "a notification without a dedupe key was not inserted in batch order"
                            .to_owned(),
                    ));
                };
                skipped.push(key);
                stored.push(None);
            }
        }
    }
    if next.next().is_some() {
        return Err(StoreError::Corrupt(
            "inserted notifications do not match the batch order".to_owned(),
        ));
    }

    if !skipped.is_empty() {
        // A retry of an already stored notification: answer the original row (read after the
        // insert, so a key repeated within this batch answers the row its first occurrence
        // inserted).
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, dedupe_key FROM notifications WHERE dedupe_key = ANY($1::text[])"
        ))
        .bind(&skipped)
        .fetch_all(&mut *conn)
        .await?;
        let mut originals = HashMap::with_capacity(rows.len());
        for row in &rows {
            let key: String = row.try_get("dedupe_key")?;
            originals.insert(key, row_to_notification(row)?);
        }
        for (slot, n) in stored.iter_mut().zip(batch) {
            if slot.is_none() {
                let key = n.dedupe_key.as_deref().unwrap_or_default();
                let original = originals.get(key).ok_or(sqlx::Error::RowNotFound)?;
                *slot = Some(original.clone());
            }
        }
    }
    // Delivered to listeners only when (and if) the caller's transaction commits.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(COMMIT_CHANNEL)
        .execute(&mut *conn)
        .await?;
    stored
        .into_iter()
        .map(|n| n.ok_or_else(|| StoreError::Corrupt("unanswered notification".to_owned())))
        .collect()
}

async fn unread_on(conn: &mut PgConnection, viewer: Viewer) -> Result<UnreadState, StoreError> {
    // One statement, so the count and `as_of` come from the same snapshot.
    let sql = format!(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM notifications) AS as_of, \
                (SELECT COUNT(*) FROM ({}) AS v \
                  WHERE NOT EXISTS (SELECT 1 FROM notification_reads r \
                                     WHERE r.user_id = $1 AND r.notification_id = v.id)) AS unread",
        visible(
            "AND id > COALESCE((SELECT read_through FROM read_watermarks WHERE user_id = $1), 0)"
        )
    );
    let row = sqlx::query(&sql)
        .bind(viewer.user_id)
        .bind(viewer.role.as_str())
        .fetch_one(&mut *conn)
        .await?;
    Ok(UnreadState {
        count: row.try_get("unread")?,
        as_of: row.try_get("as_of")?,
    })
}

/// PostgreSQL has no unsigned integers; page sizes travel as `BIGINT`.
fn page(limit: u32) -> i64 {
    i64::from(limit.min(MAX_PAGE))
}

#[async_trait]
impl NotificationStore for PgStore {
    async fn insert_batch(
        &self,
        batch: &[NewNotification],
    ) -> Result<Vec<StoredNotification>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let stored = insert_notifications(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn after(&self, after: i64, limit: u32) -> Result<Vec<StoredNotification>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM notifications WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(page(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_notification).collect()
    }

    async fn replay(
        &self,
        viewer: Viewer,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredNotification>, StoreError> {
        let sql = format!(
            "SELECT * FROM ({}) AS v ORDER BY id LIMIT $4",
            visible("AND id > $3")
        );
        let rows = sqlx::query(&sql)
            .bind(viewer.user_id)
            .bind(viewer.role.as_str())
            .bind(after)
            .bind(page(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(row_to_notification).collect()
    }

    async fn inbox(
        &self,
        viewer: Viewer,
        before: Option<i64>,
        limit: u32,
    ) -> Result<InboxPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let sql = format!(
            "SELECT v.*, (v.id <= COALESCE((SELECT read_through FROM read_watermarks WHERE user_id = $1), 0) \
                     OR EXISTS (SELECT 1 FROM notification_reads r WHERE r.user_id = $1 AND r.notification_id = v.id)) \
                     AS is_read \
             FROM ({}) AS v ORDER BY v.id DESC LIMIT $4",
            visible("AND id < $3")
        );
        // One more than asked tells whether an older page exists.
        let rows = sqlx::query(&sql)
            .bind(viewer.user_id)
            .bind(viewer.role.as_str())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let more = rows.len() > limit as usize;
        let items = rows
            .iter()
            .take(limit as usize)
            .map(|row| {
                Ok(InboxItem {
                    notification: row_to_notification(row)?,
                    read: row.try_get::<bool, _>("is_read")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next_before = if more {
            items.last().map(|i| i.notification.id)
        } else {
            None
        };
        Ok(InboxPage { items, next_before })
    }

    async fn unread(&self, viewer: Viewer) -> Result<UnreadState, StoreError> {
        let mut conn = self.pool.acquire().await?;
        unread_on(&mut conn, viewer).await
    }

    async fn mark_read(&self, viewer: Viewer, id: i64) -> Result<UnreadState, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT audience_kind, user_id, role FROM notifications WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let kind: String = row.try_get("audience_kind")?;
        let user_id: Option<i64> = row.try_get("user_id")?;
        let role: Option<String> = row.try_get("role")?;
        if !viewer.sees(audience_from_columns(&kind, user_id, role.as_deref())?) {
            // Someone else's notification is indistinguishable from a missing one.
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO notification_reads (user_id, notification_id) \
             SELECT $1, $2 WHERE $2 > COALESCE((SELECT read_through FROM read_watermarks WHERE user_id = $1), 0) \
             ON CONFLICT DO NOTHING",
        )
        .bind(viewer.user_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let state = unread_on(&mut tx, viewer).await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn mark_all_read(&self, viewer: Viewer) -> Result<UnreadState, StoreError> {
        let mut tx = self.pool.begin().await?;
        let as_of: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM notifications")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO read_watermarks (user_id, read_through) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE \
             SET read_through = GREATEST(read_watermarks.read_through, excluded.read_through)",
        )
        .bind(viewer.user_id)
        .bind(as_of)
        .execute(&mut *tx)
        .await?;
        // Single reads below the watermark say nothing more; drop them to keep the table small.
        sqlx::query("DELETE FROM notification_reads WHERE user_id = $1 AND notification_id <= $2")
            .bind(viewer.user_id)
            .bind(as_of)
            .execute(&mut *tx)
            .await?;
        let state = unread_on(&mut tx, viewer).await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn published_through(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT published_through FROM outbox_cursor WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn set_published_through(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox_cursor SET published_through = GREATEST(published_through, $1) WHERE id = 1",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn max_id(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM notifications")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
