//! The acknowledged-publish mode of the MQTT link: drains a durable store in order with QoS 1,
//! removing each message only once the broker acknowledged it (the gateway's outbox uses it).
//!
//! It runs its own rumqttc event loop, built by the same [`super::options`] as the shared link
//! (TLS, credentials, last will, packet limits), reconnects with the same [`Backoff`], and
//! re-subscribes after each ConnAck. Which message a PUBACK acknowledges is kept by the pure
//! [`Window`]. After a connection loss whatever was not acknowledged is sent again from the
//! store, in order, over a clean session (rumqttc's own replay queue is dropped so that nothing
//! is sent twice by two mechanisms); removals are batched and run on the blocking pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::window::Window;
use super::{LinkConfig, Message};
use crate::backoff::Backoff;

/// Messages out at once (under rumqttc's inflight limit, so packet ids never collide).
pub const WINDOW: usize = 64;

/// How often acknowledged messages are removed from the store: one commit for all the
/// acknowledgements of that time (each commit has a fixed cost; the messages only wait a little
/// longer on disk). Sooner when [`ACK_BATCH`] are waiting.
const ACK_FLUSH: Duration = Duration::from_millis(250);

/// Acknowledgements that trigger a removal at once (at most 8 KiB of ids held).
const ACK_BATCH: usize = 1024;

/// How long removals may stay without a durable commit of their own once the link is quiet
/// ([`AckedStore::settle`]); under load the store's next append makes them durable first.
const SETTLE: Duration = Duration::from_secs(1);

/// A message of the store, to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its id in the store (increasing).
    pub id: u64,
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Where the publisher reads its messages and removes them once acknowledged.
pub trait AckedStore: Clone + Send + Sync + 'static {
    /// What reading or removing may fail with.
    type Error: std::fmt::Display + Send + 'static;
    /// Up to `limit` messages with ids above `after`, oldest first. Called on the event loop: it
    /// must be a read that does not wait for a writer (redb's are).
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, Self::Error>;
    /// Removes acknowledged messages (called on the blocking pool: it commits). The removal may
    /// be made durable later ([`Self::settle`]): a message removed and then found again after a
    /// crash is sent again, which the receiver must tolerate (QoS 1 allows it anyway).
    fn remove(&self, ids: &[u64]) -> Result<(), Self::Error>;
    /// Makes earlier removals durable (called on the blocking pool, [`SETTLE`] after the last
    /// removal when nothing else did).
    fn settle(&self) -> Result<(), Self::Error> {
        Ok(())
    }
    /// The highest id stored so far: the store is read only when the link has not requested it
    /// yet (`u64::MAX`: unknown, always read).
    fn last_id(&self) -> u64 {
        u64::MAX
    }
    /// Notified when a message is stored.
    fn stored(&self) -> &Notify;
}

/// Link counters, for metrics and the gateway's status.
#[derive(Debug, Default)]
pub struct AckedStats {
    /// Whether the broker connection is up.
    pub connected: AtomicBool,
    /// Connections established.
    pub connects: AtomicU64,
    /// Connections lost or refused.
    pub disconnects: AtomicU64,
    /// Messages published (including sends again after a loss).
    pub published: AtomicU64,
}

/// Drains `store` to the broker until `shutdown`; received messages (orders) go to `inbound`
/// (dropped, with a warning, when it is full); `more_subscriptions` adds filters, kept across
/// reconnections.
pub async fn run<S: AckedStore>(
    config: LinkConfig,
    subscriptions: Vec<String>,
    store: S,
    stats: Arc<AckedStats>,
    inbound: mpsc::Sender<Message>,
    mut more_subscriptions: mpsc::Receiver<String>,
    shutdown: CancellationToken,
) {
    let options = super::options(&config, Some(u16::try_from(WINDOW * 2).unwrap_or(u16::MAX)));
    let (client, mut eventloop) = AsyncClient::new(options, WINDOW * 4);
    let mut link = Link {
        broker: format!("{}:{}", config.url.host, config.url.port),
        backoff: Backoff::new(config.min_backoff, config.max_backoff),
        window: Window::new(WINDOW),
        config,
        client,
        subscriptions,
        store,
        stats,
        inbound,
    };
    let mut flush = tokio::time::interval(ACK_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the removals made since the link was last quiet are to be settled.
    let mut settle_at: Option<tokio::time::Instant> = None;
    loop {
        if link.stats.connected.load(Ordering::Relaxed) {
            fill(&link.client, &link.store, &mut link.window);
        }
        let idle = link.window.is_idle();
        let settle_deadline = settle_at.unwrap_or_else(tokio::time::Instant::now);
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
            // New messages while idle.
            () = link.store.stored().notified(), if idle => continue,
            _ = flush.tick(), if link.window.pending_acks() > 0 => {
                remove_acked(&link.store, &mut link.window, &mut settle_at).await;
                continue;
            }
            () = tokio::time::sleep_until(settle_deadline), if settle_at.is_some() => {
                settle_at = None;
                settle(&link.store).await;
                continue;
            }
            Some(filter) = more_subscriptions.recv() => {
                link.subscribe(filter);
                continue;
            }
        };
        match event {
            Ok(event) => {
                if link.on_event(event) {
                    remove_acked(&link.store, &mut link.window, &mut settle_at).await;
                }
            }
            Err(err) => {
                link.on_loss(&err);
                // What was not acknowledged goes again from the store, in order.
                remove_acked(&link.store, &mut link.window, &mut settle_at).await;
                link.window.reset();
                eventloop.pending.clear();
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(link.backoff.next_delay()) => {}
                }
            }
        }
    }
    remove_acked(&link.store, &mut link.window, &mut settle_at).await;
    settle(&link.store).await;
    stop(&link.config, &link.client, &mut eventloop, &link.stats).await;
    tracing::info!(broker = %link.broker, "acknowledged link stopped");
}

