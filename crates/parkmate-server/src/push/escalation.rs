//! Escalation: push what no socket acknowledged in time (`docs/push.md`).
//!
//! One task per node, working only while the node holds the leader lease (like the dispatcher
//! and the booking scheduler), so a cluster pushes each notification from one node. Everything
//! it knows is in the store (`parkmate_db::push`), so a restart or a new leader picks up exactly
//! what is still owed:
//! 1. **scan**: notifications stored since the last scan, addressed to one person with a push
//!    subscription, get a due time: their creation plus `push.escalation_window`, or their
//!    creation for [`URGENT_EVENTS`]. Checked every [`SCAN_INTERVAL`] (a read; the write
//!    transaction only when there is something new).
//! 2. **send**: what is due and was neither seen (an `ack`), pushed nor given up on is sent to
//!    each of the person's subscriptions, [`CONCURRENT_SENDS`] notifications at a time. Each send
//!    retries 429/5xx with backoff inside the pusher (`parkmate_push::RetryPolicy`); a
//!    subscription the push service calls gone (404/410) is deleted.
//!    Outside urgent events, a person's quiet hours hold the push until they end (`quiet.rs`).
//! 3. **record**: pushed if one push service accepted it, else tried again after
//!    [`RETRY_LATER`] (or the service's longer `Retry-After`) for at most [`MAX_ROUNDS`] rounds,
//!    else failed. A notification is pushed at most once: the record is conditional, and each
//!    message carries a `Topic` derived from its id, so a push service replaces rather than
//!    repeats a message a crash made us send twice before recording it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parkmate_db::{Db, OwedPush, PushRecord};
use parkmate_notifier::{lead_lost, until_leader};
use parkmate_protocol::Audience;
use parkmate_push::{Message, Outcome, SendError, Subscription, Topic, Urgency};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Push, URGENT_EVENTS, event_label};

/// How often the leader looks for new notifications. Urgent pushes leave within about this.
pub const SCAN_INTERVAL: Duration = Duration::from_millis(250);
/// Notifications sent at once: a slow push service delays only its own.
pub const CONCURRENT_SENDS: usize = 16;
/// Due notifications read per pass.
const BATCH: u32 = 256;
/// Rounds of sending (each with the pusher's own retries) before a push is given up on.
pub const MAX_ROUNDS: i64 = 3;
/// The wait before another round, when the push services said "later" without saying when.
pub const RETRY_LATER: Duration = Duration::from_secs(30);
/// The wait after a store error.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// The shortest wait between passes that leave nothing due: a row still due after its pass (its
/// record failed) is not retried in a tight loop.
const MIN_PAUSE: Duration = Duration::from_millis(50);

/// What the task needs; cheap to clone.
#[derive(Clone)]
pub struct Escalation {
    pub store: Db,
    pub push: Push,
    /// "Now" as the application sees it (the manual clock in end-to-end tests).
    pub now: Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync>,
}

impl Escalation {
    /// Runs the task on `tracker` until `shutdown`, working while `leader` is true.
    pub fn spawn(
        self,
        tracker: &TaskTracker,
        leader: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        tracker.spawn(self.run(leader, shutdown));
    }

    fn now_ms(&self) -> i64 {
        (self.now)().timestamp_millis()
    }

    async fn run(self, mut leader: watch::Receiver<bool>, shutdown: CancellationToken) {
        loop {
            if !until_leader(&mut leader, &shutdown).await {
                return;
            }
            let pause = tokio::select! {
                _ = shutdown.cancelled() => return,
                pause = self.pass() => pause,
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
                () = lead_lost(&mut leader) => {}
            }
        }
    }

