//! Pushes through the real client to the test push service over loopback: what arrives is what
//! a browser would decrypt, with the headers and the VAPID token a push service would check, and
//! every outcome (delivered, gone, retry later, rejected) comes from a real HTTP answer.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parkmate_push::encryption::HEADER_LEN;
use parkmate_push::test_support::{Reply, TestPushService, TestSubscription};
use parkmate_push::{
    EndpointError, EndpointPolicy, MAX_PLAINTEXT, Message, Outcome, PushSettings, Pusher,
    RetryPolicy, RetryReason, SendError, Subject, Subscription, Topic, Urgency, Vapid, VapidKeys,
};
use reqwest::StatusCode;
use serde_json::json;

fn vapid() -> Vapid {
    Vapid::new(
        VapidKeys::generate(),
        Subject::parse("mailto:ops@parkmate.example").unwrap(),
    )
}

/// Retries fast enough for a test over real time: a few milliseconds apart.
fn settings(max_attempts: u32) -> PushSettings {
    PushSettings {
        retry: RetryPolicy {
            max_attempts: NonZeroU32::new(max_attempts).unwrap(),
            initial_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_elapsed: Duration::from_secs(10),
        },
        ..PushSettings::default()
    }
}

struct Harness {
    service: TestPushService,
    vapid: Vapid,
    pusher: Pusher,
}

impl Harness {
    async fn start(settings: PushSettings) -> Self {
        let service = TestPushService::start().await.unwrap();
        let vapid = vapid();
        let pusher = Pusher::new(vapid.clone(), EndpointPolicy::DEVELOPMENT, settings).unwrap();
        Self {
            service,
            vapid,
            pusher,
        }
    }

    /// A browser subscribing with our application server key; the server parses what it posts.
    fn subscribe(&self) -> (TestSubscription, Subscription) {
        let browser = self
            .service
            .subscribe(&self.vapid.keys().public_key_base64url());
        let parsed = Subscription::parse(&browser.json, &self.pusher.policy()).unwrap();
        (browser, parsed)
    }
}

fn expiry_notice() -> serde_json::Value {
    json!({
        "id": 4242,
        "title": "Booking ending",
        "body": "Your booking will expire in 5 minutes!",
        "data": {"booking_id": 42, "lot": "Central", "slot": "B-12"},
    })
}

#[tokio::test]
async fn a_push_arrives_decrypted_with_its_headers_and_a_valid_vapid_token() {
    let h = Harness::start(settings(1)).await;
    let (browser, sub) = h.subscribe();
    let topic = Topic::digest("booking:42:expiring");
    let message = Message::json(&expiry_notice())
        .unwrap()
        .with_ttl(Duration::from_secs(300))
        .with_urgency(Urgency::High)
        .with_topic(topic.clone());

    let delivery = h.pusher.send(&sub, &message).await.unwrap();

    assert_eq!(delivery.attempts, 1);
    let Outcome::Delivered { status, location } = &delivery.outcome else {
        panic!("not delivered: {delivery:?}");
    };
    assert_eq!(*status, StatusCode::CREATED);
    assert!(location.as_deref().unwrap().starts_with(h.service.origin()));

    let received = h.service.received(&browser);
    assert_eq!(received.len(), 1);
    let push = &received[0];
    // What the service worker would get: the very JSON that was sent.
    assert_eq!(push.json(), expiry_notice());
    assert_eq!(push.ttl, 300);
    assert_eq!(push.urgency, Some(Urgency::High));
    assert_eq!(push.topic.as_ref(), Some(&topic));
    // One record: header, payload, delimiter, tag.
    assert_eq!(push.body.len(), HEADER_LEN + push.payload.len() + 1 + 16);
    // VAPID: verified by the service (signature under k=, aud, exp); the claims are ours.
    assert_eq!(push.vapid.aud, h.service.origin());
    assert_eq!(push.vapid.sub, "mailto:ops@parkmate.example");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(push.vapid.exp > now && push.vapid.exp <= now + 24 * 3600);
    assert_eq!(push.vapid_key, h.vapid.keys().public_key_base64url());
    assert!(
        h.service.refusals().is_empty(),
        "{:?}",
        h.service.refusals()
    );
}

