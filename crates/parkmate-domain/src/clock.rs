//! Where "now" comes from. Every time the domain reasons about (booking windows, the scheduler's
//! deadlines) is read from a [`Clock`], so tests and the end-to-end suite can move time instead of
//! waiting for it.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// A clock that only moves when told. The scheduler then waits for [`ManualClock::ticked`]
    /// instead of sleeping, and the test clock endpoint can advance it.
    fn as_manual(&self) -> Option<&ManualClock> {
        None
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Follows tokio's clock from a fixed start, so `tokio::time::pause()` and its auto-advance drive
/// both "now" and the scheduler's sleeps in tests.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: DateTime<Utc>,
    at: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start: DateTime<Utc>) -> TokioClock {
        TokioClock {
            start,
            at: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.at;
        self.start + Duration::from_std(elapsed).unwrap_or_default()
    }
}

/// A clock that stands still until [`ManualClock::advance`]; each advance wakes the scheduler.
#[derive(Debug)]
pub struct ManualClock {
    /// A std mutex: held only to read or add, never across an `.await`.
    now: Mutex<DateTime<Utc>>,
    /// One waiter (the scheduler); `notify_one` keeps a permit so an advance is never missed.
    ticked: Notify,
}

impl ManualClock {
    pub fn starting_at(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
            ticked: Notify::new(),
        }
    }

    /// Moves time forward (never back: deadlines that fired stay fired) and wakes the scheduler.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let now = {
            let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
            *now += by.max(Duration::zero());
            *now
        };
        self.ticked.notify_one();
        now
    }

    /// Completes after the next [`advance`](Self::advance) (or at once if one happened since the
    /// last wait).
    pub async fn ticked(&self) {
        self.ticked.notified().await
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn as_manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_moves_only_forward_and_wakes() {
        let start = Utc::now();
        let clock = ManualClock::starting_at(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(-5));
        assert_eq!(clock.now(), start);
        clock.advance(Duration::seconds(60));
        assert_eq!(clock.now(), start + Duration::seconds(60));
        // The permit from the advance is kept: this returns at once.
        clock.ticked().await;
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let start = Utc::now();
        let clock = TokioClock::starting_at(start);
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now(), start + Duration::seconds(90));
    }
}
