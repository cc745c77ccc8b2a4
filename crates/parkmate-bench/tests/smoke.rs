//! Smoke runs of every scenario with tiny numbers against the real server, started in-process on
//! `127.0.0.1:0` with its own SQLite file (as the server's own test harness does). Counts and zero
//! loss only: no timing assertions, they would flake on a shared 2-core machine.

use std::time::Duration;

use parkmate_bench::fleet::Fleet;
use parkmate_bench::scenario::{Bench, RunResult, Setup};
use parkmate_server::config::DatabaseUrl;
use parkmate_server::{Application, Settings};
use tokio::sync::oneshot;

const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret";
const API_KEY: &str = "bench-api-key";

struct Server {
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn spawn_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: Some(JWT_SECRET.into()),
        api_key: Some(API_KEY.into()),
        data_dir: dir.path().to_owned(),
        web_dir: dir.path().join("no-web"),
        ..Settings::default()
    };
    settings.database.url = DatabaseUrl::try_from(format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .unwrap();
    settings.booking.demo_data = Some(false);
    let app = Application::build(settings).await.unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop,
        handle,
        _dir: dir,
    }
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.handle).await;
    }
}

fn setup(targets: Vec<std::net::SocketAddr>, sockets: usize) -> Setup {
    Setup {
        targets,
        // Two source addresses, as the real runs use, to keep that path exercised.
        sources: Setup::default_sources(sockets, sockets.div_ceil(2)),
        jwt_secret: JWT_SECRET.into(),
        api_key: API_KEY.into(),
        server_pids: vec![std::process::id()],
        sockets,
        first_user: 500,
        connect_concurrency: 16,
        read_buffer_bytes: 4096,
        publishers: 4,
        drain: Duration::from_secs(20),
        until: tokio::time::Instant::now() + Duration::from_secs(60),
        pusher: None,
    }
}

fn get(r: &RunResult, name: &str) -> f64 {
    r.get(name)
        .unwrap_or_else(|| panic!("metric {name} missing in {r:?}"))
}

