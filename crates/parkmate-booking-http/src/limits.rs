//! What keeps the account routes (login, register) from being used as a password-guessing oracle
//! or a memory bomb: rate limits per client address and per account ([`KeyedLimit`], 429 with
//! `Retry-After`), and a bound on password hashes computed at once (argon2id takes ~19 MiB and
//! tens of milliseconds of CPU each; without a bound, 400 concurrent logins took gigabytes).
//! Over the bound a request waits up to `hash_wait` for a slot, then gets 503 `overloaded` with
//! `Retry-After`. The server builds these from its `[limits]` settings.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parkmate_auth::{ApiError, KeyedLimit, Rate};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct AccountLimits {
    /// `limits.login_per_ip`.
    pub login_per_ip: KeyedLimit<IpAddr>,
    /// `limits.login_per_account`, keyed by the email as given (trimmed, lower-cased).
    pub login_per_account: KeyedLimit<String>,
    /// `limits.register_per_ip`.
    pub register_per_ip: KeyedLimit<IpAddr>,
    /// One permit per hash in flight: `limits.password_hashes`.
    hashing: Arc<Semaphore>,
    /// `limits.password_hash_wait`.
    hash_wait: Duration,
}

impl AccountLimits {
    pub fn new(
        login_per_ip: Option<Rate>,
        login_per_account: Option<Rate>,
        register_per_ip: Option<Rate>,
        password_hashes: usize,
        hash_wait: Duration,
    ) -> AccountLimits {
        AccountLimits {
            login_per_ip: KeyedLimit::new(login_per_ip, "login attempts from this address"),
            login_per_account: KeyedLimit::new(
                login_per_account,
                "login attempts for this account",
            ),
            register_per_ip: KeyedLimit::new(register_per_ip, "registrations from this address"),
            hashing: Arc::new(Semaphore::new(password_hashes)),
            hash_wait,
        }
    }

    /// No rate limit, and hashes bounded only by the CPU count (in-process tests of the routes).
    pub fn unlimited() -> AccountLimits {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        AccountLimits::new(None, None, None, cpus, Duration::from_secs(30))
    }

    /// A slot to hash a password in, held until the returned permit is dropped.
    pub async fn hashing_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let acquire = self.hashing.clone().acquire_owned();
        match tokio::time::timeout(self.hash_wait, acquire).await {
            Ok(permit) => Ok(permit.expect("the hashing semaphore is never closed")),
            Err(_) => {
                metrics::counter!("parkmate_password_hash_refusals_total").increment(1);
                Err(ApiError::unavailable(
                    "overloaded",
                    "too many sign-ins at once, retry in a moment",
                )
                .retry_after(self.hash_wait.max(Duration::from_secs(1))))
            }
        }
    }

    /// Forgets rate-limit buckets that have refilled (the server calls this every minute).
    pub fn forget_idle(&self) {
        self.login_per_ip.forget_idle();
        self.login_per_account.forget_idle();
        self.register_per_ip.forget_idle();
    }
}
