//! One accepted socket's life, in its own task ([`Connection::run`]):
//!
//! 1. subscribe to the hub **first**, so nothing published from now on is missed (in a cluster,
//!    once the node hears the user's Redis channel: [`Subscription::ready`]);
//! 2. snapshot the unread count, say `hello`;
//! 3. if the client gave `since`, replay from the store everything after it, page by page;
//! 4. then forward live deliveries, skipping any id already sent — the replay/live seam has neither
//!    gap (subscribed before the replay query) nor duplicate (ids are only ever sent increasing).
//!
//! Like mini-redis's `Handler::run`: one loop over one `select!`, and every step returns
//! `Result<_, End>`, so `?` is the only way out; [`Connection::run`] then picks the close code from
//! the [`End`] in one `match`. Queued frames are written together and flushed once (one syscall
//! for a burst); every write has a deadline, so a peer that stops reading cannot pin the task.
//!
//! A peer that breaks RFC 6455 (an unmasked frame, reserved bits, an unknown opcode, a bad
//! control or continuation frame) is told so with 1002 before the connection is dropped, and one
//! that sends text (or a close reason) that is not UTF-8 with 1007: tungstenite reports each as a
//! typed error, [`End::from_read`] sorts them, and the socket can still write its close frame.
//! Client frames are rate-limited (`limits.client_frames`), and a socket whose token was minted
//! here re-checks its account every `ws.account_check_interval` (4003 when it no longer holds).
//!
//! A socket in the Channels [`Dialect`] (`parkmate.channels`) runs the same loop; only what it
//! writes differs: the original consumer's greeting instead of `hello`, notifications with the
//! level in `type`, and no unread counts or replay marker (the store and the seam are the same).
//!
//! Over 500 lines on purpose: one socket's state machine is one select! loop and its steps;
//! splitting the steps would hide the order the invariants depend on.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use parkmate_auth::{AuthError, Identity, SingleLimit, now_secs};
use parkmate_db::{DbError as StoreError, PageBudget, ReplayPage};
use parkmate_hub::{Delivery, Subscription};
use parkmate_protocol::{
    CHANNELS_GREETING, ClientFrame, CloseCode, Dialect, FrameError, NotificationFrame, ServerFrame,
    Viewer, rfc3339,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, sleep_until, timeout};
use tungstenite::error::ProtocolError;

use crate::limits::SocketTicket;
use crate::state::AppState;

/// Most queued deliveries written before one flush: bounds the latency a big burst adds for the
/// first frame, while still coalescing a broadcast storm into few writes.
const MAX_COALESCE: usize = 64;
/// Replay page size: one store query per this many missed notifications (or fewer, when their
/// bytes reach `ws.replay_page_bytes`).
const REPLAY_PAGE: u32 = 500;
/// Invalid frames in a row after which the client is considered broken (4009).
const MAX_INVALID_FRAMES: u32 = 10;
/// How long a goodbye (close frame) may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a connection ends: every step of the loop returns `Result<_, End>`, and
/// [`Connection::run`] turns the `End` into a close code (or none).
#[derive(Debug)]
pub(super) enum End {
    /// The server is shutting down: 1012, reconnect.
    Shutdown,
    /// The hub removed this socket because its queue filled up: 4008.
    SlowConsumer,
    /// The peer sent a close frame: answered with its own code (tungstenite queues the echo,
    /// and replaces a code a peer may not send, such as 1004, with 1002).
    PeerClosed,
    /// The peer vanished: end of stream or a transport error. Nobody to say goodbye to.
    PeerGone,
    /// A write failed or missed its deadline: the peer cannot be written to, so no goodbye.
    Unwritable,
    /// An inbound message above `ws.max_frame_bytes`: 1009.
    TooBig,
    /// The peer broke RFC 6455's framing: 1002.
    ProtocolError,
    /// A text frame or close reason that is not UTF-8: 1007.
    InvalidPayload,
    /// The account behind the token changed role, was deleted or had its tokens revoked: 4003.
    TokenRevoked,
    /// [`MAX_INVALID_FRAMES`] invalid frames in a row: 4009.
    ProtocolViolation,
    /// Silent for `ws.heartbeat_timeout`: 4002.
    HeartbeatTimeout,
    /// The token expired while connected: 4001.
    TokenExpired,
    /// The store failed: 1011 (and logged).
    Store(StoreError),
}