    /// Scans, sends what is due; answers how long to wait before the next pass.
    async fn pass(&self) -> Duration {
        loop {
            match self
                .store
                .scan_for_push(window_ms(self.push.window), URGENT_EVENTS)
                .await
            {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::error!(error = ?e, "push: scanning for notifications failed");
                    return STORE_RETRY;
                }
            }
        }
        let due = match self.store.due_pushes(self.now_ms(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = ?e, "push: reading what is due failed");
                return STORE_RETRY;
            }
        };
        let full = due.len() == BATCH as usize;
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENT_SENDS, |owed| self.escalate(owed))
            .await;
        if full {
            return Duration::ZERO;
        }
        match self.store.next_push_due().await {
            Ok(Some(at)) => {
                let wait = Duration::from_millis(u64::try_from(at - self.now_ms()).unwrap_or(0));
                wait.clamp(MIN_PAUSE, SCAN_INTERVAL)
            }
            Ok(None) => SCAN_INTERVAL,
            Err(e) => {
                tracing::error!(error = ?e, "push: reading the next due time failed");
                STORE_RETRY
            }
        }
    }

    /// Sends one notification to every subscription of its person and records the result.
    async fn escalate(&self, owed: OwedPush) {
        let n = &owed.notification;
        let Audience::User(user_id) = n.audience else {
            return;
        };
        let event = event_label(&n.event);
        let record = match self.send_all(&owed, user_id).await {
            Ok(record) => record,
            Err(e) => {
                tracing::error!(error = ?e, id = n.id, "push: store error while pushing; retrying");
                return;
            }
        };
        let outcome = match record {
            PushRecord::Pushed => "pushed",
            PushRecord::Failed => "failed",
            PushRecord::RetryAt(_) => "retry",
            PushRecord::HoldUntil(_) => "held",
        };
        metrics::counter!("parkmate_push_notifications_total", "event" => event, "outcome" => outcome)
            .increment(1);
        if let Err(e) = self
            .store
            .record_push(n.id, user_id, record, self.now_ms())
            .await
        {
            tracing::error!(error = ?e, id = n.id, "push: recording a push failed");
        }
    }

    async fn send_all(
        &self,
        owed: &OwedPush,
        user_id: i64,
    ) -> Result<PushRecord, parkmate_db::DbError> {
        let n = &owed.notification;
        // Quiet hours hold what is not urgent until they end (not an attempt).
        if !URGENT_EVENTS.contains(&n.event.as_str())
            && let Some(quiet) = self.store.quiet_hours(user_id).await?
            && let Some(until) = super::quiet::held_until(&quiet, (self.now)())
        {
            return Ok(PushRecord::HoldUntil(until.timestamp_millis()));
        }
        let subscriptions = self.store.push_subscriptions(user_id).await?;
        let message = message(n, self.push.ttl);
        let policy = self.push.pusher.policy();
        let mut pushed = false;
        let mut later: Option<Duration> = None;
        for row in subscriptions {
            let subscription = match Subscription::from_parts(
                &row.endpoint,
                &row.p256dh,
                &row.auth,
                &policy,
            ) {
                Ok(s) => s,
                Err(e) => {
                    // Stored under a looser policy (development data in production) or
                    // damaged: it can never be sent to.
                    tracing::warn!(subscription = row.id, error = %e, "push: dropping an unusable subscription");
                    self.store.drop_push_subscription(row.id).await?;
                    continue;
                }
            };
            let outcome = match self.push.pusher.send(&subscription, &message).await {
                Ok(delivery) => delivery.outcome,
                Err(SendError::Endpoint(e)) => {
                    tracing::warn!(subscription = row.id, error = %e, "push: dropping a subscription whose endpoint is refused");
                    self.store.drop_push_subscription(row.id).await?;
                    continue;
                }
                Err(e) => {
                    tracing::error!(subscription = row.id, error = %e, "push: cannot prepare the message");
                    continue;
                }
            };
            let label = match &outcome {
                Outcome::Delivered { .. } => "delivered",
                Outcome::Gone { .. } => "gone",
                Outcome::RetryLater { .. } => "retry_later",
                Outcome::Rejected { .. } => "rejected",
            };
            metrics::counter!("parkmate_push_requests_total", "outcome" => label).increment(1);
            match outcome {
                Outcome::Delivered { .. } => pushed = true,
                Outcome::Gone { status } => {
                    tracing::info!(subscription = row.id, %status, "push: subscription gone; removed");
                    self.store.drop_push_subscription(row.id).await?;
                }
                Outcome::RetryLater {
                    reason,
                    retry_after,
                } => {
                    tracing::warn!(
                        subscription = row.id,
                        ?reason,
                        ?retry_after,
                        "push: push service says later"
                    );
                    let wait = retry_after.unwrap_or(RETRY_LATER).max(RETRY_LATER);
                    later = Some(later.map_or(wait, |w| w.max(wait)));
                }
                Outcome::Rejected { status, body } => {
                    tracing::warn!(subscription = row.id, %status, body, "push: push service refused the message");
                }
            }
        }
        Ok(if pushed {
            PushRecord::Pushed
        } else if let Some(wait) = later
            && owed.attempts + 1 < MAX_ROUNDS
        {
            PushRecord::RetryAt(self.now_ms() + window_ms(wait))
        } else {
            PushRecord::Failed
        })
    }
}

