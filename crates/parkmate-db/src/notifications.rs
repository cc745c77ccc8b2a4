//! The notification store: the source of truth for every notification and its read state.
//!
//! Pub/sub is at-most-once; this is what makes delivery lossless: every notification is
//! committed here before it is published, and a reconnecting client is replayed from here. Id
//! order is commit order on both engines (a reader that has seen id N has seen every committed id
//! below N; see `Tx::insert_notifications`).
//!
//! Group notifications (a role, a lot's staff, everyone) are one row each; read state is per user:
//! a watermark (`read_watermarks`: everything up to it is read) plus single reads above it. Who is
//! a lot's staff is read from `lot_employees` with every query, so it is always the current
//! membership.
//!
//! Over 500 lines on purpose: the store's queries share the visibility rule (`visible`) and the
//! read-state SQL; apart, each would need the other to be read.

use chrono::{DateTime, TimeZone, Utc};
use parkmate_protocol::{Audience, Level, Role, Viewer};

use crate::exec::{Exec, Row, Stmt};
use crate::{Db, DbError, Greeting, InboxItem, InboxPage, StoredNotification, UnreadState};

/// The largest page any listing returns, whatever the caller asks for.
pub const MAX_PAGE: u32 = 1000;

/// A notification's columns. `data` is JSONB on PostgreSQL and TEXT on SQLite: read as text.
pub(crate) const COLUMNS: &str = "id, audience_kind, user_id, role, lot_id, level, event, message, CAST(data AS TEXT) AS data, created_at_ms";

/// The rows a viewer can see: its own, its role's, those of the lots it works at now, and
/// everyone's. Four index-backed branches rather than one `OR`, so each uses its partial index
/// (a viewer who works nowhere costs the lot branch one probe of `lot_employees_by_user`).
/// `$1` user id, `$2` role.
pub(crate) fn visible(extra: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'user' AND user_id = $1 {extra} \
         UNION ALL SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'role' AND role = $2 {extra} \
         UNION ALL SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'lot' \
             AND lot_id IN (SELECT lot_id FROM lot_employees WHERE user_id = $1) {extra} \
         UNION ALL SELECT {COLUMNS} FROM notifications WHERE audience_kind = 'all' {extra}"
    )
}

/// The viewer's read watermark (0 when it never marked all read). `$1` user id.
const WATERMARK: &str =
    "COALESCE((SELECT read_through FROM read_watermarks WHERE user_id = $1), 0)";

/// The newest id the viewer can see (0 when none): the largest of one index lookup per stream
/// (each stream's partial index ends in `id`, so each `MAX` reads one entry; a lot's staff one per
/// lot the viewer works at). `$1` user id, `$2` role.
const NEWEST_VISIBLE: &str = "(SELECT COALESCE(MAX(m), 0) FROM ( \
       SELECT MAX(id) AS m FROM notifications WHERE audience_kind = 'user' AND user_id = $1 \
       UNION ALL SELECT MAX(id) FROM notifications WHERE audience_kind = 'role' AND role = $2 \
       UNION ALL SELECT (SELECT MAX(n.id) FROM notifications n \
                          WHERE n.audience_kind = 'lot' AND n.lot_id = e.lot_id) \
                 FROM lot_employees e WHERE e.user_id = $1 \
       UNION ALL SELECT MAX(id) FROM notifications WHERE audience_kind = 'all') AS streams)";

/// One row from one snapshot: `as_of` (the highest stored id), the viewer's `unread` count and
/// `newest` (the highest id the viewer can see, never above `as_of`). `$1` user, `$2` role.
fn unread_sql() -> String {
    format!(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM notifications) AS as_of, \
                (SELECT COUNT(*) FROM ({}) AS v \
                  WHERE NOT EXISTS (SELECT 1 FROM notification_reads r \
                                     WHERE r.user_id = $1 AND r.notification_id = v.id)) AS unread, \
                {NEWEST_VISIBLE} AS newest",
        visible(&format!("AND id > {WATERMARK}"))
    )
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// An audience as its columns: `audience_kind`, `user_id`, `role`, `lot_id`.
pub(crate) struct AudienceColumns {
    pub kind: &'static str,
    pub user_id: Option<i64>,
    pub role: Option<&'static str>,
    pub lot_id: Option<i64>,
}

