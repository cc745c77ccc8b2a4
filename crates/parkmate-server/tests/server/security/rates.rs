//! Point 5: rate limits, each answering 429 `rate_limited` with JSON and `Retry-After`: login and
//! register per address and per account (password guessing), the publish API per key (checked
//! before its body is parsed), handshakes per address; and frames per socket, where a refused
//! frame is answered with an `error` frame and not run, and a client that keeps going is closed
//! with 4009. Before, none of these existed: `mark_all_read` in a tight loop ran one write
//! transaction each.

use parkmate_protocol::{Role, ServerFrame};
use parkmate_server::config::{RateSetting, Settings};
use serde_json::{Value, json};

use super::caps::refusal;
use crate::common::{API_KEY, TestApp, spawn_app_with};

pub fn rate(text: &str) -> RateSetting {
    serde_json::from_value(json!(text)).unwrap()
}

/// An app with the booking API and demo accounts, every rate limit off but those `configure`
/// sets (so each test shows one limit alone).
pub async fn app_with_limits(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.booking.demo_data = Some(true);
        let off = rate("off");
        s.limits.login_per_ip = off;
        s.limits.login_per_account = off;
        s.limits.register_per_ip = off;
        s.limits.publish = off;
        s.limits.handshakes_per_ip = off;
        s.limits.client_frames = off;
        configure(s);
    })
    .await
}

/// POSTs JSON (with `X-Forwarded-For` if given); the status, `Retry-After` and body.
pub async fn post(
    app: &TestApp,
    path: &str,
    body: Value,
    forwarded_for: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut req = app.http.post(app.url(path)).json(&body);
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, r.json().await.unwrap_or(Value::Null))
}

fn login(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

fn assert_limited((status, retry_after, body): &(u16, Option<String>, Value)) {
    assert_eq!(*status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(body["message"].is_string(), "{body}");
    let secs: u64 = retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(secs >= 1, "{secs}");
}

#[tokio::test]
async fn logins_are_limited_per_address() {
    let app = app_with_limits(|s| s.limits.login_per_ip = rate("3/min")).await;
    for _ in 0..3 {
        let (status, _, body) = post(
            &app,
            "/api/auth/login",
            login("dana@parkmate.test", "wrong-password"),
            None,
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_credentials"))
        );
    }
    // Even the right password waits now: the limit is on attempts.
    let r = post(
        &app,
        "/api/auth/login",
        login("dana@parkmate.test", "driver-demo-123"),
        None,
    )
    .await;
    assert_limited(&r);
    assert!(
        r.2["message"].as_str().unwrap().contains("address"),
        "{}",
        r.2
    );
}

#[tokio::test]
async fn logins_are_limited_per_account_from_any_address() {
    let app = app_with_limits(|s| {
        s.limits.login_per_account = rate("2/min");
        s.http.trusted_proxies = serde_json::from_value(json!(["127.0.0.1"])).unwrap();
    })
    .await;
    for ip in ["198.51.100.1", "198.51.100.2"] {
        let (status, ..) = post(
            &app,
            "/api/auth/login",
            login("Dana@Parkmate.test", "guess"),
            Some(ip),
        )
        .await;
        assert_eq!(status, 401);
    }
    let r = post(
        &app,
        "/api/auth/login",
        login("dana@parkmate.test", "guess"),
        Some("198.51.100.3"),
    )
    .await;
    assert_limited(&r);
    assert!(
        r.2["message"].as_str().unwrap().contains("account"),
        "{}",
        r.2
    );
    // Another account is not affected.
    let (status, ..) = post(
        &app,
        "/api/auth/login",
        login("dev@parkmate.test", "driver-demo-123"),
        Some("198.51.100.3"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = app_with_limits(|s| s.limits.register_per_ip = rate("2/h")).await;
    let register = |n: u32| json!({"name": format!("Driver {n}"), "email": format!("d{n}@example.com"), "password": "long-enough-1"});
    for n in 0..2 {
        let (status, _, body) = post(&app, "/api/auth/register", register(n), None).await;
        assert_eq!(status, 201, "{body}");
    }
    assert_limited(&post(&app, "/api/auth/register", register(2), None).await);
}

#[tokio::test]
async fn publishes_are_limited_per_key_before_the_body_is_parsed() {
    let app = app_with_limits(|s| s.limits.publish = rate("3/min")).await;
    for i in 0..3 {
        app.send(7, &format!("n{i}")).await;
    }
    // Not even parsed: a body that is not JSON is refused for the rate, not the syntax.
    let r = app
        .http
        .post(app.url("/api/notifications"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = r.status().as_u16();
    assert_limited(&(status, retry_after, r.json().await.unwrap()));
    // A caller without the key learns nothing about the limit: 401 first.
    let (status, body) = {
        let r = app
            .http
            .post(app.url("/api/notifications"))
            .json(&json!({"level": "info", "message": "m", "user_id": 7}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
}

#[tokio::test]
async fn handshakes_are_limited_per_address_bad_tokens_included() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let app = app_with_limits(|s| s.limits.handshakes_per_ip = rate("3/min")).await;
    let bad = |app: &TestApp| {
        let mut req = app.ws_url(7, None).into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", HeaderValue::from_static("Bearer forged"));
        req
    };
    for _ in 0..2 {
        let (status, _, body) = refusal(bad(&app)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_token"))
        );
    }
    let _ok = app.connect(7, Role::User, None).await;
    let (status, retry_after, body) = refusal(bad(&app)).await;
    assert_limited(&(status, retry_after, body));
}

#[tokio::test]
async fn client_frames_are_limited_per_socket_and_a_client_in_a_loop_is_closed() {
    let app = app_with_limits(|s| s.limits.client_frames = rate("3/min")).await;
    let id = app.send(7, "one").await;
    let mut c = app.connect(7, Role::User, Some(0)).await;
    assert_eq!(c.next_notification().await.id, id);
    assert_eq!(c.next_unread_count().await, 1);
    // Three frames are run: each `mark_all_read` answers with the unread count.
    for _ in 0..3 {
        c.send_text(r#"{"type":"mark_all_read"}"#).await;
        assert_eq!(c.next_unread_count().await, 0);
    }
    // The next ones are refused, not run; ten refusals in a row close the socket with 4009.
    for _ in 0..9 {
        c.send_text(r#"{"type":"mark_all_read"}"#).await;
        match c.next_frame().await {
            ServerFrame::Error { code, .. } => assert_eq!(code, "rate_limited"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    c.send_text(r#"{"type":"mark_all_read"}"#).await;
    let close = c.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4009);
}