fn window_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The push message of a notification: the socket frame's fields as JSON (what the service
/// worker shows), high urgency for urgent events, the configured TTL, and a `Topic` from its id.
/// A payload over RFC 8291's limit (a large `data`, a long message) loses `data`, then is
/// shortened until it fits: the notification is in the inbox whole.
pub fn message(n: &parkmate_db::StoredNotification, ttl: Duration) -> Message {
    let frame = n.frame();
    let mut value = serde_json::json!({
        "id": frame.id,
        "level": frame.level,
        "event": frame.event,
        "message": frame.message,
        "data": frame.data,
        "created_at": frame.created_at,
    });
    let mut built = Message::json(&value);
    if built.is_err() {
        value["data"] = serde_json::json!({});
        value["truncated"] = serde_json::json!(true);
        let mut text: Vec<char> = frame.message.chars().collect();
        loop {
            value["message"] = serde_json::json!(text.iter().collect::<String>());
            built = Message::json(&value);
            if built.is_ok() || text.is_empty() {
                break;
            }
            text.truncate(text.len() / 2);
        }
    }
    let urgent = URGENT_EVENTS.contains(&n.event.as_str());
    built
        .expect("a payload without data or message always fits")
        .with_ttl(ttl)
        .with_urgency(if urgent {
            Urgency::High
        } else {
            Urgency::Normal
        })
        .with_topic(Topic::digest(&format!("notification:{}", n.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parkmate_protocol::Level;

    fn stored(message: String, data: serde_json::Value) -> parkmate_db::StoredNotification {
        parkmate_db::StoredNotification {
            id: 42,
            audience: Audience::User(7),
            level: Level::Warning,
            event: "booking_expiring".into(),
            message,
            data,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_message_carries_the_frame_and_shrinks_to_fit() {
        let m = message(
            &stored("soon".into(), serde_json::json!({"booking_id": 1})),
            Duration::from_secs(60),
        );
        let v: serde_json::Value = serde_json::from_slice(m.payload()).unwrap();
        assert_eq!(v["id"], 42);
        assert_eq!(v["data"]["booking_id"], 1);
        assert_eq!(m.urgency(), Urgency::High);
        assert_eq!(m.ttl_header(), 60);
        assert_eq!(m.topic(), Some(&Topic::digest("notification:42")));

        let big = stored(
            "é\"".repeat(2000),
            serde_json::json!({"blob": "x".repeat(16_000)}),
        );
        let m = message(&big, Duration::from_secs(60));
        let v: serde_json::Value = serde_json::from_slice(m.payload()).unwrap();
        assert!(m.payload().len() <= parkmate_push::MAX_PLAINTEXT);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["data"], serde_json::json!({}));
        assert!(big.message.starts_with(v["message"].as_str().unwrap()));
    }
}