pub(crate) fn audience_columns(a: Audience) -> AudienceColumns {
    let (kind, user_id, role, lot_id) = match a {
        Audience::User(id) => ("user", Some(id), None, None),
        Audience::Role(r) => ("role", None, Some(r.as_str()), None),
        Audience::Lot(id) => ("lot", None, None, Some(id)),
        Audience::All => ("all", None, None, None),
    };
    AudienceColumns {
        kind,
        user_id,
        role,
        lot_id,
    }
}

fn audience_of(row: &Row) -> Result<Audience, DbError> {
    let kind: String = row.get("audience_kind")?;
    let role: Option<String> = row.get("role")?;
    match (
        kind.as_str(),
        row.get::<Option<i64>>("user_id")?,
        role,
        row.get::<Option<i64>>("lot_id")?,
    ) {
        ("user", Some(id), _, _) => Ok(Audience::User(id)),
        ("role", _, Some(r), _) => r
            .parse::<Role>()
            .map(Audience::Role)
            .map_err(|e| DbError::corrupt(e.to_string())),
        ("lot", _, _, Some(id)) => Ok(Audience::Lot(id)),
        ("all", _, _, _) => Ok(Audience::All),
        _ => Err(DbError::corrupt(format!("audience {kind}"))),
    }
}

pub(crate) fn row_to_notification(row: &Row) -> Result<StoredNotification, DbError> {
    let level: String = row.get("level")?;
    let data: String = row.get("data")?;
    Ok(StoredNotification {
        id: row.get("id")?,
        audience: audience_of(row)?,
        level: level
            .parse::<Level>()
            .map_err(|e| DbError::corrupt(e.to_string()))?,
        event: row.get("event")?,
        message: row.get("message")?,
        data: serde_json::from_str(&data).map_err(|e| DbError::corrupt(e.to_string()))?,
        created_at: from_millis(row.get("created_at_ms")?),
    })
}

/// How much one replay page may hold: at most `rows` notifications, and none past the one that
/// brings the page's message and data to `bytes` (so a page holds at most `bytes` plus one
/// notification, and always at least one: it makes progress whatever the sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageBudget {
    pub rows: u32,
    pub bytes: u32,
}

/// One replay page, oldest first; `more` when the store may hold further rows after it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayPage {
    pub notifications: Vec<StoredNotification>,
    pub more: bool,
}

/// The viewer's rows after `$3`, at most `$4` of them, cut where their message and data pass `$5`
/// bytes: the row count bounds what the database reads, the running sum (over those rows only)
/// what is sent to us. Each row also says how many the row-limited page held (`fetched`), so the
/// reader knows whether the byte budget cut it.
fn budgeted_page() -> String {
    format!(
        "SELECT * FROM ( \
           SELECT p.*, SUM(OCTET_LENGTH(p.message) + OCTET_LENGTH(p.data)) OVER (ORDER BY p.id) AS upto, \
                  COUNT(*) OVER () AS fetched \
           FROM (SELECT * FROM ({}) AS v ORDER BY id LIMIT $4) AS p \
         ) AS w \
         WHERE w.upto - OCTET_LENGTH(w.message) - OCTET_LENGTH(w.data) < $5",
        visible("AND id > $3")
    )
}

/// A replay page: `$1` user id, `$2` role (as [`visible`] wants them), `$3` the id to start
/// after, `$4` the page size (capped), `$5` its byte budget.
fn page(sql: &str, viewer: Viewer, after: i64, budget: PageBudget) -> Stmt<'_> {
    Stmt::new(sql)
        .bind(viewer.user_id)
        .bind(viewer.role.as_str())
        .bind(after)
        .bind(budget.rows.clamp(1, MAX_PAGE))
        .bind(budget.bytes.max(1))
}

