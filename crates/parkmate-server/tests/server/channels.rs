//! The Channels-compatible dialect (`parkmate.channels`): a socket that asks for it gets the
//! original Django Channels consumer's frames, so the original front end's `onmessage` works
//! unchanged; one that does not is untouched.

use futures_util::StreamExt;
use parkmate_protocol::{CHANNELS_GREETING, Role};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::*;

const USER: i64 = 7;

/// A socket offering `protocols` (then the token, as browsers carry it); returns it with the
/// sub-protocol the server answered.
async fn open(app: &TestApp, since: Option<i64>, protocols: &str) -> (Client, Option<String>) {
    let mut req = app.ws_url(USER, since).into_client_request().unwrap();
    let offer = format!("{protocols}, bearer.{}", app.token(USER, Role::User));
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&offer).unwrap(),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    let answered = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (Client { ws }, answered)
}

/// The next text frame, raw, as a browser's `event.data` has it.
async fn next_raw(c: &mut Client) -> String {
    loop {
        let msg = tokio::time::timeout(WAIT, c.ws.next())
            .await
            .expect("a frame within the wait");
        match msg {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

async fn publish(app: &TestApp, level: &str, message: &str) -> i64 {
    let (status, body) = app
        .publish(json!({"level": level, "message": message, "user_id": USER}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["ids"][0].as_i64().unwrap()
}

/// The original hook's `onmessage` (`useWebSocketNotifications.js` of the Django Channels
/// Parkmate), step for step: the toast one frame shows, if any. The greeting (`connected: true`)
/// shows none; `carwash_completed` is a success; otherwise the kind is `type` (default `info`),
/// falling back to `info` for a kind without a toast method, and the text is `message` (default
/// "Notification received").
fn original_onmessage(raw: &str) -> Option<(String, String)> {
    let data: Value = serde_json::from_str(raw).ok()?;
    if data["connected"] == json!(true) {
        return None;
    }
    let message = data["message"]
        .as_str()
        .filter(|m| !m.is_empty())
        .unwrap_or("Notification received")
        .to_owned();
    if data["type"] == "carwash_completed" {
        return Some(("success".into(), message));
    }
    let kind = data["type"]
        .as_str()
        .filter(|k| !k.is_empty())
        .unwrap_or("info");
    let kind = match kind {
        "success" | "error" | "warning" | "info" => kind,
        _ => "info",
    };
    Some((kind.to_owned(), message))
}

/// What the original consumer sent for `send_ws_notification(user, level, message)`.
fn original_consumer_frame(level: &str, message: &str) -> String {
    json!({"type": level, "message": message}).to_string()
}

const MESSAGES: [(&str, &str); 5] = [
    ("success", "Booking renewed successfully!"),
    ("error", "Renewal failed: card declined"),
    ("warning", "Admin declined your booking request."),
    ("info", "New booking received for Lot #2"),
    ("confirm", "Booking confirmed"),
];

#[tokio::test]
async fn the_channels_subprotocol_greets_like_the_original_consumer() {
    let app = spawn_app().await;
    let (mut c, answered) = open(&app, None, "parkmate.channels").await;
    assert_eq!(answered.as_deref(), Some("parkmate.channels"));
    assert_eq!(next_raw(&mut c).await, CHANNELS_GREETING);

    let id = publish(&app, "success", "Booking renewed successfully!").await;
    let frame: Value = serde_json::from_str(&next_raw(&mut c).await).unwrap();
    assert_eq!(frame["type"], "success", "the level travels in `type`");
    assert_eq!(frame["message"], "Booking renewed successfully!");
    assert_eq!(frame["level"], "success");
    assert_eq!(frame["id"], id);
}

#[tokio::test]
async fn the_original_handler_shows_the_originals_toasts_unchanged() {
    let app = spawn_app().await;
    let (mut c, _) = open(&app, None, "parkmate.channels").await;
    let mut shown = Vec::new();
    shown.extend(original_onmessage(&next_raw(&mut c).await));
    for (level, message) in MESSAGES {
        publish(&app, level, message).await;
    }
    // Every frame up to the last notification goes through the handler: an unread count or any
    // other frame in between would show up as an extra "Notification received" toast.
    for _ in MESSAGES {
        shown.extend(original_onmessage(&next_raw(&mut c).await));
    }
    let original: Vec<_> = MESSAGES
        .iter()
        .filter_map(|(level, message)| original_onmessage(&original_consumer_frame(level, message)))
        .collect();
    assert_eq!(shown, original);
    assert_eq!(
        shown[0],
        ("success".into(), "Booking renewed successfully!".into())
    );
    assert_eq!(shown[4], ("info".into(), "Booking confirmed".into()));
}

#[tokio::test]
async fn a_channels_socket_resumes_with_since_and_sends_only_notifications() {
    let app = spawn_app().await;
    let first = publish(&app, "info", "one").await;
    let second = publish(&app, "warning", "two").await;
    let (mut c, _) = open(&app, Some(first - 1), "parkmate.channels").await;
    assert_eq!(next_raw(&mut c).await, CHANNELS_GREETING);
    // The replay, then live: no `replayed` marker and no unread counts in between.
    let third = publish(&app, "success", "three").await;
    let ids: Vec<i64> = [
        next_raw(&mut c).await,
        next_raw(&mut c).await,
        next_raw(&mut c).await,
    ]
    .iter()
    .map(|raw| {
        let v: Value = serde_json::from_str(raw).unwrap();
        assert!(
            ["info", "warning", "success"].contains(&v["type"].as_str().unwrap()),
            "{raw}"
        );
        v["id"].as_i64().unwrap()
    })
    .collect();
    assert_eq!(ids, [first, second, third]);
}

#[tokio::test]
async fn the_native_protocol_is_untouched_and_wins_when_offered_first() {
    let app = spawn_app().await;
    for offer in ["parkmate.v1, parkmate.channels", "parkmate.v1"] {
        let (mut c, answered) = open(&app, None, offer).await;
        assert_eq!(answered.as_deref(), Some("parkmate.v1"), "{offer}");
        let hello: Value = serde_json::from_str(&next_raw(&mut c).await).unwrap();
        assert_eq!(hello["type"], "hello", "{offer}");
    }
    let (mut native, _) = open(&app, None, "parkmate.v1").await;
    next_raw(&mut native).await;
    publish(&app, "success", "native").await;
    let frame: Value = serde_json::from_str(&next_raw(&mut native).await).unwrap();
    assert_eq!(frame["type"], "notification");
    assert_eq!(frame["level"], "success");
    let count: Value = serde_json::from_str(&next_raw(&mut native).await).unwrap();
    assert_eq!(count["type"], "unread_count");
}

#[tokio::test]
async fn a_channels_socket_is_authenticated_like_any_other() {
    let app = spawn_app().await;
    let mut req = app.ws_url(USER, None).into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("parkmate.channels"),
    );
    match Client::open(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401)
        }
        other => panic!("expected a 401, got {:?}", other.map(|_| "a socket")),
    }
}
