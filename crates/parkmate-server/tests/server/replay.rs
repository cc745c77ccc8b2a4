//! Lossless reconnect: clients drop and come back with `since` while notifications keep being
//! published; each must see exactly the sequence the store holds for it — no gap, no duplicate,
//! in order.

use std::time::Duration;

use crate::common::*;
use parkmate_protocol::{Role, ServerFrame, Viewer};
use serde_json::json;

#[tokio::test]
async fn replay_then_live_has_no_gap_and_no_duplicate_under_concurrent_publishing() {
    let app = spawn_app().await;
    const PUBLISHED: usize = 400;

    // The publisher: unicasts to users 1 and 2, role messages and broadcasts, as fast as it can.
    let publisher = {
        let http = app.http.clone();
        let url = app.url("/api/notifications");
        tokio::spawn(async move {
            for i in 0..PUBLISHED {
                let body = match i % 4 {
                    0 => json!({"level":"info","message":format!("m{i}"),"user_id":1}),
                    1 => json!({"level":"info","message":format!("m{i}"),"user_id":2}),
                    2 => json!({"level":"info","message":format!("m{i}"),"role":"owner"}),
                    _ => json!({"level":"info","message":format!("m{i}"),"broadcast":true}),
                };
                let r = http
                    .post(&url)
                    .bearer_auth(API_KEY)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
            }
        })
    };

    // Three clients: user 1 (driver) twice, user 2 (owner). Each reconnects every few frames.
    let mut clients = Vec::new();
    for (user, role, every) in [
        (1, Role::User, 7usize),
        (1, Role::User, 13),
        (2, Role::Owner, 5),
    ] {
        let app_addr = app.addr;
        let token = app.token(user, role);
        clients.push(tokio::spawn(async move {
            let mut seen: Vec<i64> = Vec::new();
            let mut reconnects = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let since = seen.last().copied().unwrap_or(0);
                let url =
                    format!("ws://{app_addr}/ws/notifications/{user}/?since={since}&token={token}");
                use tokio_tungstenite::tungstenite::client::IntoClientRequest;
                let mut c = Client::open(url.into_client_request().unwrap())
                    .await
                    .unwrap();
                let mut got_here = 0;
                let done = loop {
                    let frame =
                        tokio::time::timeout(Duration::from_millis(1500), c.next_frame()).await;
                    match frame {
                        // Quiet for 1.5 s: the publisher is done and we are caught up.
                        Err(_) => break true,
                        Ok(ServerFrame::Notification(n)) => {
                            seen.push(n.id);
                            got_here += 1;
                            if got_here % every == 0 {
                                break false; // drop the socket mid-stream
                            }
                        }
                        Ok(_) => {}
                    }
                };
                drop(c);
                reconnects += 1;
                if done || tokio::time::Instant::now() > deadline {
                    return (user, role, seen, reconnects);
                }
            }
        }));
    }

    publisher.await.unwrap();
    for client in clients {
        let (user, role, seen, reconnects) = client.await.unwrap();
        let expected: Vec<i64> = app
            .state
            .store
            .replay(
                Viewer {
                    user_id: user,
                    role,
                },
                0,
                parkmate_db::PageBudget {
                    rows: 1000,
                    bytes: u32::MAX,
                },
            )
            .await
            .unwrap()
            .notifications
            .iter()
            .map(|n| n.id)
            .collect();
        assert!(
            reconnects > 10,
            "the test must actually reconnect ({reconnects})"
        );
        assert_eq!(expected.len(), if user == 1 { 200 } else { 300 });
        assert_eq!(
            seen, expected,
            "user {user} saw a gap, a duplicate or a reordering"
        );
    }
}

