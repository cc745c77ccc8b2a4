//! The one timer task: fires event 1 (five minutes before a window ends), event 5 (auto-expiry)
//! and the lapse of requests not approved within the hold, for every booking; and, on the same
//! lead, the recovery of payments a crash left unsettled. Not a task per booking.
//!
//! The ordered set of deadlines is the database itself (partial indexes of active bookings by
//! end, and of requests by the time their hold started), not an in-memory copy: it survives restarts, cannot drift from the bookings, and the
//! "what fired" state lives in the same rows (`status`, `warned_end_at_ms`). Each pass is one
//! transaction of conditional updates whose `RETURNING` rows are exactly what changed, with the
//! notifications for those rows, so
//! - a deadline that passed while the server was down fires once, at the first pass after start;
//! - nothing fires twice: a row already expired or already warned for its current end does not
//!   match again, and the dedupe keys (`booking:{id}:expiring:{end_at}`) catch anything else.
//!
//! Between passes the task sleeps until the next deadline, raced against a reschedule signal
//! (a booking changed), a manual clock's tick, the loss of the lead and the shutdown token.
//!
//! **Once per cluster.** The task ticks only while this node holds the leader lease
//! (`parkmate_db::Db::leadership`; on SQLite always): three nodes up, one scheduler. A
//! node that takes over starts with a pass, so deadlines that fell due while the lead moved fire
//! then, once. Should two nodes briefly both believe they lead, their passes still fire each
//! deadline once: the conditional updates lock and re-check their rows (see `parkmate_db::bookings`) and
//! the dedupe keys refuse a second row.

use std::time::Duration as StdDuration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use parkmate_db::{RefundDue, bookings, payments};

use crate::{Domain, DomainError, events};

/// Most bookings handled in one transaction, so one huge backlog does not hold the write
/// connection for long; the pass loops until the backlog is gone.
const BATCH: i64 = 256;
/// Longest sleep with the system clock: a wall-clock jump (NTP step, suspended VM) is noticed
/// within this long even if nothing else wakes the scheduler.
const MAX_NAP: StdDuration = StdDuration::from_secs(30);
/// After a failed pass (database trouble), wait this long before trying again.
const RETRY_DELAY: StdDuration = StdDuration::from_secs(1);
/// How often (by the domain's clock) the leader looks for payments left unsettled, besides the
/// look at the start of each lead. What it finds is older than the rules' grace period anyway,
/// so a minute more costs nothing.
const RECOVERY_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// What one pass fired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fired {
    /// Event 1 notifications.
    pub warned: usize,
    /// Event 5 notifications (bookings expired, slots released).
    pub expired: usize,
    /// Requests lapsed (not approved within the hold; slots released, payments refunded).
    pub lapsed: usize,
}

impl Domain {
    /// Fires every deadline that is due at the clock's "now": expiries first (a booking whose end
    /// passed gets event 5 only, never a late "5 minutes left"), then lapses of requests whose
    /// hold ran out, then warnings. A booking that ends without ever being approved (lapsed, or
    /// expired while still a request) gave its slot back unused: its online payments are refunded,
    /// decided in the same transaction and sent to the gateway right after it, on a payment task.
    pub async fn fire_due(&self) -> Result<Fired, DomainError> {
        let mut fired = Fired::default();
        let hold_ms = self.inner.rules.hold().num_milliseconds();
        loop {
            let now = self.now();
            let mut tx = self.begin().await?;
            let expired = bookings::expire_due(&mut tx, now, BATCH).await?;
            let lapsed = bookings::lapse_due(&mut tx, now, hold_ms, BATCH).await?;
            let warned = bookings::warn_due(&mut tx, now, BATCH).await?;
            // Refunds of the bookings that ended unused, before they are read for their events.
            let mut refunds: Vec<RefundDue> = Vec::new();
            let unapproved_expired = bookings::bookings_by_ids(&mut tx, &expired)
                .await?
                .into_iter()
                .filter(|b| b.approved_at.is_none())
                .map(|b| b.id);
            for id in unapproved_expired.chain(lapsed.iter().copied()) {
                refunds.extend(payments::give_back_windows(&mut tx, id, now).await?);
            }
            let refunded = |id: i64| -> i64 {
                refunds
                    .iter()
                    .filter(|d| d.booking_id == Some(id))
                    .map(|d| d.amount_cents)
                    .sum()
            };
            // One read for every booking this pass changed, not one per booking.
            let ids: Vec<i64> = expired
                .iter()
                .chain(&lapsed)
                .chain(&warned)
                .copied()
                .collect();
            let changed = bookings::bookings_by_ids(&mut tx, &ids).await?;
            if changed.len() != ids.len() {
                return Err(crate::corrupt("a booking the scheduler changed vanished"));
            }
            let (gone, rest) = changed.split_at(expired.len());
            let (ended, due) = rest.split_at(lapsed.len());
            let mut notes = Vec::with_capacity(2 * gone.len() + 3 * ended.len() + due.len());
            for b in gone {
                let end = b.window.end().timestamp_millis();
                notes.push(events::expired(b, refunded(b.id)));
                notes.push(events::lot_activity(
                    b,
                    "expired",
                    &format!("expired:{end}"),
                ));
            }
            for b in ended {
                let requested = b.requested_at.timestamp_millis();
                notes.push(events::lapsed(b, refunded(b.id)));
                notes.push(events::request_lapsed(b));
                notes.push(events::lot_activity(
                    b,
                    "lapsed",
                    &format!("lapsed:{requested}"),
                ));
            }
            notes.extend(due.iter().map(events::expiring));
            if notes.is_empty() {
                tx.commit().await?;
                return Ok(fired);
            }
            tx.insert_notifications(&notes).await?;
            tx.commit().await?;
            self.inner.outbox.wake();
            self.spawn_refunds(refunds);
            fired.expired += expired.len();
            fired.lapsed += lapsed.len();
            fired.warned += warned.len();
            if (expired.len() as i64) < BATCH
                && (lapsed.len() as i64) < BATCH
                && (warned.len() as i64) < BATCH
            {
                return Ok(fired);
            }
        }
    }

