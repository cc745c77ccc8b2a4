//! `floor`: what this machine's kernel alone charges for a broadcast, with no WebSocket, no
//! JSON and no async runtime on either side. It tells how much of a broadcast's time is ours to
//! win back and how much no server could.
//!
//! The coordinator accepts `sockets` loopback connections from one peer process (the 20,000
//! descriptor limit per process is why the two ends are two processes) and then, each round,
//! writes one `payload`-byte message to every socket from `threads` plain threads with blocking
//! `write` calls. The peer either holds its sockets without reading (the server's cost alone:
//! clients as if on other machines) or reads them with one `epoll` loop and reports when the last
//! byte of the round arrived in user space (the best a generator sharing the cores can do).
//!
//! Peer protocol on its stdin/stdout, one line each: it prints `ready` once connected; for every
//! `go` it answers `done <µs since the Unix epoch of its last read>` (`done 0` when not reading)
//! after the round's bytes arrived; end of input ends it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mio::{Events, Interest, Poll, Token};

use crate::scenario::{RunResult, medians};
use crate::server::cpu_ns;
use crate::worker::now_us;

/// What one `floor` run does.
#[derive(Debug, Clone)]
pub struct FloorSpec {
    pub sockets: usize,
    /// Writer threads on the server side.
    pub threads: usize,
    /// Whether the peer reads (and so competes for the cores) or only holds its sockets.
    pub read: bool,
    /// Writes per socket, one round each; a non-reading peer's receive buffers keep them all.
    pub rounds: usize,
    /// Bytes per message: about one notification frame.
    pub payload: usize,
    /// No round waits for the peer longer than this.
    pub round_timeout: Duration,
}

/// A peer that has not answered within this long is taken as broken.
const PEER_START_TIMEOUT: Duration = Duration::from_secs(120);

struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Peer {
    fn start(exe: &Path, target: SocketAddr, spec: &FloorSpec) -> anyhow::Result<Peer> {
        let mut cmd = Command::new(exe);
        cmd.arg("floor-peer")
            .arg("--target")
            .arg(target.to_string())
            .arg("--sockets")
            .arg(spec.sockets.to_string())
            .arg("--payload")
            .arg(spec.payload.to_string())
            .arg("--round-timeout-ms")
            .arg(spec.round_timeout.as_millis().to_string());
        if spec.read {
            cmd.arg("--read");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {} floor-peer", exe.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("floor-peer without pipes");
        };
        Ok(Peer {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    fn line(&mut self) -> anyhow::Result<String> {
        match self.lines.next() {
            Some(line) => Ok(line.context("reading the floor peer")?),
            None => bail!("the floor peer exited"),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the coordinator's side: connects the peer, then `rounds` timed broadcasts of raw writes.
/// Blocking: call it from a thread (or `spawn_blocking`), not from an async task.
pub fn run(exe: &Path, spec: &FloorSpec) -> anyhow::Result<RunResult> {
    if spec.sockets == 0 || spec.sockets > crate::fleet::MAX_SOCKETS_PER_WORKER {
        bail!(
            "floor: --sockets must be 1..={} (one process per side)",
            crate::fleet::MAX_SOCKETS_PER_WORKER
        );
    }
    if spec.threads == 0 || spec.threads > 64 || spec.rounds == 0 || spec.rounds > 100 {
        bail!("floor: --threads must be 1..=64 and --repeat 1..=100");
    }
    if spec.payload == 0 || spec.payload > 16 * 1024 {
        bail!("floor: --payload must be 1..=16384 bytes");
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the floor listener")?;
    let target = listener.local_addr()?;
    let mut peer = Peer::start(exe, target, spec)?;
    let mut sockets = Vec::with_capacity(spec.sockets);
    let connected = Instant::now();
    // Non-blocking, so a peer that died or stalled ends the wait instead of hanging it.
    listener.set_nonblocking(true)?;
    while sockets.len() < spec.sockets {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                sockets.push(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if connected.elapsed() > PEER_START_TIMEOUT {
                    bail!("floor: only {} sockets connected", sockets.len());
                }
                if let Some(status) = peer.child.try_wait()? {
                    bail!(
                        "floor: the peer exited ({status}) after {} sockets",
                        sockets.len()
                    );
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).context("accepting floor sockets"),
        }
    }
    if peer.line()? != "ready" {
        bail!("floor peer did not say ready");
    }
    let message = vec![b'x'; spec.payload];
    let mut rounds = Vec::with_capacity(spec.rounds);
    for _ in 0..spec.rounds {
        // Let the peer settle in its poll, and the last round's ACKs drain.
        std::thread::sleep(Duration::from_millis(100));
        // Each side's CPU over the round, to set beside a broadcast's server and generator CPU:
        // the writers are this process's threads, the reader is the peer.
        let peer_pid = peer.child.id();
        let reader_before = cpu_ns(peer_pid);
        writeln!(peer.stdin, "go")?;
        peer.stdin.flush()?;
        let started_us = now_us();
        let started = Instant::now();
        let writer_ns = write_all(&sockets, &message, spec.threads)?;
        let write_ms = started.elapsed().as_secs_f64() * 1e3;
        let line = peer.line()?;
        let reader_after = cpu_ns(peer_pid);
        let last_read_us: u64 = line
            .strip_prefix("done ")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("floor peer said `{line}`"))?;
        let mut r = RunResult::default();
        r.put("sockets", spec.sockets as f64);
        r.put("threads", spec.threads as f64);
        r.put("write_all_ms", write_ms);
        r.put("us_per_write", write_ms * 1e3 / spec.sockets as f64);
        let per_socket_us = |ns: u64| ns as f64 / 1e3 / spec.sockets as f64;
        if let Some(ns) = writer_ns {
            r.put("writer_cpu_us_per_delivery", per_socket_us(ns));
        }
        if spec.read {
            r.put(
                "last_read_ms",
                last_read_us.saturating_sub(started_us) as f64 / 1e3,
            );
            if let (Some(before), Some(after)) = (reader_before, reader_after) {
                r.put(
                    "reader_cpu_us_per_delivery",
                    per_socket_us(after.saturating_sub(before)),
                );
            }
        }
        rounds.push(r);
    }
    let mut r = medians(&rounds);
    r.notes.push(format!(
        "medians of {} rounds; peer {}",
        spec.rounds,
        if spec.read {
            "reads with one epoll loop"
        } else {
            "does not read"
        }
    ));
    Ok(r)
}

/// Every socket gets `message` once; socket `i` is written by thread `i % threads`. Returns the
/// writer threads' CPU time (ns), read by each thread of itself before it ends (an ended
/// thread's time leaves `/proc/<pid>/task`).
fn write_all(sockets: &[TcpStream], message: &[u8], threads: usize) -> anyhow::Result<Option<u64>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || -> std::io::Result<Option<u64>> {
                    let before = thread_cpu_ns();
                    for s in sockets.iter().skip(k).step_by(threads) {
                        let mut w: &TcpStream = s;
                        w.write_all(message)?;
                    }
                    Ok(thread_cpu_ns()
                        .zip(before)
                        .map(|(after, before)| after.saturating_sub(before)))
                })
            })
            .collect();
        let mut total = Some(0u64);
        for h in handles {
            match h.join() {
                Ok(r) => {
                    let ns = r.context("floor write")?;
                    total = total.zip(ns).map(|(t, n)| t + n);
                }
                Err(_) => bail!("a floor writer thread panicked"),
            }
        }
        Ok(total)
    })
}

