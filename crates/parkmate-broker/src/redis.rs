//! Redis pub/sub between the nodes of a cluster.
//!
//! ## Routing: a unicast crosses only to the nodes that hold its recipient
//!
//! - `<prefix>:u:<user_id>` carries one user's notifications and read-state changes. A node
//!   subscribes to it while it holds a socket of that user: the hub tells [`Interest`] when the
//!   node's first socket of a user arrives and when its last one leaves.
//! - `<prefix>:bus` carries role and broadcast notifications. Every node subscribes: they concern
//!   (nearly) every node, and one `PUBLISH` reaches them all.
//!
//! So what a notification costs the cluster between nodes is the number of nodes holding its
//! recipient, not the number of nodes (BENCHMARKS.md, "bus traffic"). The prefix is configurable so
//! several clusters (or parallel test runs) can share one Redis without hearing each other. A node
//! hears its own events through its subscriptions too, so local and remote delivery take the same
//! path and nothing is delivered twice.
//!
//! A channel per user rather than a fixed number of user shards: a node holding N users hears a
//! share 1 − e^(−N/S) of all unicasts with S shards, so 1,024 shards are nearly all subscribed on
//! every node at a few thousand users each (95 % at 3,000), and traffic is back to "every node
//! hears everything". A channel is a dictionary entry to Redis and a `PUBLISH` one lookup plus one
//! write per subscribed node; on a node it is one [`Interest`] entry per user held (~40 bytes) plus
//! redis-rs's record of the subscription.
//!
//! Plain `SUBSCRIBE`, all on one connection, rather than sharded pub/sub (`SSUBSCRIBE`): a socket
//! drops a live notification whose id is not above the last one it sent (the replay/live seam of
//! ARCHITECTURE.md, invariant 3), so a node must hear notifications in id order across a user's
//! channel and the shared one. Redis writes a connection's messages in the order it ran the
//! `PUBLISH`es, and the one dispatcher publishes in id order, so one connection keeps that order.
//! Sharded pub/sub pays off on a Redis Cluster, where shard channels live on different masters and
//! that order is lost; on one Redis it behaves like `SUBSCRIBE`.
//!
//! ## No gap, no duplicate when a user's first socket arrives
//!
//! A socket registers in the hub, then waits for [`Interest::ready`] before it reads the store.
//! `ready` resolves once Redis has confirmed this node's subscription to the user's channel (at
//! once if it already had): whatever was published before the confirmation was committed before
//! it, so the store read has it; whatever is published after reaches the hub, where the socket is
//! already registered; what arrives both ways is dropped by id. While the subscriber's connection
//! is down, `ready` resolves at once (waiting cannot help): the reconnection resubscribes every
//! user held, those that arrived meanwhile included, before it marks the connection up and calls
//! [`BusSink::resync`], so those sockets catch up after their channel is heard.
//!
//! A channel whose user left stays subscribed for [`LINGER`], so a page reload or a reconnect
//! storm does not thrash `SUBSCRIBE`/`UNSUBSCRIBE`; every [`PING_INTERVAL`] the subscriber drops
//! the channels that lingered that long.
//!
//! ## Connections
//!
//! Two per node, because a subscribed RESP2 connection can do nothing else:
//! - **publishing** goes through a [`ConnectionManager`], which reconnects by itself. While Redis
//!   is down a publish fails with [`BrokerError::Unavailable`] after a short timeout; the
//!   dispatcher then retries without moving its cursor, so nothing stored is skipped.
//! - **subscribing** is a background task that forwards every event to the [`BusSink`] and
//!   subscribes and unsubscribes user channels as [`Interest`] asks. When the connection drops (or
//!   stops answering pings, or a command times out) it reconnects with capped exponential backoff,
//!   resubscribes, and only then calls [`BusSink::resync`]: events published while it was away are
//!   gone from pub/sub (at-most-once), so every socket catches up from the store. Sockets stay open
//!   throughout.
//!
//! Credentials and TLS come with the URL ([`client`]): `redis://user:password@host` (AUTH, ACL
//! users included) and `rediss://` (TLS, verified against the system's roots or a CA given as
//! PEM), so neither the password nor the notifications need to cross a network in clear text.
//!
//! Wire format, one message per event, encoded once per publish:
//! - `N{"id":18,"aud":"user:42"}\n<frame>` — a notification; `<frame>` is the already serialised
//!   `notification` frame, carried as-is so no node serialises it again;
//! - `R{"user_id":42,"count":3,"as_of":18}` — a read-state change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use async_trait::async_trait;
use futures_util::StreamExt;
use parkmate_protocol::Audience;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod interest;
mod wire;

pub use interest::Interest;
pub use wire::{decode, encode};

use crate::{Broker, BrokerError, BusEvent, BusSink};