/// Rows of [`budgeted_page`] (those with an `id`) into a [`ReplayPage`].
fn replay_page(rows: &[Row], budget: PageBudget) -> Result<ReplayPage, DbError> {
    let mut notifications = Vec::with_capacity(rows.len());
    let mut fetched = 0i64;
    for row in rows {
        if row.get::<Option<i64>>("id")?.is_some() {
            notifications.push(row_to_notification(row)?);
            fetched = row.get("fetched")?;
        }
    }
    let cut = (notifications.len() as i64) < fetched;
    let full = fetched >= i64::from(budget.rows.clamp(1, MAX_PAGE));
    Ok(ReplayPage {
        notifications,
        more: cut || full,
    })
}

async fn unread_on(c: &mut impl Exec, viewer: Viewer) -> Result<UnreadState, DbError> {
    Ok(greeting_on(c, viewer).await?.unread)
}

/// The viewer's [`unread_sql`] row.
async fn greeting_on(c: &mut impl Exec, viewer: Viewer) -> Result<Greeting, DbError> {
    let sql = unread_sql();
    let row = c
        .fetch_one(
            Stmt::new(&sql)
                .bind(viewer.user_id)
                .bind(viewer.role.as_str()),
        )
        .await?;
    Ok(Greeting {
        unread: UnreadState {
            count: row.get("unread")?,
            as_of: row.get("as_of")?,
        },
        newest: row.get("newest")?,
    })
}

/// What `viewer` can see with an id above `after`, oldest first, one page within `budget`.
async fn page_on(
    c: &mut impl Exec,
    viewer: Viewer,
    after: i64,
    budget: PageBudget,
) -> Result<ReplayPage, DbError> {
    let sql = format!("{} ORDER BY w.id", budgeted_page());
    let rows = c.fetch_all(page(&sql, viewer, after, budget)).await?;
    replay_page(&rows, budget)
}

async fn max_id_on(c: &mut impl Exec) -> Result<i64, DbError> {
    c.scalar(Stmt::new(
        "SELECT COALESCE(MAX(id), 0) AS v FROM notifications",
    ))
    .await
}

