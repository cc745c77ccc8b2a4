//! Redis pub/sub between the nodes of a cluster.
//!
//! Every node publishes to, and subscribes to, one channel: `<prefix>:bus`. The prefix is
//! configurable so several clusters (or parallel test runs) can share one Redis without hearing
//! each other. A node hears its own events through its subscription too, so local and remote
//! delivery take the same path and nothing is delivered twice.
//!
//! Two connections per node, because a subscribed RESP2 connection can do nothing else:
//! - **publishing** goes through a [`ConnectionManager`], which reconnects by itself. While Redis
//!   is down a publish fails with [`BrokerError::Unavailable`] after a short timeout; the
//!   dispatcher then retries without moving its cursor, so nothing stored is skipped.
//! - **subscribing** is a background task that forwards every event to the [`BusSink`]. When the
//!   connection drops (or stops answering pings) it reconnects with capped exponential backoff,
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
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use parkmate_protocol::{Audience, Role};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Broker, BrokerError, BusEvent, BusSink, Published};

/// How long connecting, or one command, may take before Redis counts as unavailable. Short, so a
/// publish during an outage fails fast and the dispatcher retries instead of hanging.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// First pause before resubscribing after the subscription dropped; doubles on each failure...
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// ...up to this: a restarted Redis is noticed within about a second, without hammering a dead one.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The subscriber pings this often: a connection that silently died (no FIN, e.g. a network
/// partition) is otherwise never noticed on a quiet channel.
const PING_INTERVAL: Duration = Duration::from_secs(5);

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

/// Where a cluster's events travel: `<prefix>:bus`.
pub fn channel_name(prefix: &str) -> String {
    format!("{prefix}:bus")
}

/// The broker of a cluster node. Cheap to share behind an `Arc`.
pub struct RedisBroker {
    publisher: ConnectionManager,
    channel: String,
}

