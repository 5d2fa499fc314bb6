//! The acknowledged-publish mode of the MQTT link: drains a durable store in order with QoS 1,
//! removing each message only once the broker acknowledged it (the gateway's outbox uses it).
//!
//! It runs its own connection ([`super::conn`]: the shared link's TLS, credentials, last will and
//! packet limits, rumqttc's packets, but a window of publishes written at once), reconnects with
//! the same [`Backoff`], and re-subscribes after each CONNACK. Which message a PUBACK
//! acknowledges is kept by the pure [`Window`]. After a connection loss whatever was not
//! acknowledged is sent again from the store, in order, over a clean session; removals are
//! batched: what the store holds in memory is removed at once on the event loop
//! ([`AckedStore::remove_in_memory`]), the rest on the blocking pool.
//!
//! What it costs per message is mostly per write and per wake-up, so it makes few of each: the
//! messages stored within a [`PUBLISH_GAP`] of the last write go in one write, encoded from the
//! store's memory ([`AckedStore::read_each`]), and once the link has caught up, the PUBACKs
//! that answer it are read in one go on plain TCP (the socket's low-water mark:
//! `conn::Conn::wake_after`; within [`ACK_PATIENCE`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{Disconnect, Packet, PingReq, PubAck, SubscribeReasonCode};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::conn::{Conn, ConnError};
use super::pace::Pace;
use super::window::Window;
use super::{LinkConfig, Message};
use crate::backoff::Backoff;

/// Messages out at once, written together when the window is empty (packet ids cycle through
/// 65,535, so one never names two messages out). Room for what a busy gateway stores in a
/// [`PUBLISH_GAP`] (at 50 datagrams/s of 8 frames, about 160 messages), so that the gap merges
/// batches instead of capping what is sent.
pub const WINDOW: usize = 256;

/// A PUBACK's size (MQTT 3.1.1: fixed header and packet id).
const PUBACK_BYTES: usize = 4;

/// Bytes of publishes after which a write takes no more (it may end one message past them):
/// with [`WINDOW`] messages of up to the link's largest packet, a write would otherwise be
/// bounded only by their sum, and a write must go through within the connection's timeout
/// (10 s) on a slow backhaul too. A busy LoRaWAN gateway's 200 ms of readings are about 25 kB.
const WRITE_BYTES: usize = 64 * 1024;

/// How long the link waits for all the PUBACKs of a write before it reads whatever came
/// ([`Conn::wake_after`] raised the socket's low-water mark for them): a broker slow to answer
/// one publish must not hold up the keep-alive's PINGRESP or an order behind it.
const ACK_PATIENCE: Duration = Duration::from_millis(500);

/// The shortest time between two writes that start from an empty window while the link keeps
/// up: messages stored within it are written together at its end (one write, one read of
/// PUBACKs, one wake-up of the runtime for each, where each batch took its own). A link that
/// was idle longer writes at once, and a backlog (the last write left messages behind) is
/// written as fast as the broker acknowledges: the gap delays a message by at most its length
/// after the PUBACKs of the write before it came, and never limits throughput. The messages
/// are durable meanwhile (the outbox stored them before anything was acknowledged to a device
/// or a packet forwarder). At 50 datagrams/s it merges three or four of the listener's batches
/// (`cargo bench -p neosens-edge --bench uplink_e2e`).
pub const PUBLISH_GAP: Duration = Duration::from_millis(200);

/// How often acknowledged messages are removed from the store: one commit for all the
/// acknowledgements of that time (each commit has a fixed cost; the messages only wait a little
/// longer on disk). Sooner when [`ACK_BATCH`] are waiting.
const ACK_FLUSH: Duration = Duration::from_millis(250);

/// Acknowledgements that trigger a removal at once (at most 8 KiB of ids held).
const ACK_BATCH: usize = 1024;