impl From<StoreError> for End {
    fn from(e: StoreError) -> End {
        End::Store(e)
    }
}

impl End {
    /// A failed read, sorted by tungstenite's error type (axum wraps it): a message over the size
    /// limit, a framing violation, text that is not UTF-8; anything else means the transport is
    /// gone.
    fn from_read(e: axum::Error) -> End {
        use tungstenite::Error as E;
        let Ok(e) = e.into_inner().downcast::<E>() else {
            return End::PeerGone;
        };
        match *e {
            E::Capacity(_) => End::TooBig,
            E::Utf8(_) => End::InvalidPayload,
            E::Protocol(
                ProtocolError::NonZeroReservedBits
                | ProtocolError::UnmaskedFrameFromClient
                | ProtocolError::FragmentedControlFrame
                | ProtocolError::ControlFrameTooBig
                | ProtocolError::UnknownControlFrameType(_)
                | ProtocolError::UnknownDataFrameType(_)
                | ProtocolError::UnexpectedContinueFrame
                | ProtocolError::ExpectedFragment(_)
                | ProtocolError::InvalidOpcode(_)
                | ProtocolError::InvalidCloseSequence,
            ) => End::ProtocolError,
            _ => End::PeerGone,
        }
    }
}

/// What an admitted socket holds until it ends: its node slot (`ws.max_connections`) and its
/// places in the per-user and per-address caps.
pub(super) struct Places {
    pub(super) _slot: OwnedSemaphorePermit,
    pub(super) _ticket: SocketTicket,
}

/// One socket's state. Lives in the socket's task only.
pub(super) struct Connection {
    state: AppState,
    socket: WebSocket,
    identity: Identity,
    since: Option<i64>,
    /// Which frames this socket writes (its sub-protocol).
    dialect: Dialect,
    /// Highest notification id written to this socket; nothing at or below it is sent again.
    last_sent: i64,
    unread: i64,
    /// Highest id `unread` accounts for: later notifications add to it as they are sent.
    unread_as_of: i64,
    /// Catching up from the store never goes below this id (`since`, or the connect-time
    /// snapshot for a client that gave none).
    replay_floor: i64,
    invalid_in_a_row: u32,
    last_heard: Instant,
    /// `limits.client_frames`: one word of state, not a task or a timer.
    frames: SingleLimit,
    /// This socket's permit of `ws.max_connections` and its caps' places, given back when the
    /// task ends.
    _places: Places,
}

impl Connection {
    pub(super) fn new(
        state: AppState,
        socket: WebSocket,
        identity: Identity,
        since: Option<i64>,
        dialect: Dialect,
        places: Places,
    ) -> Self {
        let frames = SingleLimit::new(
            state.settings.limits.client_frames.rate(),
            "frames on this socket",
        );
        Connection {
            state,
            socket,
            identity,
            since,
            dialect,
            last_sent: since.unwrap_or(0),
            unread: 0,
            unread_as_of: 0,
            replay_floor: 0,
            invalid_in_a_row: 0,
            last_heard: Instant::now(),
            frames,
            _places: places,
        }
    }

    fn page_budget(&self) -> PageBudget {
        PageBudget {
            rows: REPLAY_PAGE,
            bytes: u32::try_from(self.state.settings.ws.replay_page_bytes.get())
                .unwrap_or(u32::MAX),
        }
    }

    fn viewer(&self) -> Viewer {
        self.identity.viewer()
    }

