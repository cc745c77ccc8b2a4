//! A worker's reader: one thread that owns every socket once its TCP connection is up, runs its
//! WebSocket handshake and then reads it, all in one `epoll` loop (mio) over non-blocking sockets,
//! parsing frames in place out of one buffer it shares among them (`crate::wire`).
//!
//! Why not a tokio task per socket, as before: in a broadcast every socket wakes once, and a task
//! per socket paid the runtime's readiness and wake-up machinery for each (registering and waking
//! the task's waker, scheduling it, the driver's turn). A profile put 53% of the generator's CPU
//! in user space, most of it there, and the generator shares the two cores with the server it
//! measures, so its cost was half the broadcast's wall time (BENCHMARKS.md, fifth round). Here a
//! ready socket is one `epoll` event and `read`s until it is empty: the same shape as the floor's
//! reader (`crate::floor`), plus the frame parsing a real client does. As there, a read that
//! returns less than the buffer means the socket is empty: no second `read` to hear
//! `WouldBlock`.
//!
//! The worker's tokio side still opens the TCP connections (the handshake gate, retries with
//! back-off, deadlines) and hands each stream over with an [`Opening`]; it hears back twice on
//! oneshot channels: when the handshake is done (or why it failed, so it can retry) and when the
//! socket is ready (`hello`, `replayed`, or both Pusher subscriptions confirmed).
//!
//! Over 500 lines with its tests on purpose: a socket's whole life here (upgrade, frames, the two
//! protocols' messages, counting) is one state machine over one buffer.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use crate::proto::new_histogram;
use crate::pusher::{self, PusherApp};
use crate::wire::{self, Header};
use crate::worker::now_us;

/// The token of the reader's own waker (orders arrived); sockets use their slot index.
const WAKE: Token = Token(usize::MAX);
/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// The largest frame or reassembled message accepted from a server (our frames are ~300 bytes).
const MAX_MESSAGE: usize = 1 << 20;

/// Counters shared by the reader (which counts) and the worker (which reports and resets them).
pub(crate) struct Counters {
    pub open: AtomicUsize,
    pub received: AtomicU64,
    pub duplicates: AtomicU64,
    pub dropped: AtomicU64,
    pub closes: Mutex<BTreeMap<u16, u64>>,
    /// Taken by the reader once per batch of events and by a stats request now and then.
    pub latency: Mutex<Histogram<u64>>,
}

impl Counters {
    pub fn new() -> Counters {
        Counters {
            open: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            closes: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(new_histogram()),
        }
    }
}

/// One socket handed to the reader: connected, not yet upgraded.
pub(crate) struct Opening {
    pub stream: std::net::TcpStream,
    /// The HTTP upgrade request, written as soon as the reader has the socket.
    pub request: Vec<u8>,
    /// The `Sec-WebSocket-Accept` the server must answer with.
    pub accept: String,
    /// Size of the reader's one read buffer, shared by all its sockets.
    pub read_buffer: usize,
    /// Openings of an older generation than the reader's (a drop happened since) are closed.
    pub generation: u64,
    pub user_id: i64,
    /// Opened with `since`: ready on `replayed`, not on `hello`.
    pub resume: bool,
    /// The user's last notification id, kept across reconnects by the worker.
    pub last_id: Arc<AtomicI64>,
    /// Speak the Pusher protocol (subscribe after `connection_established`).
    pub pusher: Option<Arc<PusherApp>>,
    /// Told when the handshake is done, or why it failed.
    pub upgraded: oneshot::Sender<Result<(), String>>,
    /// Told when the socket is ready, or why it never will be.
    pub ready: oneshot::Sender<Result<(), String>>,
}

pub(crate) enum Order {
    Open(Box<Opening>),
    /// Close every socket abortively, then answer; later openings must carry `generation`.
    DropAll {
        generation: u64,
        done: oneshot::Sender<()>,
    },
    Quit,
}

/// Sends orders to the reader and wakes it for them; one per connecting task. The channel's type
/// is unbounded, its use is not: a connecting task sends an `Open` only while it holds a place of
/// the worker's handshake gate, and at most `MAX_ATTEMPTS` of them, so what waits is bounded by
/// the gate's size (the reader empties the channel after every batch of events).
#[derive(Clone)]
pub(crate) struct ReaderTx {
    orders: mpsc::Sender<Order>,
    waker: Arc<Waker>,
}