/// How long connecting, or one command, may take before Redis counts as unavailable. Short, so a
/// publish during an outage fails fast and the dispatcher retries instead of hanging, and a socket
/// waiting for its user's channel waits at most about this long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// First pause before resubscribing after the subscription dropped; doubles on each failure...
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// ...up to this: a restarted Redis is noticed within about a second, without hammering a dead one.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The subscriber pings this often (a connection that silently died, with no FIN, is otherwise
/// never noticed on a quiet channel), and drops the user channels that lingered past [`LINGER`].
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// How long a user's channel stays subscribed after this node's last socket of that user left:
/// long enough for a reload or a reconnect storm to come back to a channel still heard, short
/// enough that a user who moved to another node stops costing this one soon.
pub const LINGER: Duration = Duration::from_secs(30);
/// Channels per `SUBSCRIBE`/`UNSUBSCRIBE`: after a reconnect a node holding 18k users resubscribes
/// in 18 round trips, and no single command makes Redis answer more than this many confirmations.
const CHANNELS_PER_COMMAND: usize = 1000;

/// A Redis client for `url`: `redis://` or `rediss://` (TLS), with `user:password@` for AUTH.
/// `ca_pem` verifies a `rediss://` server instead of the system's roots (a private CA).
pub fn client(url: &str, ca_pem: Option<Vec<u8>>) -> Result<::redis::Client, BrokerError> {
    // rustls needs a process-wide crypto provider to build the TLS client; ring is the one this
    // workspace compiles (a second one installed first is fine too).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match ca_pem {
        None => ::redis::Client::open(url).map_err(unavailable),
        Some(root_cert) => ::redis::Client::build_with_tls(
            url,
            ::redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            },
        )
        .map_err(unavailable),
    }
}

/// Where role and broadcast notifications travel, heard by every node: `<prefix>:bus`.
pub fn channel_name(prefix: &str) -> String {
    format!("{prefix}:bus")
}

/// Where one user's notifications and read-state changes travel: `<prefix>:u:<user_id>`.
pub fn user_channel(prefix: &str, user_id: i64) -> String {
    format!("{prefix}:u:{user_id}")
}

/// The channel an event is published on.
fn route(prefix: &str, shared: &str, event: &BusEvent) -> String {
    match event {
        BusEvent::Notification(p) => match p.audience {
            Audience::User(user_id) => user_channel(prefix, user_id),
            // A lot's staff is resolved to user streams before publishing (the notifier's
            // dispatcher); one that was not would reach every node, like a role.
            Audience::Role(_) | Audience::Lot(_) | Audience::All => shared.to_owned(),
        },
        BusEvent::ReadState { user_id, .. } => user_channel(prefix, *user_id),
    }
}

/// The broker of a cluster node. Cheap to share behind an `Arc`.
pub struct RedisBroker {
    publisher: ConnectionManager,
    prefix: String,
    /// `<prefix>:bus`, built once.
    shared: String,
}

impl RedisBroker {
    /// Connects, subscribes and starts the subscriber task on `tracker` (it stops when `shutdown`
    /// is cancelled). `interest` is the table this node's hub feeds. Fails when Redis is
    /// unreachable now: a node must not start without its cluster's fan-out.
    pub async fn connect(
        url: &str,
        prefix: &str,
        interest: Arc<Interest>,
        sink: Arc<dyn BusSink>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<RedisBroker, BrokerError> {
        Self::connect_client(
            client(url, None)?,
            prefix,
            interest,
            sink,
            tracker,
            shutdown,
        )
        .await
    }

    /// [`RedisBroker::connect`] with a client built by [`client`] (TLS with a CA of its own).
    pub async fn connect_client(
        client: ::redis::Client,
        prefix: &str,
        interest: Arc<Interest>,
        sink: Arc<dyn BusSink>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<RedisBroker, BrokerError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(MAX_BACKOFF);
        let publisher = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(unavailable)?;
        let subscriber = Subscriber {
            client,
            prefix: prefix.to_owned(),
            shared: channel_name(prefix),
            interest,
            sink,
        };
        let connection = subscriber.subscribe().await?;
        tracker.spawn(subscriber.run(connection, shutdown));
        Ok(RedisBroker {
            publisher,
            prefix: prefix.to_owned(),
            shared: channel_name(prefix),
        })
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, event: BusEvent) -> Result<(), BrokerError> {
        let payload = encode(&event);
        let channel = route(&self.prefix, &self.shared, &event);
        let mut conn = self.publisher.clone();
        ::redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload.as_ref())
            .query_async::<i64>(&mut conn)
            .await
            .map(|_receivers| ())
            .map_err(unavailable)
    }
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(format!("redis: {e}"))
}

/// Runs `command` under [`COMMAND_TIMEOUT`].
async fn timed<T>(
    what: &str,
    command: impl Future<Output = ::redis::RedisResult<T>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(unavailable(format!("{what} timed out"))),
    }
}

/// Why the subscriber stopped serving a connection.
enum Stopped {
    Shutdown,
    Lost(BrokerError),
}

