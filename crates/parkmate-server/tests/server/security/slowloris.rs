//! Point 2: connections that never finish their request head (a slowloris), or sit idle after a
//! response, are closed after `http.header_read_timeout`; connections not yet upgraded are capped
//! (`http.max_connections`); and shutdown ends within `shutdown_grace` even while such peers
//! hold connections. Before, 300 half-sent heads were still open 35 s later and a graceful stop
//! waited for them.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{WAIT, spawn_app_with};

/// The half a request a slowloris sends, and then nothing.
const HALF_A_HEAD: &[u8] = b"GET /ws/notifications/7/ HTTP/1.1\r\nHost: x\r\n";
/// Connections per test: far beyond what a test needs to show the point, far below the 20,000
/// descriptors a process may hold here.
const SLOW_PEERS: usize = 300;

async fn slow_peers(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut peers = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(HALF_A_HEAD).await.unwrap();
        peers.push(s);
    }
    peers
}

/// Reads until the server ends the connection (whatever it says first, e.g. a 408); panics if it
/// is still open after `within`.
async fn closed_by_server(s: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the server closed the connection");
}

#[tokio::test]
async fn half_sent_heads_and_idle_keep_alive_connections_are_closed_at_the_deadline() {
    let app = spawn_app_with(|s| s.http.header_read_timeout = Duration::from_secs(1)).await;
    let mut peers = slow_peers(app.addr, SLOW_PEERS).await;

    // A keep-alive connection that made one request and then went quiet.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);

    for p in peers.iter_mut().chain([&mut idle]) {
        closed_by_server(p, WAIT).await;
    }
    // The node still serves.
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let app = spawn_app_with(|s| {
        s.http.max_connections = std::num::NonZeroUsize::new(5).unwrap();
        s.http.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut peers = slow_peers(app.addr, 5).await;
    let http = app.http.clone();
    let url = app.url("/healthz");
    let mut sixth = tokio::spawn(async move { http.get(url).send().await.unwrap().status() });
    // Five half-sent heads hold every place: the sixth is not served while they do.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut sixth)
            .await
            .is_err(),
        "a connection was served past http.max_connections"
    );
    // One leaves: its place goes to the sixth.
    drop(peers.pop());
    let status = tokio::time::timeout(WAIT, sixth).await.unwrap().unwrap();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn shutdown_ends_within_its_grace_while_slow_peers_hold_connections() {
    let app = spawn_app_with(|s| {
        // Longer than the whole test may take: only the shutdown deadline can end them.
        s.http.header_read_timeout = Duration::from_secs(120);
        s.shutdown_grace = Duration::from_secs(1);
    })
    .await;
    let mut peers = slow_peers(app.addr, SLOW_PEERS).await;
    // `stop` fails the test unless the server finishes within WAIT (10 s).
    app.stop().await;
    for p in &mut peers {
        closed_by_server(p, WAIT).await;
    }
}
