//! The publish pipeline, the Rust twin of the original `send_ws_notification(user_id, level, message)`.
//!
//! 1. [`Notifier::send`] queues notifications for the **writer** task, which stores whatever has
//!    queued up in one transaction (group commit) and answers each caller with its stored rows.
//! 2. The **dispatcher** task publishes every stored notification to the broker in id order,
//!    reading from the store past a persisted cursor. Anything that commits its own notifications
//!    (the booking domain, inside its own transactions) only has to [`OutboxSignal::wake`] it.
//!
//! Persist, then publish: a crash between the two loses nothing, because the dispatcher starts from
//! its persisted cursor and publishes what was left (clients dedupe by id, so a repeat is harmless).
//!
//! In a cluster only the leader's dispatcher publishes ([`Notifier::start_led`]): every node would
//! otherwise publish every row once. A node that becomes leader resumes from the persisted cursor,
//! so a leader that dies mid-way costs at most a few repeats, never a loss.
//!
//! Over 500 lines on purpose: the writer and the dispatcher share the cursor, the signal and the
//! invariants this doc states once; apart they would each need the other to be read.

pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parkmate_broker::{Broker, BusEvent, Published};
use parkmate_db::{Db, DbError, NewNotification, OutboxSignal, StoredNotification, UnreadState};
use parkmate_protocol::{Audience, Level, ServerFrame};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Requests queued for the writer. When full, `send` waits: publishers feel the back-pressure
/// (the HTTP API turns a long wait into 503) instead of the server buffering without bound.
const WRITER_QUEUE: usize = 1024;
/// Most notifications stored in one transaction.
const MAX_GROUP_COMMIT: usize = 512;
/// Most notifications the dispatcher reads per query.
const DISPATCH_PAGE: u32 = 500;
/// The dispatcher also looks at the store this often without being woken, so rows committed by
/// another process (or a lost wake-up) are published all the same.
const DISPATCH_POLL: Duration = Duration::from_millis(500);
/// After a failed store read or broker publish, wait this long before trying again.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// The dispatcher saves its cursor at most this often (and always when it stops). Saving after
/// every batch was a second write transaction per group commit on the one write connection; a
/// cursor up to this stale only makes a new leader re-publish a few rows, which clients drop by id.
const CURSOR_SAVE_EVERY: Duration = Duration::from_millis(250);
/// Groups the writer hands straight to the dispatcher. When full the writer drops the hand-off
/// (policy: **fall back to the store**) and the dispatcher reads those rows from the store instead.
const HANDOFF_QUEUE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the notifier is shutting down")]
    ShuttingDown,
    /// The database cannot be reached right now; nothing was stored.
    #[error("the store is unavailable")]
    StoreUnavailable,
    /// The group this request was committed with failed; nothing of it was stored.
    #[error("the notification could not be stored: {0}")]
    CommitFailed(String),
    #[error(transparent)]
    Store(#[from] DbError),
}

struct Request {
    batch: Vec<NewNotification>,
    reply: oneshot::Sender<Result<Vec<StoredNotification>, NotifyError>>,
}

/// Handle for publishing. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Request>,
    outbox: OutboxSignal,
    broker: Arc<dyn Broker>,
}