    /// `turn` is the handshake's place among `ws.max_handshakes_in_flight`, given back once the
    /// socket has greeted (and replayed): the costly part of a socket's life is then over.
    pub(super) async fn run(mut self, turn: OwnedSemaphorePermit) {
        let mut sub = self
            .state
            .hub
            .subscribe(self.identity.user_id, self.identity.role);
        let Err(end) = self.serve(&mut sub, turn).await;
        drop(sub);
        let code = match end {
            End::PeerClosed => {
                // The reply is queued already; sending a close of our own after the peer's is
                // refused (`SendAfterClosing`), so only flush the queued one out.
                let _ = Box::pin(timeout(CLOSE_TIMEOUT, self.socket.flush())).await;
                return;
            }
            End::Shutdown => CloseCode::ServiceRestart,
            End::SlowConsumer => CloseCode::SlowConsumer,
            End::TooBig => CloseCode::TooBig,
            End::ProtocolError => CloseCode::ProtocolError,
            End::InvalidPayload => CloseCode::InvalidPayload,
            End::TokenRevoked => CloseCode::TokenRevoked,
            End::ProtocolViolation => CloseCode::ProtocolViolation,
            End::HeartbeatTimeout => CloseCode::HeartbeatTimeout,
            End::TokenExpired => CloseCode::TokenExpired,
            End::Store(e) => {
                tracing::warn!(error = ?e, user = self.identity.user_id, "socket failed");
                CloseCode::InternalError
            }
            End::PeerGone | End::Unwritable => return,
        };
        let frame = CloseFrame {
            code: code.code(),
            reason: Utf8Bytes::from_static(code.reason()),
        };
        let _ = Box::pin(timeout(
            CLOSE_TIMEOUT,
            self.socket.send(Message::Close(Some(frame))),
        ))
        .await;
    }

    /// The loop. It only ever ends with an [`End`]; `Infallible` says so to the type checker.
    async fn serve(
        &mut self,
        sub: &mut Subscription,
        turn: OwnedSemaphorePermit,
    ) -> Result<Infallible, End> {
        // In a cluster, not before this node hears the user's channel (invariant 3).
        sub.ready().await;
        // Boxed here and below: the rare, large futures (the greeting and replay, client frames
        // that touch the store) would otherwise be laid out inside this task's future and be
        // carried by every idle socket for its whole life (BENCHMARKS.md, idle memory).
        Box::pin(self.open()).await?;
        drop(turn);

        let heartbeat_interval = self.state.settings.ws.heartbeat_interval;
        let heartbeat_timeout = self.state.settings.ws.heartbeat_timeout;
        // This socket's close wave: cancelled at its turn in the drain, or with `shutdown`.
        let shutdown = self.state.close_wave();
        let expires = Instant::now()
            + Duration::from_secs(self.identity.expires_at.saturating_sub(now_secs()));
        let mut next_beat = Instant::now() + heartbeat_interval;
        // Only tokens minted here for an account are re-checked; `expires` stands for "never".
        let check_every = self.state.settings.ws.account_check_interval;
        let mut next_check = match self.identity.token_version {
            Some(_) => Instant::now() + check_every,
            None => expires,
        };
        // Built once and polled by reference: re-creating them on every wake-up registered
        // fresh waiters and a fresh timer per delivery, which showed at the top of the
        // broadcast profile (BENCHMARKS.md). One timer serves both the heartbeat and the
        // token's expiry: a timer entry per socket is memory every idle socket carries.
        let stopping = shutdown.cancelled();
        let timer = sleep_until(next_beat.min(expires).min(next_check));
        tokio::pin!(stopping, timer);

        loop {
            // Deliveries first: polling the close wave takes two mutexes that a tenth of the
            // node's sockets share, and a broadcast wakes every socket for its delivery alone.
            // The wave is still heard as soon as the queue is empty, and a socket cannot stay
            // busy for ever: one whose queue fills is dropped (`is_dropped`).
            tokio::select! {
                biased;
                delivery = sub.recv() => {
                    // Dropped as too slow: say so rather than write what is queued.
                    if sub.is_dropped() {
                        return Err(End::SlowConsumer);
                    }
                    // `None` only once dropped and drained.
                    let mut batch = vec![delivery.ok_or(End::SlowConsumer)?];
                    while batch.len() < MAX_COALESCE {
                        match sub.try_recv() {
                            Some(d) => batch.push(d),
                            None => break,
                        }
                    }
                    Box::pin(self.deliver(batch)).await?;
                }
                _ = &mut stopping => return Err(End::Shutdown),
                inbound = self.socket.recv() => {
                    let msg = inbound.ok_or(End::PeerGone)?.map_err(End::from_read)?;
                    self.last_heard = Instant::now();
                    Box::pin(self.inbound(msg)).await?;
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if now >= expires {
                        return Err(End::TokenExpired);
                    }
                    if now >= next_check {
                        match Box::pin(self.state.auth.recheck(&self.identity)).await {
                            Err(AuthError::Revoked) => return Err(End::TokenRevoked),
                            // A store that does not answer now is asked again next time; the
                            // socket is not closed for the store's outage.
                            Ok(()) | Err(_) => next_check = now + check_every,
                        }
                    }
                    if now >= next_beat {
                        if self.last_heard.elapsed() >= heartbeat_timeout {
                            metrics::counter!("parkmate_heartbeat_timeouts_total").increment(1);
                            return Err(End::HeartbeatTimeout);
                        }
                        Box::pin(self.write([Message::Ping(bytes::Bytes::new())])).await?;
                        // Counted from now: a late tick delays the next one rather than bunching.
                        next_beat = now + heartbeat_interval;
                    }
                    timer.as_mut().reset(next_beat.min(expires).min(next_check));
                }
            }
        }
    }

