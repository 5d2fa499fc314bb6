//! The MQTT link: a cloneable handle plus one event-loop task, around rumqttc.
//!
//! What rumqttc alone does not do, and this does (STYLE §10–§11, DESIGN.md §2):
//! - reconnect with exponential back-off and jitter (polling rumqttc's event loop after a refused
//!   connection retries at once, in a busy loop);
//! - re-subscribe on every ConnAck (subscriptions are lost with clean sessions, and a persisted
//!   session is no guarantee);
//! - a retained online/offline state: the last will says `offline`, the first message after each
//!   ConnAck says `online`, a clean stop says `offline` before disconnecting;
//! - bounded queues both ways: publishes wait when the outgoing queue is full; inbound messages
//!   wait for their consumer (back-pressure onto the broker's own queue, no silent drop here);
//! - connection state and reconnect counts for metrics and readiness.
//!
//! [`acked`] is the same link in acknowledged-publish mode: it drains a durable store in order
//! and removes each message once the broker's PUBACK names it ([`window`] keeps the accounts),
//! over a connection of its own that writes a window of publishes at once.

pub mod acked;
mod conn;
mod pace;
mod url;
pub mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::url::{BrokerUrl, UrlError};
pub use rumqttc::QoS as Qos;

/// The retained payload of a state topic while its client is connected.
pub const ONLINE: &str = "online";
/// The retained payload of a state topic once its client is gone: its last will, and what a
/// clean stop publishes.
pub const OFFLINE: &str = "offline";

/// How to reach and present ourselves to the broker.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The broker.
    pub url: BrokerUrl,
    /// Our client id.
    pub client_id: String,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Retained state topic: `offline` as last will, `online` after each ConnAck.
    pub state_topic: Option<String>,
    /// Capacity of the inbound and outbound queues.
    pub queue: usize,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// Largest packet accepted from the broker, in bytes. A bigger one ends the connection (the
    /// client library cannot skip it), and a retained one would end every reconnection too: set
    /// it above the broker's own limit (`max_packet_size`), so that what the broker lets through
    /// reaches the consumer, which drops and counts what it does not want.
    pub max_incoming_packet: usize,
}

impl LinkConfig {
    /// Defaults for `url` and `client_id`.
    pub fn new(url: BrokerUrl, client_id: &str) -> Self {
        LinkConfig {
            url,
            client_id: client_id.to_owned(),
            keep_alive: Duration::from_secs(30),
            state_topic: None,
            queue: 10_000,
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_incoming_packet: 1024 * 1024,
        }
    }
}

/// A message received on a subscription.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its payload (reference-counted bytes, cheap to clone).
    pub payload: bytes::Bytes,
    /// Sent because it was retained on the broker (at subscription time), not live.
    pub retain: bool,
}

/// Counters of the link, for metrics and readiness.
#[derive(Debug, Default)]
pub struct LinkStats {
    connected: AtomicBool,
    connects: AtomicU64,
    disconnects: AtomicU64,
    received: AtomicU64,
}

impl LinkStats {
    /// Whether the link is up now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    /// ConnAcks received since start.
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }
    /// Connections lost or refused since start.
    pub fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::Relaxed)
    }
    /// Messages received since start.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Why a publish or subscribe was not queued.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The link has stopped (shutdown).
    #[error("the MQTT link has stopped")]
    Stopped,
    /// The topic or filter is invalid.
    #[error("invalid MQTT request: {0}")]
    Invalid(String),
}

/// The cloneable handle: publish, subscribe, state.
#[derive(Clone)]
pub struct MqttHandle {
    client: AsyncClient,
    subscriptions: Arc<Mutex<Vec<(String, QoS)>>>,
    stats: Arc<LinkStats>,
}

impl std::fmt::Debug for MqttHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttHandle").field("connected", &self.stats.connected()).finish_non_exhaustive()
    }
}

fn request_error(e: rumqttc::ClientError) -> LinkError {
    match e {
        rumqttc::ClientError::Request(_) | rumqttc::ClientError::TryRequest(_) => LinkError::Stopped,
    }
}

impl MqttHandle {
    /// Queues a publish (waits while the outgoing queue is full).
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), LinkError> {
        neosens_protocol_topic_check(topic)?;
        self.client.publish(topic, qos, retain, payload).await.map_err(request_error)
    }

    /// Subscribes now and after every reconnect.
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), LinkError> {
        {
            let mut subs = self.subscriptions.lock();
            if subs.iter().any(|(f, _)| f == filter) {
                return Ok(());
            }
            subs.push((filter.to_owned(), qos));
        }
        if self.stats.connected() {
            self.client.subscribe(filter, qos).await.map_err(request_error)?;
        }
        Ok(())
    }

    /// The link's counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }
}

