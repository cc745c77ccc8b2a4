//! The notification store: the source of truth for every notification and its read state.
//!
//! One narrow trait, [`NotificationStore`], with one implementation per engine, picked from the URL
//! scheme by [`open`] (an unknown scheme is an error, never a fallback). Pub/sub is at-most-once; this
//! store is what makes delivery lossless: every notification is committed here before it is
//! published, and a reconnecting client is replayed from here.
//!
//! Id order is commit order on both engines: a reader that has seen id N has seen every committed
//! id below N. SQLite serialises writers; PostgreSQL serialises notification-writing transactions
//! with an advisory lock (see [`postgres`]).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use parkmate_protocol::{Audience, Level, NotificationFrame, Role, Viewer};

pub mod postgres;
pub mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;

/// The largest page any listing returns, whatever the caller asks for.
pub const MAX_PAGE: u32 = 1000;

/// A notification to be stored (and then published).
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    pub audience: Audience,
    pub level: Level,
    /// Machine-readable kind, e.g. `booking_renewed`; `custom` when a publisher gave none.
    pub event: String,
    pub message: String,
    /// Always a JSON object.
    pub data: serde_json::Value,
    /// When set, a second insert with the same key returns the first row instead of a new one
    /// (idempotent retries of the publish API and of domain actions).
    pub dedupe_key: Option<String>,
}

impl NewNotification {
    pub fn new(audience: Audience, level: Level, event: &str, message: impl Into<String>) -> Self {
        NewNotification {
            audience,
            level,
            event: event.to_owned(),
            message: message.into(),
            data: serde_json::Value::Object(Default::default()),
            dedupe_key: None,
        }
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }

    pub fn with_dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }
}

/// A committed notification.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNotification {
    pub id: i64,
    pub audience: Audience,
    pub level: Level,
    pub event: String,
    pub message: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl StoredNotification {
    pub fn frame(&self) -> NotificationFrame {
        NotificationFrame {
            id: self.id,
            level: self.level,
            event: self.event.clone(),
            message: self.message.clone(),
            data: self.data.clone(),
            created_at: rfc3339(self.created_at),
        }
    }
}

/// RFC 3339 with milliseconds and a `Z`, the one timestamp format on the wire.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    pub notification: StoredNotification,
    pub read: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboxPage {
    /// Newest first.
    pub items: Vec<InboxItem>,
    /// Pass as `before` to get the next (older) page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// A viewer's unread count and the highest notification id it accounts for, so a socket can tell
/// whether notifications it delivered after that point are already included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadState {
    pub count: i64,
    pub as_of: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("unsupported database URL `{0}`: expected sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot prepare the database location")]
    Io(#[from] std::io::Error),
}

/// Everything the server needs from a store. Narrow on purpose: each method is one query or one
/// short transaction, so a second engine is a small file, and conformance tests cover both.
#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Stores a batch in one transaction (group commit); returns the rows in input order.
    async fn insert_batch(
        &self,
        batch: &[NewNotification],
    ) -> Result<Vec<StoredNotification>, StoreError>;

    /// Every notification with an id above `after`, oldest first, whatever its audience (the
    /// outbox dispatcher's view).
    async fn after(&self, after: i64, limit: u32) -> Result<Vec<StoredNotification>, StoreError>;

    /// What `viewer` can see with an id above `after`, oldest first (replay on reconnect).
    async fn replay(
        &self,
        viewer: Viewer,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredNotification>, StoreError>;

    /// The viewer's inbox, newest first, optionally only ids below `before`.
    async fn inbox(
        &self,
        viewer: Viewer,
        before: Option<i64>,
        limit: u32,
    ) -> Result<InboxPage, StoreError>;

    async fn unread(&self, viewer: Viewer) -> Result<UnreadState, StoreError>;

    /// What a socket resuming after `after` needs first: the viewer's unread state and the first
    /// replay page (`replay(viewer, after, limit)`), both as of one snapshot, so the page holds no
    /// id above `as_of`. Engines that can answer it in one statement do (a reconnect storm pays
    /// per round trip); this default asks twice, which is also correct since later rows reach the
    /// socket live.
    async fn resume(
        &self,
        viewer: Viewer,
        after: i64,
        limit: u32,
    ) -> Result<(UnreadState, Vec<StoredNotification>), StoreError> {
        let unread = self.unread(viewer).await?;
        let page = self.replay(viewer, after.min(unread.as_of), limit).await?;
        Ok((unread, page))
    }

    /// Marks one notification read; `NotFound` when the viewer cannot see it.
    async fn mark_read(&self, viewer: Viewer, id: i64) -> Result<UnreadState, StoreError>;

    async fn mark_all_read(&self, viewer: Viewer) -> Result<UnreadState, StoreError>;

    /// How far the outbox has been published.
    async fn published_through(&self) -> Result<i64, StoreError>;

    async fn set_published_through(&self, id: i64) -> Result<(), StoreError>;

    /// The highest id stored so far (0 when empty).
    async fn max_id(&self) -> Result<i64, StoreError>;
}

