//! Native TLS on one node (`[tls] cert` + `key`: `PARKMATE_TLS_CERT` + `PARKMATE_TLS_KEY`): `wss://` and `https://` with
//! a certificate generated for the test, plain `ws://` refused on that port, graceful shutdown
//! still closing sockets with 1012, and misconfiguration stopping the start.

use crate::common::tls::{self, TestCert};
use crate::common::{TestApp, spawn_app_with, test_settings};
use parkmate_protocol::Role;
use parkmate_server::Application;
use parkmate_server::config::TlsFiles;
use serde_json::json;

async fn spawn_tls_app(cert: &TestCert) -> TestApp {
    let (c, k) = (cert.cert_path.clone(), cert.key_path.clone());
    spawn_app_with(move |raw| {
        raw.tls = Some(TlsFiles { cert: c, key: k });
    })
    .await
}

#[tokio::test]
async fn a_wss_client_authenticates_and_receives_what_is_published_over_https() {
    let certs = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(certs.path());
    let app = spawn_tls_app(&cert).await;
    let port = app.addr.port();

    // Plain WebSocket to the TLS port: no handshake, and the node carries on.
    let plain =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws/notifications/1/"))
            .await;
    assert!(plain.is_err(), "plain ws:// to a TLS port must fail");

    let url = format!("wss://127.0.0.1:{port}/ws/notifications/1/");
    let mut client = tls::connect(&url, &app.keys, 1, Role::User, cert.client_config()).await;
    // A token for someone else is refused over TLS as over plain HTTP.
    let refused = tls::open(&url, &app.token(2, Role::User), cert.client_config()).await;
    assert!(
        refused.is_err(),
        "user 2's token cannot open user 1's socket"
    );

    let https = cert.http_client();
    let r = https
        .post(format!("https://127.0.0.1:{port}/api/notifications"))
        .bearer_auth(crate::common::API_KEY)
        .json(&json!({"level":"success","message":"over TLS","user_id":1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    let id = body["ids"][0].as_i64().unwrap();
    let n = client.next_notification().await;
    assert_eq!((n.id, n.message.as_str()), (id, "over TLS"));

    // The plain ws:// attempt above is counted as a failed handshake.
    let metrics = https
        .get(format!("https://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("parkmate_tls_handshake_failures_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(failures.is_some_and(|v| v >= 1.0), "{metrics}");

    // Plain HTTP to the TLS port gets no answer either.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err()
    );

    // Graceful shutdown closes TLS sockets with 1012 like plain ones.
    let (_, close) = tokio::join!(app.stop(), client.closed());
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1012));
}

#[tokio::test]
async fn a_bad_pem_or_a_missing_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(dir.path());

    // (Half a configuration is refused by the settings: config.rs,
    // `bad_values_name_their_key_and_variable`.)

    // A key file that is not PEM: the start fails, naming the file.
    let garbage = dir.path().join("garbage-key.pem");
    std::fs::write(&garbage, "this is not a key").unwrap();
    let mut settings = test_settings(dir.path());
    settings.tls = Some(TlsFiles {
        cert: cert.cert_path.clone(),
        key: garbage,
    });
    let err = match Application::build(settings).await {
        Ok(_) => panic!("a node with an unreadable key must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("garbage-key.pem"), "{err}");

    // A certificate file that does not exist.
    let mut settings = test_settings(dir.path());
    settings.tls = Some(TlsFiles {
        cert: dir.path().join("nowhere.pem"),
        key: cert.key_path.clone(),
    });
    let err = match Application::build(settings).await {
        Ok(_) => panic!("a node without its certificate must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("nowhere.pem"), "{err}");
}