async fn bench(targets: Vec<std::net::SocketAddr>, sockets: usize) -> Bench {
    Bench::start(setup(targets, sockets), Fleet::local(2))
        .await
        .expect("sockets open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_counts_every_socket() {
    let server = spawn_server().await;
    let mut b = bench(vec![server.addr], 20).await;
    let r = b.idle(Duration::ZERO).await.unwrap();
    assert_eq!(get(&r, "sockets"), 20.0);
    assert_eq!(get(&r, "failed"), 0.0);
    assert!(r.get("server_bytes_per_socket").is_some());
    b.finish().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicast_loses_nothing() {
    let server = spawn_server().await;
    let mut b = bench(vec![server.addr], 20).await;
    let r = b.unicast(50, 500.0).await.unwrap();
    assert_eq!(get(&r, "published"), 50.0, "{r:?}");
    assert_eq!(get(&r, "received"), 50.0, "{r:?}");
    assert_eq!(get(&r, "lost"), 0.0);
    assert_eq!(get(&r, "duplicates"), 0.0);
    assert!(r.get("p99_ms").is_some());
    b.finish().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_every_socket() {
    let server = spawn_server().await;
    let mut b = bench(vec![server.addr], 20).await;
    let r = b.broadcast().await.unwrap();
    assert_eq!(get(&r, "delivered"), 20.0, "{r:?}");
    assert_eq!(get(&r, "lost"), 0.0);
    assert!(r.get("last_ms").is_some());
    // `--repeat`: three more on the same sockets; losses are summed, not outvoted.
    let r = b.broadcasts(3).await.unwrap();
    assert_eq!(get(&r, "delivered"), 20.0, "{r:?}");
    assert_eq!(get(&r, "lost"), 0.0);
    assert_eq!(get(&r, "duplicates"), 0.0);
    b.finish().await;
    server.stop().await;
}

/// With worker processes (as real runs use), a broadcast reports the generator's CPU beside the
/// server's: both share the cores, and the table sets them side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_report_the_generators_cpu() {
    let server = spawn_server().await;
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_parkmate-bench"));
    let fleet = Fleet::processes(1, exe).expect("a worker process starts");
    let mut b = Bench::start(setup(vec![server.addr], 10), fleet)
        .await
        .expect("sockets open");
    let r = b.broadcast().await.unwrap();
    assert_eq!(get(&r, "delivered"), 10.0, "{r:?}");
    assert!(get(&r, "server_cpu_us_per_delivery") > 0.0, "{r:?}");
    assert!(get(&r, "generator_cpu_us_per_delivery") > 0.0, "{r:?}");
    b.finish().await;
    server.stop().await;
}

/// The floor scenario with its real peer process: every round's bytes reach every socket.
#[test]
fn floor_writes_reach_every_socket() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_parkmate-bench"));
    for read in [false, true] {
        let spec = parkmate_bench::floor::FloorSpec {
            sockets: 40,
            threads: 2,
            read,
            rounds: 3,
            payload: 300,
            round_timeout: Duration::from_secs(20),
        };
        let r = parkmate_bench::floor::run(exe, &spec).unwrap();
        assert_eq!(get(&r, "sockets"), 40.0, "{r:?}");
        assert!(get(&r, "write_all_ms") > 0.0);
        // The peer only answers a reading round once all 40 × 300 bytes arrived.
        assert_eq!(r.get("last_read_ms").is_some(), read, "{r:?}");
        // Each side's CPU, as the broadcast reports the server's and the generator's.
        assert!(get(&r, "writer_cpu_us_per_delivery") > 0.0, "{r:?}");
        assert_eq!(r.get("reader_cpu_us_per_delivery").is_some(), read, "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_catches_up_without_loss() {
    let server = spawn_server().await;
    let mut b = bench(vec![server.addr], 20).await;
    let r = b.reconnect(50).await.unwrap();
    assert_eq!(get(&r, "back"), 20.0, "{r:?}");
    assert_eq!(get(&r, "missed_published"), 50.0);
    assert!(get(&r, "server_cpu_us_per_socket") > 0.0, "{r:?}");
    assert_eq!(get(&r, "received"), 50.0, "{r:?}");
    assert_eq!(get(&r, "lost"), 0.0);
    assert_eq!(get(&r, "duplicates"), 0.0);
    b.finish().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_stores_what_it_publishes() {
    let server = spawn_server().await;
    let mut b = bench(vec![server.addr], 0).await;
    let r = b.throughput(50, Duration::from_secs(30)).await.unwrap();
    assert_eq!(get(&r, "published"), 50.0, "{r:?}");
    assert_eq!(get(&r, "publish_failed"), 0.0);
    b.finish().await;
    server.stop().await;
}

/// Two independent nodes (no shared broker yet): the multi-target plumbing spreads sockets and
/// publishes over both, and each node's own broadcast reaches its own sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_plumbing_spreads_over_targets() {
    let (a, c) = (spawn_server().await, spawn_server().await);
    let mut b = bench(vec![a.addr, c.addr], 20).await;
    assert_eq!(b.connected.ok, 20);
    b.setup.drain = Duration::from_secs(3);
    let r = b.broadcast().await.unwrap();
    // Without a cross-node broker only the publishing node's half hears it; with one, all 20.
    let delivered = get(&r, "delivered");
    assert!(delivered == 10.0 || delivered == 20.0, "{r:?}");
    b.finish().await;
    a.stop().await;
    c.stop().await;
}

/// Sockudo, the Pusher-protocol peer of issue 14: `scripts/install-sockudo` puts it here (or
/// `PARKMATE_BENCH_SOCKUDO` names another build).
fn sockudo() -> Option<std::path::PathBuf> {
    let path = match std::env::var_os("PARKMATE_BENCH_SOCKUDO") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?)
            .join(".cache/parkmate/sockudo/bin/sockudo"),
    };
    path.is_file().then_some(path)
}

/// The Pusher mode against a real Sockudo: every socket subscribes to its private channel and
/// `broadcast`, unicasts and a broadcast arrive once each, and a reconnect shows what the peer
/// keeps for a socket that was away (nothing: it has no replay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_mode_drives_a_real_sockudo() {
    let Some(exe) = sockudo() else {
        eprintln!(
            "SKIPPED pusher_mode_drives_a_real_sockudo: no Sockudo binary \
             (run scripts/install-sockudo, or set PARKMATE_BENCH_SOCKUDO)"
        );
        return;
    };
    let app = parkmate_bench::pusher::PusherApp {
        app_id: "smoke".into(),
        key: "smoke-key".into(),
        secret: "smoke-secret-smoke-secret".into(),
    };
    let peer = parkmate_bench::pusher::SpawnedPeer::start(&exe, &app, &[])
        .await
        .expect("sockudo starts");
    let mut s = setup(vec![peer.addr], 20);
    s.pusher = Some(app);
    s.server_pids = vec![peer.pid];
    let mut b = Bench::start(s, Fleet::local(2))
        .await
        .expect("sockets open");
    assert_eq!(b.connected.ok, 20, "{:?}", b.connected.errors);

    let r = b.idle(Duration::ZERO).await.unwrap();
    assert_eq!(get(&r, "sockets"), 20.0);
    let r = b.unicast(50, 500.0).await.unwrap();
    assert_eq!(get(&r, "published"), 50.0, "{r:?}");
    assert_eq!(get(&r, "received"), 50.0, "{r:?}");
    assert_eq!(get(&r, "duplicates"), 0.0);
    let r = b.broadcasts(2).await.unwrap();
    assert_eq!(get(&r, "delivered"), 20.0, "{r:?}");
    assert_eq!(get(&r, "lost"), 0.0);
    assert!(r.get("server_cpu_us_per_delivery").is_some(), "{r:?}");

    let r = b.reconnect(10).await.unwrap();
    assert_eq!(get(&r, "back"), 20.0, "{r:?}");
    assert_eq!(get(&r, "missed_published"), 10.0);
    // Pusher keeps nothing for a socket that was away.
    assert_eq!(get(&r, "received"), 0.0, "{r:?}");
    assert_eq!(get(&r, "lost"), 10.0);
    b.finish().await;
    peer.stop().await;
}