    /// Says hello (with the unread count), then replays what the client missed when it gave
    /// `since`.
    async fn open(&mut self) -> Result<(), End> {
        // A resuming client's unread count and first replay page come from one store call, one
        // pooled connection, and a single statement when nothing was missed (a reconnect storm
        // pays per statement).
        let (greeting, first_page) = match self.since {
            Some(since) => {
                let (greeting, page) = self
                    .state
                    .store
                    .resume(self.viewer(), since, self.page_budget())
                    .await?;
                (greeting, Some(page))
            }
            None => (self.state.store.greeting(self.viewer()).await?, None),
        };
        let snapshot = greeting.unread;
        self.unread = snapshot.count;
        self.unread_as_of = snapshot.as_of;
        match self.since {
            // A `since` beyond anything stored (a client remembering another database) must not
            // silence the ids below it: resume from what this store actually has.
            Some(since) => {
                self.last_sent = since.min(snapshot.as_of);
                self.replay_floor = self.last_sent;
            }
            // Without `since` the client wants what happens from now on: live frames already
            // queued are still sent, but a broker resync must not replay its whole history.
            None => self.replay_floor = snapshot.as_of,
        }
        let hello = match self.dialect {
            Dialect::Native => ServerFrame::Hello {
                user_id: self.identity.user_id,
                role: self.identity.role,
                resume_from: self.since,
                newest_id: greeting.newest,
                unread_count: self.unread,
                heartbeat_ms: self.state.settings.ws.heartbeat_interval.as_millis() as u64,
                server_time: rfc3339((self.state.now)()),
            }
            .to_json()
            .into(),
            Dialect::Channels => Utf8Bytes::from_static(CHANNELS_GREETING),
        };
        let hello = vec![Message::Text(hello)];
        if first_page.is_some() {
            return self.catch_up(true, hello, first_page).await;
        }
        self.write(hello).await
    }

    /// Sends from the store everything after `last_sent`, page by page, after the frames already
    /// in `frames` (the greeting). The last page goes out in one write with those and, when
    /// `announce`, the `replayed` summary: a resuming client costs one write, not three (in a
    /// reconnect storm each write is also a wake-up on the client's side).
    async fn catch_up(
        &mut self,
        announce: bool,
        mut frames: Vec<Message>,
        mut first_page: Option<ReplayPage>,
    ) -> Result<(), End> {
        let mut count = 0u64;
        loop {
            let ReplayPage {
                notifications: page,
                more,
            } = match first_page.take() {
                Some(page) => page,
                None => {
                    let from = self.last_sent.max(self.replay_floor);
                    self.state
                        .store
                        .replay(self.viewer(), from, self.page_budget())
                        .await?
                }
            };
            for n in &page {
                frames.push(Message::Text(self.dialect.notification(n.frame()).into()));
                self.note_sent(n.id);
            }
            count += page.len() as u64;
            if !announce && !page.is_empty() && self.dialect == Dialect::Native {
                frames.push(self.unread_frame());
            }
            if !more {
                break;
            }
            // More pages follow: send this one before reading the next.
            self.write(std::mem::take(&mut frames)).await?;
        }
        metrics::counter!("parkmate_replayed_total").increment(count);
        if announce && self.dialect == Dialect::Native {
            let done = ServerFrame::Replayed {
                count,
                last_id: (count > 0).then_some(self.last_sent),
            };
            frames.push(Message::Text(done.to_json().into()));
            frames.push(self.unread_frame());
        }
        if !frames.is_empty() {
            self.write(frames).await?;
        }
        Ok(())
    }