/// Rejects what rumqttc would only reject later, inside the event loop.
fn neosens_protocol_topic_check(topic: &str) -> Result<(), LinkError> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) || topic.len() > 65_535 {
        return Err(LinkError::Invalid(format!("not a publishable topic: {topic:?}")));
    }
    Ok(())
}

/// The client options of the shared link: clean session, keep-alive, packet limits,
/// credentials, TLS, and the `offline` last will on the state topic (the acknowledged mode's
/// [`conn`] sets the same up itself).
fn options(config: &LinkConfig) -> MqttOptions {
    let mut options = MqttOptions::new(&config.client_id, &config.url.host, config.url.port);
    options.set_keep_alive(config.keep_alive);
    options.set_clean_session(true);
    options.set_max_packet_size(config.max_incoming_packet, 1024 * 1024);
    if let Some((user, pass)) = &config.url.credentials {
        options.set_credentials(user, pass);
    }
    if let Some(topic) = &config.state_topic {
        options.set_last_will(LastWill::new(topic, OFFLINE, QoS::AtLeastOnce, true));
    }
    if let Some(tls) = config.url.tls_config() {
        options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
    }
    options
}

/// Starts the link: returns the handle and the stream of received messages. The event-loop task
/// runs until `shutdown`, then says `offline` and disconnects.
pub fn start(config: LinkConfig, shutdown: CancellationToken) -> (MqttHandle, mpsc::Receiver<Message>) {
    let (handle, inbound, event_loop) = link(config, shutdown);
    tokio::spawn(event_loop);
    (handle, inbound)
}

/// The link's handle, its received messages and its event loop, for the caller to run (under a
/// `Supervisor`): it runs until `shutdown`, or until the receiver of the messages is dropped.
pub fn link(
    config: LinkConfig,
    shutdown: CancellationToken,
) -> (MqttHandle, mpsc::Receiver<Message>, impl std::future::Future<Output = ()> + Send + 'static) {
    let (client, eventloop) = AsyncClient::new(options(&config), config.queue);
    let (tx, rx) = mpsc::channel(config.queue);
    let handle = MqttHandle {
        client,
        subscriptions: Arc::new(Mutex::new(Vec::new())),
        stats: Arc::new(LinkStats::default()),
    };
    let event_loop = run(config, eventloop, handle.clone(), tx, shutdown);
    (handle, rx, event_loop)
}

async fn run(
    config: LinkConfig,
    mut eventloop: EventLoop,
    handle: MqttHandle,
    inbound: mpsc::Sender<Message>,
    shutdown: CancellationToken,
) {
    let mut backoff = crate::backoff::Backoff::new(config.min_backoff, config.max_backoff);
    let broker = format!("{}:{}", config.url.host, config.url.port);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                handle.stats.connected.store(true, Ordering::Relaxed);
                handle.stats.connects.fetch_add(1, Ordering::Relaxed);
                backoff.reset();
                tracing::info!(broker = %broker, session_present = ack.session_present, "MQTT link up");
                let subs: Vec<(String, QoS)> = handle.subscriptions.lock().clone();
                // Requests are queued, not sent, here: the loop must keep polling to send them.
                for (filter, qos) in subs {
                    if handle.client.try_subscribe(&filter, qos).is_err() {
                        tracing::warn!(filter = %filter, "outgoing queue full: subscription delayed to the next connection");
                    }
                }
                if let Some(topic) = &config.state_topic {
                    let _ = handle.client.try_publish(topic, QoS::AtLeastOnce, true, ONLINE);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                handle.stats.received.fetch_add(1, Ordering::Relaxed);
                let topic = p.topic;
                let message = Message { topic, payload: p.payload, retain: p.retain };
                // Back-pressure: wait for the consumer, but not past a shutdown.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    sent = inbound.send(message) => if sent.is_err() { break },
                }
            }
            Ok(_) => {}
            Err(err) => {
                if handle.stats.connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(broker = %broker, error = %err, "MQTT link down; reconnecting");
                } else {
                    tracing::debug!(broker = %broker, error = %err, retry_in_ms = backoff.current().as_millis() as u64, "MQTT connection failed");
                }
                handle.stats.disconnects.fetch_add(1, Ordering::Relaxed);
                // Jittered, so a fleet of agents does not reconnect in step.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
    if handle.stats.connected.swap(false, Ordering::Relaxed) {
        if let Some(topic) = &config.state_topic {
            let _ = handle.client.try_publish(topic, QoS::AtLeastOnce, true, OFFLINE);
        }
        let _ = handle.client.try_disconnect();
        // Let the event loop flush the last publish and the DISCONNECT, briefly.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    tracing::info!(broker = %broker, "MQTT link stopped");
}