/// How long removals may stay without a durable commit of their own once the link is quiet
/// ([`AckedStore::settle`]); under load the store's next durable commit makes them durable
/// first.
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
    /// Up to `limit` messages with ids above `after`, oldest first, handed to `each` by
    /// reference (id, topic, payload) until it returns `false`: the link encodes them straight
    /// from the store's memory, where a copy of each, made and dropped per publish, was a good
    /// part of its cost. Called on the event loop: it must be a read that does not wait for a
    /// writer (redb's are).
    fn read_each(
        &self,
        after: u64,
        limit: usize,
        each: &mut dyn FnMut(u64, &str, &[u8]) -> bool,
    ) -> Result<(), Self::Error>;
    /// The same messages as [`Self::read_each`], copied.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, Self::Error> {
        let mut out = Vec::new();
        self.read_each(after, limit, &mut |id, topic, payload| {
            out.push(Stored { id, topic: topic.to_owned(), payload: payload.to_vec() });
            true
        })?;
        Ok(out)
    }
    /// Removes acknowledged messages (called on the blocking pool: it commits). The removal may
    /// be made durable later ([`Self::settle`]): a message removed and then found again after a
    /// crash is sent again, which the receiver must tolerate (QoS 1 allows it anyway).
    fn remove(&self, ids: &[u64]) -> Result<(), Self::Error>;
    /// Removes at once, on the event loop, the acknowledged messages it can remove without I/O
    /// (a short lock at most), taking their ids out of `ids`; the rest go to [`Self::remove`]
    /// at the next flush. An outbox that keeps its newest messages in memory spares the link
    /// a trip through the blocking pool, and a timer's wake-up, for each flush.
    fn remove_in_memory(&self, ids: &mut Vec<u64>) {
        let _ = ids;
    }
    /// Makes earlier removals durable (called on the blocking pool, [`SETTLE`] after the last
    /// removal when nothing else did). `Ok(false)`: not settled yet (the store wants the link
    /// quiet for a while), call again [`SETTLE`] later.
    fn settle(&self) -> Result<bool, Self::Error> {
        Ok(true)
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
    /// Subscriptions the broker granted (SUBACK), counted again after each reconnection.
    pub subscriptions_granted: AtomicU64,
    /// Subscriptions the broker refused (its ACL): what the gateway would not receive.
    pub subscriptions_refused: AtomicU64,
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
    let mut link = Link {
        broker: format!("{}:{}", config.url.host, config.url.port),
        backoff: Backoff::new(config.min_backoff, config.max_backoff),
        window: Window::new(WINDOW),
        settle_at: None,
        config,
        subscriptions,
        store,
        stats,
        inbound,
    };
    loop {
        let opened = tokio::select! {
            () = shutdown.cancelled() => break,
            opened = Conn::open(&link.config) => opened,
        };
        let ended = match opened {
            Ok(mut conn) => {
                let ended = link.session(&mut conn, &mut more_subscriptions, &shutdown).await;
                if ended.is_ok() {
                    // Stopping: `offline` on the state topic, then DISCONNECT (no last will).
                    link.stop(&mut conn).await;
                }
                ended
            }
            Err(e) => Err(e),
        };
        let Err(err) = ended else { break };
        link.on_loss(&err);
        // What was not acknowledged goes again from the store, in order.
        remove_acked(&link.store, &mut link.window, &mut link.settle_at).await;
        link.window.reset();
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(link.backoff.next_delay()) => {}
        }
    }
    remove_acked(&link.store, &mut link.window, &mut link.settle_at).await;
    settle(&link.store).await;
    tracing::info!(broker = %link.broker, "acknowledged link stopped");
}

/// The state of the acknowledged link, across its connections.
struct Link<S> {
    config: LinkConfig,
    broker: String,
    backoff: Backoff,
    window: Window,
    /// When the removals made since the link was last quiet are to be settled.
    settle_at: Option<tokio::time::Instant>,
    subscriptions: Vec<String>,
    store: S,
    stats: Arc<AckedStats>,
    inbound: mpsc::Sender<Message>,
}