    fn note_sent(&mut self, id: i64) {
        self.last_sent = id;
        if id > self.unread_as_of {
            self.unread += 1;
            self.unread_as_of = id;
        }
    }

    fn unread_frame(&self) -> Message {
        Message::Text(
            ServerFrame::UnreadCount { count: self.unread }
                .to_json()
                .into(),
        )
    }

    async fn deliver(&mut self, batch: Vec<Delivery>) -> Result<(), End> {
        let mut frames = Vec::with_capacity(batch.len() + 1);
        let mut count_changed = false;
        for d in batch {
            match d {
                Delivery::Notification { id, frame } => {
                    if id <= self.last_sent {
                        continue; // already replayed
                    }
                    let text = match self.dialect {
                        Dialect::Native => Utf8Bytes::try_from(frame).ok(),
                        // Rebuilt for this socket from the shared bytes: a parse per frame, paid
                        // only by sockets that asked for the original consumer's frames.
                        Dialect::Channels => {
                            NotificationFrame::channels_from_native(&frame).map(Utf8Bytes::from)
                        }
                    };
                    match text {
                        Some(text) => frames.push(Message::Text(text)),
                        None => continue, // frames are built from Rust strings; cannot happen
                    }
                    self.note_sent(id);
                    count_changed = true;
                }
                Delivery::ReadState { count, as_of } => {
                    if as_of >= self.last_sent {
                        self.unread = count;
                        self.unread_as_of = as_of;
                    } else {
                        // The count predates notifications this socket already counted: ask again.
                        let s = self.state.store.unread(self.viewer()).await?;
                        self.unread = s.count;
                        self.unread_as_of = s.as_of.max(self.last_sent);
                    }
                    count_changed = true;
                }
                Delivery::Resync => {
                    if !frames.is_empty() {
                        self.write(std::mem::take(&mut frames)).await?;
                    }
                    Box::pin(self.catch_up(false, Vec::new(), None)).await?;
                }
            }
        }
        if count_changed && self.dialect == Dialect::Native {
            frames.push(self.unread_frame());
        }
        if frames.is_empty() {
            return Ok(());
        }
        self.write(frames).await
    }

