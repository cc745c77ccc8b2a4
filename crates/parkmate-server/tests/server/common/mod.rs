//! The test harness: the real application on `127.0.0.1:0` with its own temporary SQLite file,
//! spoken to over real sockets. Each test gets its own app; nothing is shared.
//!
//! Over 500 lines on purpose: the one TestApp every server test uses; its helpers are small and
//! splitting them would only add imports.
#![allow(dead_code)]

pub mod nginx;
pub mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parkmate_auth::TokenKeys;
use parkmate_protocol::{NotificationFrame, Role, ServerFrame};
use parkmate_server::Application;
use parkmate_server::config::{DatabaseUrl, RedisPrefix, RedisUrl, Settings};
use parkmate_server::state::AppState;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret!";
pub const API_KEY: &str = "test-api-key";
/// Every wait in a test is bounded by this; a test that hits it fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub addr: SocketAddr,
    /// `/metrics` on its own address, when `metrics.bind` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub keys: TokenKeys,
    pub http: reqwest::Client,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: Some(JWT_SECRET.into()),
        api_key: Some(API_KEY.into()),
        data_dir: dir.to_owned(),
        web_dir: dir.join("no-web"),
        // A stop closes every socket at once unless a test asks for the drain.
        shutdown_drain: Duration::ZERO,
        ..Settings::default()
    };
    s.database.url = sqlite_url(dir);
    s.booking.demo_data = Some(false);
    s
}

/// The test's own SQLite file in `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> DatabaseUrl {
    DatabaseUrl::try_from(format!("sqlite://{}", dir.join("parkmate.db").display())).unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = test_settings(dir.path());
    configure(&mut raw);
    start(raw, dir).await
}

