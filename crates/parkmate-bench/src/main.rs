//! `parkmate-bench`: parses the command line and runs a scenario; see `BENCHMARKS.md`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use parkmate_bench::fleet::{Fleet, MAX_SOCKETS_PER_WORKER};
use parkmate_bench::pusher::{PusherApp, SpawnedPeer};
use parkmate_bench::scenario::{Bench, RunResult, Setup, in_run, medians, table};
use parkmate_bench::server::SpawnedServer;

#[derive(Parser)]
#[command(
    name = "parkmate-bench",
    about = "Load generator for Parkmate Notify (loopback only)"
)]
struct Cli {
    /// Server to drive (repeat for a cluster). Loopback addresses only.
    #[arg(long = "target", global = true, default_value = "127.0.0.1:8000")]
    targets: Vec<SocketAddr>,
    /// Start `<path> serve` on a free port and a temporary SQLite database for each run (fresh
    /// state per run); its pid is used for RSS. Overrides --target.
    #[arg(long, global = true)]
    spawn_server: Option<PathBuf>,
    /// Extra setting for the spawned server, e.g. PARKMATE_WS_QUEUE_CAPACITY=64 (repeatable).
    #[arg(long = "server-env", global = true, value_parser = parse_kv)]
    server_env: Vec<(String, String)>,
    /// Pid of a running server whose RSS to read (repeatable).
    #[arg(long = "server-pid", global = true)]
    server_pids: Vec<u32>,
    /// HS256 secret the server verifies tokens with (random when --spawn-server and not given).
    #[arg(
        long,
        global = true,
        env = "PARKMATE_JWT_SECRET",
        hide_env_values = true
    )]
    jwt_secret: Option<String>,
    /// API key for POST /api/notifications (random when --spawn-server and not given).
    #[arg(long, global = true, env = "PARKMATE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Sockets to open (one user each).
    #[arg(long, global = true, default_value_t = 1000)]
    sockets: usize,
    /// First user id; sockets use first_user .. first_user + sockets.
    #[arg(long, global = true, default_value_t = 1_000_000)]
    first_user: i64,
    /// Worker processes (default: one per 18,000 sockets, the most one holds). One reader thread
    /// per worker: fewer threads than cores beside the server's own (BENCHMARKS.md, sixth round).
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// Source address to bind (repeatable; default: 127.0.0.2, .3, … one per --per-source sockets).
    #[arg(long = "source", global = true)]
    sources: Vec<IpAddr>,
    /// Sockets per default source address (one address has ~28k ephemeral ports).
    #[arg(long, global = true, default_value_t = 8000)]
    per_source: usize,
    /// Do not bind source addresses: let connect() pick 127.0.0.1 and a port. Kept to reproduce
    /// earlier rounds: past ~14k sockets per target connect()'s port search becomes the
    /// generator's bottleneck (BENCHMARKS.md, third round); the default binding avoids it.
    #[arg(long, global = true)]
    no_bind: bool,
    /// Handshakes in flight, over all the workers.
    #[arg(long, global = true, default_value_t = 512)]
    connect_concurrency: usize,
    /// Each worker's read buffer, bytes: one for all its sockets (what a socket holds on its
    /// own is only the start of a frame cut in two).
    #[arg(long, global = true, default_value_t = 65536)]
    read_buffer: usize,
    /// Concurrent HTTP publishers.
    #[arg(long, global = true, default_value_t = 32)]
    publishers: usize,
    /// After publishing, wait this long for deliveries before counting the rest lost.
    #[arg(long, global = true, default_value_t = 10)]
    drain_secs: u64,
    /// Hard deadline for each run, seconds.
    #[arg(long, global = true, default_value_t = 60)]
    timeout_secs: u64,
    /// Repetitions; the table shows each and the median.
    #[arg(long, global = true, default_value_t = 1)]
    runs: usize,
    /// The protocol of the server under test: ours, or Pusher's (a peer such as Sockudo; with
    /// --spawn-server, the path is the peer's binary).
    #[arg(long, global = true, value_enum, default_value_t = Protocol::Parkmate)]
    protocol: Protocol,
    /// Pusher app id (the peer's configured app; with --spawn-server, the one it is started with).
    #[arg(long, global = true, default_value = "parkmate-bench")]
    pusher_app_id: String,
    /// Pusher app key.
    #[arg(long, global = true, default_value = "parkmate-bench-key")]
    pusher_key: String,
    /// Pusher app secret (random when --spawn-server and not given).
    #[arg(long, global = true, env = "PUSHER_APP_SECRET", hide_env_values = true)]
    pusher_secret: Option<String>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Parkmate,
    Pusher,
}

