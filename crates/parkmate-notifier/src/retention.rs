//! Retention: the leader deletes notifications older than the configured age, in small
//! batches, so the table (and with it every unread count and inbox query) stops growing with
//! the age of the deployment.
//!
//! Once per cluster, like the dispatcher: only while this node holds the lease, so two nodes
//! never race on the same rows. A batch is one short transaction
//! ([`Db::prune_notifications`]), and the job yields between batches, so a first run over years
//! of rows never holds the write path for long. What the outbox has not yet published is never
//! deleted. A client that resumes with a `since` older than the retained rows gets what is left:
//! retention is the one deliberate limit on "nothing is ever lost" (`docs/operations.md`).

use std::time::Duration;

use parkmate_db::Db;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Rows per transaction: small enough that a batch takes milliseconds on either engine.
const BATCH: i64 = 1000;
/// The longest pause between two looks; a short retention is looked at more often (a quarter
/// of it), never more than twice a second.
const MAX_EVERY: Duration = Duration::from_secs(3600);
const MIN_EVERY: Duration = Duration::from_millis(500);

/// How often the job looks for rows past `keep`.
pub fn interval(keep: Duration) -> Duration {
    (keep / 4).clamp(MIN_EVERY, MAX_EVERY)
}

/// Starts the job on `tracker`: while `leader` says this node leads, every [`interval`] it
/// deletes what is older than `keep`. `keep == 0` keeps everything (no task is started).
pub fn spawn(
    db: Db,
    keep: Duration,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    mut leader: watch::Receiver<bool>,
) {
    if keep.is_zero() {
        return;
    }
    let every = interval(keep);
    let Ok(keep) = chrono::Duration::from_std(keep) else {
        // Longer than chrono can count (hundreds of millions of years): nothing ever ages out.
        return;
    };
    tracker.spawn(async move {
        loop {
            if !crate::until_leader(&mut leader, &shutdown).await {
                return;
            }
            // While leading: prune, then sleep; a lost lead or the shutdown ends the sleep.
            if let Err(e) = prune(&db, keep, &shutdown).await {
                tracing::warn!(error = %e, "notification retention failed; retrying later");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
                () = crate::lead_lost(&mut leader) => {}
            }
        }
    });
}

/// Deletes every row past `keep` in batches; stops early on shutdown.
async fn prune(
    db: &Db,
    keep: chrono::Duration,
    shutdown: &CancellationToken,
) -> Result<(), parkmate_db::DbError> {
    let cutoff = chrono::Utc::now() - keep;
    loop {
        let deleted = db.prune_notifications(cutoff, BATCH).await?;
        metrics::counter!("parkmate_notifications_pruned_total").increment(deleted);
        if deleted < BATCH as u64 || shutdown.is_cancelled() {
            if deleted > 0 {
                tracing::debug!(deleted, "notifications past retention deleted");
            }
            return Ok(());
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_follows_the_retention_within_bounds() {
        assert_eq!(interval(Duration::from_secs(90 * 86_400)), MAX_EVERY);
        assert_eq!(interval(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(interval(Duration::from_secs(1)), MIN_EVERY);
    }
}