pub async fn start(settings: Settings, dir: tempfile::TempDir) -> TestApp {
    let app = Application::build(settings).await.expect("app builds");
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        metrics_addr,
        keys: TokenKeys::new(JWT_SECRET.as_bytes()),
        http: reqwest::Client::new(),
        state,
        dir,
        stop: Some(stop),
        handle: Some(handle),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, user_id: i64, since: Option<i64>) -> String {
        match since {
            Some(s) => format!("ws://{}/ws/notifications/{user_id}/?since={s}", self.addr),
            None => format!("ws://{}/ws/notifications/{user_id}/", self.addr),
        }
    }

    pub fn token(&self, user_id: i64, role: Role) -> String {
        self.keys.mint(user_id, role, 3600)
    }

    /// Opens a socket as `user_id` with an `Authorization` header and reads the `hello`.
    pub async fn connect(&self, user_id: i64, role: Role, since: Option<i64>) -> Client {
        self.connect_hello(user_id, role, since).await.0
    }

    /// Like [`TestApp::connect`], and also returns the `hello` frame.
    pub async fn connect_hello(
        &self,
        user_id: i64,
        role: Role,
        since: Option<i64>,
    ) -> (Client, ServerFrame) {
        let mut req = self.ws_url(user_id, since).into_client_request().unwrap();
        let auth = format!("Bearer {}", self.token(user_id, role));
        req.headers_mut()
            .insert("authorization", HeaderValue::from_str(&auth).unwrap());
        let mut c = Client::open(req).await.expect("handshake succeeds");
        let hello = c.next_frame().await;
        match &hello {
            ServerFrame::Hello { user_id: u, .. } => assert_eq!(*u, user_id),
            other => panic!("expected hello, got {other:?}"),
        }
        (c, hello)
    }

    /// POSTs to the publish API with the API key.
    pub async fn publish(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/api/notifications"))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// One HTTP call (as `token`, when given); answers the status and the JSON body (`null` when
    /// there is none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// A demo account signed in (`who@parkmate.test`): (user id, role, token).
    pub async fn login(&self, who: &str, password: &str) -> (i64, Role, String) {
        let (status, body) = self
            .call(
                "POST",
                "/api/auth/login",
                None,
                Some(serde_json::json!({"email": format!("{who}@parkmate.test"), "password": password})),
            )
            .await;
        assert_eq!(status, 200, "{who}: {body}");
        (
            body["user"]["id"].as_i64().unwrap(),
            body["user"]["role"].as_str().unwrap().parse().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Moves this node's manual clock (every node has its own) through the test clock route; the
    /// answer comes after whatever fell due has been committed.
    pub async fn advance(&self, by: Duration) {
        let (status, body) = self
            .call(
                "POST",
                "/api/test/clock",
                Some(API_KEY),
                Some(serde_json::json!({"advance_seconds": by.as_secs()})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Every notification id `user_id` (as `role`) can see in the store, in order, page by page:
    /// what a lossless client must end up with.
    pub async fn stored_ids(&self, user_id: i64, role: Role) -> Vec<i64> {
        let viewer = parkmate_protocol::Viewer { user_id, role };
        let mut ids: Vec<i64> = Vec::new();
        loop {
            let after = ids.last().copied().unwrap_or(0);
            let budget = parkmate_db::PageBudget {
                rows: 500,
                bytes: 1 << 20,
            };
            let page = self
                .state
                .store
                .replay(viewer, after, budget)
                .await
                .unwrap();
            ids.extend(page.notifications.iter().map(|n| n.id));
            if !page.more {
                return ids;
            }
        }
    }

    /// Publishes one notification to one user and returns its id.
    pub async fn send(&self, user_id: i64, message: &str) -> i64 {
        let (status, body) = self
            .publish(serde_json::json!({"level":"info","message":message,"user_id":user_id}))
            .await;
        assert_eq!(status, 201, "{body}");
        body["ids"][0].as_i64().unwrap()
    }

    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_json(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The node's Prometheus text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits (bounded) until the node holds `n` sockets.
    pub async fn wait_for_connections(&self, n: usize) {
        tokio::time::timeout(WAIT, async {
            while self.state.hub.connection_count() != n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "expected {n} connections, have {}",
                self.state.hub.connection_count()
            )
        });
    }

    /// Tells the node to stop (its drain begins) without waiting for it; [`TestApp::stop`] waits.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Graceful stop; returns the data directory so a test can start again on the same database.
    pub async fn stop(mut self) -> (tempfile::TempDir, SocketAddr) {
        self.begin_stop();
        tokio::time::timeout(WAIT, self.handle.take().unwrap())
            .await
            .expect("shutdown finishes within the deadline")
            .unwrap()
            .unwrap();
        (self.dir, self.addr)
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn open(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Result<Client, WsError> {
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Client { ws })
    }

    /// The next server frame (text), skipping control frames; panics on close or after [`WAIT`].
    pub async fn next_frame(&mut self) -> ServerFrame {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(&t).expect("server frames parse");
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// The next notification, skipping unread counts and replay markers.
    pub async fn next_notification(&mut self) -> NotificationFrame {
        loop {
            match self.next_frame().await {
                ServerFrame::Notification(n) => return n,
                ServerFrame::UnreadCount { .. } | ServerFrame::Replayed { .. } => continue,
                other => panic!("expected a notification, got {other:?}"),
            }
        }
    }

    /// The next unread count, skipping notifications.
    pub async fn next_unread_count(&mut self) -> i64 {
        loop {
            match self.next_frame().await {
                ServerFrame::UnreadCount { count } => return count,
                ServerFrame::Notification(_) | ServerFrame::Replayed { .. } => continue,
                other => panic!("expected an unread count, got {other:?}"),
            }
        }
    }

    /// Reads until the server closes; returns the close code (None for a close without a frame).
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a close within the wait");
            match msg {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                None => return None,
                Some(Err(e)) => {
                    eprintln!("socket ended without a close frame: {e}");
                    return None;
                }
            }
        }
    }

    /// Asserts nothing but control frames arrive for `quiet`.
    pub async fn assert_silent(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }
}

/// The Redis tests talk to; `PARKMATE_TEST_REDIS_URL` overrides it.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The Redis URL when Redis answers `PING`; otherwise `None` after the shared missing-service rule
/// (a failure under `CI=true`, a loud skip elsewhere).
pub async fn redis_or_skip() -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = std::env::var("PARKMATE_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.into());
    let addr = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let ping = async {
        let mut s = TcpStream::connect(&addr).await?;
        s.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await?;
        if &buf == b"+PONG\r\n" {
            Ok(())
        } else {
            Err(std::io::Error::other("unexpected answer to PING"))
        }
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(())) => Some(url),
        Ok(Err(e)) => {
            parkmate_db::test_support::service_missing("Redis", &url, &e);
            None
        }
        Err(_) => {
            parkmate_db::test_support::service_missing("Redis", &url, &"PING timed out");
            None
        }
    }
}

/// What the nodes of one test cluster share: a fresh PostgreSQL database and a Redis channel
/// prefix of their own, so parallel tests never hear each other.
pub struct Cluster {
    pub pg: parkmate_db::test_support::TestPostgres,
    pub redis_url: String,
    pub prefix: String,
}

impl Cluster {
    /// `None` (after a loud skip, or a failure under `CI=true`) when PostgreSQL or Redis is missing.
    pub async fn new() -> Option<Cluster> {
        Cluster::with_redis(redis_or_skip().await?).await
    }

    /// A cluster on the Redis at `redis_url` (a test's own server) and a fresh PostgreSQL database.
    pub async fn with_redis(redis_url: String) -> Option<Cluster> {
        let pg = parkmate_db::test_support::fresh_postgres().await?;
        let prefix = format!("parkmate-test-{:016x}", rand::random::<u64>());
        Some(Cluster {
            pg,
            redis_url,
            prefix,
        })
    }

    /// Starts one more node of this cluster on `127.0.0.1:0`.
    pub async fn spawn_node(&self) -> TestApp {
        self.spawn_node_with(|_| {}).await
    }

    /// Starts one more node with settings of its own on top of the cluster's.
    pub async fn spawn_node_with(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        self.spawn_node_at_with("127.0.0.1:0".parse().unwrap(), configure)
            .await
    }

    /// Starts a node of this cluster on `addr`: a restart on the port a stopped node had (the
    /// listener sets SO_REUSEADDR, so connections of the old process in TIME_WAIT do not stop it).
    pub async fn spawn_node_at(&self, addr: SocketAddr) -> TestApp {
        self.spawn_node_at_with(addr, |_| {}).await
    }

    pub async fn spawn_node_at_with(
        &self,
        addr: SocketAddr,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let url = self.pg.url.clone();
        let redis = self.redis_url.clone();
        let prefix = self.prefix.clone();
        spawn_app_with(move |raw| {
            raw.bind = addr;
            raw.database.url = DatabaseUrl::try_from(url).unwrap();
            raw.redis.url = Some(RedisUrl::try_from(redis).unwrap());
            raw.redis.prefix = RedisPrefix::try_from(prefix).unwrap();
            configure(raw);
        })
        .await
    }
}

impl Client {
    /// Reads notifications until one with id `last` arrives; returns every id read, asserting the
    /// ids strictly increase (no duplicate, no reordering).
    pub async fn ids_through(&mut self, last: i64) -> Vec<i64> {
        let mut ids: Vec<i64> = Vec::new();
        while ids.last().is_none_or(|&id| id < last) {
            let n = self.next_notification().await;
            if let Some(&prev) = ids.last() {
                assert!(n.id > prev, "id {} arrived after {prev}", n.id);
            }
            ids.push(n.id);
        }
        ids
    }
}

impl Client {
    /// Asserts no notification arrives for `quiet` (unread counts may: they trail every batch).
    pub async fn assert_no_notification(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let frame: ServerFrame = serde_json::from_str(&t).expect("server frames parse");
                    assert!(
                        !matches!(frame, ServerFrame::Notification(_)),
                        "expected no notification, got {frame:?}"
                    );
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("expected an open socket, got {other:?}"),
            }
        }
    }
}
