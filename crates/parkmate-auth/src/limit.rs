//! Rate limits of the edge: [`Rate`] (a setting such as `"10/min"`), [`KeyedLimit`] (one bucket
//! per key: an address, an account) and [`SingleLimit`] (one bucket: the API key, one socket).
//!
//! On `governor` (GCRA: one 64-bit word of state per bucket, no timer task), rather than
//! hand-made buckets. A rate of `N/period` allows a burst of `N`, then one more every
//! `period / N`. A refusal is 429 `rate_limited` with `Retry-After` saying when the next call
//! would pass. Keyed limits forget buckets that have refilled ([`KeyedLimit::forget_idle`], called
//! by the server every minute), so their memory follows the callers of the last period, not
//! every address ever seen.

use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::ApiError;

/// `count` calls per `per`, as a burst of `count` refilled evenly over `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl Rate {
    pub fn per_second(count: u32) -> Rate {
        Rate {
            count: NonZeroU32::new(count).expect("a rate counts at least one call"),
            per: Duration::from_secs(1),
        }
    }

    fn quota(self) -> Quota {
        // One cell back every `per / count`; never zero, which governor refuses.
        let period = (self.per / self.count.get()).max(Duration::from_nanos(1));
        Quota::with_period(period)
            .expect("the period is not zero")
            .allow_burst(self.count)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a rate: write calls per period, such as \"10/s\", \"30/min\" or \"100/h\" (or \"off\")"
)]
pub struct BadRate(String);

/// `"10/s"`, `"30/min"`, `"100/h"` (also `sec`, `second`, `minute`, `hour`).
impl FromStr for Rate {
    type Err = BadRate;
    fn from_str(s: &str) -> Result<Rate, BadRate> {
        let bad = || BadRate(s.to_owned());
        let (count, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: NonZeroU32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        Ok(Rate { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => return write!(f, "{}/{:?}", self.count, self.per),
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// How long until a refused call would pass.
fn wait(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

fn refusal(what: &str, after: Duration) -> ApiError {
    ApiError::too_many(
        "rate_limited",
        format!(
            "too many {what}; retry in {} s",
            crate::retry_after_secs(after)
        ),
        after,
    )
}

/// One bucket per key; `None` rate: no limit.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    /// What is counted, for the refusal's message ("login attempts from this address").
    what: &'static str,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    pub fn new(rate: Option<Rate>, what: &'static str) -> KeyedLimit<K> {
        KeyedLimit {
            limiter: rate.map(|r| RateLimiter::keyed(r.quota())),
            what,
        }
    }

    /// Takes one call from `key`'s bucket, or answers 429 with `Retry-After`.
    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        match &self.limiter {
            Some(l) => l.check_key(key).map_err(|n| refusal(self.what, wait(&n))),
            None => Ok(()),
        }
    }

    /// Drops buckets that have refilled: they hold nothing a new bucket would not.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One bucket; `None` rate: no limit.
pub struct SingleLimit {
    limiter: Option<DefaultDirectRateLimiter>,
    what: &'static str,
}

impl SingleLimit {
    pub fn new(rate: Option<Rate>, what: &'static str) -> SingleLimit {
        SingleLimit {
            limiter: rate.map(|r| RateLimiter::direct(r.quota())),
            what,
        }
    }

    /// Takes one call, or says how long until one would pass.
    pub fn try_take(&self) -> Result<(), Duration> {
        match &self.limiter {
            Some(l) => l.check().map_err(|n| wait(&n)),
            None => Ok(()),
        }
    }

    /// [`SingleLimit::try_take`], refusing with 429 and `Retry-After`.
    pub fn check(&self) -> Result<(), ApiError> {
        self.try_take().map_err(|after| refusal(self.what, after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn rates_parse_and_print() {
        for (text, count, secs) in [
            ("10/s", 10, 1),
            ("30/min", 30, 60),
            (" 5 / hour ", 5, 3600),
            ("1/h", 1, 3600),
        ] {
            let r: Rate = text.parse().unwrap();
            assert_eq!((r.count.get(), r.per.as_secs()), (count, secs), "{text}");
        }
        for bad in ["", "10", "0/s", "-1/s", "10/day", "ten/s", "10/"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
        assert_eq!("30/min".parse::<Rate>().unwrap().to_string(), "30/min");
    }

    #[test]
    fn a_burst_passes_then_429_says_when_to_retry() {
        let limit = KeyedLimit::new(Some("3/min".parse().unwrap()), "attempts");
        for _ in 0..3 {
            limit.check(&"a").unwrap();
        }
        let refused = limit.check(&"a").unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code, "rate_limited");
        // One cell refills every 20 s.
        let after = refused.retry_after.unwrap();
        assert!(after > Duration::from_secs(15) && after <= Duration::from_secs(20));
        // Another key has its own bucket.
        limit.check(&"b").unwrap();
        assert_eq!(limit.len(), 2);

        let off: KeyedLimit<&str> = KeyedLimit::new(None, "attempts");
        for _ in 0..1000 {
            off.check(&"a").unwrap();
        }
        let single = SingleLimit::new(Some(Rate::per_second(2)), "frames");
        assert!(single.try_take().is_ok() && single.try_take().is_ok());
        assert!(single.try_take().unwrap_err() <= Duration::from_millis(500));
    }
}
