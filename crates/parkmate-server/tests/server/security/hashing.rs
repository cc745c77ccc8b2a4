//! Point 6: password hashing is bounded (`limits.password_hashes` at once, argon2id's ~19 MiB
//! each); a login that cannot get a slot within `limits.password_hash_wait` is answered 503
//! `overloaded` with `Retry-After`. A password longer than any that can be registered is refused
//! before hashing. Before, every login spawned a hash with no bound (400 concurrent logins took
//! gigabytes), and a 10,000-character password was hashed like any other.

use std::time::Duration;

use serde_json::json;

use super::rates::{app_with_limits, post};

#[tokio::test]
async fn logins_past_the_hashing_bound_get_503_with_retry_after() {
    let app = app_with_limits(|s| {
        s.limits.password_hashes = std::num::NonZeroUsize::new(1).unwrap();
        s.limits.password_hash_wait = Duration::ZERO;
    })
    .await;
    // Sixteen logins at once, one hashing slot, no waiting: most find the slot taken. (Each hash
    // takes milliseconds; sixteen requests sent together cannot all miss each other.)
    let logins = (0..16).map(|_| {
        post(
            &app,
            "/api/auth/login",
            json!({"email": "dana@parkmate.test", "password": "driver-demo-123"}),
            None,
        )
    });
    let answers = futures_util::future::join_all(logins).await;
    let refused: Vec<_> = answers.iter().filter(|(s, ..)| *s == 503).collect();
    let served = answers.iter().filter(|(s, ..)| *s == 200).count();
    assert!(!refused.is_empty(), "no login was refused: {answers:?}");
    assert!(served >= 1, "every login was refused: {answers:?}");
    assert_eq!(refused.len() + served, answers.len(), "{answers:?}");
    for (_, retry_after, body) in refused {
        assert_eq!(body["code"], "overloaded", "{body}");
        assert!(
            retry_after
                .as_deref()
                .is_some_and(|s| s.parse::<u64>().unwrap() >= 1)
        );
    }
}

#[tokio::test]
async fn a_password_longer_than_any_account_can_have_is_refused_before_hashing() {
    let app = app_with_limits(|_| {}).await;
    let (status, _, body) = post(
        &app,
        "/api/auth/login",
        json!({"email": "dana@parkmate.test", "password": "x".repeat(10_000)}),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_password")),
        "{body}"
    );
}