#[tokio::test]
async fn defaults_are_sent_explicitly_and_each_push_is_encrypted_afresh() {
    let h = Harness::start(settings(1)).await;
    let (browser, sub) = h.subscribe();
    let message = Message::json(&json!({"n": 1})).unwrap();
    for _ in 0..2 {
        let outcome = h.pusher.send_once(&sub, &message).await.unwrap();
        assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    }
    let received = h.service.received(&browser);
    assert_eq!(received.len(), 2);
    for push in &received {
        assert_eq!(push.json(), json!({"n": 1}));
        assert_eq!(push.ttl, 86_400);
        assert_eq!(push.urgency, Some(Urgency::Normal));
        assert_eq!(push.topic, None);
    }
    // New salt and ephemeral key per push.
    assert_ne!(received[0].body, received[1].body);
}

#[tokio::test]
async fn the_largest_payload_fills_the_4096_bytes_a_push_service_must_take() {
    let h = Harness::start(settings(1)).await;
    let (browser, sub) = h.subscribe();
    // {"t":"xxx…"} is 8 bytes of JSON around the text.
    let text = "x".repeat(MAX_PLAINTEXT - 8);
    let message = Message::json(&json!({ "t": text })).unwrap();
    assert_eq!(message.payload().len(), MAX_PLAINTEXT);
    let outcome = h.pusher.send_once(&sub, &message).await.unwrap();
    assert!(matches!(outcome, Outcome::Delivered { .. }), "{outcome:?}");
    let push = &h.service.received(&browser)[0];
    assert_eq!(push.body.len(), 4096);
    assert_eq!(push.json(), json!({ "t": text }));
}

#[tokio::test]
async fn gone_subscriptions_are_reported_and_not_retried() {
    let h = Harness::start(settings(5)).await;
    let message = Message::json(&expiry_notice()).unwrap();

    let (browser, sub) = h.subscribe();
    h.service.reply_next(&browser, [Reply::gone()]);
    let delivery = h.pusher.send(&sub, &message).await.unwrap();
    assert_eq!(
        delivery.outcome,
        Outcome::Gone {
            status: StatusCode::GONE
        }
    );
    assert_eq!(delivery.attempts, 1);
    assert_eq!(h.service.attempts(&browser), 1);
    assert!(h.service.received(&browser).is_empty());

    // A resource the push service does not know: 404, also gone.
    let (browser, sub) = h.subscribe();
    h.service.forget(&browser);
    let delivery = h.pusher.send(&sub, &message).await.unwrap();
    assert_eq!(
        delivery.outcome,
        Outcome::Gone {
            status: StatusCode::NOT_FOUND
        }
    );
    assert_eq!(delivery.attempts, 1);
}

#[tokio::test]
async fn overload_and_server_errors_are_retried_until_delivered_once() {
    let h = Harness::start(settings(4)).await;
    let (browser, sub) = h.subscribe();
    h.service.reply_next(
        &browser,
        [
            Reply::status(500),
            Reply::too_many_requests(0),
            Reply::status(503),
        ],
    );
    let delivery = h
        .pusher
        .send(&sub, &Message::json(&expiry_notice()).unwrap())
        .await
        .unwrap();
    assert!(
        matches!(delivery.outcome, Outcome::Delivered { .. }),
        "{delivery:?}"
    );
    assert_eq!(delivery.attempts, 4);
    assert_eq!(h.service.attempts(&browser), 4);
    // One notification, one push: the retries carried the same message, delivered once.
    let received = h.service.received(&browser);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json(), expiry_notice());
}

