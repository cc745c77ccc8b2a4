//! Point 9: secrets on the wire. `rediss://` with a password (Redis AUTH) carries a node's
//! notifications, verified against the operator's CA (`redis.ca_cert`), and a wrong password
//! stops the start without repeating it; in production no localhost origin is allowed by
//! default; `/metrics` is not public in production, and can be served on an address of its own
//! (`metrics.bind`) or behind a token (`metrics.token`).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use parkmate_protocol::Role;
use parkmate_server::config::{RedisUrl, Settings};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::caps::refusal;
use super::production::production;
use crate::common::tls::TestCert;
use crate::common::{WAIT, spawn_app_with, test_settings};

/// A Redis of this test's own, speaking only TLS and requiring a password.
struct TlsRedis {
    child: tokio::process::Child,
    port: u16,
    cert: TestCert,
    _dir: tempfile::TempDir,
}

const REDIS_PASSWORD: &str = "s3cret-redis-pass";

impl TlsRedis {
    async fn start() -> Option<TlsRedis> {
        let dir = tempfile::tempdir().unwrap();
        let cert = TestCert::generate(dir.path());
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let spawned = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&cert.cert_path)
            .arg("--tls-key-file")
            .arg(&cert.key_path)
            .args(["--requirepass", REDIS_PASSWORD])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                parkmate_db::test_support::service_missing("redis-server (binary)", "PATH", &e);
                return None;
            }
        };
        let ready = tokio::time::timeout(WAIT, async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(ready.is_ok(), "redis-server did not listen on {port}");
        Some(TlsRedis {
            child,
            port,
            cert,
            _dir: dir,
        })
    }

    fn settings(&self, s: &mut Settings, url: &str) {
        s.redis.url = Some(RedisUrl::try_from(url.to_owned()).unwrap());
        s.redis.ca_cert = Some(self.cert.cert_path.clone());
    }
}

#[tokio::test]
async fn rediss_with_a_password_carries_notifications_and_a_wrong_one_stops_the_start() {
    let Some(mut redis) = TlsRedis::start().await else {
        return;
    };
    for user in ["", "default"] {
        let url = format!("rediss://{user}:{REDIS_PASSWORD}@127.0.0.1:{}", redis.port);
        let app = spawn_app_with(|s| redis.settings(s, &url)).await;
        let mut c = app.connect(7, Role::User, None).await;
        let id = app.send(7, "over TLS").await;
        assert_eq!(c.next_notification().await.id, id);
        app.stop().await;
    }

    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings(dir.path());
    redis.settings(
        &mut s,
        &format!("rediss://:wrong-password@127.0.0.1:{}", redis.port),
    );
    let err = match parkmate_server::Application::build(s).await {
        Ok(_) => panic!("started with a wrong Redis password"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("PARKMATE_REDIS_URL"), "{err}");
    assert!(
        !err.contains("wrong-password"),
        "the error repeats the password: {err}"
    );

    // Plain redis:// to a TLS port does not get through either.
    let mut s = test_settings(dir.path());
    s.redis.url = Some(
        RedisUrl::try_from(format!(
            "redis://:{REDIS_PASSWORD}@127.0.0.1:{}",
            redis.port
        ))
        .unwrap(),
    );
    assert!(
        tokio::time::timeout(WAIT, parkmate_server::Application::build(s))
            .await
            .map_or(true, |r| r.is_err())
    );
    redis.child.kill().await.unwrap();
}

#[tokio::test]
async fn production_allows_no_localhost_origin_by_default() {
    let app = spawn_app_with(production).await;
    let mut req = app.ws_url(7, None).into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", app.token(7, Role::User))).unwrap(),
    );
    req.headers_mut()
        .insert("origin", HeaderValue::from_static("http://localhost:5173"));
    let (status, _, body) = refusal(req).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
}

async fn get(addr: SocketAddr, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn metrics_are_not_public_in_production() {
    let app = spawn_app_with(production).await;
    let (status, body) = get(app.addr, None).await;
    assert_eq!(status, 404, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "not_found");

    const TOKEN: &str = "metrics-token-0123456789abcdef0123";
    let app = spawn_app_with(|s| {
        production(s);
        s.metrics.token = Some(TOKEN.into());
    })
    .await;
    // Something to count: a socket (the gauge of open sockets).
    let _socket = app.connect(7, Role::User, None).await;
    assert_eq!(get(app.addr, None).await.0, 401);
    assert_eq!(get(app.addr, Some("wrong")).await.0, 401);
    let (status, text) = get(app.addr, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(text.contains("parkmate_"), "{text}");

    let app = spawn_app_with(|s| {
        production(s);
        s.metrics.bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let _socket = app.connect(7, Role::User, None).await;
    assert_eq!(get(app.addr, None).await.0, 404);
    let (status, text) = get(app.metrics_addr.unwrap(), None).await;
    assert_eq!(status, 200);
    assert!(text.contains("parkmate_"), "{text}");
}