impl Notifier {
    /// Starts the writer and the dispatcher on `tracker`; both stop when `shutdown` is cancelled,
    /// after storing what was already queued and publishing what was stored.
    pub fn start(
        store: Db,
        broker: Arc<dyn Broker>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Notifier {
        Notifier::start_led(store, broker, tracker, shutdown, watch::channel(true).1)
    }

    /// Like [`Notifier::start`], but the dispatcher publishes only while `leader` is true (this node
    /// holds the cluster's leader lease); the writer always runs.
    pub fn start_led(
        store: Db,
        broker: Arc<dyn Broker>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
        leader: watch::Receiver<bool>,
    ) -> Notifier {
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let (handoff_tx, handoff_rx) = mpsc::channel(HANDOFF_QUEUE);
        let outbox = OutboxSignal::default();
        tracker.spawn(writer(
            store.clone(),
            rx,
            outbox.clone(),
            Handoff {
                tx: handoff_tx,
                leader: leader.clone(),
            },
            shutdown.clone(),
        ));
        tracker.spawn(dispatcher(
            store,
            broker.clone(),
            outbox.clone(),
            handoff_rx,
            shutdown,
            leader,
        ));
        Notifier { tx, outbox, broker }
    }

    /// Stores and publishes one notification to one user.
    pub async fn send(
        &self,
        user_id: i64,
        level: Level,
        message: impl Into<String>,
    ) -> Result<StoredNotification, NotifyError> {
        self.send_to(NewNotification::new(
            Audience::User(user_id),
            level,
            "custom",
            message,
        ))
        .await
    }

    /// Stores and publishes one notification to any audience (a user, a role, everyone).
    pub async fn send_to(
        &self,
        notification: NewNotification,
    ) -> Result<StoredNotification, NotifyError> {
        let mut stored = self.submit(vec![notification]).await?;
        stored.pop().ok_or(NotifyError::ShuttingDown)
    }

    /// Stores a batch atomically (with whatever else is queued) and returns the rows in order.
    pub async fn submit(
        &self,
        batch: Vec<NewNotification>,
    ) -> Result<Vec<StoredNotification>, NotifyError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { batch, reply })
            .await
            .map_err(|_| NotifyError::ShuttingDown)?;
        answer.await.map_err(|_| NotifyError::ShuttingDown)?
    }

    /// For code that commits notifications in its own transactions.
    pub fn outbox(&self) -> OutboxSignal {
        self.outbox.clone()
    }

    /// Tells every socket of `user_id`, on every node, its new unread count.
    pub async fn publish_read_state(&self, user_id: i64, state: UnreadState) {
        let event = BusEvent::ReadState {
            user_id,
            count: state.count,
            as_of: state.as_of,
        };
        // Read state is not persisted as an event: a socket that misses it gets the count again
        // at its next connect. So a broker hiccup here is logged, not retried.
        if let Err(e) = self.broker.publish(event).await {
            tracing::warn!(error = %e, "could not publish read state");
        }
    }
}

/// A committed group on its way from the writer to the dispatcher, already serialised.
type Group = Vec<Arc<Published>>;

/// The writer's end of the hand-off. Only a leader's dispatcher drains it, so a follower's writer
/// does not serialise groups nobody will take.
struct Handoff {
    tx: mpsc::Sender<Group>,
    leader: watch::Receiver<bool>,
}

async fn writer(
    store: Db,
    mut rx: mpsc::Receiver<Request>,
    outbox: OutboxSignal,
    handoff: Handoff,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            biased;
            r = rx.recv() => match r { Some(r) => r, None => break },
            _ = shutdown.cancelled() => break,
        };
        let mut requests = vec![first];
        let mut rows = requests[0].batch.len();
        while rows < MAX_GROUP_COMMIT {
            match rx.try_recv() {
                Ok(r) => {
                    rows += r.batch.len();
                    requests.push(r);
                }
                Err(_) => break,
            }
        }
        commit_group(&store, requests, &outbox, &handoff).await;
    }
    // Store what was accepted before shutdown; new senders now fail fast.
    rx.close();
    while let Some(r) = rx.recv().await {
        commit_group(&store, vec![r], &outbox, &handoff).await;
    }
}

async fn commit_group(
    store: &Db,
    requests: Vec<Request>,
    outbox: &OutboxSignal,
    handoff: &Handoff,
) {
    let all: Vec<NewNotification> = requests
        .iter()
        .flat_map(|r| r.batch.iter().cloned())
        .collect();
    match store.insert_batch(&all).await {
        Ok(stored) => {
            metrics::counter!("parkmate_notifications_stored_total").increment(stored.len() as u64);
            metrics::histogram!("parkmate_group_commit_size").record(stored.len() as f64);
            // The rows are in memory already: hand them over so the dispatcher need not read
            // back what was just written. A full hand-off queue only costs that read.
            if *handoff.leader.borrow() {
                let _ = handoff.tx.try_send(stored.iter().map(published).collect());
            }
            outbox.wake();
            let mut rest = stored.into_iter();
            for r in requests {
                let mine: Vec<_> = rest.by_ref().take(r.batch.len()).collect();
                let _ = r.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            tracing::error!(error = ?e, rows = all.len(), "group commit failed");
            // Every request of the group gets the outcome; an outage is told apart from a bug
            // so the API can answer 503 (retry later) rather than 500.
            let unavailable = matches!(e, DbError::Unavailable(_));
            let msg = e.to_string();
            for r in requests {
                let _ = r.reply.send(Err(if unavailable {
                    NotifyError::StoreUnavailable
                } else {
                    NotifyError::CommitFailed(msg.clone())
                }));
            }
        }
    }
}

/// Builds the shared wire form of a stored notification: serialised exactly once.
pub fn published(n: &StoredNotification) -> Arc<Published> {
    Arc::new(Published {
        id: n.id,
        audience: n.audience,
        frame: Bytes::from(ServerFrame::Notification(n.frame()).to_json()),
    })
}

/// Waits until this node leads; `false` when shutting down first. Every once-per-cluster task
/// (the dispatcher, retention, the server's push escalation) starts its lead with it.
pub async fn until_leader(
    leader: &mut watch::Receiver<bool>,
    shutdown: &CancellationToken,
) -> bool {
    while !*leader.borrow_and_update() {
        tokio::select! {
            changed = leader.changed() => {
                if changed.is_err() {
                    // Nobody will ever make us leader (the lease stopped): wait for shutdown.
                    shutdown.cancelled().await;
                    return false;
                }
            }
            _ = shutdown.cancelled() => return false,
        }
    }
    true
}

/// Resolves when this node stops leading. On SQLite the lead is a closed channel that stays
/// `true`: a closed channel never changes again, so then this never resolves (a bare
/// `leader.changed()` would answer `Err` at once, and a loop waiting on it would spin).
pub async fn lead_lost(leader: &mut watch::Receiver<bool>) {
    loop {
        if !*leader.borrow_and_update() {
            return;
        }
        if leader.changed().await.is_err() {
            if !*leader.borrow() {
                return;
            }
            std::future::pending::<()>().await;
        }
    }
}

async fn read_cursor(store: &Db, shutdown: &CancellationToken) -> Option<i64> {
    loop {
        match store.published_through().await {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::error!(error = ?e, "cannot read the outbox cursor");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_DELAY) => {}
                    _ = shutdown.cancelled() => return None,
                }
            }
        }
    }
}