    /// The earliest deadline not yet fired (an end, a warning, a request's hold), if any.
    pub async fn next_deadline(
        &self,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, DomainError> {
        let mut conn = self.read().await?;
        let end = bookings::next_deadline(&mut conn).await?;
        let lapse =
            bookings::next_lapse(&mut conn, self.inner.rules.hold().num_milliseconds()).await?;
        Ok(end.into_iter().chain(lapse).min())
    }

    /// Runs the scheduler until `shutdown` is cancelled, ticking only while `leader` says this
    /// node leads. The first pass of each lead fires whatever fell due before it (while the
    /// server was down, or while another node led and died).
    pub async fn run_scheduler(
        self,
        mut leader: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        loop {
            // Follower: wait for the lead. A closed channel keeps its last value for good.
            // (Only whether it succeeded leaves the future: the `Ref` must not live across an await.)
            let led = tokio::select! {
                _ = shutdown.cancelled() => return,
                led = async { leader.wait_for(|leads| *leads).await.is_ok() } => led,
            };
            if !led {
                // The lease was given up for good (shutting down) without this node leading.
                shutdown.cancelled().await;
                return;
            }
            tracing::info!("this node leads: running the booking timers");
            if self.lead(&mut leader, &shutdown).await {
                return;
            }
            tracing::info!("lead lost: the booking timers run elsewhere");
        }
    }

    /// Passes while this node leads; `true` when stopped by `shutdown`, `false` when the lead
    /// was lost. Recovers payments at the start of the lead and every [`RECOVERY_EVERY`].
    async fn lead(&self, leader: &mut watch::Receiver<bool>, shutdown: &CancellationToken) -> bool {
        let mut next_recovery = self.now();
        loop {
            if self.now() >= next_recovery {
                self.spawn_recovery();
                next_recovery = self.now() + RECOVERY_EVERY;
            }
            let wait = match self.pass().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = ?e, "scheduler pass failed; retrying");
                    Some(RETRY_DELAY)
                }
            };
            let manual = self.clock().as_manual();
            tokio::select! {
                _ = shutdown.cancelled() => return true,
                () = lost(leader) => return false,
                _ = self.inner.reschedule.notified() => {}
                _ = async { match manual { Some(m) => m.ticked().await, None => std::future::pending().await } } => {}
                _ = async { match wait { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
            }
        }
    }

    /// Starts [`run_scheduler`](Self::run_scheduler) on `tracker`, following `leader` (a watch
    /// of whether this node holds the cluster's lease: `Database::leadership`). The domain
    /// follows the same lead in [`advance_clock`](Self::advance_clock).
    pub fn spawn_scheduler(
        &self,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
        leader: watch::Receiver<bool>,
    ) {
        // One scheduler per domain: a second one would only double every pass.
        if !self.follow(leader.clone()) {
            tracing::warn!("a scheduler already runs for this domain; not starting another");
            return;
        }
        tracker.spawn(self.clone().run_scheduler(leader, shutdown));
    }

    /// Runs [`recover_payments`](Domain::recover_payments) on a payment task, so gateway calls
    /// (possibly slow: that may be why a payment is unsettled) never hold up the timers; at most
    /// one at a time.
    fn spawn_recovery(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.recovering.swap(true, Ordering::AcqRel) {
            return;
        }
        let domain = self.clone();
        self.inner.payments.spawn(async move {
            match domain.recover_payments().await {
                Ok(r) if r != Default::default() => tracing::info!(?r, "payments recovered"),
                Ok(_) => {}
                Err(e) => tracing::error!(error = ?e, "payment recovery failed; retrying later"),
            }
            domain.inner.recovering.store(false, Ordering::Release);
        });
    }

    /// One pass; answers how long to sleep (`None`: until woken).
    async fn pass(&self) -> Result<Option<StdDuration>, DomainError> {
        let fired = self.fire_due().await?;
        if fired != Fired::default() {
            tracing::debug!(?fired, "scheduler fired");
        }
        if self.clock().as_manual().is_some() {
            // Manual time moves only by advance(), which wakes us; a real sleep would be wrong.
            return Ok(None);
        }
        // Without a deadline, still look again after MAX_NAP: a booking committed on another
        // node wakes us through the commit listener, and this bounds a missed wake-up.
        let Some(next) = self.next_deadline().await? else {
            return Ok(Some(MAX_NAP));
        };
        let until = (next - self.now()).to_std().unwrap_or(StdDuration::ZERO);
        // Also wake for the next recovery look.
        let recovery = RECOVERY_EVERY.to_std().unwrap_or(MAX_NAP);
        Ok(Some(until.min(MAX_NAP).min(recovery)))
    }
}

/// Resolves when `leader` turns false. A closed channel never changes again: then never.
async fn lost(leader: &mut watch::Receiver<bool>) {
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
