//! The Pusher protocol (version 7), spoken to a peer server such as Sockudo so that the same
//! scenarios measure it beside us (issue 14, point 5). Only what a notification product needs:
//!
//! - a socket connects to `/app/{key}?protocol=7`, gets `pusher:connection_established` with its
//!   `socket_id`, then subscribes to its user's private channel `private-user-{id}` (signed with
//!   the app secret, as an app's auth endpoint would) and to the public channel `broadcast`;
//! - a backend publishes with `POST /apps/{app_id}/events`, signed per the HTTP API
//!   (`auth_signature` = HMAC-SHA256 of method, path and sorted query, `body_md5`).
//!
//! Pusher assigns no ids and keeps nothing: an event published while a socket is away is gone.
//! The publisher stamps its own sequence number (`data.id`) and send time (`data.t`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::process::Child;

use crate::server;

/// The public channel every bench socket joins, for broadcasts.
pub const BROADCAST_CHANNEL: &str = "broadcast";
/// The event name the publisher uses.
pub const EVENT: &str = "bench";

/// The credentials of one Pusher app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PusherApp {
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

fn hmac_hex(secret: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl PusherApp {
    /// The private channel of one user.
    pub fn user_channel(user_id: i64) -> String {
        format!("private-user-{user_id}")
    }

    /// `auth` of a `pusher:subscribe` to a private channel: what an app's auth endpoint answers.
    pub fn channel_auth(&self, socket_id: &str, channel: &str) -> String {
        let sig = hmac_hex(&self.secret, &format!("{socket_id}:{channel}"));
        format!("{}:{sig}", self.key)
    }

    /// The socket's path and query.
    pub fn socket_path(&self) -> String {
        format!(
            "/app/{}?protocol=7&client=parkmate-bench&version=1",
            self.key
        )
    }

    /// Path and signed query of `POST /apps/{app_id}/events` carrying `body`, at `timestamp`
    /// (seconds since the Unix epoch).
    pub fn signed_events_path(&self, body: &[u8], timestamp: u64) -> String {
        let path = format!("/apps/{}/events", self.app_id);
        let body_md5 = hex::encode(Md5::digest(body));
        // Already in the sorted order the signature requires.
        let query = format!(
            "auth_key={}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={body_md5}",
            self.key
        );
        let sig = hmac_hex(&self.secret, &format!("POST\n{path}\n{query}"));
        format!("{path}?{query}&auth_signature={sig}")
    }
}

/// A frame of the Pusher protocol: `data` is usually a JSON document inside a string.
#[derive(Deserialize)]
pub struct Frame<'a> {
    #[serde(borrow)]
    pub event: &'a str,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

/// The `data` of an event as its JSON document, whether sent as a string or inline.
pub fn data_document(data: Option<serde_json::Value>) -> Option<serde_json::Value> {
    match data? {
        serde_json::Value::String(s) => serde_json::from_str(&s).ok(),
        v => Some(v),
    }
}

/// The settings Sockudo (5.x) reads from its environment for a run: one app, in-process drivers
/// (no Redis), its per-app and per-address limits lifted as ours are (`server::BENCH_LIMITS`),
/// no metrics listener (it would take a fixed port).
fn sockudo_env(app: &PusherApp, addr: SocketAddr) -> Vec<(&'static str, String)> {
    let s = |v: &str| v.to_owned();
    vec![
        ("HOST", addr.ip().to_string()),
        ("PORT", addr.port().to_string()),
        ("ENVIRONMENT", s("production")),
        ("DEBUG_MODE", s("false")),
        ("LOG_LEVEL", s("warn")),
        ("ADAPTER_DRIVER", s("local")),
        ("CACHE_DRIVER", s("memory")),
        ("QUEUE_DRIVER", s("memory")),
        ("APP_MANAGER_DRIVER", s("memory")),
        ("RATE_LIMITER_DRIVER", s("memory")),
        ("RATE_LIMITER_ENABLED", s("false")),
        ("METRICS_ENABLED", s("false")),
        ("SOCKUDO_DEFAULT_APP_ID", app.app_id.clone()),
        ("SOCKUDO_DEFAULT_APP_KEY", app.key.clone()),
        ("SOCKUDO_DEFAULT_APP_SECRET", app.secret.clone()),
        ("SOCKUDO_DEFAULT_APP_ENABLED", s("true")),
        ("SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS", s("100000")),
        (
            "SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND",
            s("1000000"),
        ),
        (
            "SOCKUDO_DEFAULT_APP_MAX_READ_REQUESTS_PER_SECOND",
            s("1000000"),
        ),
        ("SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES", s("false")),
    ]
}

/// A Sockudo child on a free loopback port; killed on drop.
pub struct SpawnedPeer {
    pub addr: SocketAddr,
    pub child: Child,
    pub pid: u32,
    _dir: tempfile::TempDir,
}

impl SpawnedPeer {
    /// Starts `exe` (Sockudo) for `app`, and waits until `GET /up/{app_id}` answers 200.
    pub async fn start(
        exe: &Path,
        app: &PusherApp,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<SpawnedPeer> {
        // Its working directory: Sockudo looks for a config.json and a .env there.
        let dir = tempfile::tempdir()?;
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.current_dir(dir.path()).env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        for (k, v) in sockudo_env(app, addr) {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let (mut child, pid) = server::spawn_quiet(&mut cmd, exe)?;
        let http = reqwest::Client::new();
        let up = format!("http://{addr}/up/{}", app.app_id);
        server::wait_until_up(&mut child, "the peer", Duration::from_secs(15), || async {
            http.get(&up)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await?;
        Ok(SpawnedPeer {
            addr,
            child,
            pid,
            _dir: dir,
        })
    }

    pub async fn stop(mut self) {
        server::stop_child(&mut self.child).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs_app() -> PusherApp {
        PusherApp {
            app_id: "3".into(),
            key: "278d425bdf160c739803".into(),
            secret: "7ad3773142a6692b25b8".into(),
        }
    }

    /// The worked example of Pusher's channel authentication documentation.
    #[test]
    fn private_channel_auth_matches_the_protocol_documentation() {
        assert_eq!(
            docs_app().channel_auth("1234.1234", "private-foobar"),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    /// The worked example of Pusher's HTTP API authentication documentation.
    #[test]
    fn events_request_signature_matches_the_http_api_documentation() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let path = docs_app().signed_events_path(body, 1353088179);
        assert_eq!(
            path,
            "/apps/3/events?auth_key=278d425bdf160c739803&auth_timestamp=1353088179\
             &auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn event_data_is_read_from_a_string_or_inline() {
        let s = serde_json::json!("{\"t\":5,\"id\":2}");
        assert_eq!(data_document(Some(s)).unwrap()["id"], 2);
        let inline = serde_json::json!({"socket_id": "1.2"});
        assert_eq!(data_document(Some(inline)).unwrap()["socket_id"], "1.2");
        assert!(data_document(None).is_none());
    }
}
