//! Web Push (issue 15) over real sockets: the subscription routes, and escalation to a local
//! RFC 8030 push service (`parkmate_push::test_support`) that checks every request as a push
//! service would and decrypts it with the subscription's private key as the browser would. The
//! tests assert what the "browser" got: the decrypted JSON, the VAPID token's claims, TTL,
//! urgency; that a 410 removes the subscription, that an `ack` prevents the push, and that a
//! node killed inside the window pushes exactly once after its restart.
//!
//! Over 500 lines on purpose: one test per rule of docs/push.md over the same local push service
//! set-up; the rustfmt-expanded calls make it long, not its logic.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parkmate_protocol::{Role, ServerFrame};
use parkmate_push::test_support::{Received, Reply, TestPushService, TestSubscription};
use parkmate_push::{Topic, Urgency, VapidKeys};
use parkmate_server::config::Settings;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::common::{API_KEY, JWT_SECRET, TestApp, WAIT, spawn_app, spawn_app_with};

const SUBJECT: &str = "mailto:ops@parkmate.example";

/// Push on, with a fresh key pair and `window`.
fn with_push(keys: &VapidKeys, window: Duration) -> impl FnOnce(&mut Settings) + use<> {
    let private = keys.private_key_base64url().expose_secret().to_owned();
    move |s: &mut Settings| {
        s.push.vapid_private_key = Some(private.into());
        s.push.vapid_subject = Some(SUBJECT.into());
        s.push.escalation_window = window;
        s.push.ttl = Duration::from_secs(600);
    }
}