/// The subscribing side: one connection at a time, and what it needs to rebuild one.
struct Subscriber {
    client: ::redis::Client,
    prefix: String,
    shared: String,
    interest: Arc<Interest>,
    sink: Arc<dyn BusSink>,
}

impl Subscriber {
    /// A new connection subscribed to the shared channel and to every user held, the ones that
    /// arrive meanwhile included; the connection is marked up only once none is left.
    async fn subscribe(&self) -> Result<(PubSubSink, PubSubStream), BrokerError> {
        let (mut commands, stream) = timed("connect", self.client.get_async_pubsub())
            .await?
            .split();
        timed("subscribe", commands.subscribe(&self.shared)).await?;
        loop {
            let batch = self.interest.take_pending_or_mark_up();
            if batch.is_empty() {
                return Ok((commands, stream));
            }
            self.subscribe_users(&mut commands, &batch).await?;
        }
    }

    /// Subscribes to `batch`'s channels, telling [`Interest`] as each command is confirmed.
    async fn subscribe_users(
        &self,
        commands: &mut PubSubSink,
        batch: &[i64],
    ) -> Result<(), BrokerError> {
        for chunk in batch.chunks(CHANNELS_PER_COMMAND) {
            let channels: Vec<String> = chunk
                .iter()
                .map(|&u| user_channel(&self.prefix, u))
                .collect();
            timed("subscribe", commands.subscribe(channels)).await?;
            self.interest.confirmed(chunk);
        }
        Ok(())
    }

    async fn unsubscribe_users(
        &self,
        commands: &mut PubSubSink,
        batch: &[i64],
    ) -> Result<(), BrokerError> {
        for chunk in batch.chunks(CHANNELS_PER_COMMAND) {
            let channels: Vec<String> = chunk
                .iter()
                .map(|&u| user_channel(&self.prefix, u))
                .collect();
            timed("unsubscribe", commands.unsubscribe(channels)).await?;
            self.interest.unsubscribed(chunk);
        }
        Ok(())
    }

    /// Forwards every event to the sink and keeps the user channels in line with [`Interest`];
    /// reconnects by itself whenever the connection is lost.
    async fn run(self, first: (PubSubSink, PubSubStream), shutdown: CancellationToken) {
        let mut current = Some(first);
        let mut backoff = MIN_BACKOFF;
        loop {
            let connection = match current.take() {
                Some(connection) => connection,
                None => match self.subscribe().await {
                    Ok(connection) => {
                        tracing::info!(prefix = %self.prefix, "resubscribed to redis; resyncing sockets from the store");
                        backoff = MIN_BACKOFF;
                        // Subscribed again: from here on nothing is missed, so whatever was
                        // published while we were away can now be caught up from the store
                        // without a gap. Queued before any message of the new connection.
                        self.sink.resync();
                        connection
                    }
                    Err(e) => {
                        self.interest.lost();
                        tracing::warn!(error = %e, ?backoff, "redis subscription down, retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            let stopped = self.serve(connection, &shutdown).await;
            // Whatever stopped it, nothing is heard now: waiting sockets must not wait for it.
            self.interest.lost();
            match stopped {
                Stopped::Shutdown => return,
                Stopped::Lost(e) => {
                    tracing::warn!(error = %e, prefix = %self.prefix, "lost the redis subscription; reconnecting");
                }
            }
        }
    }

    async fn serve(
        &self,
        (mut commands, mut stream): (PubSubSink, PubSubStream),
        shutdown: &CancellationToken,
    ) -> Stopped {
        // Every message this node takes off Redis, whatever its channel: the cluster's cost per
        // notification is this, summed over the nodes (BENCHMARKS.md, "bus traffic").
        let received = metrics::counter!("parkmate_bus_messages_received_total");
        // Also the sweep of lingering channels, so at least as often as they may linger.
        let mut ping = tokio::time::interval(PING_INTERVAL.min(self.interest.linger));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        loop {
            // Subscribing and unsubscribing are awaited here, not raced against the stream: the
            // stream keeps what arrives meanwhile, in order.
            let result = tokio::select! {
                _ = shutdown.cancelled() => return Stopped::Shutdown,
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        return Stopped::Lost(unavailable("the subscription connection closed"));
                    };
                    received.increment(1);
                    match decode(msg.get_payload_bytes()) {
                        Some(event) => self.sink.deliver(&event),
                        None => tracing::warn!(channel = %msg.get_channel_name(), "undecodable bus message dropped"),
                    }
                    Ok(())
                }
                _ = self.interest.wake.notified() => {
                    let batch = self.interest.take_pending();
                    self.subscribe_users(&mut commands, &batch).await
                }
                _ = ping.tick() => {
                    match timed("ping", commands.ping::<::redis::Value>()).await {
                        Ok(_) => {
                            let gone = self.interest.take_lingering(Instant::now());
                            self.unsubscribe_users(&mut commands, &gone).await
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = result {
                return Stopped::Lost(e);
            }
        }
    }
}
