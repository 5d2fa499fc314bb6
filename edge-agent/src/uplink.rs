//! The upstream MQTT connection: drains the outbox in order with QoS 1, removing each message
//! only once the broker acknowledged it, and receives the orders addressed to the gateway.
//!
//! It owns its rumqttc event loop (rather than the shared link of `neosens_runtime::mqtt`)
//! because it must know which message each PUBACK acknowledges: publishes are requested in outbox
//! order, rumqttc numbers them in that order (`Outgoing::Publish(pkid)`), and the PUBACK names the
//! packet id. After a connection loss, whatever was not acknowledged is sent again from the
//! outbox, in order, over a clean session (rumqttc's own replay queue is dropped so that nothing
//! is sent twice by two mechanisms).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use neosens_runtime::backoff::Backoff;
use neosens_runtime::mqtt::BrokerUrl;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;

/// Messages in flight at once (under rumqttc's inflight limit, so packet ids never collide).
const WINDOW: usize = 64;

/// How often acknowledgements are written when they trickle in.
const ACK_FLUSH: Duration = Duration::from_millis(50);

/// Link counters, for metrics and the gateway's status.
#[derive(Debug, Default)]
pub struct UplinkStats {
    /// Whether the broker connection is up.
    pub connected: AtomicBool,
    /// Connections established.
    pub connects: AtomicU64,
    /// Connections lost or refused.
    pub disconnects: AtomicU64,
    /// Messages published (including sends again after a loss).
    pub published: AtomicU64,
}

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

/// A message received from the broker.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: bytes::Bytes,
}

/// Runs the uplink until `shutdown`.
pub async fn run(
    config: UplinkConfig,
    outbox: Outbox,
    stats: Arc<UplinkStats>,
    inbound: mpsc::Sender<Inbound>,
    mut more_subscriptions: mpsc::Receiver<String>,
    shutdown: CancellationToken,
) {
    let mut subscriptions = config.subscriptions.clone();
    let mut options = MqttOptions::new(&config.client_id, &config.url.host, config.url.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    options.set_inflight(u16::try_from(WINDOW * 2).unwrap_or(u16::MAX));
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    if let Some((user, pass)) = &config.url.credentials {
        options.set_credentials(user, pass);
    }
    if let Some(tls) = config.url.tls_config() {
        options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
    }
    let (client, mut eventloop) = AsyncClient::new(options, WINDOW * 4);
    let broker = format!("{}:{}", config.url.host, config.url.port);
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    // Requested, waiting for a packet id / for a PUBACK; the highest id requested.
    let mut unassigned: VecDeque<u64> = VecDeque::new();
    let mut by_pkid: HashMap<u16, u64> = HashMap::new();
    let mut last_requested = 0u64;
    let mut acked: Vec<u64> = Vec::new();
    let mut flush = tokio::time::interval(ACK_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Keep the window full while connected.
        if stats.connected.load(Ordering::Relaxed) {
            let room = WINDOW.saturating_sub(unassigned.len() + by_pkid.len());
            if room > 0 {
                match outbox.peek(last_requested, room) {
                    Ok(batch) => {
                        for (id, record) in batch {
                            if client
                                .try_publish(&record.topic, QoS::AtLeastOnce, false, record.payload)
                                .is_err()
                            {
                                break;
                            }
                            unassigned.push_back(id);
                            last_requested = id;
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "reading the outbox"),
                }
            }
        }
        let idle = unassigned.is_empty() && by_pkid.is_empty();
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
            // New messages while idle.
            () = outbox.ready.notified(), if idle => continue,
            _ = flush.tick(), if !acked.is_empty() => {
                write_acks(&outbox, &mut acked).await;
                continue;
            }
            Some(filter) = more_subscriptions.recv() => {
                if !subscriptions.contains(&filter) {
                    if stats.connected.load(Ordering::Relaxed) {
                        let _ = client.try_subscribe(&filter, QoS::AtLeastOnce);
                    }
                    tracing::info!(filter = %filter, "subscribed to orders");
                    subscriptions.push(filter);
                }
                continue;
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                stats.connected.store(true, Ordering::Relaxed);
                stats.connects.fetch_add(1, Ordering::Relaxed);
                backoff.reset();
                tracing::info!(broker = %broker, "uplink up");
                for filter in &subscriptions {
                    let _ = client.try_subscribe(filter, QoS::AtLeastOnce);
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if let Some(id) = unassigned.pop_front() {
                    by_pkid.insert(pkid, id);
                    stats.published.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(id) = by_pkid.remove(&ack.pkid) {
                    acked.push(id);
                    if acked.len() >= WINDOW / 2 {
                        write_acks(&outbox, &mut acked).await;
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let message = Inbound { topic: p.topic, payload: p.payload };
                if inbound.try_send(message).is_err() {
                    tracing::warn!("order queue full: order dropped");
                }
            }
            Ok(_) => {}
            Err(err) => {
                if stats.connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(broker = %broker, error = %err, unacknowledged = by_pkid.len() + unassigned.len(), "uplink down; the outbox keeps everything");
                } else {
                    tracing::debug!(broker = %broker, error = %err, "uplink connection failed");
                }
                stats.disconnects.fetch_add(1, Ordering::Relaxed);
                // What was not acknowledged goes again from the outbox, in order.
                write_acks(&outbox, &mut acked).await;
                eventloop.pending.clear();
                unassigned.clear();
                by_pkid.clear();
                last_requested = 0;
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
    write_acks(&outbox, &mut acked).await;
    if stats.connected.swap(false, Ordering::Relaxed) {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    tracing::info!(broker = %broker, "uplink stopped");
}

/// Removes the acknowledged messages (one commit, on the blocking pool).
async fn write_acks(outbox: &Outbox, acked: &mut Vec<u64>) {
    if acked.is_empty() {
        return;
    }
    let (outbox, ids) = (outbox.clone(), std::mem::take(acked));
    if let Err(e) = neosens_runtime::blocking::run(move || outbox.acknowledge(&ids)).await {
        // Kept: they are sent again after the next reconnect, which is safe (ids dedupe).
        tracing::error!(error = %e, "removing acknowledged messages from the outbox");
    }
}