impl ReaderTx {
    /// False when the reader is gone (it only stops on [`Order::Quit`] or a broken poll).
    pub fn send(&self, order: Order) -> bool {
        self.orders.send(order).is_ok() && self.waker.wake().is_ok()
    }
}

/// The worker's handle on its reader thread; dropping it closes the sockets and ends the thread.
pub(crate) struct Reader {
    tx: ReaderTx,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    pub fn start(counters: Arc<Counters>) -> std::io::Result<Reader> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (orders, rx) = mpsc::channel();
        let read_loop = ReadLoop {
            poll,
            orders: rx,
            counters,
            sockets: Vec::new(),
            free: Vec::new(),
            generation: 0,
            buf: Vec::new(),
            tally: Tally::default(),
        };
        let thread = std::thread::Builder::new()
            .name("bench-reader".into())
            .spawn(move || read_loop.run())?;
        Ok(Reader {
            tx: ReaderTx { orders, waker },
            thread: Some(thread),
        })
    }

    pub fn tx(&self) -> ReaderTx {
        self.tx.clone()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if self.tx.send(Order::Quit)
            && let Some(t) = self.thread.take()
        {
            let _ = t.join();
        }
    }
}

/// A socket the reader holds: upgrading until the server's `101` has been read, then open.
struct Socket {
    stream: TcpStream,
    /// While upgrading: the answer read so far and the `Sec-WebSocket-Accept` it must carry.
    upgrading: Option<(Vec<u8>, String)>,
    /// The start of a frame whose rest has not arrived yet (usually empty).
    partial: Vec<u8>,
    /// A message the server split over continuation frames: whether it is text, and its bytes.
    fragments: Option<(bool, Vec<u8>)>,
    /// Bytes for the server that it could not take yet (the request, pongs, Pusher replies).
    out: Vec<u8>,
    user_id: i64,
    resume: bool,
    /// The last notification id seen: the reader's own copy, written back to `last_id` (the
    /// worker's, for the next `since`) only when the socket goes, so a delivery touches no
    /// cache line the worker's thread shares.
    last: i64,
    last_id: Arc<AtomicI64>,
    pusher: Option<Arc<PusherApp>>,
    /// Pusher subscriptions confirmed so far (ready at two: the user's channel and `broadcast`).
    subscribed: u8,
    upgraded: Option<oneshot::Sender<Result<(), String>>>,
    ready: Option<oneshot::Sender<Result<(), String>>>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.last_id.store(self.last, Ordering::Relaxed);
    }
}

/// What the reader counted since it last published to [`Counters`]: it publishes once per batch
/// of events, before it waits again, instead of an atomic add and a lock per delivery on lines
/// the worker's thread reads.
#[derive(Default)]
struct Tally {
    received: u64,
    duplicates: u64,
    /// Publish→receive latencies, µs.
    latencies: Vec<u64>,
}

/// Why a socket is finished; it is forgotten (and closed) either way.
enum Gone {
    /// The server closed it with a close frame (counted by code).
    Closed,
    /// Reset, ended without a close frame, broke the protocol, or nobody waits for it any more.
    Lost,
}

/// The part of our server's frames the generator looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    id: Option<i64>,
    data: Option<Stamp>,
}

#[derive(Deserialize)]
struct Stamp {
    t: Option<u64>,
}

struct ReadLoop {
    poll: Poll,
    orders: mpsc::Receiver<Order>,
    counters: Arc<Counters>,
    /// Sockets by token; `None` slots are listed in `free`.
    sockets: Vec<Option<Box<Socket>>>,
    free: Vec<usize>,
    generation: u64,
    /// The one read buffer, sized by the latest opening.
    buf: Vec<u8>,
    tally: Tally,
}