#[tokio::test]
async fn since_replays_in_order_then_marks_the_end() {
    let app = spawn_app().await;
    let a = app.send(5, "one").await;
    let b = app.send(5, "two").await;
    let c = app.send(5, "three").await;
    let mut client = app.connect(5, Role::User, Some(a)).await;
    assert_eq!(
        client.next_frame().await,
        ServerFrame::Notification(
            app.state
                .store
                .replay(
                    Viewer {
                        user_id: 5,
                        role: Role::User
                    },
                    a,
                    parkmate_db::PageBudget {
                        rows: 1,
                        bytes: u32::MAX
                    }
                )
                .await
                .unwrap()
                .notifications[0]
                .frame()
        )
    );
    assert_eq!(client.next_notification().await.id, c);
    assert_eq!(
        client.next_frame().await,
        ServerFrame::Replayed {
            count: 2,
            last_id: Some(c)
        }
    );
    assert_eq!(client.next_unread_count().await, 3);
    let _ = b;
    // Then live.
    let d = app.send(5, "four").await;
    assert_eq!(client.next_notification().await.id, d);
}

#[tokio::test]
async fn a_since_from_the_future_does_not_silence_new_notifications() {
    let app = spawn_app().await;
    let old = app.send(5, "old").await;
    // The client remembers id 10,000 from some other database.
    let mut client = app.connect(5, Role::User, Some(10_000)).await;
    assert_eq!(
        client.next_frame().await,
        ServerFrame::Replayed {
            count: 0,
            last_id: None
        }
    );
    let new = app.send(5, "new").await;
    assert!(new > old);
    assert_eq!(client.next_notification().await.id, new);
}

/// `database.retention`: the leader deletes what is older, once it is published, and a client
/// resuming from below gets what is left, then live notifications as usual.
#[tokio::test]
async fn retention_deletes_old_notifications_and_replay_goes_on_from_what_is_left() {
    let app = spawn_app_with(|s| s.database.retention = Duration::from_secs(1)).await;
    let mut live = app.connect(5, Role::User, None).await;
    let old = app.send(5, "old").await;
    assert_eq!(live.next_notification().await.id, old, "published first");
    // Awaited, not slept: the job looks every 500 ms; give it up to 20 s on a loaded machine.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !app.stored_ids(5, Role::User).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old notification was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        app.metrics()
            .await
            .contains("parkmate_notifications_pruned_total 1")
    );

    let mut client = app.connect(5, Role::User, Some(0)).await;
    assert_eq!(
        client.next_frame().await,
        ServerFrame::Replayed {
            count: 0,
            last_id: None
        }
    );
    let new = app.send(5, "new").await;
    assert_eq!(client.next_notification().await.id, new);
    assert_eq!(live.next_notification().await.id, new);
}

/// Issue 12, point 10a: a client that has received nothing yet is still lossless. Its `hello`
/// names the newest id it can see (never another user's), and resuming from that id after a drop
/// replays exactly what was published while it was away; a user who sees nothing yet gets 0,
/// and `since=0` replays everything published since.
#[tokio::test]
async fn hello_names_the_newest_visible_id_and_resuming_from_it_loses_nothing() {
    let app = spawn_app().await;
    let mine = app.send(1, "before").await;
    let theirs = app.send(2, "someone else's").await;
    assert!(theirs > mine);

    let newest_of = |hello: &ServerFrame| match hello {
        ServerFrame::Hello { newest_id, .. } => *newest_id,
        other => panic!("expected hello, got {other:?}"),
    };
    let (c1, hello1) = app.connect_hello(1, Role::User, None).await;
    assert_eq!(newest_of(&hello1), mine, "only ids user 1 can see");
    let (c3, hello3) = app.connect_hello(3, Role::User, None).await;
    assert_eq!(newest_of(&hello3), 0, "user 3 sees nothing yet");

    // Both lose their sockets before any notification reaches them; three each are published.
    drop((c1, c3));
    let mut missed1 = Vec::new();
    let mut missed3 = Vec::new();
    for i in 0..3 {
        missed1.push(app.send(1, &format!("away {i}")).await);
        app.send(2, "not for 1 or 3").await;
        missed3.push(app.send(3, &format!("away {i}")).await);
    }

    for (user, since, missed) in [
        (1, newest_of(&hello1), missed1),
        (3, newest_of(&hello3), missed3),
    ] {
        let mut c = app.connect(user, Role::User, Some(since)).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(c.next_notification().await.id);
        }
        assert_eq!(got, missed, "user {user} resumed from hello's newest_id");
        assert_eq!(
            c.next_frame().await,
            ServerFrame::Replayed {
                count: 3,
                last_id: Some(missed[2]),
            }
        );
    }
}
