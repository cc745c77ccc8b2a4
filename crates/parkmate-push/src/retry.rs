//! Retries of one push: exponential backoff with jitter, bounded in attempts and in total time,
//! for the outcomes that say "later" (RFC 8030 §5: 429 and 5xx from the push service, or no
//! answer at all). A gone or rejected push, or an error that no retry can fix, returns at once.
//!
//! The schedule is `backon`'s `ExponentialBuilder` (already in the lock via redis): delays
//! `initial, 2·initial, 4·initial …` capped at `max_delay`, each stretched by a random 0–100 %
//! (jitter, so pushes that failed together do not retry together). Two rules are ours:
//! - a `Retry-After` from the push service is honoured: the wait is the larger of it and the
//!   computed delay;
//! - the whole send, requests included, stays within `max_elapsed`: a retry that would start
//!   after it is not made, and the caller gets the last "retry later" (with its `Retry-After`) to
//!   schedule itself — the push service asked for more patience than this call has.

use std::future::Future;
use std::num::NonZeroU32;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

use crate::deliver::{Delivery, Outcome, SendError};

/// How hard one send tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. 4: a push service's hiccup is usually over within
    /// seconds, and a notification that matters in minutes is not worth minutes of retrying.
    pub max_attempts: NonZeroU32,
    /// The delay before the second attempt (before jitter).
    pub initial_delay: Duration,
    /// The cap on one delay (before jitter; jitter may add up to as much again).
    pub max_delay: Duration,
    /// No attempt starts later than this after the first one did.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: NonZeroU32::new(4).expect("4 is not zero"),
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn no_retry() -> Self {
        Self {
            max_attempts: NonZeroU32::MIN,
            ..Self::default()
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.get() as usize - 1)
            .with_jitter()
    }
}