async fn dispatcher(
    store: Db,
    broker: Arc<dyn Broker>,
    outbox: OutboxSignal,
    mut handoff: mpsc::Receiver<Group>,
    shutdown: CancellationToken,
    mut leader: watch::Receiver<bool>,
) {
    'lead: loop {
        if !until_leader(&mut leader, &shutdown).await {
            return;
        }
        // The previous leader may have moved the cursor: start from the persisted one.
        let Some(cursor) = read_cursor(&store, &shutdown).await else {
            return;
        };
        let mut out = Outbox::new(&store, &*broker, cursor);
        loop {
            if !*leader.borrow() {
                tracing::info!(
                    cursor = out.cursor,
                    "no longer the leader; dispatcher pauses"
                );
                continue 'lead;
            }
            // Publish everything past the cursor: the writer's hand-offs when they continue the
            // cursor exactly, else from the store, page by page.
            let pass = async {
                while let Ok(group) = handoff.try_recv() {
                    out.publish_handed(group).await?;
                }
                out.publish_pending().await?;
                out.save_cursor(false).await
            };
            if let Err(e) = pass.await {
                tracing::warn!(error = %e, cursor = out.cursor, "dispatch failed, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_DELAY) => continue,
                    // The broker may stay down: shutdown must not wait for it.
                    _ = shutdown.cancelled() => return,
                }
            }
            tokio::select! {
                biased;
                _ = outbox.woken() => {}
                // A dropped sender (a lease that ended) disables this branch; it never spins.
                Ok(()) = leader.changed() => {}
                _ = tokio::time::sleep(DISPATCH_POLL) => {}
                _ = shutdown.cancelled() => {
                    // One last pass so notifications committed during shutdown still go out, and
                    // the cursor saved so the next leader does not repeat them.
                    let last = async {
                        out.publish_pending().await?;
                        out.save_cursor(true).await
                    };
                    if let Err(e) = last.await {
                        tracing::warn!(error = %e, "final dispatch failed; the next leader publishes the rest");
                    }
                    return;
                }
            }
        }
    }
}

type DispatchError = Box<dyn std::error::Error + Send + Sync>;

/// The leader's publishing state: what it has published (`cursor`) and what it has saved.
struct Outbox<'a> {
    store: &'a Db,
    broker: &'a dyn Broker,
    cursor: i64,
    saved: i64,
    saved_at: tokio::time::Instant,
}

impl<'a> Outbox<'a> {
    fn new(store: &'a Db, broker: &'a dyn Broker, cursor: i64) -> Self {
        Outbox {
            store,
            broker,
            cursor,
            saved: cursor,
            saved_at: tokio::time::Instant::now(),
        }
    }

    /// Publishes the handed-over rows that directly continue the cursor. The first row that does
    /// not (someone else committed in between, a sequence gap, rows already published from the
    /// store) stops the fast path: the store read that follows publishes whatever lies between,
    /// in id order, so nothing is skipped or reordered.
    async fn publish_handed(&mut self, group: Group) -> Result<(), DispatchError> {
        let mut published = 0u64;
        for p in group {
            if p.id <= self.cursor {
                continue;
            }
            if p.id != self.cursor + 1 {
                break;
            }
            let id = p.id;
            self.send(p).await?;
            self.cursor = id;
            published += 1;
        }
        metrics::counter!("parkmate_notifications_published_total").increment(published);
        Ok(())
    }

