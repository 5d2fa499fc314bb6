//! The upstream MQTT connection: drains the outbox in order with QoS 1, removing each message
//! only once the broker acknowledged it, and receives the orders addressed to the gateway.
//!
//! The connection itself is `neosens_runtime::mqtt::acked` (the MQTT link's acknowledged-publish
//! mode, shared options, back-off and re-subscription); this module plugs the outbox into it.

use std::sync::Arc;
use std::time::Duration;

use neosens_runtime::mqtt::acked::{self, AckedStore};
use neosens_runtime::mqtt::{BrokerUrl, LinkConfig};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::outbox::{Outbox, OutboxError};

/// Link counters, for metrics and the gateway's status.
pub type UplinkStats = acked::AckedStats;

/// A message received from the broker (an order).
pub type Inbound = neosens_runtime::mqtt::Message;

/// Largest packet either way: orders are small, relayed statuses at most a few kB.
const MAX_PACKET: usize = 256 * 1024;

/// How to connect.
#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// The broker, with the gateway's login.
    pub url: BrokerUrl,
    /// Client id.
    pub client_id: String,
    /// Filters to subscribe to after each connection (orders).
    pub subscriptions: Vec<String>,
}

impl AckedStore for Outbox {
    type Error = OutboxError;

    fn read_each(
        &self,
        after: u64,
        limit: usize,
        each: &mut dyn FnMut(u64, &str, &[u8]) -> bool,
    ) -> Result<(), OutboxError> {
        self.peek_each(after, limit, |id, topic, payload, _| each(id, topic, payload))
    }

    fn remove(&self, ids: &[u64]) -> Result<(), OutboxError> {
        self.acknowledge(ids)
    }

    fn remove_in_memory(&self, ids: &mut Vec<u64>) {
        self.acknowledge_in_memory(ids);
    }

    fn settle(&self) -> Result<bool, OutboxError> {
        Outbox::settle(self)
    }

    fn last_id(&self) -> u64 {
        Outbox::last_id(self)
    }

    fn stored(&self) -> &Notify {
        &self.ready
    }
}

/// Asks the uplink to subscribe to more filters (now, and after each reconnection): the
/// gateway learns its own command topic only after its first sync, and the broker's ACLs allow
/// no wider filter.
#[derive(Debug, Clone)]
pub struct Subscriber(pub(crate) mpsc::Sender<String>);

impl Subscriber {
    /// A subscriber and the receiving end to give [`run`].
    pub fn channel() -> (Self, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(16);
        (Subscriber(tx), rx)
    }

    /// Subscribes to `filter` (QoS 1).
    pub fn subscribe(&self, filter: &str) {
        let _ = self.0.try_send(filter.to_owned());
    }
}

/// Runs the uplink until `shutdown`.
pub async fn run(
    config: UplinkConfig,
    outbox: Outbox,
    stats: Arc<UplinkStats>,
    inbound: mpsc::Sender<Inbound>,
    more_subscriptions: mpsc::Receiver<String>,
    shutdown: CancellationToken,
) {
    let mut link = LinkConfig::new(config.url, &config.client_id);
    link.keep_alive = Duration::from_secs(30);
    link.max_incoming_packet = MAX_PACKET;
    let stopping = outbox.clone();
    acked::run(link, config.subscriptions, outbox, stats, inbound, more_subscriptions, shutdown).await;
    // A clean stop writes the journal's tail into redb: nothing is replayed (or sent twice)
    // at the next start.
    if let Err(e) = neosens_runtime::blocking::run(move || stopping.checkpoint()).await {
        tracing::warn!(error = %e, "outbox checkpoint at stop; the journal is replayed at the next start");
    }
}
