//! The embedded engine: one SQLite file (WAL), so `parkmate serve` runs with nothing installed.
//!
//! Writes go through a pool of exactly one connection: SQLite allows one writer at a time anyway,
//! and queuing writers in-process (instead of letting them race for the file lock) means no
//! `SQLITE_BUSY` for callers and id order equal to commit order. Reads use a separate pool and,
//! thanks to WAL, never wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use parkmate_protocol::{Level, Viewer};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::{
    InboxItem, InboxPage, MAX_PAGE, NewNotification, NotificationStore, StoreError,
    StoredNotification, UnreadState, audience_columns, audience_from_columns, from_millis,
};

/// Readers in the pool: enough for replay and inbox queries of a busy node on a 2-core machine.
const READ_CONNECTIONS: u32 = 4;
/// How long a writer waits in line for the single write connection before failing.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

const COLUMNS: &str =
    "id, audience_kind, user_id, role, level, event, message, data, created_at_ms";

/// The rows a viewer can see: its own, its role's and everyone's. Three index-backed branches
/// rather than one `OR`, so each uses its partial index. `$1` user id, `$2` role.
fn visible(extra: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'user' AND user_id = $1 {extra} \
         UNION ALL SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'role' AND role = $2 {extra} \
         UNION ALL SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'all' {extra}"
    )
}

#[derive(Clone, Debug)]
pub struct SqliteStore {
    read: SqlitePool,
    /// Exactly one connection: see the module docs.
    write: SqlitePool,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
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
            .await?;
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        // Other crates (the booking domain) keep their own migrations in the same database.
        migrator.set_ignore_missing(true);
        migrator.run(&write).await?;
        // An in-memory database exists per connection: readers must share the writer's.
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .connect_with(options.read_only(true))
                .await?
        };
        Ok(SqliteStore { read, write })
    }

    /// The single write connection pool; the booking domain begins its transactions here so its
    /// state change and its notifications commit together.
    pub fn writer(&self) -> &SqlitePool {
        &self.write
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.read
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// A replay page's statement with its four parameters bound: `$1` user id, `$2` role (as
/// [`visible`] wants them), `$3` the id to start after, `$4` the page size (capped).
fn page_query<'q>(
    sql: &'q str,
    viewer: Viewer,
    after: i64,
    limit: u32,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    sqlx::query(sql)
        .bind(viewer.user_id)
        .bind(viewer.role.as_str())
        .bind(after)
        .bind(limit.min(MAX_PAGE))
}

fn row_to_notification(row: &SqliteRow) -> Result<StoredNotification, StoreError> {
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

/// Inserts notifications on a connection the caller controls, typically inside the caller's own
/// transaction, so a state change and its notifications commit (or roll back) together.
pub async fn insert_notifications(
    conn: &mut SqliteConnection,
    batch: &[NewNotification],
) -> Result<Vec<StoredNotification>, StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut stored = Vec::with_capacity(batch.len());
    for n in batch {
        let (kind, user_id, role) = audience_columns(n.audience);
        let inserted = sqlx::query(
            "INSERT INTO notifications \
             (audience_kind, user_id, role, level, event, message, data, created_at_ms, dedupe_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        )
        .bind(kind)
        .bind(user_id)
        .bind(role)
        .bind(n.level.as_str())
        .bind(&n.event)
        .bind(&n.message)
        .bind(n.data.to_string())
        .bind(now)
        .bind(&n.dedupe_key)
        .fetch_optional(&mut *conn)
        .await?;
        let row = match inserted {
            Some(row) => StoredNotification {
                id: row.try_get("id")?,
                audience: n.audience,
                level: n.level,
                event: n.event.clone(),
                message: n.message.clone(),
                data: n.data.clone(),
                created_at: from_millis(now),
            },
            // A retry of an already stored notification: answer the original row.
            None => {
                let row = sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM notifications WHERE dedupe_key = $1"
                ))
                .bind(&n.dedupe_key)
                .fetch_one(&mut *conn)
                .await?;
                row_to_notification(&row)?
            }
        };
        stored.push(row);
    }
    Ok(stored)
}

/// One row: `as_of` (the highest stored id) and the viewer's `unread` count. `$1` user, `$2` role.
fn unread_sql() -> String {
    format!(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM notifications) AS as_of, \
                (SELECT COUNT(*) FROM ({}) AS v \
                  WHERE NOT EXISTS (SELECT 1 FROM notification_reads r \
                                     WHERE r.user_id = $1 AND r.notification_id = v.id)) AS unread",
        visible(
            "AND id > COALESCE((SELECT read_through FROM read_watermarks WHERE user_id = $1), 0)"
        )
    )
}

async fn unread_on(conn: &mut SqliteConnection, viewer: Viewer) -> Result<UnreadState, StoreError> {
    // One statement, so the count and `as_of` come from the same snapshot.
    let sql = unread_sql();
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

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn insert_batch(
        &self,
        batch: &[NewNotification],
    ) -> Result<Vec<StoredNotification>, StoreError> {
        let mut tx = self.write.begin().await?;
        let stored = insert_notifications(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn after(&self, after: i64, limit: u32) -> Result<Vec<StoredNotification>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM notifications WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after)
        .bind(limit.min(MAX_PAGE))
        .fetch_all(&self.read)
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
        let rows = page_query(&sql, viewer, after, limit)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(row_to_notification).collect()
    }

    async fn resume(
        &self,
        viewer: Viewer,
        after: i64,
        limit: u32,
    ) -> Result<(UnreadState, Vec<StoredNotification>), StoreError> {
        // One statement (one snapshot, one trip to sqlx's connection thread): the unread row,
        // joined with the replay page; without a page the replay columns are NULL.
        let sql = format!(
            "SELECT u.as_of, u.unread, page.* FROM ({}) AS u \
             LEFT JOIN (SELECT * FROM ({}) AS v ORDER BY id LIMIT $4) AS page ON 1 = 1 \
             ORDER BY page.id",
            unread_sql(),
            visible("AND id > $3")
        );
        let rows = page_query(&sql, viewer, after, limit)
            .fetch_all(&self.read)
            .await?;
        let first = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("the unread row is missing".into()))?;
        let unread = UnreadState {
            count: first.try_get("unread")?,
            as_of: first.try_get("as_of")?,
        };
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<Option<i64>, _>("id")?.is_some() {
                page.push(row_to_notification(row)?);
            }
        }
        Ok((unread, page))
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
            .bind(limit + 1)
            .fetch_all(&self.read)
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
        let mut conn = self.read.acquire().await?;
        unread_on(&mut conn, viewer).await
    }

    async fn mark_read(&self, viewer: Viewer, id: i64) -> Result<UnreadState, StoreError> {
        let mut tx = self.write.begin().await?;
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
        let mut tx = self.write.begin().await?;
        let as_of: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM notifications")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO read_watermarks (user_id, read_through) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO UPDATE SET read_through = MAX(read_through, excluded.read_through)",
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
                .fetch_one(&self.read)
                .await?,
        )
    }

    async fn set_published_through(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox_cursor SET published_through = MAX(published_through, $1) WHERE id = 1",
        )
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn max_id(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM notifications")
                .fetch_one(&self.read)
                .await?,
        )
    }
}