    async fn publish_pending(&mut self) -> Result<(), DispatchError> {
        loop {
            let rows = self.store.after(self.cursor, DISPATCH_PAGE).await?;
            if rows.is_empty() {
                return Ok(());
            }
            let full = rows.len() == DISPATCH_PAGE as usize;
            for n in &rows {
                self.send(published(n)).await?;
                self.cursor = n.id;
            }
            metrics::counter!("parkmate_notifications_published_total")
                .increment(rows.len() as u64);
            if !full {
                return Ok(());
            }
        }
    }

    /// Publishes one notification. A lot's staff ([`Audience::Lot`]) is resolved here, when it is
    /// published, to its members' user streams: the hubs know users and roles, not lots, and
    /// resolving late means whoever works at the lot now hears it (an assignment made a moment
    /// ago included, without a reconnect), the same membership replay and inbox read. Employees
    /// per lot are few, so that is a handful of publishes; a failure half-way repeats them all
    /// (clients dedupe by id).
    async fn send(&self, p: Arc<Published>) -> Result<(), DispatchError> {
        let Audience::Lot(lot) = p.audience else {
            self.broker.publish(BusEvent::Notification(p)).await?;
            return Ok(());
        };
        for user in self.store.lot_staff(lot).await? {
            let copy = Published {
                id: p.id,
                audience: Audience::User(user),
                frame: p.frame.clone(),
            };
            self.broker
                .publish(BusEvent::Notification(Arc::new(copy)))
                .await?;
        }
        Ok(())
    }

    /// Saves the cursor when it moved and the last save is old enough (or `now`).
    async fn save_cursor(&mut self, now: bool) -> Result<(), DispatchError> {
        if self.cursor == self.saved || !(now || self.saved_at.elapsed() >= CURSOR_SAVE_EVERY) {
            return Ok(());
        }
        self.store.set_published_through(self.cursor).await?;
        self.saved = self.cursor;
        self.saved_at = tokio::time::Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On SQLite the lead is a closed channel that stays `true`: waiting for its loss must wait
    /// for good (a loop that woke from it at once spun two cores at idle before this existed).
    #[tokio::test]
    async fn a_lead_that_can_never_change_is_never_lost() {
        let mut sqlite = watch::channel(true).1;
        let waited = tokio::time::timeout(Duration::from_millis(200), lead_lost(&mut sqlite)).await;
        assert!(
            waited.is_err(),
            "lead_lost resolved on a lead that cannot end"
        );

        let (tx, mut led) = watch::channel(true);
        let lost = tokio::spawn(async move { lead_lost(&mut led).await });
        tx.send(false).unwrap();
        lost.await.unwrap();
        let mut stopped = watch::channel(false).1;
        lead_lost(&mut stopped).await;
    }
    use parkmate_broker::{BusSink, MemoryBroker};
    use std::sync::Mutex;
    use tokio::sync::Notify;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<i64>>, Notify);
    impl BusSink for Recorder {
        fn deliver(&self, event: &BusEvent) {
            if let BusEvent::Notification(p) = event {
                self.0.lock().unwrap().push(p.id);
                self.1.notify_one();
            }
        }
        fn resync(&self) {}
    }

    #[tokio::test]
    async fn stores_then_publishes_in_id_order_including_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("n.db").display());
        let store = Db::open(&url).await.unwrap();
        // A row committed before start but never published (a crash between commit and publish).
        let left = store
            .insert_batch(&[NewNotification::new(
                Audience::User(1),
                Level::Info,
                "custom",
                "left over",
            )])
            .await
            .unwrap();

        let sink = Arc::new(Recorder::default());
        let broker = Arc::new(MemoryBroker::new(sink.clone()));
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let notifier = Notifier::start(store.clone(), broker, &tracker, shutdown.clone());

        let sent = notifier
            .send(1, Level::Success, "Booking renewed successfully!")
            .await
            .unwrap();
        assert!(sent.id > left[0].id);
        while sink.0.lock().unwrap().len() < 2 {
            sink.1.notified().await;
        }
        assert_eq!(*sink.0.lock().unwrap(), vec![left[0].id, sent.id]);

        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        assert_eq!(store.published_through().await.unwrap(), sent.id);
        assert!(matches!(
            notifier.send(1, Level::Info, "late").await,
            Err(NotifyError::ShuttingDown)
        ));
    }
}