/// The store's operations, each one query or one short transaction.
impl Db {
    /// Every notification with an id above `after`, oldest first, whatever its audience (the
    /// outbox dispatcher's view).
    pub async fn after(&self, after: i64, limit: u32) -> Result<Vec<StoredNotification>, DbError> {
        let sql = format!("SELECT {COLUMNS} FROM notifications WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = self
            .read()
            .await?
            .fetch_all(Stmt::new(&sql).bind(after).bind(limit.min(MAX_PAGE)))
            .await?;
        rows.iter().map(row_to_notification).collect()
    }

    /// What `viewer` can see with an id above `after`, oldest first, one page within `budget`
    /// (replay on reconnect).
    pub async fn replay(
        &self,
        viewer: Viewer,
        after: i64,
        budget: PageBudget,
    ) -> Result<ReplayPage, DbError> {
        page_on(&mut self.read().await?, viewer, after, budget).await
    }

    /// What a socket resuming after `after` needs first: the viewer's greeting (unread state and
    /// newest visible id, one snapshot) and the first replay page. The page's statement runs only
    /// when the greeting shows a visible id above `after`: most sockets of a reconnect storm
    /// missed nothing, and one statement joining both made them pay for the page's machinery
    /// (four index probes, a sort, two window passes) anyway. Both run on one pooled connection
    /// (BENCHMARKS.md, fifth round: 28% less server CPU per socket in a storm). The page reads
    /// its own snapshot, so it may hold ids above `as_of`: a caller counts those as new unread
    /// (the socket does: `Connection::note_sent`), and the hub's copies of them are duplicates it
    /// skips.
    pub async fn resume(
        &self,
        viewer: Viewer,
        after: i64,
        budget: PageBudget,
    ) -> Result<(Greeting, ReplayPage), DbError> {
        let mut conn = self.read().await?;
        let greeting = greeting_on(&mut conn, viewer).await?;
        if greeting.newest <= after {
            let empty = ReplayPage {
                notifications: Vec::new(),
                more: false,
            };
            return Ok((greeting, empty));
        }
        Ok((greeting, page_on(&mut conn, viewer, after, budget).await?))
    }

    /// The viewer's inbox, newest first, optionally only ids below `before`.
    pub async fn inbox(
        &self,
        viewer: Viewer,
        before: Option<i64>,
        limit: u32,
    ) -> Result<InboxPage, DbError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let sql = format!(
            "SELECT v.*, (v.id <= {WATERMARK} \
                     OR EXISTS (SELECT 1 FROM notification_reads r WHERE r.user_id = $1 AND r.notification_id = v.id)) \
                     AS is_read \
             FROM ({}) AS v ORDER BY v.id DESC LIMIT $4",
            visible("AND id < $3")
        );
        // One more than asked tells whether an older page exists.
        let rows = self
            .read()
            .await?
            .fetch_all(
                Stmt::new(&sql)
                    .bind(viewer.user_id)
                    .bind(viewer.role.as_str())
                    .bind(before.unwrap_or(i64::MAX))
                    .bind(limit + 1),
            )
            .await?;
        let more = rows.len() > limit as usize;
        let items = rows
            .iter()
            .take(limit as usize)
            .map(|row| {
                Ok(InboxItem {
                    notification: row_to_notification(row)?,
                    read: row.get::<bool>("is_read")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        let next_before = if more {
            items.last().map(|i| i.notification.id)
        } else {
            None
        };
        Ok(InboxPage { items, next_before })
    }

    pub async fn unread(&self, viewer: Viewer) -> Result<UnreadState, DbError> {
        unread_on(&mut self.read().await?, viewer).await
    }

    /// What a socket opening without `since` says in its `hello`: the unread state and the
    /// newest id the viewer can see, from one snapshot (one statement).
    pub async fn greeting(&self, viewer: Viewer) -> Result<Greeting, DbError> {
        greeting_on(&mut self.read().await?, viewer).await
    }

    /// Marks one notification read; `NotFound` when the viewer cannot see it.
    pub async fn mark_read(&self, viewer: Viewer, id: i64) -> Result<UnreadState, DbError> {
        let mut tx = self.begin().await?;
        // Visible by the same rule as replay and inbox (a lot's staff by current membership).
        // Someone else's notification is indistinguishable from a missing one.
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM ({}) AS v) AS v",
            visible("AND id = $3")
        );
        let visible: bool = tx
            .scalar(
                Stmt::new(&sql)
                    .bind(viewer.user_id)
                    .bind(viewer.role.as_str())
                    .bind(id),
            )
            .await?;
        if !visible {
            return Err(DbError::NotFound);
        }
        tx.execute(
            Stmt::new(format!(
                "INSERT INTO notification_reads (user_id, notification_id) \
                 SELECT $1, $2 WHERE $2 > {WATERMARK} ON CONFLICT DO NOTHING"
            ))
            .bind(viewer.user_id)
            .bind(id),
        )
        .await?;
        let state = unread_on(&mut tx, viewer).await?;
        tx.commit().await?;
        Ok(state)
    }

    pub async fn mark_all_read(&self, viewer: Viewer) -> Result<UnreadState, DbError> {
        let mut tx = self.begin().await?;
        let as_of = max_id_on(&mut tx).await?;
        // The watermark only moves up (a late request must not unread what a newer one read).
        tx.execute(
            Stmt::new(
                "INSERT INTO read_watermarks (user_id, read_through) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET read_through = \
                   CASE WHEN excluded.read_through > read_watermarks.read_through \
                        THEN excluded.read_through ELSE read_watermarks.read_through END",
            )
            .bind(viewer.user_id)
            .bind(as_of),
        )
        .await?;
        // Single reads below the watermark say nothing more; drop them to keep the table small.
        tx.execute(
            Stmt::new(
                "DELETE FROM notification_reads WHERE user_id = $1 AND notification_id <= $2",
            )
            .bind(viewer.user_id)
            .bind(as_of),
        )
        .await?;
        let state = unread_on(&mut tx, viewer).await?;
        tx.commit().await?;
        Ok(state)
    }

    /// How far the outbox has been published.
    pub async fn published_through(&self) -> Result<i64, DbError> {
        self.read()
            .await?
            .scalar(Stmt::new(
                "SELECT published_through AS v FROM outbox_cursor WHERE id = 1",
            ))
            .await
    }

    /// Moves the outbox cursor forward (never back: a stale leader's late save is harmless).
    pub async fn set_published_through(&self, id: i64) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        tx.execute(
            Stmt::new(
                "UPDATE outbox_cursor SET published_through = $1 WHERE id = 1 AND published_through < $1",
            )
            .bind(id),
        )
        .await?;
        tx.commit().await
    }

    /// Who is on a lot's staff now: the users a [`Audience::Lot`] notification is published to
    /// live (the same membership replay and inbox read).
    pub async fn lot_staff(&self, lot_id: i64) -> Result<Vec<i64>, DbError> {
        self.read()
            .await?
            .fetch_all(
                Stmt::new("SELECT user_id FROM lot_employees WHERE lot_id = $1 ORDER BY user_id")
                    .bind(lot_id),
            )
            .await?
            .iter()
            .map(|r| r.get("user_id"))
            .collect()
    }

    /// The highest id stored so far (0 when empty).
    pub async fn max_id(&self) -> Result<i64, DbError> {
        max_id_on(&mut self.read().await?).await
    }

    /// Deletes up to `limit` of the oldest notifications created before `cutoff`, with their
    /// single read marks, in one transaction; answers how many went (the retention job calls it
    /// until it answers less than `limit`).
    ///
    /// Only what the outbox has published goes (a row not yet delivered live is never lost to
    /// retention), and only below the first row that is new enough: ids follow commit order, so
    /// that row is found by walking the primary key from the oldest end, never by scanning the
    /// table for `created_at_ms`. A row stamped older than a newer neighbour (a clock stepped
    /// back) waits until that neighbour ages out too.
    pub async fn prune_notifications(
        &self,
        cutoff: DateTime<Utc>,
        limit: i64,
    ) -> Result<u64, DbError> {
        let mut tx = self.begin().await?;
        let published: i64 = tx
            .scalar(Stmt::new(
                "SELECT published_through AS v FROM outbox_cursor WHERE id = 1",
            ))
            .await?;
        let first_kept: Option<i64> = tx
            .scalar(
                Stmt::new(
                    "SELECT MIN(id) AS v FROM \
                     (SELECT id FROM notifications WHERE created_at_ms >= $1 ORDER BY id LIMIT 1) AS k",
                )
                .bind(cutoff.timestamp_millis()),
            )
            .await?;
        // Everything below both bounds may go; `first_kept` absent means every row is old.
        let below = first_kept
            .unwrap_or(i64::MAX)
            .min(published.saturating_add(1));
        let doomed = "SELECT id FROM notifications WHERE id < $1 ORDER BY id LIMIT $2";
        // What hangs off a notification goes with it: read marks, and its delivery funnel (a
        // push still owed that long after is owed no more).
        for table in ["notification_reads", "notification_deliveries"] {
            tx.execute(
                Stmt::new(format!(
                    "DELETE FROM {table} WHERE notification_id IN ({doomed})"
                ))
                .bind(below)
                .bind(limit),
            )
            .await?;
        }
        let deleted = tx
            .execute(
                Stmt::new(format!("DELETE FROM notifications WHERE id IN ({doomed})"))
                    .bind(below)
                    .bind(limit),
            )
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
