//! Every way a handshake is refused, and the three ways a token is accepted.

use std::time::Duration;

use crate::common::*;
use parkmate_auth::Claims;
use parkmate_protocol::{Role, ServerFrame};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Tries a handshake and returns the HTTP status and JSON body of a refusal.
async fn refused(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, serde_json::Value) {
    match Client::open(req).await {
        Err(WsError::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .map(|b| serde_json::from_slice(b).unwrap())
                .unwrap_or_default();
            (resp.status().as_u16(), body)
        }
        Err(e) => panic!("expected an HTTP refusal, got {e:?}"),
        Ok(_) => panic!("expected a refusal, the handshake succeeded"),
    }
}

fn with_header(
    url: &str,
    name: &'static str,
    value: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert(name, HeaderValue::from_str(value).unwrap());
    req
}

#[tokio::test]
async fn missing_forged_none_wrong_key_and_expired_tokens_get_401() {
    let app = spawn_app().await;
    let url = app.ws_url(7, None);

    let (status, body) = refused(url.clone().into_client_request().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing_token"))
    );

    let wrong_key = parkmate_auth::TokenKeys::new(b"some-other-secret-some-other-secret").mint(
        7,
        Role::Admin,
        60,
    );
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Claims {
            sub: "7".into(),
            role: Role::User,
            exp: parkmate_auth::now_secs() - 5,
            iat: Some(0),
            ver: None,
        },
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    // {"alg":"none"} with a valid-looking body and no signature.
    let alg_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiI3Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo5OTk5OTk5OTk5LCJpYXQiOjB9.";
    let mut forged = app.token(7, Role::User);
    forged.pop();
    forged.push('x');

    for bad in [
        wrong_key.as_str(),
        expired.as_str(),
        alg_none,
        forged.as_str(),
        "not-a-jwt",
    ] {
        let (status, body) =
            refused(with_header(&url, "authorization", &format!("Bearer {bad}"))).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("invalid_token")),
            "token {bad}"
        );
    }
}

#[tokio::test]
async fn a_token_for_user_7_cannot_listen_to_user_8() {
    let app = spawn_app().await;
    let token = app.token(7, Role::User);
    for url in [app.ws_url(8, None), app.ws_url(8, Some(0))] {
        let (status, body) = refused(with_header(
            &url,
            "authorization",
            &format!("Bearer {token}"),
        ))
        .await;
        assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    }
    // Even an admin token only opens its own stream.
    let admin = app.token(1, Role::Admin);
    let (status, _) = refused(with_header(
        &app.ws_url(8, None),
        "authorization",
        &format!("Bearer {admin}"),
    ))
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn browsers_authenticate_by_subprotocol_and_get_parkmate_v1_back() {
    let app = spawn_app().await;
    let token = app.token(7, Role::User);
    let req = with_header(
        &app.ws_url(7, None),
        "sec-websocket-protocol",
        &format!("parkmate.v1, bearer.{token}"),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    let answered = resp
        .headers()
        .get("sec-websocket-protocol")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        answered, "parkmate.v1",
        "the server must never echo the token"
    );
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"type\":\"hello\""));
}

#[tokio::test]
async fn query_token_and_path_without_trailing_slash_work() {
    let app = spawn_app().await;
    let url = format!(
        "ws://{}/ws/notifications/7?token={}",
        app.addr,
        app.token(7, Role::User)
    );
    let mut c = Client::open(url.into_client_request().unwrap())
        .await
        .unwrap();
    assert!(matches!(
        c.next_frame().await,
        ServerFrame::Hello {
            user_id: 7,
            role: Role::User,
            ..
        }
    ));
}

#[tokio::test]
async fn cross_site_origins_are_refused_same_origin_and_listed_ones_pass() {
    let app = spawn_app().await;
    let token = format!("Bearer {}", app.token(7, Role::User));
    let url = app.ws_url(7, None);

    let mut evil = with_header(&url, "authorization", &token);
    evil.headers_mut()
        .insert("origin", HeaderValue::from_static("https://evil.example"));
    let (status, body) = refused(evil).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );

    let mut same = with_header(&url, "authorization", &token);
    let own = format!("http://{}", app.addr);
    same.headers_mut()
        .insert("origin", HeaderValue::from_str(&own).unwrap());
    Client::open(same).await.expect("same origin is allowed");

    let mut dev = with_header(&url, "authorization", &token);
    dev.headers_mut()
        .insert("origin", HeaderValue::from_static("http://localhost:5173"));
    Client::open(dev)
        .await
        .expect("the dev web origin is allowed by default");
}

