//! Live delivery: many devices, groups, broadcast, the socket's own frames, heartbeat, slow
//! consumers, token expiry and graceful shutdown.

use std::time::Duration;

use crate::common::*;
use parkmate_db::NewNotification;
use parkmate_protocol::{Audience, Level, Role, ServerFrame};
use serde_json::json;

#[tokio::test]
async fn every_device_of_a_user_gets_every_notification_and_others_get_none() {
    let app = spawn_app().await;
    let mut phone = app.connect(42, Role::User, None).await;
    let mut laptop = app.connect(42, Role::User, None).await;
    let mut other = app.connect(43, Role::User, None).await;

    let (status, body) = app
        .publish(json!({"level":"success","message":"Booking renewed successfully!","event":"booking_renewed","data":{"booking_id":5},"user_id":42}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["ids"][0].as_i64().unwrap();

    for c in [&mut phone, &mut laptop] {
        let n = c.next_notification().await;
        assert_eq!(
            (n.id, n.level, n.message.as_str(), n.event.as_str()),
            (
                id,
                Level::Success,
                "Booking renewed successfully!",
                "booking_renewed"
            )
        );
        assert_eq!(n.data["booking_id"], 5);
        assert_eq!(c.next_unread_count().await, 1);
    }
    other.assert_silent(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn role_and_broadcast_reach_the_right_sockets() {
    let app = spawn_app().await;
    let mut owner = app.connect(1, Role::Owner, None).await;
    let mut admin = app.connect(2, Role::Admin, None).await;
    let mut driver = app.connect(3, Role::User, None).await;

    let (status, _) = app
        .publish(json!({"level":"info","message":"owners only","role":"owner"}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(owner.next_notification().await.message, "owners only");

    let (status, _) = app
        .publish(json!({"level":"warning","message":"maintenance tonight","broadcast":true}))
        .await;
    assert_eq!(status, 201);
    for (c, unread) in [(&mut owner, 2), (&mut admin, 1), (&mut driver, 1)] {
        assert_eq!(c.next_notification().await.message, "maintenance tonight");
        assert_eq!(c.next_unread_count().await, unread);
    }
    admin.assert_silent(Duration::from_millis(200)).await;
    driver.assert_silent(Duration::from_millis(200)).await;

    // One row for the group, yet each member has it in their inbox.
    let (_, inbox) = app.get_json("/api/inbox", &app.token(3, Role::User)).await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
    let (_, inbox) = app.get_json("/api/inbox", &app.token(1, Role::Owner)).await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn client_frames_ping_errors_and_oversize() {
    let app = spawn_app_with(|s| s.ws.max_frame_bytes = 1024.try_into().unwrap()).await;
    let mut c = app.connect(7, Role::User, None).await;

    c.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(c.next_frame().await, ServerFrame::Pong);

    for (text, code) in [
        ("not json", "invalid_json"),
        (r#"{"type":"launch"}"#, "unknown_frame"),
        (r#"{"type":"mark_read","id":"x"}"#, "unknown_frame"),
    ] {
        c.send_text(text).await;
        match c.next_frame().await {
            ServerFrame::Error { code: got, .. } => assert_eq!(got, code, "for {text}"),
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
    use futures_util::SinkExt;
    c.ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        vec![1, 2, 3].into(),
    ))
    .await
    .unwrap();
    assert!(
        matches!(c.next_frame().await, ServerFrame::Error { code, .. } if code == "binary_not_supported")
    );
    c.send_text(r#"{"type":"mark_read","id":999}"#).await;
    assert!(matches!(c.next_frame().await, ServerFrame::Error { code, .. } if code == "not_found"));

    // Still alive after all that.
    let id = app.send(7, "still here").await;
    assert_eq!(c.next_notification().await.id, id);

    c.send_text(&"x".repeat(4096)).await;
    let close = c.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
}

#[tokio::test]
async fn a_stream_of_garbage_is_closed_with_4009() {
    let app = spawn_app().await;
    let mut c = app.connect(7, Role::User, None).await;
    for _ in 0..10 {
        c.send_text("garbage").await;
    }
    let close = c.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4009);
}

#[tokio::test]
async fn a_silent_peer_is_dropped_by_the_heartbeat() {
    let app = spawn_app_with(|s| {
        s.ws.heartbeat_interval = Duration::from_millis(100);
        s.ws.heartbeat_timeout = Duration::from_millis(300);
    })
    .await;
    // This client never reads, so it never answers the server's pings.
    let c = app.connect(7, Role::User, None).await;
    app.wait_for_connections(0).await;
    // The client cannot read the 4002 close frame: reading makes it answer queued pings into a
    // socket the server already closed (broken pipe). The server's counter says why it closed.
    let text = app.metrics().await;
    assert!(
        text.contains("parkmate_heartbeat_timeouts_total 1"),
        "{text}"
    );
    drop(c);

    // A client that reads (and so answers pings) stays.
    let mut alive = app.connect(8, Role::User, None).await;
    alive.assert_silent(Duration::from_millis(800)).await;
    assert_eq!(app.state.hub.connection_count(), 1);
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4008_and_recovers_everything_by_replay() {
    let app = spawn_app_with(|s| s.ws.queue_capacity = 2.try_into().unwrap()).await;
    let mut c = app.connect(7, Role::User, None).await;
    // One commit of 50 notifications reaches the hub faster than any socket drains a queue of 2.
    let batch: Vec<_> = (0..50)
        .map(|i| NewNotification::new(Audience::User(7), Level::Info, "custom", format!("n{i}")))
        .collect();
    let stored = app.state.notifier.submit(batch).await.unwrap();
    let expected: Vec<i64> = stored.iter().map(|n| n.id).collect();

    let mut seen = Vec::new();
    let close = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut c.ws))
            .await
            .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                if let ServerFrame::Notification(n) = serde_json::from_str(&t).unwrap() {
                    seen.push(n.id);
                }
            }
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(u16::from(close.expect("close frame").code), 4008);
    assert!(seen.len() < expected.len());
    let text = app.metrics().await;
    assert!(text.contains("parkmate_slow_consumer_closes_total"));

    // Reconnect with the last id seen: the rest arrives, in order, exactly once.
    let since = seen.last().copied().unwrap_or(0);
    let mut again = app.connect(7, Role::User, Some(since)).await;
    loop {
        match again.next_frame().await {
            ServerFrame::Notification(n) => seen.push(n.id),
            ServerFrame::Replayed { .. } => break,
            _ => {}
        }
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn an_expiring_token_closes_the_socket_with_4001() {
    let app = spawn_app().await;
    let token = app.keys.mint(7, Role::User, 1);
    let url = format!("ws://{}/ws/notifications/7/?token={token}", app.addr);
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut c = Client::open(url.into_client_request().unwrap())
        .await
        .unwrap();
    let close = c.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4001);
}

#[tokio::test]
async fn graceful_shutdown_says_reconnect_and_keeps_what_was_published() {
    let app = spawn_app().await;
    let mut a = app.connect(7, Role::User, None).await;
    let mut b = app.connect(8, Role::Owner, None).await;
    let last = app.send(7, "before restart").await;
    assert_eq!(a.next_notification().await.id, last);

    let (dir, addr) = app.stop().await;
    for c in [&mut a, &mut b] {
        let close = c.closed().await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1012);
        assert_eq!(close.reason.as_str(), "server restarting, reconnect");
    }

    // Published while the node was down (straight into the store, as another node would).
    let store = parkmate_db::Db::open(&format!(
        "sqlite://{}",
        dir.path().join("parkmate.db").display()
    ))
    .await
    .unwrap();
    let missed = store
        .insert_batch(&[NewNotification::new(
            Audience::User(7),
            Level::Warning,
            "custom",
            "while you were away",
        )])
        .await
        .unwrap();
    store.close().await;

    let mut raw = test_settings(dir.path());
    raw.bind = addr;
    let app = start(raw, dir).await;
    let mut a = app.connect(7, Role::User, Some(last)).await;
    let n = a.next_notification().await;
    assert_eq!(
        (n.id, n.message.as_str()),
        (missed[0].id, "while you were away")
    );
    assert!(matches!(
        a.next_frame().await,
        ServerFrame::Replayed { count: 1, .. }
    ));
}

#[tokio::test]
async fn a_resync_without_since_sends_only_what_is_new() {
    let app = spawn_app().await;
    let old = app.send(7, "history").await;
    // Connect only once "history" went out live, so it is history, not a frame in flight.
    tokio::time::timeout(WAIT, async {
        while app.state.store.published_through().await.unwrap() < old {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the dispatcher publishes");
    let mut c = app.connect(7, Role::User, None).await;
    // A broker resync makes every socket catch up from the store from what it has seen.
    app.state.hub.resync_all();
    let new = app.send(7, "new").await;
    assert_eq!(c.next_notification().await.id, new);
}