/// Runs `attempt` under `policy`. `attempt` is called once per try; its `RetryLater` outcomes
/// are retried, everything else is returned as it is.
pub(crate) async fn with_retries<F, Fut>(
    policy: &RetryPolicy,
    mut attempt: F,
) -> Result<Delivery, SendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Outcome, SendError>>,
{
    let started = Instant::now();
    let mut attempts = 0u32;
    // backon's schedule (an iterator of delays: exponential, capped, jittered, `max_attempts − 1`
    // of them). Its `Retry` future would run the loop too, but the two rules above need the
    // outcome's `Retry-After` and the clock at the moment of deciding, and the caller wants the
    // attempt count: as a plain loop that is a dozen readable lines instead of state shared
    // between four closures.
    let mut backoff = policy.backoff().build();
    loop {
        attempts += 1;
        let outcome = attempt().await?;
        let Outcome::RetryLater { retry_after, .. } = &outcome else {
            return Ok(Delivery { outcome, attempts });
        };
        let Some(delay) = backoff.next() else {
            return Ok(Delivery { outcome, attempts });
        };
        let wait = retry_after.map_or(delay, |asked| asked.max(delay));
        if started.elapsed() + wait > policy.max_elapsed {
            return Ok(Delivery { outcome, attempts });
        }
        tracing::debug!(attempt = attempts, ?wait, ?outcome, "push: retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use reqwest::StatusCode;

    use super::*;
    use crate::deliver::RetryReason;
    use crate::endpoint::EndpointError;

    fn later(retry_after: Option<Duration>) -> Outcome {
        Outcome::RetryLater {
            reason: RetryReason::Status(StatusCode::SERVICE_UNAVAILABLE),
            retry_after,
        }
    }

    fn delivered() -> Outcome {
        Outcome::Delivered {
            status: StatusCode::CREATED,
            location: None,
        }
    }

    /// Plays `script` one outcome per attempt and records when (on tokio's paused clock) each
    /// attempt started, relative to the first.
    async fn run(
        policy: RetryPolicy,
        script: Vec<Result<Outcome, SendError>>,
    ) -> (Result<Delivery, SendError>, Vec<Duration>) {
        let start = Instant::now();
        let times = Mutex::new(Vec::new());
        let script = Mutex::new(script.into_iter());
        let result = with_retries(&policy, || {
            times.lock().unwrap().push(start.elapsed());
            let next = script
                .lock()
                .unwrap()
                .next()
                .expect("more attempts than scripted");
            async move { next }
        })
        .await;
        (result, times.into_inner().unwrap())
    }

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: NonZeroU32::new(attempts).unwrap(),
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_elapsed: Duration::from_secs(600),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn delays_grow_exponentially_with_jitter_until_delivered() {
        let (result, times) = run(
            policy(5),
            vec![
                Ok(later(None)),
                Ok(later(None)),
                Ok(later(None)),
                Ok(delivered()),
            ],
        )
        .await;
        let delivery = result.unwrap();
        assert_eq!(delivery.attempts, 4);
        assert_eq!(delivery.outcome, delivered());
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        // Each gap is the base delay (1 s, 2 s, 4 s) plus 0–100 % jitter.
        for (gap, base) in gaps.iter().zip([1u64, 2, 4]) {
            let base = Duration::from_secs(base);
            assert!(
                *gap >= base && *gap <= base * 2,
                "gap {gap:?} outside [{base:?}, 2×{base:?}]"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded_and_the_last_retry_later_is_returned() {
        let (result, times) = run(
            policy(3),
            vec![Ok(later(None)), Ok(later(None)), Ok(later(None))],
        )
        .await;
        let delivery = result.unwrap();
        assert_eq!(delivery.attempts, 3);
        assert_eq!(times.len(), 3);
        assert!(matches!(delivery.outcome, Outcome::RetryLater { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn the_delay_cap_holds() {
        let p = RetryPolicy {
            max_delay: Duration::from_secs(2),
            ..policy(6)
        };
        let (_, times) = run(p, (0..6).map(|_| Ok(later(None))).collect()).await;
        for gap in times.windows(2).map(|w| w[1] - w[0]) {
            assert!(
                gap <= Duration::from_secs(4),
                "gap {gap:?} over cap + jitter"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_when_longer_than_the_backoff() {
        let (result, times) = run(
            policy(3),
            vec![Ok(later(Some(Duration::from_secs(30)))), Ok(delivered())],
        )
        .await;
        assert_eq!(result.unwrap().attempts, 2);
        assert!(times[1] >= Duration::from_secs(30) && times[1] < Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_time_budget_is_left_to_the_caller() {
        let p = RetryPolicy {
            max_elapsed: Duration::from_secs(60),
            ..policy(5)
        };
        let (result, times) = run(p, vec![Ok(later(Some(Duration::from_secs(3600))))]).await;
        let delivery = result.unwrap();
        assert_eq!(times.len(), 1, "no retry once the wait exceeds the budget");
        assert_eq!(delivery.outcome, later(Some(Duration::from_secs(3600))));
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_budget_counts_slow_attempts_too() {
        let p = RetryPolicy {
            max_elapsed: Duration::from_secs(10),
            ..policy(10)
        };
        let start = Instant::now();
        let mut attempts = 0;
        let delivery = with_retries(&p, || {
            attempts += 1;
            async {
                // Each attempt takes 4 s (a slow push service), as measured by the paused clock.
                tokio::time::sleep(Duration::from_secs(4)).await;
                Ok(later(None))
            }
        })
        .await
        .unwrap();
        assert!(
            delivery.attempts < 4,
            "{} attempts in a 10 s budget",
            delivery.attempts
        );
        // No attempt started after the budget: the last one ended at most 4 s past it.
        assert!(start.elapsed() <= Duration::from_secs(14));
    }

    #[tokio::test(start_paused = true)]
    async fn gone_rejected_and_errors_are_never_retried() {
        let gone = Outcome::Gone {
            status: StatusCode::GONE,
        };
        let (result, times) = run(policy(5), vec![Ok(gone.clone())]).await;
        assert_eq!(result.unwrap().outcome, gone);
        assert_eq!(times.len(), 1);

        let rejected = Outcome::Rejected {
            status: StatusCode::BAD_REQUEST,
            body: "bad".into(),
        };
        let (result, times) = run(policy(5), vec![Ok(rejected.clone())]).await;
        assert_eq!(result.unwrap().outcome, rejected);
        assert_eq!(times.len(), 1);

        let (result, times) = run(
            policy(5),
            vec![Err(SendError::Endpoint(EndpointError::Credentials))],
        )
        .await;
        assert!(matches!(result, Err(SendError::Endpoint(_))));
        assert_eq!(times.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_means_one_attempt() {
        let (result, times) = run(RetryPolicy::no_retry(), vec![Ok(later(None))]).await;
        assert_eq!(result.unwrap().attempts, 1);
        assert_eq!(times.len(), 1);
    }
}