#[tokio::test]
async fn retries_stop_at_the_attempt_bound() {
    let h = Harness::start(settings(3)).await;
    let (browser, sub) = h.subscribe();
    h.service
        .reply_next(&browser, std::iter::repeat_n(Reply::status(502), 5));
    let delivery = h
        .pusher
        .send(&sub, &Message::json(&expiry_notice()).unwrap())
        .await
        .unwrap();
    assert_eq!(delivery.attempts, 3);
    assert_eq!(h.service.attempts(&browser), 3);
    assert_eq!(
        delivery.outcome,
        Outcome::RetryLater {
            reason: RetryReason::Status(StatusCode::BAD_GATEWAY),
            retry_after: None
        }
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_is_handed_back_without_waiting() {
    let h = Harness::start(settings(5)).await;
    let (browser, sub) = h.subscribe();
    h.service
        .reply_next(&browser, [Reply::too_many_requests(3600)]);
    let delivery = h
        .pusher
        .send(&sub, &Message::json(&expiry_notice()).unwrap())
        .await
        .unwrap();
    assert_eq!(delivery.attempts, 1);
    assert_eq!(
        delivery.outcome,
        Outcome::RetryLater {
            reason: RetryReason::Status(StatusCode::TOO_MANY_REQUESTS),
            retry_after: Some(Duration::from_secs(3600))
        }
    );
}

#[tokio::test]
async fn other_client_errors_are_rejected_with_their_body_and_not_retried() {
    let h = Harness::start(settings(5)).await;
    let (browser, sub) = h.subscribe();
    h.service.reply_next(&browser, [Reply::status(400)]);
    let delivery = h
        .pusher
        .send(&sub, &Message::json(&expiry_notice()).unwrap())
        .await
        .unwrap();
    assert_eq!(delivery.attempts, 1);
    assert_eq!(
        delivery.outcome,
        Outcome::Rejected {
            status: StatusCode::BAD_REQUEST,
            body: "scripted 400 Bad Request".into()
        }
    );
}

#[tokio::test]
async fn a_push_signed_with_another_key_is_refused_by_the_push_service() {
    let h = Harness::start(settings(5)).await;
    let (browser, sub) = h.subscribe();
    // The subscription is restricted to h.vapid's key (RFC 8292 §4); sign with another.
    let stranger = Pusher::new(vapid(), EndpointPolicy::DEVELOPMENT, settings(5)).unwrap();
    let delivery = stranger
        .send(&sub, &Message::json(&expiry_notice()).unwrap())
        .await
        .unwrap();
    assert_eq!(delivery.attempts, 1);
    let Outcome::Rejected { status, body } = delivery.outcome else {
        panic!("not rejected: {delivery:?}");
    };
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("restricted"), "{body}");
    assert!(h.service.received(&browser).is_empty());
    assert_eq!(h.service.refusals().len(), 1);
}

#[tokio::test]
async fn a_hung_push_service_times_out_as_retry_later() {
    let h = Harness::start(PushSettings {
        request_timeout: Duration::from_millis(300),
        ..settings(1)
    })
    .await;
    let (browser, sub) = h.subscribe();
    h.service.reply_next(&browser, [Reply::Hang]);
    let delivery = h
        .pusher
        .send(&sub, &Message::json(&expiry_notice()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        delivery.outcome,
        Outcome::RetryLater {
            reason: RetryReason::Timeout,
            retry_after: None
        }
    );
}

#[tokio::test]
async fn an_unreachable_push_service_is_retry_later() {
    let h = Harness::start(settings(2)).await;
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (browser, _) = h.subscribe();
    let sub = Subscription::from_parts(
        &format!("http://127.0.0.1:{port}/wpush/x"),
        &browser.json.keys.p256dh,
        &browser.json.keys.auth,
        &EndpointPolicy::DEVELOPMENT,
    )
    .unwrap();
    let delivery = h
        .pusher
        .send(&sub, &Message::json(&expiry_notice()).unwrap())
        .await
        .unwrap();
    assert_eq!(delivery.attempts, 2);
    assert!(
        matches!(
            delivery.outcome,
            Outcome::RetryLater {
                reason: RetryReason::Transport(_),
                ..
            }
        ),
        "{delivery:?}"
    );
}

#[tokio::test]
async fn production_refuses_what_development_allowed_before_any_request() {
    let h = Harness::start(settings(3)).await;
    let (browser, sub) = h.subscribe();
    // Stored in development, sent in production: the endpoint is checked again at sending.
    let production = Pusher::new(h.vapid.clone(), EndpointPolicy::PRODUCTION, settings(3)).unwrap();
    let err = production
        .send(&sub, &Message::json(&expiry_notice()).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::Endpoint(EndpointError::Scheme { .. })),
        "{err:?}"
    );
    assert_eq!(h.service.attempts(&browser), 0);
    // And production never accepts it in the first place.
    assert!(Subscription::parse(&browser.json, &EndpointPolicy::PRODUCTION).is_err());
}

/// The service's own checks, with requests a correct sender never makes.
mod the_test_service_checks {
    use super::*;

    async fn post(
        service: &TestPushService,
        browser: &TestSubscription,
        authorization: &str,
        ttl: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = reqwest::Client::new()
            .post(&browser.json.endpoint)
            .header("Authorization", authorization)
            .header("Content-Encoding", "aes128gcm")
            .body(vec![0u8; 120]);
        if let Some(ttl) = ttl {
            request = request.header("TTL", ttl);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(service.refusals().last().unwrap().status, status);
        (status, body)
    }

    #[tokio::test]
    async fn vapid_audience_expiry_and_signature() {
        let service = TestPushService::start().await.unwrap();
        let vapid = vapid();
        let browser = service.subscribe(&vapid.keys().public_key_base64url());
        let endpoint = reqwest::Url::parse(&browser.json.endpoint).unwrap();

        // Signed for another origin.
        let other = reqwest::Url::parse("https://push.example.net/x").unwrap();
        let (status, body) = post(
            &service,
            &browser,
            &vapid.authorization(&other).unwrap(),
            Some("60"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("InvalidAudience"), "{body}");

        // Expired: made two hours ago with a one-hour validity.
        let short = vapid
            .clone()
            .with_validity(Duration::from_secs(3600))
            .unwrap();
        let past = SystemTime::now() - Duration::from_secs(7200);
        let (status, body) = post(
            &service,
            &browser,
            &short.authorization_at(&endpoint, past).unwrap(),
            Some("60"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("ExpiredSignature"), "{body}");

        // More than 24 hours ahead: a 24-hour token made an hour in the future.
        let long = vapid.clone().with_validity(Vapid::MAX_VALIDITY).unwrap();
        let future = SystemTime::now() + Duration::from_secs(3600);
        let (status, body) = post(
            &service,
            &browser,
            &long.authorization_at(&endpoint, future).unwrap(),
            Some("60"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("24 hours"), "{body}");

        // A forged signature: the right k=, a token signed by another key.
        let forger = Vapid::new(
            VapidKeys::generate(),
            Subject::parse("mailto:x@y.z").unwrap(),
        );
        let forged = forger.authorization(&endpoint).unwrap();
        let token = forged.split_once(", k=").unwrap().0;
        let header = format!("{token}, k={}", vapid.keys().public_key_base64url());
        let (status, body) = post(&service, &browser, &header, Some("60")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("InvalidSignature"), "{body}");

        // Not VAPID at all.
        let (status, _) = post(&service, &browser, "Bearer abc", Some("60")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn ttl_is_required_and_the_body_must_decrypt() {
        let service = TestPushService::start().await.unwrap();
        let vapid = vapid();
        let browser = service.subscribe(&vapid.keys().public_key_base64url());
        let endpoint = reqwest::Url::parse(&browser.json.endpoint).unwrap();
        let authorization = vapid.authorization(&endpoint).unwrap();

        let (status, body) = post(&service, &browser, &authorization, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("TTL"), "{body}");

        let (status, _) = post(&service, &browser, &authorization, Some("soon")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // Valid headers, but 120 zero bytes are no aes128gcm message for this browser.
        let (status, body) = post(&service, &browser, &authorization, Some("60")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("could not decrypt"), "{body}");
        assert!(service.received(&browser).is_empty());
    }
}