/// A "browser" subscribed through the API as `user_id`.
async fn subscribe(app: &TestApp, service: &TestPushService, user_id: i64) -> TestSubscription {
    let (_, key) = app
        .call("GET", "/api/push/vapid-public-key", None, None)
        .await;
    let browser = service.subscribe(key["public_key"].as_str().unwrap());
    let token = app.token(user_id, Role::User);
    let (status, body) = app
        .call(
            "POST",
            "/api/push/subscriptions",
            Some(&token),
            Some(serde_json::to_value(&browser.json).unwrap()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    browser
}

/// Waits (bounded) until `browser` has received `n` pushes.
async fn received(
    service: &TestPushService,
    browser: &TestSubscription,
    n: usize,
) -> Vec<Received> {
    tokio::time::timeout(WAIT, async {
        loop {
            let got = service.received(browser);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "expected {n} pushes, got {}; refusals: {:?}",
            service.received(browser).len(),
            service.refusals()
        )
    })
}

async fn publish(app: &TestApp, user_id: i64, event: &str, message: &str) -> i64 {
    let (status, body) = app
        .publish(json!({
            "level": "warning", "event": event, "message": message, "user_id": user_id,
            "data": {"booking_id": 42},
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    body["ids"][0].as_i64().unwrap()
}

async fn status(app: &TestApp, id: i64) -> Value {
    let (code, body) = app
        .call(
            "GET",
            &format!("/api/notifications/{id}/status"),
            Some(API_KEY),
            None,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    body
}

/// Waits (bounded) until the funnel of `id` shows it pushed for its one recipient.
async fn pushed(app: &TestApp, id: i64) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let s = status(app, id).await;
            if s["recipients"][0]["pushed_at"].is_string() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the push is recorded")
}

#[tokio::test]
async fn subscriptions_are_validated_capped_and_owned() {
    let keys = VapidKeys::generate();
    let configure = with_push(&keys, Duration::from_secs(10));
    let app = spawn_app_with(|s| {
        configure(s);
        s.push.max_subscriptions_per_user = std::num::NonZeroUsize::new(2).unwrap();
    })
    .await;
    let service = TestPushService::start().await.unwrap();

    // The public key is public and is the configured one.
    let (code, body) = app
        .call("GET", "/api/push/vapid-public-key", None, None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["public_key"], keys.public_key_base64url());

    let token = app.token(5, Role::User);
    let browser = service.subscribe(&keys.public_key_base64url());
    let good = serde_json::to_value(&browser.json).unwrap();

    // Signed-in only.
    let (code, body) = app
        .call("POST", "/api/push/subscriptions", None, Some(good.clone()))
        .await;
    assert_eq!(code, 401, "{body}");

    // Each bad field is named, as 422 JSON.
    for (field, value, expected) in [
        ("endpoint", json!("ftp://push.example/x"), "endpoint"),
        (
            "endpoint",
            json!(format!("http://127.0.0.1/{}", "x".repeat(3000))),
            "endpoint",
        ),
        ("p256dh", json!("BAAA"), "keys.p256dh"),
        ("auth", json!("c2hvcnQ"), "keys.auth"),
    ] {
        let mut bad = good.clone();
        if field == "endpoint" {
            bad["endpoint"] = value;
        } else {
            bad["keys"][field] = value;
        }
        let (code, body) = app
            .call("POST", "/api/push/subscriptions", Some(&token), Some(bad))
            .await;
        assert_eq!(code, 422, "{field}: {body}");
        assert_eq!(body["code"], "invalid_subscription");
        assert!(
            body["message"].as_str().unwrap().starts_with(expected),
            "{body}"
        );
    }
    let (code, body) = app
        .call(
            "POST",
            "/api/push/subscriptions",
            Some(&token),
            Some(json!({"endpoint": 1})),
        )
        .await;
    assert!(code == 422 || code == 400, "{code} {body}");
    assert!(body["code"].is_string());

    // Created, then refreshed; the cap counts the person's others.
    let (code, first) = app
        .call(
            "POST",
            "/api/push/subscriptions",
            Some(&token),
            Some(good.clone()),
        )
        .await;
    assert_eq!(code, 201, "{first}");
    let (code, again) = app
        .call(
            "POST",
            "/api/push/subscriptions",
            Some(&token),
            Some(good.clone()),
        )
        .await;
    assert_eq!((code, &again["id"]), (200, &first["id"]));
    let second =
        serde_json::to_value(&service.subscribe(&keys.public_key_base64url()).json).unwrap();
    let third =
        serde_json::to_value(&service.subscribe(&keys.public_key_base64url()).json).unwrap();
    let (code, _) = app
        .call(
            "POST",
            "/api/push/subscriptions",
            Some(&token),
            Some(second),
        )
        .await;
    assert_eq!(code, 201);
    let (code, body) = app
        .call("POST", "/api/push/subscriptions", Some(&token), Some(third))
        .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "too_many_subscriptions");

    // Only one's own can be removed.
    let endpoint = json!({"endpoint": browser.json.endpoint});
    let other = app.token(6, Role::User);
    let (code, body) = app
        .call(
            "DELETE",
            "/api/push/subscriptions",
            Some(&other),
            Some(endpoint.clone()),
        )
        .await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = app
        .call(
            "DELETE",
            "/api/push/subscriptions",
            Some(&token),
            Some(endpoint.clone()),
        )
        .await;
    assert_eq!(code, 204);
    let (code, _) = app
        .call(
            "DELETE",
            "/api/push/subscriptions",
            Some(&token),
            Some(endpoint),
        )
        .await;
    assert_eq!(code, 404);

    // The routes are in the OpenAPI document.
    let (_, doc) = app.call("GET", "/api/openapi.json", None, None).await;
    for p in [
        "/api/push/vapid-public-key",
        "/api/push/subscriptions",
        "/api/notifications/{id}/status",
    ] {
        assert!(
            doc["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }

    // Without push the routes say so.
    let off = spawn_app().await;
    let (code, body) = off
        .call("GET", "/api/push/vapid-public-key", None, None)
        .await;
    assert_eq!((code, body["code"].as_str()), (404, Some("push_disabled")));
    let (code, body) = off
        .call(
            "POST",
            "/api/push/subscriptions",
            Some(&off.token(5, Role::User)),
            Some(good),
        )
        .await;
    assert_eq!((code, body["code"].as_str()), (404, Some("push_disabled")));
}

#[tokio::test]
async fn an_unacknowledged_notification_is_pushed_encrypted_and_signed_after_the_window() {
    let keys = VapidKeys::generate();
    let app = spawn_app_with(with_push(&keys, Duration::from_millis(300))).await;
    let service = TestPushService::start().await.unwrap();
    let browser = subscribe(&app, &service, 5).await;

    let id = publish(&app, 5, "booking_renewed", "Booking renewed successfully!").await;
    let got = received(&service, &browser, 1).await;
    let push = &got[0];
    // What the service worker gets: the notification, decrypted with the browser's keys.
    let payload = push.json();
    assert_eq!(payload["id"], id);
    assert_eq!(payload["event"], "booking_renewed");
    assert_eq!(payload["level"], "warning");
    assert_eq!(payload["message"], "Booking renewed successfully!");
    assert_eq!(payload["data"]["booking_id"], 42);
    // VAPID: signed by our key (the service verified the signature), for its origin.
    assert_eq!(push.vapid_key, keys.public_key_base64url());
    assert_eq!(push.vapid.aud, service.origin());
    assert_eq!(push.vapid.sub, SUBJECT);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(push.vapid.exp > now && push.vapid.exp <= now + 24 * 3600);
    // RFC 8030 headers.
    assert_eq!(push.ttl, 600);
    assert_eq!(push.urgency, Some(Urgency::Normal));
    assert_eq!(
        push.topic,
        Some(Topic::digest(&format!("notification:{id}")))
    );

    // The funnel says so, and nothing is pushed twice.
    let s = pushed(&app, id).await;
    assert_eq!(s["recipients"][0]["user_id"], 5);
    assert!(s["recipients"][0]["seen_at"].is_null());
    assert_eq!(s["recipients"][0]["push_attempts"], 1);
    let (code, _) = app
        .call(
            "GET",
            &format!("/api/notifications/{id}/status"),
            None,
            None,
        )
        .await;
    assert_eq!(code, 401, "the funnel is for publishers");
    let next = publish(&app, 5, "booking_renewed", "second").await;
    let got = received(&service, &browser, 2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].json()["id"], next);
    app.stop().await;
}

#[tokio::test]
async fn urgent_events_are_pushed_at_once_with_high_urgency() {
    let keys = VapidKeys::generate();
    // A window no test waits for: what arrives was not escalated by it.
    let app = spawn_app_with(with_push(&keys, Duration::from_secs(3600))).await;
    let service = TestPushService::start().await.unwrap();
    let browser = subscribe(&app, &service, 5).await;
    let id = publish(
        &app,
        5,
        "booking_expiring",
        "Your booking will expire in 5 minutes!",
    )
    .await;
    let got = received(&service, &browser, 1).await;
    assert_eq!(got[0].json()["id"], id);
    assert_eq!(got[0].urgency, Some(Urgency::High));
    let expired = publish(
        &app,
        5,
        "booking_expired",
        "Your booking for Slot #3 expired",
    )
    .await;
    let got = received(&service, &browser, 2).await;
    assert_eq!(got[1].json()["id"], expired);
    app.stop().await;
}

#[tokio::test]
async fn an_ack_from_a_socket_prevents_the_push() {
    let keys = VapidKeys::generate();
    let app = spawn_app_with(with_push(&keys, Duration::from_secs(2))).await;
    let service = TestPushService::start().await.unwrap();
    let browser = subscribe(&app, &service, 5).await;
    let mut socket = app.connect(5, Role::User, None).await;

    let shown = publish(&app, 5, "booking_renewed", "shown as a toast").await;
    assert_eq!(socket.next_notification().await.id, shown);
    socket
        .send_text(&json!({"type": "ack", "id": shown}).to_string())
        .await;
    // Frames are handled in order: the pong means the ack is stored.
    socket.send_text(r#"{"type":"ping"}"#).await;
    loop {
        match socket.next_frame().await {
            ServerFrame::Pong => break,
            ServerFrame::UnreadCount { .. } => continue,
            other => panic!("expected pong, got {other:?}"),
        }
    }
    // An ack for someone else's notification is refused on the socket, which stays open.
    let others = publish(&app, 6, "booking_renewed", "not yours").await;
    socket
        .send_text(&json!({"type": "ack", "id": others}).to_string())
        .await;
    loop {
        match socket.next_frame().await {
            ServerFrame::Error { code, .. } => break assert_eq!(code, "not_found"),
            ServerFrame::UnreadCount { .. } => continue,
            other => panic!("expected an error frame, got {other:?}"),
        }
    }

    // Published after the ack, so due after it: once it is pushed, the acknowledged one,
    // due earlier, would have been pushed before it if it still owed one.
    let ignored = publish(&app, 5, "booking_renewed", "the tab is in the background").await;
    let got = received(&service, &browser, 1).await;
    pushed(&app, ignored).await;
    let got_ids: Vec<Value> = service
        .received(&browser)
        .iter()
        .map(|r| r.json()["id"].clone())
        .collect();
    assert_eq!(got_ids, vec![json!(ignored)], "{got:?}");
    assert!(
        app.metrics()
            .await
            .contains(r#"parkmate_acks_total{event="booking_renewed"}"#),
        "acks are counted per event kind"
    );
    let s = status(&app, shown).await;
    assert!(s["recipients"][0]["seen_at"].is_string(), "{s}");
    assert!(s["recipients"][0]["delivered_at"].is_string(), "{s}");
    assert!(s["recipients"][0]["pushed_at"].is_null(), "{s}");
    app.stop().await;
}

#[tokio::test]
async fn a_gone_subscription_is_removed_and_a_busy_push_service_is_retried() {
    let keys = VapidKeys::generate();
    let app = spawn_app_with(with_push(&keys, Duration::from_secs(3600))).await;
    let service = TestPushService::start().await.unwrap();
    let gone = subscribe(&app, &service, 5).await;
    let busy = subscribe(&app, &service, 5).await;
    service.reply_next(&gone, [Reply::gone()]);
    service.reply_next(&busy, [Reply::too_many_requests(0), Reply::status(503)]);
    assert_eq!(
        app.state.store.push_subscriptions(5).await.unwrap().len(),
        2
    );

    let id = publish(
        &app,
        5,
        "booking_expiring",
        "Your booking will expire in 5 minutes!",
    )
    .await;
    // The busy one answered 429, then 503, then took it: one message, three attempts.
    let got = received(&service, &busy, 1).await;
    assert_eq!(got[0].json()["id"], id);
    assert_eq!(service.attempts(&busy), 3);
    // The gone one was tried once and forgotten.
    pushed(&app, id).await;
    assert_eq!(service.attempts(&gone), 1);
    let left = app.state.store.push_subscriptions(5).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].endpoint, busy.json.endpoint);
    app.stop().await;
}

/// The real binary, so that "kill" is SIGKILL: nothing of it survives to finish a send.
struct Node {
    child: tokio::process::Child,
}

impl Node {
    async fn start(dir: &std::path::Path, addr: SocketAddr, private_key: &str) -> Node {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_parkmate"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PARKMATE_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .arg("serve")
            .env("PARKMATE_BIND", addr.to_string())
            .env(
                "PARKMATE_DATABASE_URL",
                format!("sqlite://{}", dir.join("parkmate.db").display()),
            )
            .env("PARKMATE_DATA_DIR", dir)
            .env("PARKMATE_WEB_DIR", dir.join("no-web"))
            .env("PARKMATE_JWT_SECRET", JWT_SECRET)
            .env("PARKMATE_API_KEY", API_KEY)
            .env("PARKMATE_BOOKING_DEMO_DATA", "false")
            .env("PARKMATE_LOG", "warn")
            .env("PARKMATE_PUSH_VAPID_PRIVATE_KEY", private_key)
            .env("PARKMATE_PUSH_VAPID_SUBJECT", SUBJECT)
            .env("PARKMATE_PUSH_ESCALATION_WINDOW", "3s")
            .kill_on_drop(true)
            .spawn()
            .expect("the parkmate binary starts");
        let http = reqwest::Client::new();
        tokio::time::timeout(WAIT, async {
            while !http
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the node answers /healthz");
        Node { child }
    }

    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

#[tokio::test]
async fn a_node_killed_inside_the_window_pushes_exactly_once_after_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let keys = VapidKeys::generate();
    let private = keys.private_key_base64url().expose_secret().to_owned();
    let service = TestPushService::start().await.unwrap();
    let http = reqwest::Client::new();
    let keys_jwt = parkmate_auth::TokenKeys::new(JWT_SECRET.as_bytes());
    let token = keys_jwt.mint(5, Role::User, 3600);
    let post = |path: &'static str, bearer: String, body: Value| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("http://{addr}{path}"))
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let node = Node::start(dir.path(), addr, &private).await;
    let browser = service.subscribe(&keys.public_key_base64url());
    let (code, body) = post(
        "/api/push/subscriptions",
        token.clone(),
        serde_json::to_value(&browser.json).unwrap(),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = post(
        "/api/notifications",
        API_KEY.into(),
        json!({"level": "info", "event": "booking_renewed", "message": "owed", "user_id": 5}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let owed = body["ids"][0].as_i64().unwrap();
    // Killed well inside its 3 s window: it never sent anything.
    node.kill().await;
    assert_eq!(service.attempts(&browser), 0);

    // The restarted node knows from the store what is owed, and pushes it once.
    let node = Node::start(dir.path(), addr, &private).await;
    let got = received(&service, &browser, 1).await;
    assert_eq!(got[0].json()["id"], owed);

    // Killed again once that push is recorded, restarted: the next push is the next one only.
    let status_url = format!("http://{addr}/api/notifications/{owed}/status");
    tokio::time::timeout(WAIT, async {
        loop {
            let s: Value = http
                .get(&status_url)
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if s["recipients"][0]["pushed_at"].is_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the push is recorded");
    node.kill().await;
    let node = Node::start(dir.path(), addr, &private).await;
    let (code, body) = post(
        "/api/notifications",
        API_KEY.into(),
        json!({"level": "warning", "event": "booking_expiring", "message": "urgent", "user_id": 5}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let urgent = body["ids"][0].as_i64().unwrap();
    let got = received(&service, &browser, 2).await;
    let ids: Vec<Value> = got.iter().map(|r| r.json()["id"].clone()).collect();
    assert_eq!(ids, vec![json!(owed), json!(urgent)]);
    node.kill().await;
}

#[tokio::test]
async fn in_a_cluster_only_the_leader_pushes_and_another_node_takes_over() {
    let Some(cluster) = crate::common::Cluster::new().await else {
        return;
    };
    let keys = VapidKeys::generate();
    let a = cluster
        .spawn_node_with(with_push(&keys, Duration::from_secs(3600)))
        .await;
    let b = cluster
        .spawn_node_with(with_push(&keys, Duration::from_secs(3600)))
        .await;
    let service = TestPushService::start().await.unwrap();
    let browser = subscribe(&a, &service, 5).await;

    // Urgent, so due at once on whichever node would send: published on both nodes.
    let mut ids = Vec::new();
    for (i, node) in [&a, &b, &a, &b].into_iter().enumerate() {
        ids.push(publish(node, 5, "booking_expiring", &format!("urgent {i}")).await);
    }
    received(&service, &browser, ids.len()).await;
    for id in &ids {
        pushed(&a, *id).await;
    }
    // The leader goes; the other node takes the lease (polled every second) and pushes.
    let (leader, follower) = if *a.state.leader.borrow() {
        (a, b)
    } else {
        (b, a)
    };
    assert!(!*follower.state.leader.borrow());
    leader.stop().await;
    ids.push(publish(&follower, 5, "booking_expired", "after the hand-over").await);
    received(&service, &browser, ids.len()).await;
    follower.stop().await;
    // Every node has stopped: nothing more can arrive, and each arrived once.
    let got: Vec<Value> = service
        .received(&browser)
        .iter()
        .map(|r| r.json()["id"].clone())
        .collect();
    let expected: Vec<Value> = ids.iter().map(|id| json!(id)).collect();
    let mut sorted = got.clone();
    sorted.sort_by_key(|v| v.as_i64());
    assert_eq!(
        sorted, expected,
        "each notification pushed exactly once: {got:?}"
    );
}

#[tokio::test]
async fn preferences_turn_push_off_per_event_and_quiet_hours_hold_all_but_urgent() {
    let keys = VapidKeys::generate();
    let app = spawn_app_with(with_push(&keys, Duration::from_millis(300))).await;
    let service = TestPushService::start().await.unwrap();
    let browser = subscribe(&app, &service, 5).await;
    let token = app.token(5, Role::User);

    // The defaults, then the person's own choices, validated field by field.
    let (code, body) = app
        .call("GET", "/api/push/preferences", Some(&token), None)
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["events"], json!([]));
    assert_eq!(body["push_off_by_default"], json!(["lot_activity"]));
    assert_eq!(
        body["urgent"],
        json!(["booking_expiring", "booking_expired"])
    );
    for (bad, field) in [
        (
            json!({"events": [{"event": "Bad Kind", "in_app": true, "push": false}], "quiet_hours": null}),
            "events[0].event",
        ),
        (
            json!({"events": [], "quiet_hours": {"time_zone": "Mars/Olympus", "start": "22:00", "end": "07:00"}}),
            "quiet_hours.time_zone",
        ),
        (
            json!({"events": [], "quiet_hours": {"time_zone": "UTC", "start": "25:00", "end": "07:00"}}),
            "quiet_hours.start",
        ),
    ] {
        let (code, body) = app
            .call("PUT", "/api/push/preferences", Some(&token), Some(bad))
            .await;
        assert_eq!(code, 422, "{body}");
        assert_eq!(body["code"], "invalid_preferences");
        assert!(
            body["message"].as_str().unwrap().starts_with(field),
            "{body}"
        );
    }
    let (code, body) = app
        .call(
            "PUT",
            "/api/push/preferences",
            Some(&token),
            Some(json!({"events": [{"event": "booking_renewed", "in_app": true, "push": false}], "quiet_hours": null})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["events"][0]["push"], false);

    // Turned off: never owed. Published before one that is pushed, so due before it.
    let off = publish(&app, 5, "booking_renewed", "not pushed").await;
    let on = publish(&app, 5, "custom", "pushed").await;
    pushed(&app, on).await;
    let ids: Vec<Value> = service
        .received(&browser)
        .iter()
        .map(|r| r.json()["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(on)]);
    assert!(status(&app, off).await["recipients"][0]["push_due_at"].is_null());

    // Quiet hours around now (UTC): an ordinary push is held until they end; urgent goes at once.
    let now = chrono::Utc::now();
    let minute = |d: chrono::DateTime<chrono::Utc>| d.format("%H:%M").to_string();
    let quiet = json!({"time_zone": "UTC", "start": minute(now - chrono::Duration::hours(1)),
                       "end": minute(now + chrono::Duration::hours(1))});
    let (code, body) = app
        .call(
            "PUT",
            "/api/push/preferences",
            Some(&token),
            Some(json!({"events": [], "quiet_hours": quiet})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let held = publish(&app, 5, "custom", "held").await;
    let urgent = publish(
        &app,
        5,
        "booking_expiring",
        "Your booking will expire in 5 minutes!",
    )
    .await;
    let got = received(&service, &browser, 2).await;
    assert_eq!(got[1].json()["id"], urgent);
    let s = tokio::time::timeout(WAIT, async {
        loop {
            let s = status(&app, held).await;
            let due = s["recipients"][0]["push_due_at"]
                .as_str()
                .map(|d| d.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
            if due.is_some_and(|d| d > now + chrono::Duration::minutes(30)) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the push is held until the quiet hours end");
    assert!(s["recipients"][0]["pushed_at"].is_null(), "{s}");
    assert_eq!(
        s["recipients"][0]["push_attempts"], 0,
        "holding is not an attempt"
    );
    assert_eq!(service.received(&browser).len(), 2);
    app.stop().await;
}