/// The server a run started: ours, or a Pusher peer.
enum Spawned {
    Ours(SpawnedServer),
    Peer(SpawnedPeer),
}

impl Spawned {
    async fn start(cli: &Cli, exe: &Path, secrets: &Secrets) -> anyhow::Result<Spawned> {
        Ok(match &secrets.pusher {
            Some(app) => Spawned::Peer(SpawnedPeer::start(exe, app, &cli.server_env).await?),
            None => Spawned::Ours(
                SpawnedServer::start(exe, &secrets.jwt, &secrets.api_key, &cli.server_env).await?,
            ),
        })
    }

    fn addr_pid(&self) -> (SocketAddr, u32) {
        match self {
            Spawned::Ours(s) => (s.addr, s.pid),
            Spawned::Peer(p) => (p.addr, p.pid),
        }
    }

    async fn stop(self) {
        match self {
            Spawned::Ours(s) => s.stop().await,
            Spawned::Peer(p) => p.stop().await,
        }
    }
}

/// What the generator authenticates with: tokens and the API key for ours, an app for Pusher.
struct Secrets {
    jwt: String,
    api_key: String,
    pusher: Option<PusherApp>,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// Open the sockets and report the server's RSS growth per socket.
    Idle {
        /// Wait this long after the last handshake before reading RSS.
        #[arg(long, default_value_t = 2)]
        settle_secs: u64,
    },
    /// Notifications at a fixed rate to random connected users: latency and loss.
    Unicast {
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        /// Per second (0: as fast as possible).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
    },
    /// One broadcast: time until the last socket has it.
    Broadcast {
        /// Broadcasts per run on the same sockets, one after the other; the run reports the
        /// median of each number (more samples per connect, and a steady state to profile).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    },
    /// Drop every socket at once, publish `missed` while they are away, reconnect with `since`.
    Reconnect {
        #[arg(long, default_value_t = 1000)]
        missed: usize,
    },
    /// Closed-loop publishers: stored notifications per second.
    Throughput {
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
    },
    /// Broadcast then unicast with sockets spread over several --target nodes.
    Cluster {
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
    },
    /// The kernel's own cost of a broadcast here: raw writes of one message to --sockets
    /// loopback sockets, no server, no WebSocket (see BENCHMARKS.md, "the floor").
    Floor {
        /// Writer threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// The peer reads (competing for the cores) instead of only holding its sockets.
        #[arg(long)]
        read: bool,
        /// Rounds per run on the same sockets; each number is the median over them.
        #[arg(long, default_value_t = 10)]
        repeat: usize,
        /// Bytes per message (a notification frame plus its unread count is about 300).
        #[arg(long, default_value_t = 300)]
        payload: usize,
    },
    /// Internal: the floor scenario's other end.
    #[command(hide = true)]
    FloorPeer {
        #[arg(long)]
        payload: usize,
        #[arg(long)]
        read: bool,
        #[arg(long)]
        round_timeout_ms: u64,
    },
    /// Internal: a worker process speaking JSON lines on stdin/stdout.
    #[command(hide = true)]
    Worker,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

fn random_secret() -> String {
    (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn name(s: &Scenario) -> &'static str {
    match s {
        Scenario::Idle { .. } => "idle",
        Scenario::Unicast { .. } => "unicast",
        Scenario::Broadcast { .. } => "broadcast",
        Scenario::Reconnect { .. } => "reconnect",
        Scenario::Throughput { .. } => "throughput",
        Scenario::Cluster { .. } => "cluster",
        Scenario::Floor { .. } => "floor",
        Scenario::FloorPeer { .. } => "floor-peer",
        Scenario::Worker => "worker",
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Scenario::FloorPeer {
        payload,
        read,
        round_timeout_ms,
    } = cli.scenario
    {
        let run = || {
            let target = *cli.targets.first().context("no --target")?;
            parkmate_bench::floor::peer_stdio(
                target,
                cli.sockets,
                payload,
                read,
                Duration::from_millis(round_timeout_ms),
            )
        };
        return match run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("floor-peer: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if matches!(cli.scenario, Scenario::Worker) {
        return match parkmate_bench::worker::run_stdio() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("worker: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.runs == 0 || cli.runs > 20 {
        bail!("--runs must be 1..=20");
    }
    parkmate_bench::check_loopback_all(&cli.targets, &cli.sources)?;
    if let Scenario::Floor {
        threads,
        read,
        repeat,
        payload,
    } = cli.scenario
    {
        let spec = parkmate_bench::floor::FloorSpec {
            sockets: cli.sockets,
            threads,
            read,
            rounds: repeat,
            payload,
            round_timeout: Duration::from_secs(cli.timeout_secs),
        };
        let exe = std::env::current_exe().context("cannot find my own executable")?;
        let mut runs = Vec::with_capacity(cli.runs);
        for i in 0..cli.runs {
            let (exe, spec) = (exe.clone(), spec.clone());
            let r = tokio::task::spawn_blocking(move || parkmate_bench::floor::run(&exe, &spec))
                .await?;
            runs.push(in_run(r, i)?);
            eprintln!("run {} done", i + 1);
        }
        report("floor", cli.sockets, 1, 1, &runs);
        return Ok(());
    }
    let secrets = secrets(&cli)?;
    let workers = cli
        .workers
        .unwrap_or(cli.sockets.div_ceil(MAX_SOCKETS_PER_WORKER))
        .max(1);
    if cli.sockets > workers * MAX_SOCKETS_PER_WORKER {
        bail!(
            "{} sockets need --workers {} or more",
            cli.sockets,
            cli.sockets.div_ceil(MAX_SOCKETS_PER_WORKER)
        );
    }
    let sources = if cli.no_bind {
        Vec::new()
    } else if !cli.sources.is_empty() {
        cli.sources.clone()
    } else if cli.targets.iter().all(|t| t.is_ipv4()) {
        Setup::default_sources(cli.sockets, cli.per_source)
    } else {
        Vec::new() // ::1 has a single address: let the kernel choose
    };
    let exe = std::env::current_exe().context("cannot find my own executable to start workers")?;
    let scenario = name(&cli.scenario);
    let hard_stop = Duration::from_secs(cli.timeout_secs + 15);

    let mut runs: Vec<RunResult> = Vec::new();
    for i in 0..cli.runs {
        let server = match &cli.spawn_server {
            Some(path) => Some(Spawned::start(&cli, path, &secrets).await?),
            None => None,
        };
        let mut server_pids = cli.server_pids.clone();
        let mut targets = cli.targets.clone();
        if let Some(s) = &server {
            let (addr, pid) = s.addr_pid();
            server_pids = vec![pid];
            targets = vec![addr];
        }
        let setup = Setup {
            targets,
            sources: sources.clone(),
            jwt_secret: secrets.jwt.clone(),
            api_key: secrets.api_key.clone(),
            pusher: secrets.pusher.clone(),
            server_pids,
            sockets: if matches!(cli.scenario, Scenario::Throughput { .. }) && !cli.sockets_given()
            {
                0
            } else {
                cli.sockets
            },
            first_user: cli.first_user,
            connect_concurrency: cli.connect_concurrency,
            read_buffer_bytes: cli.read_buffer,
            publishers: cli.publishers,
            drain: Duration::from_secs(cli.drain_secs),
            until: tokio::time::Instant::now() + Duration::from_secs(cli.timeout_secs),
        };
        let fleet = Fleet::processes(workers, &exe)?;
        let work = one_run(setup, fleet, cli.scenario.clone());
        let result = match tokio::time::timeout(hard_stop, work).await {
            Ok(r) => in_run(r, i)?,
            Err(_) => bail!("run {} passed the hard deadline of {hard_stop:?}", i + 1),
        };
        if let Some(s) = server {
            s.stop().await;
        }
        eprintln!("run {} done", i + 1);
        runs.push(result);
        if i + 1 < cli.runs {
            // Let the kernel retire the last run's sockets before the next storm.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    report(scenario, cli.sockets, workers, sources.len().max(1), &runs);
    Ok(())
}

/// Secrets to drive the server with: given, or random for a server we start.
fn secrets(cli: &Cli) -> anyhow::Result<Secrets> {
    let spawn = cli.spawn_server.is_some();
    let given_or_random = |given: &Option<String>, what: &str| match (given, spawn) {
        (Some(s), _) => Ok(s.clone()),
        (None, true) => Ok(random_secret()),
        (None, false) => Err(anyhow::anyhow!(
            "{what} is required to drive a running server"
        )),
    };
    if cli.protocol == Protocol::Pusher {
        if matches!(
            cli.scenario,
            Scenario::Throughput { .. } | Scenario::Cluster { .. }
        ) {
            bail!("--protocol pusher runs idle, unicast, broadcast and reconnect");
        }
        let app = PusherApp {
            app_id: cli.pusher_app_id.clone(),
            key: cli.pusher_key.clone(),
            secret: given_or_random(&cli.pusher_secret, "--pusher-secret (or PUSHER_APP_SECRET)")?,
        };
        return Ok(Secrets {
            jwt: String::new(),
            api_key: String::new(),
            pusher: Some(app),
        });
    }
    Ok(Secrets {
        jwt: given_or_random(&cli.jwt_secret, "--jwt-secret (or PARKMATE_JWT_SECRET)")?,
        api_key: given_or_random(&cli.api_key, "--api-key (or PARKMATE_API_KEY)")?,
        pusher: None,
    })
}

/// The human table, then one JSON line with every run and the medians.
fn report(scenario: &str, sockets: usize, workers: usize, sources: usize, runs: &[RunResult]) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "parkmate-bench {scenario}: {sockets} sockets, {workers} worker(s), {sources} source address(es), {cores} cores",
    );
    print!("{}", table(runs));
    let as_map = |r: &RunResult| {
        serde_json::Value::Object(
            r.metrics
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect(),
        )
    };
    let summary = serde_json::json!({
        "scenario": scenario,
        "sockets": sockets,
        "workers": workers,
        "cores": cores,
        "runs": runs.iter().map(as_map).collect::<Vec<_>>(),
        "median": as_map(&medians(runs)),
        "notes": runs.iter().flat_map(|r| r.notes.clone()).collect::<Vec<_>>(),
    });
    println!("{summary}");
}

impl Cli {
    /// Whether --sockets was given explicitly (throughput defaults to no sockets at all).
    fn sockets_given(&self) -> bool {
        std::env::args().any(|a| a == "--sockets" || a.starts_with("--sockets="))
    }
}

async fn one_run(setup: Setup, fleet: Fleet, scenario: Scenario) -> anyhow::Result<RunResult> {
    let mut bench = Bench::start(setup, fleet).await?;
    let result = match scenario {
        Scenario::Idle { settle_secs } => bench.idle(Duration::from_secs(settle_secs)).await,
        Scenario::Unicast { messages, rate } => bench.unicast(messages, rate).await,
        Scenario::Broadcast { repeat } => bench.broadcasts(repeat).await,
        Scenario::Reconnect { missed } => bench.reconnect(missed).await,
        Scenario::Throughput {
            messages,
            duration_secs,
        } => {
            bench
                .throughput(messages, Duration::from_secs(duration_secs))
                .await
        }
        Scenario::Cluster { messages, rate } => cluster(&mut bench, messages, rate).await,
        Scenario::Worker | Scenario::Floor { .. } | Scenario::FloorPeer { .. } => {
            unreachable!("handled before any server or fleet starts")
        }
    };
    bench.finish().await;
    result
}

async fn cluster(bench: &mut Bench, messages: usize, rate: f64) -> anyhow::Result<RunResult> {
    if bench.setup.targets.len() < 2 {
        bail!("cluster needs two or more --target nodes");
    }
    // The bus counters around each phase: what the cluster paid per notification between nodes.
    let bus_start = bench.bus_received().await?;
    let b = bench.broadcast().await?;
    let bus_after_broadcast = bench.bus_received().await?;
    let u = bench.unicast(messages, rate).await?;
    let bus_end = bench.bus_received().await?;
    let unicasts = u.get("published").unwrap_or(0.0);
    let mut r = RunResult::default();
    for (prefix, part) in [("bcast_", b), ("uni_", u)] {
        r.metrics.extend(
            part.metrics
                .into_iter()
                .map(|(k, v)| (format!("{prefix}{k}"), v)),
        );
        r.notes.extend(part.notes);
    }
    match (bus_start, bus_after_broadcast, bus_end) {
        (Some(start), Some(mid), Some(end)) => {
            let nodes = start.len() as f64;
            let sum =
                |from: &[f64], to: &[f64]| -> f64 { to.iter().zip(from).map(|(t, f)| t - f).sum() };
            // One broadcast: every node must hear it once.
            r.metrics
                .push(("bcast_bus_msgs_per_node".into(), sum(&start, &mid) / nodes));
            if unicasts > 0.0 {
                let heard = sum(&mid, &end);
                r.metrics
                    .push(("uni_bus_msgs_per_notification".into(), heard / unicasts));
                r.metrics.push((
                    "uni_bus_msgs_per_node_per_notification".into(),
                    heard / unicasts / nodes,
                ));
            }
        }
        _ => r.notes.push(
            "a node does not report parkmate_bus_messages_received_total: no bus figures".into(),
        ),
    }
    Ok(r)
}
