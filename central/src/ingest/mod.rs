//! Status ingestion: device statuses from MQTT into the registry, in batches.
//!
//! Central subscribes to `<base>/device` at every depth a base topic has (`+/+/device`,
//! `abroad/+/+/+/device` …; `#` may only end a filter). Each status is parsed leniently (firmware
//! and Raspberry Pi flavours, `unitID` in any case), matched to its device by MAC *and* topic, and
//! kept as the device's last status. Writes are batched — the latest status per device, flushed
//! every half second or every 5,000 devices — so a boot storm (the whole campus rebooting after a
//! power cut) costs one transaction per batch, not one per message. Anything else is dropped and
//! counted by reason.

mod dedupe;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use neosens_protocol::DeviceUid;
use neosens_protocol::ids::DeviceId;
use neosens_protocol::legacy::DeviceStatus;
use neosens_runtime::mqtt::{Message, MqttHandle, Qos};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::model::{DeviceStatusRecord, Timestamp};
use crate::monitor::Seen;
use crate::registry::{Registry, StatusDrop};

/// Largest status payload accepted (firmware: ≤ 255 bytes; RPi statuses carry free text).
pub const MAX_STATUS_BYTES: usize = 16 * 1024;

/// Most statuses kept before a flush.
const BATCH: usize = 5_000;

/// How long a status may wait before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Counters of the ingestion, for metrics.
#[derive(Debug, Default)]
pub struct IngestStats {
    stored: AtomicU64,
    batches: AtomicU64,
    processed: AtomicU64,
    dropped: [AtomicU64; 7],
    cleared: AtomicU64,
    untrusted: AtomicU64,
}

impl IngestStats {
    fn drop_index(reason: StatusDrop) -> usize {
        match reason {
            StatusDrop::Garbage => 0,
            StatusDrop::TooLarge => 1,
            StatusDrop::UnknownDevice => 2,
            StatusDrop::Disabled => 3,
            StatusDrop::WrongTopic => 4,
            StatusDrop::Duplicate => 5,
            StatusDrop::Retained => 6,
        }
    }

    /// Retained messages central removed from status topics.
    pub fn cleared(&self) -> u64 {
        self.cleared.load(Ordering::Relaxed)
    }

    /// Statuses whose `msg_id` had no valid stamp of a gateway of the device (kept, the id
    /// ignored).
    pub fn untrusted(&self) -> u64 {
        self.untrusted.load(Ordering::Relaxed)
    }

    /// Statuses stored (the latest per device and batch).
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// Batches written.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Status messages processed (stored or dropped).
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// Statuses dropped for `reason`.
    pub fn dropped(&self, reason: StatusDrop) -> u64 {
        self.dropped[Self::drop_index(reason)].load(Ordering::Relaxed)
    }

    fn count_drop(&self, reason: StatusDrop) {
        self.dropped[Self::drop_index(reason)].fetch_add(1, Ordering::Relaxed);
    }
}

/// `+/…/+/device` for every depth of base topic in use (2 and 4 always: the default site and
/// abroad sites).
pub fn status_filters(registry: &Registry) -> Vec<String> {
    let mut depths = registry.topic_depths();
    depths.extend([2, 4]);
    depths.into_iter().filter(|d| *d > 0).map(|d| format!("{}device", "+/".repeat(d))).collect()
}

/// A status read from a message.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadStatus {
    /// Whose.
    pub device: DeviceId,
    /// The record to store.
    pub record: DeviceStatusRecord,
    /// The `msg_id` a gateway's outbox gave it, if any.
    pub msg_id: Option<u64>,
    /// The gateway's relay stamp of that `msg_id`, if any ([`neosens_runtime::relay`]).
    pub relay: Option<String>,
    /// Bridged by a gateway's local broker and stamped with the firmware's `time`: a repeat byte
    /// for byte is the bridge sending again what was in flight when its link dropped.
    pub bridged: bool,
}

/// Reads one message; returns the device and its new status record, or why it was dropped.
pub fn read_status(registry: &Registry, message: &Message) -> Result<ReadStatus, StatusDrop> {
    let Some(base) = message.topic.strip_suffix("/device") else { return Err(StatusDrop::WrongTopic) };
    if message.payload.len() > MAX_STATUS_BYTES {
        return Err(StatusDrop::TooLarge);
    }
    if message.retain {
        return Err(StatusDrop::Retained);
    }
    let status = DeviceStatus::parse(&message.payload).map_err(|_| StatusDrop::Garbage)?;
    // Devices name themselves by MAC; LoRaWAN nodes (statuses built by their gateway) by DevEUI.
    let uid = match status.mac() {
        Some(mac) => DeviceUid::Ethernet(mac),
        None => DeviceUid::Lorawan(status.unit_id.parse().map_err(|_| StatusDrop::UnknownDevice)?),
    };
    let id = registry.status_target(uid, base)?;
    let payload = String::from_utf8_lossy(&message.payload).trim().to_owned();
    let msg_id = status.payload.get("msg_id").and_then(serde_json::Value::as_u64);
    let relay = status.payload.get(neosens_runtime::relay::FIELD).and_then(|v| v.as_str()).map(str::to_owned);
    let time = status.payload.get("time").and_then(|v| v.as_str());
    let last_seen = registry.status_sent_at(id, time, Timestamp::now());
    let bridged = time.is_some() && registry.behind_local_broker(id);
    Ok(ReadStatus {
        device: id,
        record: DeviceStatusRecord {
            last_seen: Some(last_seen),
            last_status: Some(status.status),
            last_payload: Some(payload),
        },
        msg_id,
        relay,
        bridged,
    })
}

