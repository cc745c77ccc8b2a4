//! Point 7: byte budgets. A body over `http.max_body_bytes` is 413 `payload_too_large` (it was
//! 400 `invalid_body`), decided from `Content-Length` before a byte of it is read, and a body
//! that fits is not parsed without the API key; a replay goes out in pages bounded in bytes (`ws.replay_page_bytes`), not only in
//! rows, and still arrives whole, in order.

use parkmate_protocol::Role;
use serde_json::{Value, json};

use super::raw::http;
use crate::common::{API_KEY, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_oversized_publish_is_413_and_the_key_is_checked_first() {
    let app = spawn_app().await;
    let huge = json!({"level": "info", "message": "x", "user_id": 7, "data": {"blob": "y".repeat(200_000)}});
    let r = app
        .http
        .post(app.url("/api/notifications"))
        .bearer_auth(API_KEY)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large", "{body}");

    // Without the key: the size is refused first (it is public, in the docs), a body of a
    // fitting size then gets 401 and is never parsed.
    let r = app
        .http
        .post(app.url("/api/notifications"))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = app
        .http
        .post(app.url("/api/notifications"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no key, nothing about the body");

    // Announced and never sent: refused from the head alone, no waiting for 10 MB.
    let head = format!(
        "POST /api/notifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
    );
    let (status, answer) = http(app.addr, head.as_bytes()).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
}

#[tokio::test]
async fn a_large_replay_arrives_whole_in_byte_bounded_pages() {
    // 256 B per page: each ~1 KB notification is a page of its own.
    let app = spawn_app_with(|s| {
        s.ws.replay_page_bytes = serde_json::from_value(json!(256)).unwrap();
    })
    .await;
    let big = "m".repeat(1000);
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(app.send(7, &big).await);
    }
    let mut c = app.connect(7, Role::User, Some(0)).await;
    let got = c.ids_through(*ids.last().unwrap()).await;
    assert_eq!(got, ids);
}
