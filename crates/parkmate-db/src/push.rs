//! Web Push's state (migration 1005, `docs/push.md`): people's push subscriptions, and per
//! notification and person the delivery funnel, including whether it still owes a push.
//!
//! What owes a push is decided here, from the store alone, so it survives restarts and leader
//! changes: the leader's escalation scans notifications past its own cursor (`push_cursor`, like
//! the outbox's) and gives every one addressed to a person with a subscription a due time (its
//! creation plus the escalation window, or its creation for urgent events). A notification owes
//! a push while it has a due time and was neither seen (an `ack` from a socket), pushed, nor
//! given up on. Only notifications to one user escalate: a role or a broadcast reaches many
//! people, and pushing it to all of their devices is a different product (a campaign).
//!
//! Marking a push sent is conditional (`… AND pushed_at_ms IS NULL`), so two leaders overlapping
//! for a moment record it once; what they may both send, the push service collapses by `Topic`.
//!
//! Over 500 lines on purpose: subscriptions, the funnel and preferences are one state machine over
//! migration 1005's tables, each query short.

use crate::exec::{Exec, Stmt};
use crate::notifications::{COLUMNS, row_to_notification};
use crate::{Db, DbError, StoredNotification};

/// Ids one escalation scan covers at most: bounds one transaction, whatever the backlog.
pub const SCAN_IDS: i64 = 1000;

/// A stored push subscription (the browser's keys as base64url; parsed again before use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscriptionRow {
    pub id: i64,
    pub user_id: i64,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// What saving a subscription did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionSaved {
    /// A new subscription (or one that moved to this person from another).
    Created { id: i64 },
    /// This person had it already; its keys were refreshed.
    Updated { id: i64 },
    /// The person has `max` subscriptions already; nothing was stored.
    TooMany { max: u32 },
}

/// One notification's funnel for one person (`GET /api/notifications/{id}/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub user_id: i64,
    pub delivered_at_ms: Option<i64>,
    pub seen_at_ms: Option<i64>,
    pub push_due_at_ms: Option<i64>,
    pub pushed_at_ms: Option<i64>,
    pub push_failed_at_ms: Option<i64>,
    pub push_attempts: i64,
}

/// A notification owing a push now ([`Db::due_pushes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OwedPush {
    pub notification: StoredNotification,
    /// Rounds of sending already made (each retried within itself by the pusher).
    pub attempts: i64,
}

/// One person's choice for one event kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPreference {
    pub event: String,
    /// Shown live in the app (clients apply it; the inbox keeps everything).
    pub in_app: bool,
    /// Pushed when unacknowledged.
    pub push: bool,
}

/// A person's quiet hours: minutes after local midnight in `time_zone` (an IANA name); an end
/// before the start wraps past midnight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHours {
    pub time_zone: String,
    pub start_minute: i64,
    pub end_minute: i64,
}

/// Event kinds never pushed unless a person asks for them: `lot_activity` refreshes an owner's
/// dashboard on every change at their lots, without a toast.
pub const PUSH_OFF_BY_DEFAULT: &[&str] = &["lot_activity"];

/// How a push attempt ended, for [`Db::record_push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushRecord {
    /// At least one of the person's browsers' push services accepted it.
    Pushed,
    /// Every subscription refused it or is gone: no retry.
    Failed,
    /// Worth another try at this time (the push services said "later").
    RetryAt(i64),
    /// Held until this time (quiet hours); not an attempt.
    HoldUntil(i64),
}

