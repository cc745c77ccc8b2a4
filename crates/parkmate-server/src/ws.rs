//! The socket: `GET /ws/notifications/{user_id}/`.
//!
//! Handshake: authenticate (sub-protocol `bearer.<jwt>`, `Authorization`, or `?token=`), check the
//! path's user is the token's, check the browser `Origin`, take a connection slot — or refuse with
//! an HTTP status and a JSON body. Then one task per socket runs [`Connection::run`]:
//!
//! 1. subscribe to the hub **first**, so nothing published from now on is missed (in a cluster,
//!    once the node hears the user's Redis channel: [`Subscription::ready`]);
//! 2. snapshot the unread count, say `hello`;
//! 3. if the client gave `since`, replay from the store everything after it, page by page;
//! 4. then forward live deliveries, skipping any id already sent — the replay/live seam has neither
//!    gap (subscribed before the replay query) nor duplicate (ids are only ever sent increasing).
//!
//! Queued frames are written together and flushed once (one syscall for a burst); every write has a
//! deadline, so a peer that stops reading cannot pin the task.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use parkmate_auth::{ApiError, Identity, now_secs};
use parkmate_hub::{Delivery, Subscription};
use parkmate_protocol::{
    BEARER_PROTOCOL_PREFIX, ClientFrame, CloseCode, FrameError, SUBPROTOCOL, ServerFrame, Viewer,
};
use parkmate_store::{StoreError, StoredNotification, rfc3339};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, sleep_until, timeout};

use crate::state::AppState;

/// Most queued deliveries written before one flush: bounds the latency a big burst adds for the
/// first frame, while still coalescing a broadcast storm into few writes.
const MAX_COALESCE: usize = 64;
/// Replay page size: one store query per this many missed notifications.
const REPLAY_PAGE: u32 = 500;
/// Invalid frames in a row after which the client is considered broken (4009).
const MAX_INVALID_FRAMES: u32 = 10;
/// How long a goodbye (close frame) may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

fn refuse(reason: &'static str, err: ApiError) -> Response {
    metrics::counter!("parkmate_handshake_refusals_total", "reason" => reason).increment(1);
    err.into_response()
}

/// The token a client offered: sub-protocol `bearer.<jwt>`, then `Authorization`, then `?token=`.
fn offered_token<'a>(
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
) -> Option<&'a str> {
    let from_protocol = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(BEARER_PROTOCOL_PREFIX));
    let from_header = || {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
    };
    from_protocol
        .or_else(from_header)
        .or_else(|| query.get("token").map(String::as_str))
        .filter(|t| !t.is_empty())
}

/// Same-origin, or listed in `allowed_origins`. Non-browser clients send no `Origin` and pass.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if state.settings.allowed_origins.iter().any(|o| o == origin) {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host))
}

pub async fn handshake(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return refuse(
                "not_websocket",
                ApiError::new(e.status(), "not_websocket", e.body_text()),
            );
        }
    };
    let Some(token) = offered_token(&headers, &query) else {
        return refuse(
            "missing_token",
            ApiError::unauthorized("missing_token", "a token is required"),
        );
    };
    let identity = match state.keys.verify(token) {
        Ok(id) => id,
        Err(e) => {
            return refuse(
                "invalid_token",
                ApiError::unauthorized("invalid_token", e.to_string()),
            );
        }
    };
    let Ok(path_user) = user_id.parse::<i64>() else {
        return refuse(
            "invalid_user_id",
            ApiError::bad_request("invalid_user_id", "user id must be an integer"),
        );
    };
    if path_user != identity.user_id {
        return refuse(
            "forbidden",
            ApiError::forbidden("this token may not listen to that user"),
        );
    }
    if !origin_allowed(&state, &headers) {
        return refuse(
            "origin",
            ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "origin not allowed",
            ),
        );
    }
    let since = match query.get("since").map(|s| s.parse::<i64>()) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => {
            return refuse(
                "invalid_since",
                ApiError::bad_request("invalid_since", "since must be a non-negative integer"),
            );
        }
    };
    let Ok(permit) = state.connection_slots.clone().try_acquire_owned() else {
        return refuse(
            "full",
            ApiError::unavailable("too_many_connections", "this node is full, retry later"),
        );
    };

    let s = &state.settings;
    let upgrade = upgrade
        .protocols([SUBPROTOCOL])
        .read_buffer_size(s.read_buffer_bytes)
        // Frames are coalesced in this buffer and written on flush; above it they go out early.
        .write_buffer_size(16 * 1024)
        .max_message_size(s.max_frame_bytes)
        .max_frame_size(s.max_frame_bytes);
    let tracker = state.tracker.clone();
    upgrade.on_upgrade(move |socket| {
        // A task of its own rather than running inside axum's upgrade task: that task's future
        // also keeps the upgrade's captures (~1 KiB) for as long as the socket lives.
        tracker.spawn(Connection::new(state, socket, identity, since, permit).run());
        std::future::ready(())
    })
}