    async fn inbound(&mut self, msg: Message) -> Result<(), End> {
        if matches!(msg, Message::Text(_) | Message::Binary(_))
            && let Err(wait) = self.frames.try_take()
        {
            // Not run: answered, and counted with the invalid frames, so a client in a loop is
            // closed (4009) after ten refusals in a row instead of being served at any rate.
            self.invalid_in_a_row += 1;
            if self.invalid_in_a_row >= MAX_INVALID_FRAMES {
                return Err(End::ProtocolViolation);
            }
            let refusal = ServerFrame::Error {
                code: "rate_limited".into(),
                message: format!(
                    "more than {} frames; retry in {} ms",
                    self.state
                        .settings
                        .limits
                        .client_frames
                        .rate()
                        .map_or_else(String::new, |r| r.to_string()),
                    wait.as_millis().max(1)
                ),
            };
            return self.write([Message::Text(refusal.to_json().into())]).await;
        }
        let parsed = match msg {
            Message::Text(text) => ClientFrame::parse(text.as_str()),
            Message::Binary(_) => Err(FrameError::Binary),
            Message::Close(_) => return Err(End::PeerClosed),
            // tungstenite answers pings itself; a pong only proves the peer is alive.
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
        };
        let reply = match parsed {
            Ok(frame) => {
                self.invalid_in_a_row = 0;
                match frame {
                    ClientFrame::Ping {} => Some(ServerFrame::Pong),
                    ClientFrame::MarkRead { id } => {
                        match self.state.store.mark_read(self.viewer(), id).await {
                            Ok(s) => {
                                self.state
                                    .notifier
                                    .publish_read_state(self.identity.user_id, s)
                                    .await;
                                None
                            }
                            Err(StoreError::NotFound) => Some(ServerFrame::Error {
                                code: "not_found".into(),
                                message: format!("no notification {id} for you"),
                            }),
                            Err(e) => return Err(e.into()),
                        }
                    }
                    ClientFrame::Ack { id } => {
                        let now = (self.state.now)().timestamp_millis();
                        match self.state.store.mark_seen(self.viewer(), id, now).await {
                            Ok(event) => {
                                let event = crate::push::event_label(&event);
                                metrics::counter!("parkmate_acks_total", "event" => event)
                                    .increment(1);
                                None
                            }
                            Err(StoreError::NotFound) => Some(ServerFrame::Error {
                                code: "not_found".into(),
                                message: format!("no notification {id} for you"),
                            }),
                            Err(e) => return Err(e.into()),
                        }
                    }
                    ClientFrame::MarkAllRead {} => {
                        let s = self.state.store.mark_all_read(self.viewer()).await?;
                        self.state
                            .notifier
                            .publish_read_state(self.identity.user_id, s)
                            .await;
                        None
                    }
                }
            }
            Err(e) => {
                self.invalid_in_a_row += 1;
                if self.invalid_in_a_row >= MAX_INVALID_FRAMES {
                    return Err(End::ProtocolViolation);
                }
                Some(ServerFrame::Error {
                    code: e.code().into(),
                    message: e.to_string(),
                })
            }
        };
        match reply {
            Some(frame) => self.write([Message::Text(frame.to_json().into())]).await,
            None => Ok(()),
        }
    }

    /// Queues `frames` and flushes once, within the write deadline. `frames` are moved into the
    /// socket, not cloned: every socket's clone of a broadcast frame bumps the one reference
    /// count that all of them share.
    async fn write(&mut self, frames: impl IntoIterator<Item = Message>) -> Result<(), End> {
        let socket = &mut self.socket;
        let work = async {
            for f in frames {
                socket.feed(f).await?;
            }
            socket.flush().await
        };
        match timeout(self.state.settings.ws.write_timeout, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Unwritable),
            Err(_) => {
                metrics::counter!("parkmate_write_timeouts_total").increment(1);
                Err(End::Unwritable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::error::CapacityError;

    #[test]
    fn an_over_long_message_is_told_apart_by_its_type() {
        let too_long = tungstenite::Error::Capacity(CapacityError::MessageTooLong {
            size: 5000,
            max_size: 4096,
        });
        assert!(matches!(
            End::from_read(axum::Error::new(too_long)),
            End::TooBig
        ));
        for (violation, expected) in [
            (
                tungstenite::Error::Protocol(ProtocolError::UnmaskedFrameFromClient),
                CloseCode::ProtocolError,
            ),
            (
                tungstenite::Error::Protocol(ProtocolError::UnknownDataFrameType(3)),
                CloseCode::ProtocolError,
            ),
            (
                tungstenite::Error::Utf8("invalid utf-8".into()),
                CloseCode::InvalidPayload,
            ),
        ] {
            let end = End::from_read(axum::Error::new(violation));
            let code = match end {
                End::ProtocolError => CloseCode::ProtocolError,
                End::InvalidPayload => CloseCode::InvalidPayload,
                other => panic!("{other:?}"),
            };
            assert_eq!(code, expected);
        }
        for other in [
            tungstenite::Error::ConnectionClosed,
            tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake),
        ] {
            assert!(matches!(
                End::from_read(axum::Error::new(other)),
                End::PeerGone
            ));
        }
        let io = std::io::Error::other("Capacity exceeded, says the text");
        assert!(matches!(
            End::from_read(axum::Error::new(io)),
            End::PeerGone
        ));
    }
}