/// `'a', 'b'` for a fixed list of our own event names (`''` for none), to splice into SQL.
fn literals(names: &[&str]) -> String {
    if names.is_empty() {
        return "''".to_owned();
    }
    names
        .iter()
        .map(|e| format!("'{}'", e.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows owing a push: due, and neither seen, pushed nor given up on.
const OWED: &str = "push_due_at_ms IS NOT NULL AND seen_at_ms IS NULL \
                    AND pushed_at_ms IS NULL AND push_failed_at_ms IS NULL";

impl Db {
    /// Stores `user_id`'s subscription (keyed by its endpoint: a browser re-subscribing refreshes
    /// its keys; an endpoint subscribed by someone else moves to this person, since one browser
    /// profile has one endpoint). Refused when the person already has `max` others.
    pub async fn save_push_subscription(
        &self,
        user_id: i64,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        now_ms: i64,
        max: u32,
    ) -> Result<SubscriptionSaved, DbError> {
        let mut tx = self.begin().await?;
        let existing: Option<i64> = tx
            .fetch_optional(
                Stmt::new("SELECT user_id FROM push_subscriptions WHERE endpoint = $1")
                    .bind(endpoint),
            )
            .await?
            .map(|r| r.get("user_id"))
            .transpose()?;
        let others: i64 = tx
            .scalar(
                Stmt::new(
                    "SELECT COUNT(*) AS v FROM push_subscriptions \
                     WHERE user_id = $1 AND endpoint <> $2",
                )
                .bind(user_id)
                .bind(endpoint),
            )
            .await?;
        if others >= i64::from(max) {
            return Ok(SubscriptionSaved::TooMany { max });
        }
        let id: i64 = tx
            .scalar(
                Stmt::new(
                    "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, \
                       p256dh = excluded.p256dh, auth = excluded.auth \
                     RETURNING id AS v",
                )
                .bind(user_id)
                .bind(endpoint)
                .bind(p256dh)
                .bind(auth)
                .bind(now_ms),
            )
            .await?;
        tx.commit().await?;
        Ok(if existing == Some(user_id) {
            SubscriptionSaved::Updated { id }
        } else {
            SubscriptionSaved::Created { id }
        })
    }

    /// Removes `user_id`'s subscription with this endpoint; `false` when it had none.
    pub async fn delete_push_subscription(
        &self,
        user_id: i64,
        endpoint: &str,
    ) -> Result<bool, DbError> {
        let mut tx = self.begin().await?;
        let n = tx
            .execute(
                Stmt::new("DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2")
                    .bind(user_id)
                    .bind(endpoint),
            )
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Removes a subscription the push service says is gone (404/410), or that no longer parses.
    pub async fn drop_push_subscription(&self, id: i64) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        tx.execute(Stmt::new("DELETE FROM push_subscriptions WHERE id = $1").bind(id))
            .await?;
        tx.commit().await
    }

    /// A person's subscriptions, oldest first.
    pub async fn push_subscriptions(
        &self,
        user_id: i64,
    ) -> Result<Vec<PushSubscriptionRow>, DbError> {
        self.read()
            .await?
            .fetch_all(
                Stmt::new(
                    "SELECT id, user_id, endpoint, p256dh, auth FROM push_subscriptions \
                     WHERE user_id = $1 ORDER BY id",
                )
                .bind(user_id),
            )
            .await?
            .iter()
            .map(|r| {
                Ok(PushSubscriptionRow {
                    id: r.get("id")?,
                    user_id: r.get("user_id")?,
                    endpoint: r.get("endpoint")?,
                    p256dh: r.get("p256dh")?,
                    auth: r.get("auth")?,
                })
            })
            .collect()
    }

    /// One escalation scan: gives the notifications after the push cursor (at most
    /// [`SCAN_IDS`] ids of them) that are addressed to one person who has a subscription and
    /// has not turned push off for their event a due time (`created + window_ms`, or `created`
    /// for `urgent` events), and moves the cursor past them, in one transaction. Answers whether
    /// more may be waiting.
    pub async fn scan_for_push(&self, window_ms: i64, urgent: &[&str]) -> Result<bool, DbError> {
        // A read first: the scan runs a few times a second, and on SQLite a write transaction
        // takes the single writer even when there is nothing to do.
        let (cursor, newest) = {
            let mut read = self.read().await?;
            let row = read
                .fetch_one(Stmt::new(
                    "SELECT (SELECT scanned_through FROM push_cursor WHERE id = 1) AS cursor, \
                            (SELECT COALESCE(MAX(id), 0) FROM notifications) AS newest",
                ))
                .await?;
            (row.get::<i64>("cursor")?, row.get::<i64>("newest")?)
        };
        if newest <= cursor {
            return Ok(false);
        }
        let mut tx = self.begin().await?;
        let cursor: i64 = tx
            .scalar(Stmt::new(
                "SELECT scanned_through AS v FROM push_cursor WHERE id = 1",
            ))
            .await?;
        // Id order is commit order: nothing at or below the highest id seen now can commit later.
        let newest: i64 = tx
            .scalar(Stmt::new(
                "SELECT COALESCE(MAX(id), 0) AS v FROM notifications",
            ))
            .await?;
        if newest <= cursor {
            return Ok(false);
        }
        let through = newest.min(cursor + SCAN_IDS);
        // `urgent` is a fixed list of our own event names, spliced as literals.
        let urgent_list = literals(urgent);
        let off_list = literals(PUSH_OFF_BY_DEFAULT);
        tx.execute(
            Stmt::new(format!(
                "INSERT INTO notification_deliveries (notification_id, user_id, event, push_due_at_ms) \
                 SELECT n.id, n.user_id, n.event, \
                        n.created_at_ms + CASE WHEN n.event IN ({urgent_list}) THEN 0 ELSE $3 END \
                 FROM notifications n \
                 WHERE n.id > $1 AND n.id <= $2 AND n.audience_kind = 'user' \
                   AND EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = n.user_id) \
                   AND COALESCE((SELECT p.push FROM notification_preferences p \
                                 WHERE p.user_id = n.user_id AND p.event = n.event), \
                                n.event NOT IN ({off_list})) \
                 ON CONFLICT (notification_id, user_id) DO UPDATE \
                   SET push_due_at_ms = COALESCE(notification_deliveries.push_due_at_ms, \
                                                 excluded.push_due_at_ms)"
            ))
            .bind(cursor)
            .bind(through)
            .bind(window_ms),
        )
        .await?;
        tx.execute(
            Stmt::new("UPDATE push_cursor SET scanned_through = $1 WHERE id = 1").bind(through),
        )
        .await?;
        tx.commit().await?;
        Ok(through < newest)
    }

    /// Notifications owing a push that are due at `now_ms`, soonest due first, at most `limit`,
    /// each with the attempts made so far. Each is addressed to one user (`audience` is `User`).
    pub async fn due_pushes(&self, now_ms: i64, limit: u32) -> Result<Vec<OwedPush>, DbError> {
        let sql = format!(
            "SELECT {COLUMNS}, push_attempts FROM ( \
               SELECT n.*, d.push_attempts AS push_attempts, d.push_due_at_ms AS due \
               FROM notifications n JOIN notification_deliveries d \
                 ON d.notification_id = n.id AND d.user_id = n.user_id \
               WHERE {OWED} AND d.push_due_at_ms <= $1 \
               ORDER BY d.push_due_at_ms LIMIT $2) AS o \
             ORDER BY due, id"
        );
        let rows = self
            .read()
            .await?
            .fetch_all(Stmt::new(&sql).bind(now_ms).bind(limit.max(1)))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OwedPush {
                    notification: row_to_notification(r)?,
                    attempts: r.get("push_attempts")?,
                })
            })
            .collect()
    }

    /// When the next push falls due (ms since the epoch), if any is owed.
    pub async fn next_push_due(&self) -> Result<Option<i64>, DbError> {
        self.read()
            .await?
            .scalar(Stmt::new(format!(
                "SELECT MIN(push_due_at_ms) AS v FROM notification_deliveries WHERE {OWED}"
            )))
            .await
    }

    /// Records how a push of notification `id` to `user_id` ended. Only a row still owing it
    /// changes, so a late or repeated record does nothing.
    pub async fn record_push(
        &self,
        id: i64,
        user_id: i64,
        record: PushRecord,
        now_ms: i64,
    ) -> Result<(), DbError> {
        let set = match record {
            PushRecord::Pushed => "pushed_at_ms = $3, push_attempts = push_attempts + 1",
            PushRecord::Failed => "push_failed_at_ms = $3, push_attempts = push_attempts + 1",
            PushRecord::RetryAt(_) => "push_due_at_ms = $3, push_attempts = push_attempts + 1",
            PushRecord::HoldUntil(_) => "push_due_at_ms = $3",
        };
        let at = match record {
            PushRecord::RetryAt(at) | PushRecord::HoldUntil(at) => at,
            _ => now_ms,
        };
        let mut tx = self.begin().await?;
        tx.execute(
            Stmt::new(format!(
                "UPDATE notification_deliveries SET {set} \
                 WHERE notification_id = $1 AND user_id = $2 AND {OWED}"
            ))
            .bind(id)
            .bind(user_id)
            .bind(at),
        )
        .await?;
        tx.commit().await
    }

    /// Records that one of `user_id`'s sockets showed notification `id` (the `ack` frame): seen,
    /// and so delivered; it no longer owes a push. The notification must be one the user can see
    /// ([`DbError::NotFound`] otherwise, like `mark_read`). Only the first ack counts. Answers
    /// the notification's event kind, for the metrics.
    pub async fn mark_seen(
        &self,
        viewer: parkmate_protocol::Viewer,
        id: i64,
        now_ms: i64,
    ) -> Result<String, DbError> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT event AS v FROM ({}) AS v",
            crate::notifications::visible("AND id = $3")
        );
        let event: Option<String> = tx
            .fetch_optional(
                Stmt::new(&sql)
                    .bind(viewer.user_id)
                    .bind(viewer.role.as_str())
                    .bind(id),
            )
            .await?
            .map(|r| r.get("v"))
            .transpose()?;
        let Some(event) = event else {
            return Err(DbError::NotFound);
        };
        tx.execute(
            Stmt::new(
                "INSERT INTO notification_deliveries \
                   (notification_id, user_id, event, delivered_at_ms, seen_at_ms) \
                 VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (notification_id, user_id) DO UPDATE SET \
                   delivered_at_ms = COALESCE(notification_deliveries.delivered_at_ms, excluded.delivered_at_ms), \
                   seen_at_ms = COALESCE(notification_deliveries.seen_at_ms, excluded.seen_at_ms)",
            )
            .bind(id)
            .bind(viewer.user_id)
            .bind(event.as_str())
            .bind(now_ms),
        )
        .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Whether `user_id` has read notification `id` (under the watermark, or read singly).
    pub async fn is_read(&self, user_id: i64, id: i64) -> Result<bool, DbError> {
        let n: i64 = self
            .read()
            .await?
            .scalar(
                Stmt::new(
                    "SELECT COUNT(*) AS v FROM (SELECT 1 AS x WHERE \
                       $2 <= COALESCE((SELECT read_through FROM read_watermarks WHERE user_id = $1), 0) \
                       OR EXISTS (SELECT 1 FROM notification_reads \
                                  WHERE user_id = $1 AND notification_id = $2)) AS r",
                )
                .bind(user_id)
                .bind(id),
            )
            .await?;
        Ok(n > 0)
    }

    /// The funnel of notification `id`: one entry per person it reached or owes a push, in
    /// user order, at most [`crate::MAX_PAGE`] of them (a broadcast acknowledged by many);
    /// `None` when no such notification is stored.
    pub async fn delivery_status(
        &self,
        id: i64,
    ) -> Result<Option<(StoredNotification, Vec<DeliveryStatus>)>, DbError> {
        let mut read = self.read().await?;
        let sql = format!("SELECT {COLUMNS} FROM notifications WHERE id = $1");
        let Some(row) = read.fetch_optional(Stmt::new(&sql).bind(id)).await? else {
            return Ok(None);
        };
        let notification = row_to_notification(&row)?;
        let rows = read
            .fetch_all(
                Stmt::new(
                    "SELECT user_id, delivered_at_ms, seen_at_ms, push_due_at_ms, pushed_at_ms, \
                            push_failed_at_ms, push_attempts \
                     FROM notification_deliveries WHERE notification_id = $1 \
                     ORDER BY user_id LIMIT $2",
                )
                .bind(id)
                .bind(crate::MAX_PAGE),
            )
            .await?;
        let statuses = rows
            .iter()
            .map(|r| {
                Ok(DeliveryStatus {
                    user_id: r.get("user_id")?,
                    delivered_at_ms: r.get("delivered_at_ms")?,
                    seen_at_ms: r.get("seen_at_ms")?,
                    push_due_at_ms: r.get("push_due_at_ms")?,
                    pushed_at_ms: r.get("pushed_at_ms")?,
                    push_failed_at_ms: r.get("push_failed_at_ms")?,
                    push_attempts: r.get("push_attempts")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok(Some((notification, statuses)))
    }

    /// A person's stored preferences (event kinds they chose for), by event, and quiet hours.
    pub async fn push_preferences(
        &self,
        user_id: i64,
    ) -> Result<(Vec<EventPreference>, Option<QuietHours>), DbError> {
        let mut read = self.read().await?;
        let events = read
            .fetch_all(
                Stmt::new(
                    "SELECT event, in_app, push FROM notification_preferences \
                     WHERE user_id = $1 ORDER BY event",
                )
                .bind(user_id),
            )
            .await?
            .iter()
            .map(|r| {
                Ok(EventPreference {
                    event: r.get("event")?,
                    in_app: r.get("in_app")?,
                    push: r.get("push")?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        let quiet = quiet_hours_on(&mut read, user_id).await?;
        Ok((events, quiet))
    }

    /// Replaces a person's preferences and quiet hours, in one transaction.
    pub async fn set_push_preferences(
        &self,
        user_id: i64,
        events: &[EventPreference],
        quiet: Option<&QuietHours>,
    ) -> Result<(), DbError> {
        let mut tx = self.begin().await?;
        tx.execute(
            Stmt::new("DELETE FROM notification_preferences WHERE user_id = $1").bind(user_id),
        )
        .await?;
        for e in events {
            tx.execute(
                Stmt::new(
                    "INSERT INTO notification_preferences (user_id, event, in_app, push) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(user_id)
                .bind(e.event.as_str())
                .bind(e.in_app)
                .bind(e.push),
            )
            .await?;
        }
        tx.execute(Stmt::new("DELETE FROM quiet_hours WHERE user_id = $1").bind(user_id))
            .await?;
        if let Some(q) = quiet {
            tx.execute(
                Stmt::new(
                    "INSERT INTO quiet_hours (user_id, time_zone, start_minute, end_minute) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(user_id)
                .bind(q.time_zone.as_str())
                .bind(q.start_minute)
                .bind(q.end_minute),
            )
            .await?;
        }
        tx.commit().await
    }

    /// A person's quiet hours, if they set any.
    pub async fn quiet_hours(&self, user_id: i64) -> Result<Option<QuietHours>, DbError> {
        quiet_hours_on(&mut self.read().await?, user_id).await
    }
}

async fn quiet_hours_on(c: &mut impl Exec, user_id: i64) -> Result<Option<QuietHours>, DbError> {
    c.fetch_optional(
        Stmt::new("SELECT time_zone, start_minute, end_minute FROM quiet_hours WHERE user_id = $1")
            .bind(user_id),
    )
    .await?
    .map(|r| {
        Ok(QuietHours {
            time_zone: r.get("time_zone")?,
            start_minute: r.get("start_minute")?,
            end_minute: r.get("end_minute")?,
        })
    })
    .transpose()
}
