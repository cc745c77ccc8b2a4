//! Debian's nginx as the load balancer in front of test nodes: its own process, configuration,
//! logs and temp directories in a temporary directory, terminating TLS with a throw-away
//! certificate on a loopback port. Killed when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::WAIT;
use super::tls::TestCert;

/// The nginx binary, or `None` after the missing-service rule (a failure under `CI=true`, a loud
/// skip elsewhere). `scripts/test-all` installs Debian's `nginx-light` when it is missing.
pub fn nginx_or_skip() -> Option<PathBuf> {
    // /usr/sbin is not on every user's PATH.
    for candidate in ["nginx", "/usr/sbin/nginx"] {
        if Command::new(candidate)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(candidate.into());
        }
    }
    parkmate_db::test_support::service_missing(
        "nginx",
        "PATH or /usr/sbin/nginx",
        &"not installed (apt-get install nginx-light)",
    );
    None
}

/// The configuration `docs/deployment.md` documents, with every path inside `dir` so it runs as
/// any user and touches nothing of the system's nginx.
pub fn config(dir: &Path, listen: SocketAddr, upstreams: &[SocketAddr], cert: &TestCert) -> String {
    let d = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|a| format!("        server {a} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    format!(
        r#"# One foreground process: the test owns it and kills it.
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    # `Connection: upgrade` only for requests asking to upgrade; plain requests get `close`.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    # max_fails/fail_timeout: a node that refuses (stopped) or answers 503 (draining) is skipped
    # for 2 s, then tried again; short, so a restarted node is back in turn soon after.
    upstream parkmate {{
{servers}    }}

    server {{
        listen {listen} ssl;
        ssl_certificate     {cert};
        ssl_certificate_key {key};
        ssl_protocols       TLSv1.2 TLSv1.3;

        # WebSockets need HTTP/1.1 to the node and the hop-by-hop upgrade headers passed on.
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        # With the port: the node's same-origin check compares it with the browser's Origin.
        proxy_set_header Host $http_host;
        # Who the client is, for the per-address limits (nodes trust it from nginx only).
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        # A socket is idle between frames; nodes ping every 20 s (ws.heartbeat_interval), so a
        # read timeout above that never cuts a healthy socket.
        proxy_read_timeout 60s;
        proxy_send_timeout 60s;
        proxy_connect_timeout 2s;
        # At most one try per node, and never for long.
        proxy_next_upstream_tries 3;
        proxy_next_upstream_timeout 10s;
        # nginx's own failures answer the API's error shape.
        error_page 502 /_parkmate/502.json;
        error_page 504 /_parkmate/504.json;

        location / {{
            proxy_pass http://parkmate;
            # A stopped node refuses, a draining one answers 503 to new sockets: pass the
            # request to the next node (GET and other idempotent requests only, by default).
            proxy_next_upstream error timeout http_503;
        }}

        # Publishes carry an Idempotency-Key, so passing one on is safe even after a node took
        # it: the store keeps one row per key.
        location = /api/notifications {{
            proxy_pass http://parkmate;
            proxy_next_upstream error timeout http_503 non_idempotent;
        }}

        # Metrics are for the monitoring network (PARKMATE_METRICS_BIND), never the internet.
        location = /metrics {{
            default_type application/json;
            return 404 '{{"code":"not_found","message":"not served here"}}';
        }}

        location = /_parkmate/502.json {{
            internal;
            default_type application/json;
            add_header Retry-After 1 always;
            return 502 '{{"code":"bad_gateway","message":"no node could answer, retry"}}';
        }}
        location = /_parkmate/504.json {{
            internal;
            default_type application/json;
            add_header Retry-After 1 always;
            return 504 '{{"code":"gateway_timeout","message":"no node answered in time, retry"}}';
        }}
    }}
}}
"#,
        cert = cert.cert_path.display(),
        key = cert.key_path.display(),
    )
}

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx in front of `upstreams` and returns once it accepts connections.
    pub async fn start(binary: &Path, upstreams: &[SocketAddr], cert: &TestCert) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        // nginx cannot be handed a bound socket: pick a free port, and pick again in the rare
        // case another process took it before nginx bound it.
        for _ in 0..5 {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap();
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config(dir.path(), addr, upstreams, cert)).unwrap();
            let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
            let mut child = Command::new(binary)
                // -e: errors before the configuration is read go here, not to /var/log/nginx.
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("nginx starts");
            // nginx has no readiness signal but accepting on its port, or exiting on an error.
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(dir.path().join("error.log"))
                        .unwrap_or_default()
                        + &std::fs::read_to_string(dir.path().join("stderr.log"))
                            .unwrap_or_default();
                    if log.contains("Address already in use") {
                        break;
                    }
                    panic!("nginx exited with {status}:\n{log}");
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    return Nginx { child, addr, dir };
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "nginx did not listen on {addr}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("no free port for nginx after 5 tries");
    }

    pub fn ws_url(&self, user_id: i64, since: Option<i64>) -> String {
        match since {
            Some(s) => format!("wss://{}/ws/notifications/{user_id}/?since={s}", self.addr),
            None => format!("wss://{}/ws/notifications/{user_id}/", self.addr),
        }
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