/// The calling thread's CPU time so far (ns). `CLOCK_THREAD_CPUTIME_ID` rather than
/// `/proc/thread-self/schedstat`, which for a running thread is only brought up to date at the
/// scheduler's next tick: short rounds read 0 there, long ones up to a tick short.
fn thread_cpu_ns() -> Option<u64> {
    use nix::time::{ClockId, clock_gettime};
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    u64::try_from(t.tv_sec())
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(u64::try_from(t.tv_nsec()).ok()?)
}

/// The `floor-peer` subcommand (see the module docs for its protocol).
pub fn peer_stdio(
    target: SocketAddr,
    sockets: usize,
    payload: usize,
    read: bool,
    round_timeout: Duration,
) -> anyhow::Result<()> {
    crate::check_loopback(target.ip())?;
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let s = TcpStream::connect(target).with_context(|| format!("floor socket {i}"))?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut s = mio::net::TcpStream::from_std(s);
        if read {
            poll.registry()
                .register(&mut s, Token(i), Interest::READABLE)?;
        }
        conns.push(s);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    // Bytes each socket still owes this round; carried over, so a message split across reads or
    // rounds is counted right.
    let mut owed = vec![0usize; sockets];
    for line in std::io::stdin().lock().lines() {
        if line? != "go" {
            bail!("floor peer: expected `go`");
        }
        if !read {
            writeln!(out, "done 0")?;
            out.flush()?;
            continue;
        }
        owed.iter_mut().for_each(|o| *o += payload);
        let mut pending = owed.iter().filter(|o| **o > 0).count();
        let mut last = 0;
        let give_up = Instant::now() + round_timeout;
        while pending > 0 {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("floor peer: {pending} sockets still owe bytes after the round timeout");
            }
            poll.poll(&mut events, Some(left))?;
            for ev in events.iter() {
                let i = ev.token().0;
                // Edge-triggered: read until the socket is empty.
                loop {
                    match conns[i].read(&mut buf) {
                        Ok(0) => bail!("floor peer: socket {i} closed"),
                        Ok(n) => {
                            last = now_us();
                            let before = owed[i];
                            owed[i] = owed[i].saturating_sub(n);
                            if before > 0 && owed[i] == 0 {
                                pending -= 1;
                            }
                            if n < buf.len() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e).context("floor peer read"),
                    }
                }
            }
        }
        writeln!(out, "done {last}")?;
        out.flush()?;
    }
    Ok(())
}