/// Subscribes to the status topics (shared by `group`, when given) and stores statuses until
/// `shutdown`, then flushes.
pub async fn run(
    registry: Arc<Registry>,
    link: MqttHandle,
    mut inbound: mpsc::Receiver<Message>,
    stats: Arc<IngestStats>,
    seen: mpsc::Sender<Vec<Seen>>,
    group: Option<String>,
    shutdown: CancellationToken,
) {
    // Replicas sharing a store: each status reaches one of them (an MQTT shared subscription).
    let filters = |registry: &Registry| -> Vec<String> {
        let plain = status_filters(registry);
        match &group {
            Some(group) => plain.into_iter().map(|f| format!("$share/{group}/{f}")).collect(),
            None => plain,
        }
    };
    for filter in filters(&registry) {
        if let Err(e) = link.subscribe(&filter, Qos::AtMostOnce).await {
            tracing::error!(filter = %filter, error = %e, "cannot subscribe to device statuses");
        }
    }
    let mut pending: HashMap<DeviceId, DeviceStatusRecord> = HashMap::new();
    // Last stamped outbox id seen per device relayed by a gateway: a message sent again after a
    // crash of the gateway (between the broker's PUBACK and its removal) is recognised and dropped.
    let mut dedupe = dedupe::Dedupe::default();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refresh = tokio::time::interval(Duration::from_secs(60));
    // Numbers the batches of this process, for their spans.
    let mut batch_id = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            message = inbound.recv() => {
                let Some(message) = message else { break };
                stats.processed.fetch_add(1, Ordering::Relaxed);
                // An empty message is a retained one being cleared (central's own, below).
                if message.payload.is_empty() {
                    continue;
                }
                let read = read_status(&registry, &message).and_then(|r| dedupe.check(&registry, &message.topic, r, &message.payload));
                match read {
                    Ok((ReadStatus { device, record, .. }, trust)) => {
                        if trust == dedupe::Trust::Untrusted {
                            stats.untrusted.fetch_add(1, Ordering::Relaxed);
                        }
                        pending.insert(device, record);
                        if pending.len() >= BATCH {
                            flush(&registry, &mut pending, &stats, &seen, &mut batch_id).await;
                        }
                    }
                    Err(reason) => {
                        stats.count_drop(reason);
                        tracing::debug!(topic = %message.topic, reason = reason.as_str(), "status dropped");
                        if matches!(reason, StatusDrop::Retained | StatusDrop::TooLarge) {
                            clear_retained(&link, &message.topic, &stats).await;
                        }
                    }
                }
            }
            _ = tick.tick() => flush(&registry, &mut pending, &stats, &seen, &mut batch_id).await,
            // Rooms with topics of a new depth (kept from an import) need their own filter.
            _ = refresh.tick() => {
                for filter in filters(&registry) {
                    let _ = link.subscribe(&filter, Qos::AtMostOnce).await;
                }
                dedupe.prune(&registry);
            }
        }
    }
    flush(&registry, &mut pending, &stats, &seen, &mut batch_id).await;
}

/// Removes whatever message is retained on a status topic (an empty retained publish): a
/// retained status is a device misbehaving, and an oversized one — live or retained, which an
/// MQTT 3.1.1 subscriber cannot tell apart — would otherwise be sent again to central at every
/// reconnection. At most one clear per dropped message, so the cost follows the offender's rate.
async fn clear_retained(link: &MqttHandle, topic: &str, stats: &IngestStats) {
    match link.publish(topic, Vec::new(), Qos::AtLeastOnce, true).await {
        Ok(()) => {
            stats.cleared.fetch_add(1, Ordering::Relaxed);
            tracing::info!(topic, "cleared a retained or oversized message on a status topic");
        }
        Err(e) => tracing::warn!(topic, error = %e, "could not clear a retained status message"),
    }
}

/// Writes the batch, then tells the state tracker, once per batch rather than once per message.
///
/// Each batch runs in an info-level `status_batch` span (its number and size): a failed write
/// names its batch, and traces show one span per batch — at most a few a second, where a span
/// per message would cost more than the message (a boot storm brings tens of thousands).
async fn flush(
    registry: &Arc<Registry>,
    pending: &mut HashMap<DeviceId, DeviceStatusRecord>,
    stats: &IngestStats,
    seen: &mpsc::Sender<Vec<Seen>>,
    batch_id: &mut u64,
) {
    if pending.is_empty() {
        return;
    }
    *batch_id += 1;
    let span = tracing::info_span!("status_batch", batch = *batch_id, statuses = pending.len());
    write_batch(registry, pending, stats, seen).instrument(span).await;
}

async fn write_batch(
    registry: &Arc<Registry>,
    pending: &mut HashMap<DeviceId, DeviceStatusRecord>,
    stats: &IngestStats,
    seen: &mpsc::Sender<Vec<Seen>>,
) {
    let started = std::time::Instant::now();
    let batch: Vec<(DeviceId, DeviceStatusRecord)> = pending.drain().collect();
    let seen_batch: Vec<Seen> = batch.iter().map(|(id, r)| registry.seen(*id, r)).collect();
    let n = batch.len() as u64;
    match registry.blocking(move |r| r.put_statuses(batch)).await {
        Ok(()) => {
            stats.stored.fetch_add(n, Ordering::Relaxed);
            stats.batches.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(elapsed_us = started.elapsed().as_micros() as u64, "status batch stored");
            let _ = seen.send(seen_batch).await;
        }
        // Statuses are telemetry: a failed batch is logged and counted, the next ones go on.
        Err(e) => tracing::error!(statuses = n, error = %e, "storing a batch of statuses failed"),
    }
}