impl<S: AckedStore> Link<S> {
    /// One connection, from its CONNACK until it is lost (`Err`) or the link stops (`Ok`).
    async fn session(
        &mut self,
        conn: &mut Conn,
        more_subscriptions: &mut mpsc::Receiver<String>,
        shutdown: &CancellationToken,
    ) -> Result<(), ConnError> {
        self.on_connack(conn)?;
        let mut flush = tokio::time::interval(ACK_FLUSH);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let keep_alive = self.config.keep_alive.max(Duration::from_secs(1));
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
        let mut ping_outstanding = false;
        let mut pace = Pace::default();
        // Until when the link waits for all the PUBACKs of its last write.
        let mut patience: Option<tokio::time::Instant> = None;
        loop {
            let now = tokio::time::Instant::now();
            let hold = pace.hold(self.window.is_idle(), now);
            if hold.is_none() {
                let from_idle = self.window.is_idle();
                if self.fill(conn)? {
                    pace.filled(from_idle, !self.has_unrequested(), now);
                    patience = Some(now + ACK_PATIENCE);
                }
            }
            conn.flush().await?;
            let idle = self.window.is_idle();
            // Woken once the PUBACKs the link waits for are all there, not as each piece of them
            // arrives while the broker works through the write (a wake-up, a read and a TCP ACK
            // for each); not while a PINGRESP is due, nor past the patience.
            let patient = patience.filter(|&until| now < until && !ping_outstanding);
            let awaited = if patient.is_some() { self.acks_to_wait_for() } else { 0 };
            conn.wake_after(PUBACK_BYTES * awaited);
            let settle_deadline = self.settle_at.unwrap_or(now);
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                read = conn.fill() => {
                    read?;
                    while let Some(packet) = conn.parsed()? {
                        ping_outstanding &= !matches!(packet, Packet::PingResp);
                        if self.on_packet(conn, packet)? {
                            remove_acked(&self.store, &mut self.window, &mut self.settle_at).await;
                        }
                    }
                    remove_in_memory(&self.store, &mut self.window, &mut self.settle_at);
                }
                // New messages while idle (not listened to during a gap: the store's
                // notifications then wake nothing, the gap's end looks for them).
                () = self.store.stored().notified(), if idle && hold.is_none() => {}
                () = tokio::time::sleep_until(hold.unwrap_or(now)), if hold.is_some() => {}
                // Patience over: the mark goes back to one byte at the loop's top.
                () = tokio::time::sleep_until(patient.unwrap_or(now)), if awaited > 0 => {}
                _ = flush.tick(), if self.window.pending_acks() > 0 => {
                    remove_acked(&self.store, &mut self.window, &mut self.settle_at).await;
                }
                () = tokio::time::sleep_until(settle_deadline), if self.settle_at.is_some() => {
                    self.settle_at = None;
                    if !settle(&self.store).await {
                        self.settle_at = Some(tokio::time::Instant::now() + SETTLE);
                    }
                }
                Some(filter) = more_subscriptions.recv() => self.subscribe(conn, filter)?,
                _ = ping.tick() => {
                    if ping_outstanding {
                        return Err(ConnError::KeepAlive);
                    }
                    PingReq.write(&mut conn.out)?;
                    ping_outstanding = true;
                }
            }
        }
    }

    /// Adds a filter, kept across reconnections, and subscribes to it now.
    fn subscribe(&mut self, conn: &mut Conn, filter: String) -> Result<(), ConnError> {
        if self.subscriptions.contains(&filter) {
            return Ok(());
        }
        conn.subscribe(&filter)?;
        tracing::info!(filter = %filter, "subscribed");
        self.subscriptions.push(filter);
        Ok(())
    }

    /// Accounts for one packet from the broker; `true` when enough acknowledgements wait to be
    /// removed now (removals are batched: [`ACK_BATCH`] at once, or at the next flush tick).
    fn on_packet(&mut self, conn: &mut Conn, packet: Packet) -> Result<bool, ConnError> {
        match packet {
            Packet::PubAck(ack) => {
                return Ok(
                    self.window.acknowledged(ack.pkid).is_some() && self.window.pending_acks() >= ACK_BATCH
                );
            }
            Packet::Publish(p) => {
                if p.qos != QoS::AtMostOnce {
                    PubAck::new(p.pkid).write(&mut conn.out)?;
                }
                let message = Message { topic: p.topic, payload: p.payload, retain: p.retain };
                if self.inbound.try_send(message).is_err() {
                    tracing::warn!("inbound queue full: message dropped");
                }
            }
            Packet::SubAck(ack) => {
                for code in ack.return_codes {
                    let counter = match code {
                        SubscribeReasonCode::Success(_) => &self.stats.subscriptions_granted,
                        SubscribeReasonCode::Failure => {
                            tracing::warn!(broker = %self.broker, "a subscription was refused by the broker");
                            &self.stats.subscriptions_refused
                        }
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            // PINGRESP: nothing to do; anything else a broker does not send a client.
            _ => {}
        }
        Ok(false)
    }

    /// Connected: subscriptions again (the session is clean), `online` on the state topic.
    fn on_connack(&mut self, conn: &mut Conn) -> Result<(), ConnError> {
        self.stats.connected.store(true, Ordering::Relaxed);
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        self.backoff.reset();
        tracing::info!(broker = %self.broker, "acknowledged link up");
        for filter in &self.subscriptions {
            conn.subscribe(filter)?;
        }
        if let Some(topic) = &self.config.state_topic {
            conn.publish(topic.as_str(), super::ONLINE.as_bytes(), true)?;
        }
        Ok(())
    }

    /// How many PUBACKs the link waits for before it has something to do: all those out when
    /// it has caught up, else none (a backlog is sent as the PUBACKs come, as fast as the
    /// broker takes it). Only the first case waits for all. A broker that sends its PUBACKs
    /// under Nagle's algorithm (Mosquitto's default) holds the later ones until the first is
    /// acknowledged, and a reader that is not woken acknowledges it only after the delayed
    /// ACK's 40 ms or more: nothing lost when the link waits for its [`PUBLISH_GAP`] anyway,
    /// but it would slow a backlog down.
    fn acks_to_wait_for(&self) -> usize {
        if self.has_unrequested() { 0 } else { self.window.in_flight() }
    }

    /// Whether the store holds messages not requested yet.
    fn has_unrequested(&self) -> bool {
        self.store.last_id() > self.window.last_requested()
    }

    /// Keeps the window full: reads the next messages and encodes them; `true` when it did. The
    /// store is read only when it holds messages not requested yet, and (while messages are
    /// out) only once half the window is free: one read, and one write, for many messages.
    fn fill(&mut self, conn: &mut Conn) -> Result<bool, ConnError> {
        let room = self.window.room();
        if room == 0 || !self.has_unrequested() {
            return Ok(false);
        }
        if !self.window.is_idle() && room < WINDOW / 2 {
            return Ok(false);
        }
        let (mut any, mut failed) = (false, None);
        let read = self.store.read_each(self.window.last_requested(), room, &mut |id, topic, payload| {
            // The rest is read again at the next fill.
            if conn.out.len() >= WRITE_BYTES {
                return false;
            }
            match conn.publish(topic, payload, false) {
                Ok(pkid) => {
                    self.window.requested(id);
                    self.window.sent(pkid);
                    self.stats.published.fetch_add(1, Ordering::Relaxed);
                    any = true;
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if let Err(e) = read {
            tracing::error!(error = %e, "reading the messages to publish");
        }
        Ok(any)
    }

    /// Connection lost or refused: logged and counted; the caller removes what was acknowledged
    /// and resets the window, so what was not goes again from the store, in order.
    fn on_loss(&mut self, err: &ConnError) {
        if self.stats.connected.swap(false, Ordering::Relaxed) {
            tracing::warn!(broker = %self.broker, error = %err, unacknowledged = self.window.in_flight(), "acknowledged link down; the store keeps everything");
        } else {
            tracing::debug!(broker = %self.broker, error = %err, "acknowledged link: connection failed");
        }
        self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// A clean stop: `offline` on the state topic, then DISCONNECT (so the last will is not
    /// sent).
    async fn stop(&mut self, conn: &mut Conn) {
        self.stats.connected.store(false, Ordering::Relaxed);
        if let Some(topic) = &self.config.state_topic {
            let _ = conn.publish(topic.as_str(), super::OFFLINE.as_bytes(), true);
        }
        let _ = Disconnect.write(&mut conn.out);
        let _ = conn.flush().await;
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

/// Removes at once what the store can remove in memory ([`AckedStore::remove_in_memory`]); the
/// rest waits for the next flush.
fn remove_in_memory<S: AckedStore>(
    store: &S,
    window: &mut Window,
    settle_at: &mut Option<tokio::time::Instant>,
) {
    if window.pending_acks() == 0 {
        return;
    }
    let mut ids = window.take_acked();
    let acked = ids.len();
    store.remove_in_memory(&mut ids);
    if ids.len() < acked {
        settle_at.get_or_insert_with(|| tokio::time::Instant::now() + SETTLE);
    }
    window.keep_acked(ids);
}

/// Makes the removals durable (on the blocking pool); `false` when the store wants to be asked
/// again later.
async fn settle<S: AckedStore>(store: &S) -> bool {
    let store = store.clone();
    match crate::blocking::run(move || store.settle()).await {
        Ok(settled) => settled,
        Err(e) => {
            // Still only a message sent again after a crash.
            tracing::warn!(error = %e, "settling removals");
            true
        }
    }
}

#[cfg(test)]
#[path = "acked_tests.rs"]
mod tests;