impl RedisBroker {
    /// Connects, subscribes and starts the subscriber task on `tracker` (it stops when `shutdown`
    /// is cancelled). Fails when Redis is unreachable now: a node must not start without its
    /// cluster's fan-out.
    pub async fn connect(
        url: &str,
        prefix: &str,
        sink: Arc<dyn BusSink>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<RedisBroker, BrokerError> {
        Self::connect_client(client(url, None)?, prefix, sink, tracker, shutdown).await
    }

    /// [`RedisBroker::connect`] with a client built by [`client`] (TLS with a CA of its own).
    pub async fn connect_client(
        client: ::redis::Client,
        prefix: &str,
        sink: Arc<dyn BusSink>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<RedisBroker, BrokerError> {
        let channel = channel_name(prefix);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(MAX_BACKOFF);
        let publisher = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(unavailable)?;
        let subscription = subscribe(&client, &channel).await?;
        tracker.spawn(subscriber(
            client,
            channel.clone(),
            subscription,
            sink,
            shutdown,
        ));
        Ok(RedisBroker { publisher, channel })
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, event: BusEvent) -> Result<(), BrokerError> {
        let payload = encode(&event);
        let mut conn = self.publisher.clone();
        ::redis::cmd("PUBLISH")
            .arg(&self.channel)
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

async fn subscribe(
    client: &::redis::Client,
    channel: &str,
) -> Result<(PubSubSink, PubSubStream), BrokerError> {
    let connect = async {
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        sink.subscribe(channel).await?;
        Ok::<_, ::redis::RedisError>((sink, stream))
    };
    match tokio::time::timeout(COMMAND_TIMEOUT, connect).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(unavailable("subscribe timed out")),
    }
}

/// Forwards every event to `sink`; resubscribes by itself whenever the connection is lost.
async fn subscriber(
    client: ::redis::Client,
    channel: String,
    first: (PubSubSink, PubSubStream),
    sink: Arc<dyn BusSink>,
    shutdown: CancellationToken,
) {
    let mut current = Some(first);
    let mut backoff = MIN_BACKOFF;
    loop {
        let (mut pinger, mut stream) = match current.take() {
            Some(subscription) => subscription,
            None => match subscribe(&client, &channel).await {
                Ok(subscription) => {
                    tracing::info!(%channel, "resubscribed to redis; resyncing sockets from the store");
                    backoff = MIN_BACKOFF;
                    // Subscribed again: from here on nothing is missed, so whatever was published
                    // while we were away can now be caught up from the store without a gap.
                    sink.resync();
                    subscription
                }
                Err(e) => {
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
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                msg = stream.next() => match msg {
                    Some(msg) => match decode(msg.get_payload_bytes()) {
                        Some(event) => sink.deliver(&event),
                        None => tracing::warn!(%channel, "undecodable bus message dropped"),
                    },
                    None => break,
                },
                _ = ping.tick() => {
                    let alive = tokio::time::timeout(COMMAND_TIMEOUT, pinger.ping::<::redis::Value>()).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        tracing::warn!(%channel, "lost the redis subscription; reconnecting");
    }
}

#[derive(Serialize, Deserialize)]
struct NotificationHeader {
    id: i64,
    aud: String,
}

#[derive(Serialize, Deserialize)]
struct ReadStateWire {
    user_id: i64,
    count: i64,
    as_of: i64,
}

fn audience_to_wire(a: Audience) -> String {
    match a {
        Audience::User(id) => format!("user:{id}"),
        Audience::Role(r) => format!("role:{}", r.as_str()),
        Audience::All => "all".to_owned(),
    }
}

fn audience_from_wire(s: &str) -> Option<Audience> {
    match s.split_once(':') {
        Some(("user", id)) => id.parse().ok().map(Audience::User),
        Some(("role", r)) => r.parse::<Role>().ok().map(Audience::Role),
        None if s == "all" => Some(Audience::All),
        _ => None,
    }
}

/// Encodes an event for the bus (once per publish, whatever the number of nodes).
pub fn encode(event: &BusEvent) -> Bytes {
    match event {
        BusEvent::Notification(p) => {
            let header = NotificationHeader {
                id: p.id,
                aud: audience_to_wire(p.audience),
            };
            let header = serde_json::to_vec(&header).unwrap_or_default();
            let mut out = Vec::with_capacity(1 + header.len() + 1 + p.frame.len());
            out.push(b'N');
            out.extend_from_slice(&header);
            // Compact JSON never contains a raw newline, so the first one ends the header.
            out.push(b'\n');
            out.extend_from_slice(&p.frame);
            Bytes::from(out)
        }
        BusEvent::ReadState {
            user_id,
            count,
            as_of,
        } => {
            let mut out = vec![b'R'];
            let wire = ReadStateWire {
                user_id: *user_id,
                count: *count,
                as_of: *as_of,
            };
            out.extend_from_slice(&serde_json::to_vec(&wire).unwrap_or_default());
            Bytes::from(out)
        }
    }
}

/// Decodes a bus message; `None` for anything malformed (logged and dropped by the caller).
pub fn decode(payload: &[u8]) -> Option<BusEvent> {
    let (&tag, rest) = payload.split_first()?;
    match tag {
        b'N' => {
            let split = rest.iter().position(|&b| b == b'\n')?;
            let header: NotificationHeader = serde_json::from_slice(&rest[..split]).ok()?;
            Some(BusEvent::Notification(Arc::new(Published {
                id: header.id,
                audience: audience_from_wire(&header.aud)?,
                frame: Bytes::copy_from_slice(&rest[split + 1..]),
            })))
        }
        b'R' => {
            let wire: ReadStateWire = serde_json::from_slice(rest).ok()?;
            Some(BusEvent::ReadState {
                user_id: wire.user_id,
                count: wire.count,
                as_of: wire.as_of,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_frames_travel_as_is() {
        let frame = Bytes::from_static(br#"{"type":"notification","id":7,"message":"a\nb"}"#);
        for audience in [
            Audience::User(42),
            Audience::Role(Role::Owner),
            Audience::All,
        ] {
            let event = BusEvent::Notification(Arc::new(Published {
                id: 7,
                audience,
                frame: frame.clone(),
            }));
            assert_eq!(decode(&encode(&event)), Some(event));
        }
        let event = BusEvent::ReadState {
            user_id: 1,
            count: 2,
            as_of: 3,
        };
        assert_eq!(decode(&encode(&event)), Some(event));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"Xjunk"), None);
        assert_eq!(decode(b"N{\"id\":1,\"aud\":\"nobody\"}\n{}"), None);
    }
}