/// The state of the acknowledged link between two events of its event loop.
struct Link<S> {
    config: LinkConfig,
    client: AsyncClient,
    broker: String,
    backoff: Backoff,
    window: Window,
    subscriptions: Vec<String>,
    store: S,
    stats: Arc<AckedStats>,
    inbound: mpsc::Sender<Message>,
}

impl<S: AckedStore> Link<S> {
    /// Adds a filter, kept across reconnections (subscribed now if connected).
    fn subscribe(&mut self, filter: String) {
        if self.subscriptions.contains(&filter) {
            return;
        }
        if self.stats.connected.load(Ordering::Relaxed) {
            let _ = self.client.try_subscribe(&filter, QoS::AtLeastOnce);
        }
        tracing::info!(filter = %filter, "subscribed");
        self.subscriptions.push(filter);
    }

    /// Accounts for one event; `true` when enough acknowledgements wait to be removed now
    /// (removals are batched: [`ACK_BATCH`] at once, or at the next flush tick).
    fn on_event(&mut self, event: Event) -> bool {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => self.on_connack(),
            Event::Outgoing(Outgoing::Publish(pkid)) if self.window.sent(pkid) => {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                return self.window.acknowledged(ack.pkid).is_some()
                    && self.window.pending_acks() >= ACK_BATCH;
            }
            Event::Incoming(Packet::Publish(p)) => {
                let message = Message { topic: p.topic, payload: p.payload, retain: p.retain };
                if self.inbound.try_send(message).is_err() {
                    tracing::warn!("inbound queue full: message dropped");
                }
            }
            _ => {}
        }
        false
    }

    /// Connected: subscriptions again (the session is clean), `online` on the state topic.
    fn on_connack(&mut self) {
        self.stats.connected.store(true, Ordering::Relaxed);
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        self.backoff.reset();
        tracing::info!(broker = %self.broker, "acknowledged link up");
        for filter in &self.subscriptions {
            let _ = self.client.try_subscribe(filter, QoS::AtLeastOnce);
        }
        if let Some(topic) = &self.config.state_topic {
            let _ = self.client.try_publish(topic, QoS::AtLeastOnce, true, "online");
        }
    }

    /// Connection lost or refused: logged and counted; the caller removes what was acknowledged
    /// and resets the window, so what was not goes again from the store, in order.
    fn on_loss(&mut self, err: &rumqttc::ConnectionError) {
        if self.stats.connected.swap(false, Ordering::Relaxed) {
            tracing::warn!(broker = %self.broker, error = %err, unacknowledged = self.window.in_flight(), "acknowledged link down; the store keeps everything");
        } else {
            tracing::debug!(broker = %self.broker, error = %err, "acknowledged link: connection failed");
        }
        self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// Keeps the window full: reads the next messages and hands them to the client. The store is
/// read only when it holds messages not requested yet, and (while messages are out) only once
/// half the window is free: one read for many messages, not one per acknowledgement.
fn fill<S: AckedStore>(client: &AsyncClient, store: &S, window: &mut Window) {
    let room = window.room();
    if room == 0 || store.last_id() <= window.last_requested() {
        return;
    }
    if !window.is_idle() && room < WINDOW / 2 {
        return;
    }
    match store.read_after(window.last_requested(), room) {
        Ok(batch) => {
            for m in batch {
                if client.try_publish(&m.topic, QoS::AtLeastOnce, false, m.payload).is_err() {
                    break;
                }
                window.requested(m.id);
            }
        }
        Err(e) => tracing::error!(error = %e, "reading the messages to publish"),
    }
}

/// Removes the acknowledged messages from the store (one commit, on the blocking pool), and
/// has them settled [`SETTLE`] later unless already due.
async fn remove_acked<S: AckedStore>(
    store: &S,
    window: &mut Window,
    settle_at: &mut Option<tokio::time::Instant>,
) {
    let ids = window.take_acked();
    if ids.is_empty() {
        return;
    }
    let store = store.clone();
    if let Err(e) = crate::blocking::run(move || store.remove(&ids)).await {
        // Kept: they are sent again after the next reconnection, which is safe (ids dedupe).
        tracing::error!(error = %e, "removing acknowledged messages");
    }
    settle_at.get_or_insert_with(|| tokio::time::Instant::now() + SETTLE);
}

/// Makes the removals durable (on the blocking pool).
async fn settle<S: AckedStore>(store: &S) {
    let store = store.clone();
    if let Err(e) = crate::blocking::run(move || store.settle()).await {
        // Still only a message sent again after a crash.
        tracing::warn!(error = %e, "settling removals");
    }
}

/// A clean stop: `offline` on the state topic, then DISCONNECT (so the last will is not sent).
async fn stop(config: &LinkConfig, client: &AsyncClient, eventloop: &mut EventLoop, stats: &AckedStats) {
    if !stats.connected.swap(false, Ordering::Relaxed) {
        return;
    }
    if let Some(topic) = &config.state_topic {
        let _ = client.try_publish(topic, QoS::AtLeastOnce, true, "offline");
    }
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
