//! What an operator relies on, in-process: the health endpoints (`/livez`, `/readyz`, `/healthz`),
//! every metric listed from the start, and the drain before a stop (not ready, no new sockets,
//! open sockets closed with 1012 in waves while HTTP is still served).

use std::time::Duration;

use crate::common::{WAIT, spawn_app, spawn_app_with};
use parkmate_protocol::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[tokio::test]
async fn livez_readyz_and_healthz_answer_on_a_ready_node() {
    let app = spawn_app().await;
    let (status, body) = app.call("GET", "/livez", None, None).await;
    assert_eq!((status, body), (200, json!({"status":"ok"})));
    let (status, body) = app.call("GET", "/readyz", None, None).await;
    assert_eq!(
        (status, body),
        (200, json!({"status":"ready","store":"ok","broker":"ok"}))
    );
    // The body docs/protocol.md documents.
    let (status, body) = app.call("GET", "/healthz", None, None).await;
    assert_eq!(
        (status, body),
        (200, json!({"connections":0,"status":"ok"}))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_fresh_node_lists_every_metric() {
    let app = spawn_app().await;
    let text = app.metrics().await;
    for name in parkmate_server::telemetry::METRICS {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} is missing from a fresh node's /metrics:\n{text}"
        );
    }
    let version = format!(
        "parkmate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&version), "{version} in:\n{text}");
    for reason in parkmate_server::telemetry::HANDSHAKE_REFUSAL_REASONS {
        let series = format!("parkmate_handshake_refusals_total{{reason=\"{reason}\"}}");
        assert!(text.contains(&series), "{series} in:\n{text}");
    }
    app.stop().await;
}

/// Opens a socket as `user` and reads its `hello`; the raw HTTP answer when refused.
async fn handshake(addr: std::net::SocketAddr, user: i64, token: &str) -> Result<(), (u16, Value)> {
    let mut req = format!("ws://{addr}/ws/notifications/{user}/")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let body = r
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((r.status().as_u16(), body))
        }
        Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
    }
}

#[tokio::test]
async fn a_draining_node_is_not_ready_takes_no_new_socket_and_closes_the_open_ones_in_waves() {
    const SOCKETS: i64 = 10;
    let mut app = spawn_app_with(|s| s.shutdown_drain = Duration::from_secs(2)).await;
    let mut clients = Vec::new();
    for user in 1..=SOCKETS {
        clients.push(app.connect(user, Role::User, None).await);
    }
    app.wait_for_connections(SOCKETS as usize).await;
    let (addr, state) = (app.addr, app.state.clone());
    let http = reqwest::Client::new();
    app.begin_stop();

    // Not ready, and saying why.
    let ready = tokio::time::timeout(WAIT, async {
        loop {
            let r = http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .unwrap();
            if r.status() == 503 {
                return r.json::<Value>().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("/readyz turns 503 when the drain begins");
    assert_eq!(ready["code"], "not_ready", "{ready}");
    assert_eq!(ready["draining"], true, "{ready}");
    assert_eq!(ready["store"], "ok", "{ready}");
    let (status, live) = app.call("GET", "/livez", None, None).await;
    assert_eq!(
        (status, live),
        (200, json!({"status":"ok"})),
        "alive while draining"
    );

    // A new socket is refused with 503 and the error shape; HTTP is still served (and asks the
    // client to reconnect for its next request).
    let refused = handshake(addr, 99, &app.token(99, Role::User)).await;
    let (status, body) = refused.expect_err("a draining node takes no new socket");
    assert_eq!(status, 503);
    assert_eq!(body["code"], "shutting_down", "{body}");
    let r = http
        .post(format!("http://{addr}/api/notifications"))
        .bearer_auth(crate::common::API_KEY)
        .json(&json!({"level":"info","message":"while draining","broadcast":true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "publishing still works while draining");
    assert_eq!(
        r.headers().get("connection").map(|v| v.to_str().unwrap()),
        Some("close")
    );

    // Waves: the first sockets are closed while others are still open.
    tokio::time::timeout(WAIT, async {
        while state.hub.connection_count() == SOCKETS as usize {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first wave closes");
    assert!(
        state.hub.connection_count() > 0,
        "the drain closes sockets in waves, not all at once"
    );
    // Every socket is told 1012.
    for c in &mut clients {
        let close = c.closed().await;
        assert_eq!(close.map(|f| u16::from(f.code)), Some(1012));
    }
    app.stop().await;
}