/// An opened database: the notification store plus the engine-specific handle the booking domain
/// needs to write its rows and its notifications in one transaction.
#[derive(Clone)]
pub enum Database {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Database {
    pub fn notifications(&self) -> Arc<dyn NotificationStore> {
        match self {
            Database::Sqlite(s) => Arc::new(s.clone()),
            Database::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// Whether this node leads the cluster (runs the once-per-cluster jobs) — kept up to date until
    /// `stop` resolves. On SQLite there is one node, always the leader; on PostgreSQL nodes
    /// compete for a lease (see [`postgres::PgStore::lead`]).
    pub fn leadership(
        &self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::sync::watch::Receiver<bool> {
        match self {
            Database::Sqlite(_) => tokio::sync::watch::channel(true).1,
            Database::Postgres(s) => {
                let (tx, rx) = tokio::sync::watch::channel(false);
                let store = s.clone();
                tokio::spawn(async move { store.lead(tx, stop).await });
                rx
            }
        }
    }

    /// Calls `wake` when another process may have committed notifications, until `stop`: on
    /// PostgreSQL every node's commits (see [`postgres::PgStore::listen_commits`]); on SQLite
    /// nothing, since only this process writes and its writers wake the dispatcher themselves.
    pub fn on_foreign_commits(
        &self,
        wake: impl Fn() + Send + Sync + 'static,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        match self {
            Database::Sqlite(_) => {}
            Database::Postgres(s) => {
                let store = s.clone();
                tokio::spawn(async move { store.listen_commits(wake, stop).await });
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Database::Sqlite(s) => s.close().await,
            Database::Postgres(s) => s.close().await,
        }
    }
}

/// Opens (and migrates) the database a URL names: `sqlite://path`, `sqlite::memory:`, or
/// `postgres://…` / `postgresql://…`. An unreachable server is an error, never a fallback.
pub async fn open(url: &str) -> Result<Database, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Database::Sqlite(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Database::Postgres(postgres::PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

pub(crate) fn audience_columns(a: Audience) -> (&'static str, Option<i64>, Option<&'static str>) {
    match a {
        Audience::User(id) => ("user", Some(id), None),
        Audience::Role(r) => ("role", None, Some(r.as_str())),
        Audience::All => ("all", None, None),
    }
}

pub(crate) fn audience_from_columns(
    kind: &str,
    user_id: Option<i64>,
    role: Option<&str>,
) -> Result<Audience, StoreError> {
    match (kind, user_id, role) {
        ("user", Some(id), _) => Ok(Audience::User(id)),
        ("role", _, Some(r)) => r
            .parse::<Role>()
            .map(Audience::Role)
            .map_err(|e| StoreError::Corrupt(e.to_string())),
        ("all", _, _) => Ok(Audience::All),
        _ => Err(StoreError::Corrupt(format!("audience {kind}"))),
    }
}
