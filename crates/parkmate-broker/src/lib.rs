//! The broker carries already-committed events from the node that published them to every node's
//! local hub (through a [`BusSink`]). It is at-most-once by contract: the store is the source of
//! truth, and a sink told to [`BusSink::resync`] makes its sockets catch up from the store.
//!
//! The in-process [`MemoryBroker`] is the embedded default: one node, no network, delivery is a
//! function call.
//! [`redis::RedisBroker`] fans events out between the nodes of a cluster over Redis pub/sub, a
//! user's events only to the nodes holding that user's sockets.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parkmate_protocol::Audience;

pub mod redis;

/// A stored notification ready to go on the wire: serialised once, shared by every recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub id: i64,
    pub audience: Audience,
    /// The `notification` frame as JSON text.
    pub frame: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BusEvent {
    Notification(Arc<Published>),
    /// A user's unread count changed; their sockets on every node update their badge.
    ReadState {
        user_id: i64,
        count: i64,
        as_of: i64,
    },
}

/// Where a node's broker subscription hands events: the hub, behind a little glue.
pub trait BusSink: Send + Sync + 'static {
    fn deliver(&self, event: &BusEvent);
    /// Events may have been missed (the broker reconnected): sockets must catch up from the store.
    fn resync(&self);
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Sends an event to every node that holds its audience (every node for a role or everyone),
    /// this one included.
    async fn publish(&self, event: BusEvent) -> Result<(), BrokerError>;
}

/// One node: publishing is handing the event to the local sink.
pub struct MemoryBroker {
    sink: Arc<dyn BusSink>,
}

impl MemoryBroker {
    pub fn new(sink: Arc<dyn BusSink>) -> MemoryBroker {
        MemoryBroker { sink }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, event: BusEvent) -> Result<(), BrokerError> {
        self.sink.deliver(&event);
        Ok(())
    }
}