impl ReadLoop {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("bench reader: epoll failed: {e}");
                return;
            }
            for ev in &events {
                if ev.token() == WAKE {
                    continue;
                }
                self.service(ev.token().0);
            }
            self.publish();
            // Orders after the socket events: a drop then also covers sockets serviced above.
            while let Ok(order) = self.orders.try_recv() {
                match order {
                    Order::Open(o) => self.open(*o),
                    Order::DropAll { generation, done } => {
                        self.drop_all(generation);
                        let _ = done.send(());
                    }
                    Order::Quit => {
                        self.drop_all(self.generation + 1);
                        return;
                    }
                }
            }
        }
    }

    fn open(&mut self, o: Opening) {
        if o.generation < self.generation {
            let _ = o.upgraded.send(Err("dropped before the handshake".into()));
            return;
        }
        if self.buf.len() != o.read_buffer.max(1) {
            self.buf = vec![0; o.read_buffer.max(1)];
        }
        let mut stream = TcpStream::from_std(o.stream);
        let slot = self.free.pop().unwrap_or_else(|| {
            self.sockets.push(None);
            self.sockets.len() - 1
        });
        // Writable too: a request or reply the socket could not take is sent on its next edge.
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.free.push(slot);
            let _ = o.upgraded.send(Err(format!("epoll register: {e}")));
            return;
        }
        self.sockets[slot] = Some(Box::new(Socket {
            stream,
            upgrading: Some((Vec::new(), o.accept)),
            partial: Vec::new(),
            fragments: None,
            out: o.request,
            user_id: o.user_id,
            resume: o.resume,
            last: o.last_id.load(Ordering::Relaxed),
            last_id: o.last_id,
            pusher: o.pusher,
            subscribed: 0,
            upgraded: Some(o.upgraded),
            ready: Some(o.ready),
        }));
        self.service(slot);
    }

    /// Closes every socket abortively (RST): a drop leaves no TIME_WAIT entry behind for the
    /// reconnect storm's connect() calls to step over in their search for a source port
    /// (BENCHMARKS.md, third round), a generator cost that real clients on their own machines
    /// never pay. The server sees a reset instead of a FIN: the same dropped socket to it.
    fn drop_all(&mut self, generation: u64) {
        self.generation = self.generation.max(generation);
        for (slot, cell) in self.sockets.iter_mut().enumerate() {
            let Some(socket) = cell.take() else { continue };
            if socket.upgrading.is_none() {
                self.counters.open.fetch_sub(1, Ordering::Relaxed);
            }
            let _ = socket2::SockRef::from(&socket.stream).set_linger(Some(Duration::ZERO));
            // Closing the descriptor takes it out of the epoll set as well.
            drop(socket);
            self.free.push(slot);
        }
    }

    fn service(&mut self, slot: usize) {
        let Some(mut socket) = self.sockets.get_mut(slot).and_then(Option::take) else {
            return; // closed earlier in this batch of events
        };
        let mut buf = std::mem::take(&mut self.buf);
        let outcome = self.advance(&mut socket, &mut buf);
        self.buf = buf;
        match outcome {
            Ok(()) => self.sockets[slot] = Some(socket),
            Err(gone) => {
                // What it received is counted before it stops being open: whoever waits for
                // the sockets to close then reads complete counts.
                self.publish();
                // Only an upgraded socket was counted open, and only one lost without a close
                // frame is a drop.
                if socket.upgrading.is_none() {
                    self.counters.open.fetch_sub(1, Ordering::Relaxed);
                    if matches!(gone, Gone::Lost) {
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(tx) = socket.upgraded.take() {
                    let _ = tx.send(Err("closed during the handshake".into()));
                }
                if let Some(tx) = socket.ready.take() {
                    let _ = tx.send(Err("closed before it was ready".into()));
                }
                self.free.push(slot);
            }
        }
    }

    /// Sends what is owed, then reads until the socket is empty.
    fn advance(&mut self, socket: &mut Socket, buf: &mut [u8]) -> Result<(), Gone> {
        flush(socket)?;
        loop {
            let n = match socket.stream.read(buf) {
                Ok(0) => return Err(Gone::Lost),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Err(Gone::Lost),
            };
            if let Some((answer, accept)) = &mut socket.upgrading {
                answer.extend_from_slice(&buf[..n]);
                match wire::upgrade_response(answer, accept) {
                    Ok(None) => {}
                    Ok(Some(head)) => {
                        // Frames may have come in the same bytes as the answer.
                        let rest = answer.split_off(head);
                        self.upgraded(socket)?;
                        socket.upgrading = None;
                        self.frames_kept(socket, rest)?;
                    }
                    Err(e) => {
                        if let Some(tx) = socket.upgraded.take() {
                            let _ = tx.send(Err(e));
                        }
                        return Err(Gone::Lost);
                    }
                }
            } else if socket.partial.is_empty() {
                // The usual case: whole frames, parsed where they lie in the shared buffer.
                let used = self.frames(socket, &buf[..n])?;
                socket.partial.extend_from_slice(&buf[used..n]);
            } else {
                let mut pending = std::mem::take(&mut socket.partial);
                pending.extend_from_slice(&buf[..n]);
                self.frames_kept(socket, pending)?;
            }
            // A short read emptied the socket: the next byte brings a new edge.
            if n < buf.len() {
                break;
            }
        }
        flush(socket)
    }

    /// The socket is upgraded: tell its task, unless nobody waits for it any more (its deadline
    /// passed), when it would only be an unseen socket.
    fn upgraded(&mut self, socket: &mut Socket) -> Result<(), Gone> {
        if let Some(tx) = socket.upgraded.take() {
            if tx.send(Ok(())).is_err() {
                return Err(Gone::Lost); // still upgrading, so never counted open
            }
            self.counters.open.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Parses the frames of `pending`, an owned buffer, and keeps what is left of it (the start
    /// of a frame) as the socket's partial bytes.
    fn frames_kept(&mut self, socket: &mut Socket, mut pending: Vec<u8>) -> Result<(), Gone> {
        let used = self.frames(socket, &pending)?;
        pending.drain(..used);
        socket.partial = pending;
        Ok(())
    }

    /// Acts on every whole frame at the start of `data`; how many bytes they took.
    fn frames(&mut self, socket: &mut Socket, data: &[u8]) -> Result<usize, Gone> {
        let mut at = 0;
        loop {
            let h = match wire::header(&data[at..], MAX_MESSAGE) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(at),
                Err(_) => return Err(Gone::Lost),
            };
            let payload = &data[at + h.header_len..at + h.frame_len()];
            at += h.frame_len();
            self.frame(socket, h, payload)?;
        }
    }

    fn frame(&mut self, socket: &mut Socket, h: Header, payload: &[u8]) -> Result<(), Gone> {
        match h.opcode {
            wire::OP_TEXT | wire::OP_BINARY => {
                if socket.fragments.is_some() {
                    return Err(Gone::Lost); // a new message inside a fragmented one
                }
                let text = h.opcode == wire::OP_TEXT;
                if !h.fin {
                    socket.fragments = Some((text, payload.to_vec()));
                } else if text {
                    self.message(socket, payload)?;
                }
            }
            wire::OP_CONTINUATION => {
                let Some((text, bytes)) = &mut socket.fragments else {
                    return Err(Gone::Lost);
                };
                if bytes.len() + payload.len() > MAX_MESSAGE {
                    return Err(Gone::Lost);
                }
                bytes.extend_from_slice(payload);
                if h.fin {
                    let (text, bytes) = (*text, std::mem::take(bytes));
                    socket.fragments = None;
                    if text {
                        self.message(socket, &bytes)?;
                    }
                }
            }
            wire::OP_PING => {
                wire::client_frame(&mut socket.out, wire::OP_PONG, payload, rand::random())
            }
            wire::OP_CLOSE => {
                let code = match payload {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1005,
                };
                self.closed_by_server(code);
                // Echo it, as RFC 6455 asks; best effort, the socket is dropped right after.
                wire::client_frame(
                    &mut socket.out,
                    wire::OP_CLOSE,
                    &payload[..payload.len().min(2)],
                    rand::random(),
                );
                let _ = flush(socket);
                return Err(Gone::Closed);
            }
            _ => {} // pongs: the server is alive, nothing to do
        }
        Ok(())
    }

    fn message(&mut self, socket: &mut Socket, payload: &[u8]) -> Result<(), Gone> {
        // Text that is not UTF-8 breaks the protocol (RFC 6455 §8.1): the socket is lost.
        let text = std::str::from_utf8(payload).map_err(|_| Gone::Lost)?;
        self.text(socket, text);
        Ok(())
    }

    /// Acts on one text message; replies go to the socket's `out`, which `advance` flushes.
    fn text(&mut self, socket: &mut Socket, text: &str) {
        if socket.pusher.is_some() {
            self.pusher_text(socket, text);
            return;
        }
        // The count that follows every delivery says nothing the generator keeps: skipped
        // unparsed (a server that ordered its fields otherwise only costs the parse below).
        if text.starts_with(r#"{"type":"unread_count","#) {
            return;
        }
        let Ok(frame) = serde_json::from_str::<Frame>(text) else {
            return;
        };
        match frame.kind {
            "notification" => self.count(
                &mut socket.last,
                frame.id.unwrap_or(0),
                frame.data.and_then(|d| d.t),
                false,
            ),
            "hello" if !socket.resume => ready(socket),
            "replayed" => ready(socket),
            _ => {}
        }
    }

    /// The Pusher side of a socket: subscribe to the user's private channel and to `broadcast`
    /// once the connection is established; ready when both succeeded. Events carry no server
    /// id, so duplicates are the same publisher sequence number twice in a row (two unicasts to
    /// one user may cross on their way, which is not a duplicate).
    fn pusher_text(&mut self, socket: &mut Socket, text: &str) {
        let Ok(frame) = serde_json::from_str::<pusher::Frame>(text) else {
            return;
        };
        let Some(app) = socket.pusher.clone() else {
            return;
        };
        let replies = match frame.event {
            pusher::EVENT => {
                let doc = pusher::data_document(frame.data).unwrap_or_default();
                let id = doc["id"].as_i64().unwrap_or(0);
                self.count(&mut socket.last, id, doc["t"].as_u64(), true);
                return;
            }
            "pusher:connection_established" => {
                let doc = pusher::data_document(frame.data).unwrap_or_default();
                let socket_id = doc["socket_id"].as_str().unwrap_or_default();
                let private = PusherApp::user_channel(socket.user_id);
                let auth = app.channel_auth(socket_id, &private);
                vec![
                    json!({"event": "pusher:subscribe",
                        "data": {"channel": pusher::BROADCAST_CHANNEL}}),
                    json!({"event": "pusher:subscribe",
                        "data": {"channel": private, "auth": auth}}),
                ]
            }
            "pusher_internal:subscription_succeeded" => {
                socket.subscribed += 1;
                if socket.subscribed == 2 {
                    ready(socket);
                }
                return;
            }
            "pusher:ping" => vec![json!({"event": "pusher:pong", "data": {}})],
            "pusher:error" => {
                if let Some(r) = socket.ready.take() {
                    let _ = r.send(Err(format!("pusher:error {text}")));
                }
                return;
            }
            _ => return,
        };
        for reply in replies {
            // Sent once the socket's bytes have been read (`advance` flushes), or on its next
            // writable edge when it cannot take them now.
            wire::client_frame(
                &mut socket.out,
                wire::OP_TEXT,
                reply.to_string().as_bytes(),
                rand::random(),
            );
        }
    }

    /// Counts a notification numbered `id` (a server id, or a Pusher publisher's sequence number)
    /// stamped with its send time `t`.
    fn count(&mut self, last: &mut i64, id: i64, t: Option<u64>, exact_duplicates_only: bool) {
        let duplicate = if exact_duplicates_only {
            id == *last
        } else {
            id <= *last
        };
        if duplicate {
            self.tally.duplicates += 1;
            return;
        }
        *last = id.max(*last);
        self.tally.received += 1;
        if let Some(t) = t {
            self.tally.latencies.push(now_us().saturating_sub(t).max(1));
        }
    }

    /// Hands what this batch of events counted to the worker's [`Counters`].
    fn publish(&mut self) {
        let (c, t) = (&self.counters, &mut self.tally);
        if t.received > 0 {
            c.received.fetch_add(t.received, Ordering::Relaxed);
        }
        if t.duplicates > 0 {
            c.duplicates.fetch_add(t.duplicates, Ordering::Relaxed);
        }
        if !t.latencies.is_empty() {
            let mut h = c.latency.lock().unwrap_or_else(|p| p.into_inner());
            for lat in t.latencies.drain(..) {
                h.saturating_record(lat);
            }
        }
        t.received = 0;
        t.duplicates = 0;
    }

    fn closed_by_server(&self, code: u16) {
        *self
            .counters
            .closes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code)
            .or_default() += 1;
    }
}

fn ready(socket: &mut Socket) {
    if let Some(r) = socket.ready.take() {
        let _ = r.send(Ok(()));
    }
}

/// Writes what the socket owes the server, as far as it takes it now; the rest goes on its next
/// writable edge.
fn flush(socket: &mut Socket) -> Result<(), Gone> {
    while !socket.out.is_empty() {
        match socket.stream.write(&socket.out) {
            Ok(0) => return Err(Gone::Lost),
            Ok(n) => {
                socket.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err(Gone::Lost),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    use super::*;

    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode, payload.len() as u8];
        f.extend_from_slice(payload);
        f
    }

    type Told = oneshot::Receiver<Result<(), String>>;

    /// Connects to `addr` and hands the socket to `reader`: told when upgraded, and when ready.
    fn open(reader: &Reader, addr: std::net::SocketAddr, read_buffer: usize) -> (Told, Told) {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_nonblocking(true).unwrap();
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let (upgraded_tx, upgraded) = oneshot::channel();
        let (ready_tx, ready) = oneshot::channel();
        assert!(reader.tx().send(Order::Open(Box::new(Opening {
            stream,
            request: wire::upgrade_request(&addr.to_string(), "/", key, &[]),
            accept: derive_accept_key(key.as_bytes()),
            read_buffer,
            generation: 0,
            user_id: 1,
            resume: false,
            last_id: Arc::new(AtomicI64::new(0)),
            pusher: None,
            upgraded: upgraded_tx,
            ready: ready_tx,
        }))));
        (upgraded, ready)
    }

    /// Reads one masked client frame: its opcode and unmasked payload.
    fn client_frame(r: &mut impl Read) -> (u8, Vec<u8>) {
        let mut head = [0u8; 6];
        r.read_exact(&mut head).unwrap();
        assert_ne!(head[1] & 0x80, 0, "client frames are masked");
        let len = usize::from(head[1] & 0x7F);
        assert!(len < 126);
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).unwrap();
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= head[2 + i % 4];
        }
        (head[0] & 0x0F, payload)
    }

    /// A server that cuts its bytes anywhere: the answer and the first frames a byte per write,
    /// a message in fragments, a ping to answer, then a close. The reader must see every
    /// notification once, answer the ping with its payload, and count the close by its code.
    #[test]
    fn frames_cut_anywhere_fragments_pings_and_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream.set_nodelay(true).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut key = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(k) = line.strip_prefix("Sec-WebSocket-Key: ") {
                    key = k.trim().to_owned();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut w = stream;
            let mut bytes = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            )
            .into_bytes();
            bytes.extend(server_frame(true, wire::OP_TEXT, br#"{"type":"hello"}"#));
            bytes.extend(server_frame(
                true,
                wire::OP_TEXT,
                br#"{"type":"notification","id":1,"data":{"t":1}}"#,
            ));
            for b in bytes {
                w.write_all(&[b]).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
            let note = br#"{"type":"notification","id":2,"data":{"t":1}}"#;
            w.write_all(&server_frame(false, wire::OP_TEXT, &note[..10]))
                .unwrap();
            w.write_all(&server_frame(true, wire::OP_PING, b"are you there"))
                .unwrap();
            w.write_all(&server_frame(true, wire::OP_CONTINUATION, &note[10..]))
                .unwrap();
            let pong = client_frame(&mut reader);
            assert_eq!(pong, (wire::OP_PONG, b"are you there".to_vec()));
            // The same id again is a duplicate, not a second delivery.
            w.write_all(&server_frame(
                true,
                wire::OP_TEXT,
                br#"{"type":"notification","id":2}"#,
            ))
            .unwrap();
            w.write_all(&server_frame(true, wire::OP_CLOSE, &4008u16.to_be_bytes()))
                .unwrap();
            let echo = client_frame(&mut reader);
            assert_eq!(echo, (wire::OP_CLOSE, 4008u16.to_be_bytes().to_vec()));
        });

        let counters = Arc::new(Counters::new());
        let reader = Reader::start(counters.clone()).unwrap();
        // A small buffer, so frames also cut across the reads of one burst.
        let (upgraded, ready) = open(&reader, addr, 7);
        assert_eq!(upgraded.blocking_recv().unwrap(), Ok(()));
        assert_eq!(ready.blocking_recv().unwrap(), Ok(()));
        server.join().unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while counters.open.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(counters.received.load(Ordering::Relaxed), 2);
        assert_eq!(counters.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(counters.open.load(Ordering::Relaxed), 0);
        assert_eq!(counters.closes.lock().unwrap().get(&4008).copied(), Some(1));
    }

    /// An answer that is not `101` fails the upgrade with the status, which the worker's retry
    /// loop reports.
    #[test]
    fn a_refused_upgrade_reports_its_status() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while line != "\r\n" {
                line.clear();
                reader.read_line(&mut line).unwrap();
            }
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        });
        let counters = Arc::new(Counters::new());
        let reader = Reader::start(counters.clone()).unwrap();
        let (upgraded, _ready) = open(&reader, addr, 4096);
        assert_eq!(
            upgraded.blocking_recv().unwrap(),
            Err("handshake refused: HTTP 503".into())
        );
        server.join().unwrap();
        assert_eq!(counters.open.load(Ordering::Relaxed), 0);
    }
}
