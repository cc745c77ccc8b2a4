//! Point 4: one user, or one client address, cannot take every socket of the node. Over
//! `ws.max_connections_per_user` or `ws.max_connections_per_ip` the handshake is refused before
//! the upgrade with 429 `connection_limit`, JSON and `Retry-After`. Behind a trusted proxy the
//! address is the one it forwards; a forged `X-Forwarded-For` from anyone else changes nothing.
//! Before, one self-registered account could hold every slot of `ws.max_connections`.

use std::num::NonZeroUsize;

use parkmate_protocol::Role;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::{Client, TestApp, spawn_app_with};

fn request(app: &TestApp, user: i64, forwarded_for: Option<&str>) -> Request {
    let mut req = app.ws_url(user, None).into_client_request().unwrap();
    let auth = format!("Bearer {}", app.token(user, Role::User));
    req.headers_mut()
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    if let Some(ip) = forwarded_for {
        req.headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_str(ip).unwrap());
    }
    req
}

/// A refused handshake's status, `Retry-After` and JSON body.
pub async fn refusal(req: Request) -> (u16, Option<String>, Value) {
    match Client::open(req).await {
        Err(WsError::Http(resp)) => {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = resp
                .body()
                .as_deref()
                .map(|b| serde_json::from_slice(b).unwrap())
                .unwrap_or_default();
            (resp.status().as_u16(), retry_after, body)
        }
        Err(e) => panic!("expected an HTTP refusal, got {e:?}"),
        Ok(_) => panic!("expected a refusal, the handshake succeeded"),
    }
}

#[tokio::test]
async fn one_user_cannot_hold_more_than_its_share_of_sockets() {
    let app = spawn_app_with(|s| {
        s.ws.max_connections_per_user = NonZeroUsize::new(2).unwrap();
    })
    .await;
    let a = app.connect(7, Role::User, None).await;
    let _b = app.connect(7, Role::User, None).await;
    let (status, retry_after, body) = refusal(request(&app, 7, None)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "connection_limit");
    assert!(body["message"].as_str().unwrap().contains("user"), "{body}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    // Another user is not affected; a closed socket gives its place back.
    let _other = app.connect(8, Role::User, None).await;
    drop(a);
    app.wait_for_connections(2).await;
    let _c = app.connect(7, Role::User, None).await;
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_and_a_forged_forward_does_not_help() {
    let app = spawn_app_with(|s| {
        s.ws.max_connections_per_ip = NonZeroUsize::new(3).unwrap();
    })
    .await;
    let mut held = Vec::new();
    for user in 1..=3 {
        held.push(app.connect(user, Role::User, None).await);
    }
    let (status, retry_after, body) = refusal(request(&app, 4, Some("198.51.100.1"))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("connection_limit"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("address"),
        "{body}"
    );
    assert!(retry_after.is_some());
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_share() {
    let app = spawn_app_with(|s| {
        s.ws.max_connections_per_ip = NonZeroUsize::new(2).unwrap();
        s.http.trusted_proxies = serde_json::from_value(serde_json::json!(["127.0.0.1"])).unwrap();
    })
    .await;
    let mut held = Vec::new();
    for user in 1..=2 {
        held.push(
            Client::open(request(&app, user, Some("198.51.100.1")))
                .await
                .unwrap(),
        );
    }
    let (status, _, body) = refusal(request(&app, 3, Some("198.51.100.1"))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("connection_limit"))
    );
    // Another client behind the same proxy.
    held.push(
        Client::open(request(&app, 3, Some("203.0.113.5")))
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn a_full_node_answers_503_with_retry_after() {
    let app = spawn_app_with(|s| {
        s.ws.max_connections = NonZeroUsize::new(1).unwrap();
    })
    .await;
    let _only = app.connect(1, Role::User, None).await;
    let (status, retry_after, body) = refusal(request(&app, 2, None)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("too_many_connections"))
    );
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
}