/// One socket's state. Lives in the socket's task only.
struct Connection {
    state: AppState,
    socket: WebSocket,
    identity: Identity,
    since: Option<i64>,
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
    _slot: OwnedSemaphorePermit,
}

/// Why the loop ended, and what to tell the peer.
enum End {
    Close(CloseCode),
    /// The peer is gone or cannot be written to: no goodbye.
    Drop,
}

impl Connection {
    fn new(
        state: AppState,
        socket: WebSocket,
        identity: Identity,
        since: Option<i64>,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        Connection {
            state,
            socket,
            identity,
            since,
            last_sent: since.unwrap_or(0),
            unread: 0,
            unread_as_of: 0,
            replay_floor: 0,
            invalid_in_a_row: 0,
            last_heard: Instant::now(),
            _slot: slot,
        }
    }

    fn viewer(&self) -> Viewer {
        self.identity.viewer()
    }

    async fn run(mut self) {
        let mut sub = self
            .state
            .hub
            .subscribe(self.identity.user_id, self.identity.role);
        let end = match self.serve(&mut sub).await {
            Ok(end) => end,
            Err(e) => {
                tracing::warn!(error = ?e, user = self.identity.user_id, "socket failed");
                End::Close(CloseCode::InternalError)
            }
        };
        drop(sub);
        if let End::Close(code) = end {
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
    }

    async fn serve(&mut self, sub: &mut Subscription) -> Result<End, StoreError> {
        // In a cluster, not before this node hears the user's channel (invariant 3).
        sub.ready().await;
        // Boxed here and below: the rare, large futures (the greeting and replay, client frames
        // that touch the store) would otherwise be laid out inside this task's future and be
        // carried by every idle socket for its whole life (BENCHMARKS.md, idle memory).
        if let Err(end) = Box::pin(self.open()).await? {
            return Ok(end);
        }

        let heartbeat_interval = self.state.settings.heartbeat_interval;
        let heartbeat_timeout = self.state.settings.heartbeat_timeout;
        let shutdown = self.state.shutdown.clone();
        let expires = Instant::now()
            + Duration::from_secs(self.identity.expires_at.saturating_sub(now_secs()));
        let mut next_beat = Instant::now() + heartbeat_interval;
        // Built once and polled by reference: re-creating them on every wake-up registered
        // fresh waiters and a fresh timer per delivery, which showed at the top of the
        // broadcast profile (BENCHMARKS.md). One timer serves both the heartbeat and the
        // token's expiry: a timer entry per socket is memory every idle socket carries.
        let slow = sub.slow.clone();
        let stopping = shutdown.cancelled();
        let too_slow = slow.cancelled();
        let timer = sleep_until(next_beat.min(expires));
        tokio::pin!(stopping, too_slow, timer);

        loop {
            tokio::select! {
                biased;
                _ = &mut stopping => return Ok(End::Close(CloseCode::ServiceRestart)),
                _ = &mut too_slow => return Ok(End::Close(CloseCode::SlowConsumer)),
                delivery = sub.recv() => {
                    let Some(first) = delivery else { return Ok(End::Close(CloseCode::InternalError)) };
                    let mut batch = vec![first];
                    while batch.len() < MAX_COALESCE {
                        match sub.try_recv() {
                            Some(d) => batch.push(d),
                            None => break,
                        }
                    }
                    if let Err(end) = Box::pin(self.deliver(batch)).await? {
                        return Ok(end);
                    }
                }
                inbound = self.socket.recv() => {
                    match inbound {
                        None => return Ok(End::Drop),
                        Some(Err(e)) => {
                            // tungstenite reports an over-long message as a capacity error.
                            let too_big = format!("{e:?}").contains("Capacity");
                            return Ok(if too_big { End::Close(CloseCode::TooBig) } else { End::Drop });
                        }
                        Some(Ok(msg)) => {
                            self.last_heard = Instant::now();
                            if let Err(end) = Box::pin(self.inbound(msg)).await? {
                                return Ok(end);
                            }
                        }
                    }
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if now >= expires {
                        return Ok(End::Close(CloseCode::TokenExpired));
                    }
                    if now >= next_beat {
                        if self.last_heard.elapsed() >= heartbeat_timeout {
                            metrics::counter!("parkmate_heartbeat_timeouts_total").increment(1);
                            return Ok(End::Close(CloseCode::HeartbeatTimeout));
                        }
                        if let Err(end) = Box::pin(self.write(&[Message::Ping(bytes::Bytes::new())])).await {
                            return Ok(end);
                        }
                        // Counted from now: a late tick delays the next one rather than bunching.
                        next_beat = now + heartbeat_interval;
                    }
                    timer.as_mut().reset(next_beat.min(expires));
                }
            }
        }
    }

    /// Says hello (with the unread count), then replays what the client missed when it gave
    /// `since`.
    async fn open(&mut self) -> Result<Result<(), End>, StoreError> {
        // A resuming client's unread count and first replay page come from one store call (one
        // statement on SQLite): a reconnect storm pays per round trip.
        let (snapshot, first_page) = match self.since {
            Some(since) => {
                let (snapshot, page) = self
                    .state
                    .store
                    .resume(self.viewer(), since, REPLAY_PAGE)
                    .await?;
                (snapshot, Some(page))
            }
            None => (self.state.store.unread(self.viewer()).await?, None),
        };
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
        let hello = ServerFrame::Hello {
            user_id: self.identity.user_id,
            role: self.identity.role,
            resume_from: self.since,
            unread_count: self.unread,
            heartbeat_ms: self.state.settings.heartbeat_interval.as_millis() as u64,
            server_time: rfc3339((self.state.now)()),
        };
        let hello = vec![Message::Text(hello.to_json().into())];
        if first_page.is_some() {
            return self.catch_up(true, hello, first_page).await;
        }
        Ok(self.write(&hello).await)
    }

    /// Sends from the store everything after `last_sent`, page by page, after the frames already
    /// in `frames` (the greeting). The last page goes out in one write with those and, when
    /// `announce`, the `replayed` summary: a resuming client costs one write, not three (in a
    /// reconnect storm each write is also a wake-up on the client's side).
    async fn catch_up(
        &mut self,
        announce: bool,
        mut frames: Vec<Message>,
        mut first_page: Option<Vec<StoredNotification>>,
    ) -> Result<Result<(), End>, StoreError> {
        let mut count = 0u64;
        loop {
            let page = match first_page.take() {
                Some(page) => page,
                None => {
                    let from = self.last_sent.max(self.replay_floor);
                    self.state
                        .store
                        .replay(self.viewer(), from, REPLAY_PAGE)
                        .await?
                }
            };
            let full = page.len() == REPLAY_PAGE as usize;
            for n in &page {
                frames.push(Message::Text(
                    ServerFrame::Notification(n.frame()).to_json().into(),
                ));
                self.note_sent(n.id);
            }
            count += page.len() as u64;
            if !announce && !page.is_empty() {
                frames.push(self.unread_frame());
            }
            if !full {
                break;
            }
            // More pages follow: send this one before reading the next.
            if let Err(end) = self.write(&frames).await {
                return Ok(Err(end));
            }
            frames.clear();
        }
        metrics::counter!("parkmate_replayed_total").increment(count);
        if announce {
            let done = ServerFrame::Replayed {
                count,
                last_id: (count > 0).then_some(self.last_sent),
            };
            frames.push(Message::Text(done.to_json().into()));
            frames.push(self.unread_frame());
        }
        if !frames.is_empty()
            && let Err(end) = self.write(&frames).await
        {
            return Ok(Err(end));
        }
        Ok(Ok(()))
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

    async fn deliver(&mut self, batch: Vec<Delivery>) -> Result<Result<(), End>, StoreError> {
        let mut frames = Vec::with_capacity(batch.len() + 1);
        let mut count_changed = false;
        for d in batch {
            match d {
                Delivery::Notification { id, frame } => {
                    if id <= self.last_sent {
                        continue; // already replayed
                    }
                    match Utf8Bytes::try_from(frame) {
                        Ok(text) => frames.push(Message::Text(text)),
                        Err(_) => continue, // frames are built from Rust strings; cannot happen
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
                    if !frames.is_empty()
                        && let Err(end) = self.write(&std::mem::take(&mut frames)).await
                    {
                        return Ok(Err(end));
                    }
                    if let Err(end) = Box::pin(self.catch_up(false, Vec::new(), None)).await? {
                        return Ok(Err(end));
                    }
                }
            }
        }
        if count_changed {
            frames.push(self.unread_frame());
        }
        if frames.is_empty() {
            return Ok(Ok(()));
        }
        Ok(self.write(&frames).await)
    }

    async fn inbound(&mut self, msg: Message) -> Result<Result<(), End>, StoreError> {
        let parsed = match msg {
            Message::Text(text) => ClientFrame::parse(text.as_str()),
            Message::Binary(_) => Err(FrameError::Binary),
            Message::Close(_) => return Ok(Err(End::Close(CloseCode::Normal))),
            // tungstenite answers pings itself; a pong only proves the peer is alive.
            Message::Ping(_) | Message::Pong(_) => return Ok(Ok(())),
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
                            Err(e) => return Err(e),
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
                    return Ok(Err(End::Close(CloseCode::ProtocolViolation)));
                }
                Some(ServerFrame::Error {
                    code: e.code().into(),
                    message: e.to_string(),
                })
            }
        };
        match reply {
            Some(frame) => Ok(self.write(&[Message::Text(frame.to_json().into())]).await),
            None => Ok(Ok(())),
        }
    }

    /// Queues `frames` and flushes once, within the write deadline.
    async fn write(&mut self, frames: &[Message]) -> Result<(), End> {
        let socket = &mut self.socket;
        let work = async {
            for f in frames {
                socket.feed(f.clone()).await?;
            }
            socket.flush().await
        };
        match timeout(self.state.settings.write_timeout, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Drop),
            Err(_) => {
                metrics::counter!("parkmate_write_timeouts_total").increment(1);
                Err(End::Drop)
            }
        }
    }
}