#[tokio::test]
async fn bad_since_and_user_id_are_400() {
    let app = spawn_app().await;
    let token = format!("Bearer {}", app.token(7, Role::User));
    let url = format!("ws://{}/ws/notifications/7/?since=-1", app.addr);
    let (status, body) = refused(with_header(&url, "authorization", &token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_since"))
    );
    for user in ["abc", "99999999999999999999"] {
        let url = format!("ws://{}/ws/notifications/{user}/", app.addr);
        let (status, body) = refused(with_header(&url, "authorization", &token)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_user_id")),
            "{user}"
        );
    }
}

#[tokio::test]
async fn the_authorization_scheme_is_matched_in_any_case() {
    let app = spawn_app().await;
    let token = app.token(7, Role::User);
    for authorization in [format!("bearer {token}"), format!("BEARER  {token} ")] {
        let mut c = Client::open(with_header(
            &app.ws_url(7, None),
            "authorization",
            &authorization,
        ))
        .await
        .unwrap_or_else(|e| panic!("{authorization}: {e}"));
        assert!(matches!(
            c.next_frame().await,
            ServerFrame::Hello { user_id: 7, .. }
        ));
    }
    let (status, body) = refused(with_header(
        &app.ws_url(7, None),
        "authorization",
        &format!("Basic {token}"),
    ))
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("missing_token"))
    );
}

#[tokio::test]
async fn the_connection_cap_answers_503() {
    let app = spawn_app_with(|s| s.ws.max_connections = std::num::NonZeroUsize::MIN).await;
    let _first = app.connect(7, Role::User, None).await;
    let token = format!("Bearer {}", app.token(8, Role::User));
    let (status, body) = refused(with_header(&app.ws_url(8, None), "authorization", &token)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("too_many_connections"))
    );
    drop(_first);
    app.wait_for_connections(0).await;
    app.connect(8, Role::User, None).await;
}

#[tokio::test]
async fn refusals_are_counted_in_metrics() {
    let app = spawn_app().await;
    let _ = refused(app.ws_url(7, None).into_client_request().unwrap()).await;
    let text = app.metrics().await;
    assert!(
        text.contains("parkmate_handshake_refusals_total{reason=\"missing_token\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn handshakes_past_the_in_flight_cap_wait_their_turn_then_get_503_busy() {
    let app = spawn_app_with(|s| {
        s.ws.max_handshakes_in_flight = std::num::NonZeroUsize::new(2).unwrap();
        s.ws.handshake_queue_timeout = Duration::from_millis(300);
    })
    .await;
    // A crowd holding both turns: the test takes them itself, so the timing is its own.
    let turns = app.state.handshake_turns.clone();
    let held = turns.clone().acquire_many_owned(2).await.unwrap();

    // Waiting past the timeout: refused 503 `busy`, with `Retry-After`.
    let token = format!("Bearer {}", app.token(7, Role::User));
    let req = with_header(&app.ws_url(7, None), "authorization", &token);
    match Client::open(req).await {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503);
            assert!(resp.headers().contains_key("retry-after"));
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["code"], "busy");
        }
        Err(e) => panic!("expected 503 busy, got {e:?}"),
        Ok(_) => panic!("expected 503 busy, the handshake succeeded"),
    }

    // Queued, not refused: a handshake waits while the turns are held and goes through when one
    // is given back.
    let waiting = {
        let req = with_header(&app.ws_url(7, None), "authorization", &token);
        tokio::spawn(async move { Client::open(req).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "the handshake did not wait its turn"
    );
    drop(held);
    tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the handshake went through once a turn was free")
        .unwrap()
        .expect("accepted");

    // A socket gives its turn back once it has greeted: both are free again.
    let (_client, hello) = app.connect_hello(8, Role::User, None).await;
    assert!(matches!(hello, ServerFrame::Hello { .. }));
    let deadline = tokio::time::Instant::now() + WAIT;
    while turns.available_permits() != 2 {
        assert!(tokio::time::Instant::now() < deadline, "a turn was kept");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = app.metrics().await;
    assert!(
        text.contains("parkmate_handshake_refusals_total{reason=\"busy\"} 1"),
        "{text}"
    );
}
