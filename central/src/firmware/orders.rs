//! `upgrade` orders to the online devices of a wave when it starts, paced: a wave of a
//! thousand boards must not reboot a thousand boards at once into the same download, nor
//! flood the broker. Offline devices need no order: they check `default.json` at their next
//! boot.
//!
//! The order carries no URL: the firmware then runs its boot-time check (spec §5.6, §3.4), so
//! the revision comparison and the wave decision stay on the update path.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use neosens_protocol::ids::DeviceId;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::Firmware;
use crate::model::{Actor, Campaign, CampaignState, Stage};
use crate::registry::{DeviceState, OrderSpec, Registry};

/// The pace of `upgrade` orders, all campaigns together.
pub const ORDERS_PER_SECOND: u32 = 10;

/// Orders waiting at most; a longer wave's remaining devices update at their next boot.
pub const MAX_QUEUED_ORDERS: usize = 100_000;

/// The orders to send, oldest first, those set aside while their gateway catches up, and a
/// wake-up for the sender. Both lists together hold at most [`MAX_QUEUED_ORDERS`].
#[derive(Default)]
pub(super) struct OrderQueue {
    queue: Mutex<VecDeque<(u64, [u8; 16])>>,
    waiting: Mutex<Vec<(u64, [u8; 16])>>,
    wake: tokio::sync::Notify,
}

impl OrderQueue {
    /// Queues the devices of the campaign's last started wave.
    pub(super) fn enqueue_wave(&self, campaign: &Campaign) {
        let started = campaign.wave_started_at.len();
        if started == 0 {
            return;
        }
        let from = if started == 1 { 0 } else { campaign.cut(started - 2) };
        let to = campaign.cut(started - 1);
        let waiting = self.waiting.lock().len();
        let mut queue = self.queue.lock();
        let room = MAX_QUEUED_ORDERS.saturating_sub(queue.len() + waiting);
        let wave = &campaign.devices[from..to];
        if wave.len() > room {
            tracing::warn!(
                campaign = campaign.id,
                left = wave.len() - room,
                "upgrade order queue full: the other devices update at their next boot"
            );
        }
        queue.extend(wave.iter().take(room).map(|d| (campaign.id, *d)));
        drop(queue);
        self.wake.notify_one();
    }

    fn pop(&self) -> Option<(u64, [u8; 16])> {
        self.queue.lock().pop_front()
    }

    /// Sets an order aside until its gateway serves the wave.
    fn set_aside(&self, order: (u64, [u8; 16])) {
        self.waiting.lock().push(order);
    }

    /// Puts the orders set aside back in the queue, behind the others; whether there were any.
    fn requeue(&self) -> bool {
        let waiting = std::mem::take(&mut *self.waiting.lock());
        let any = !waiting.is_empty();
        self.queue.lock().extend(waiting);
        any
    }

    /// Orders waiting.
    pub(super) fn len(&self) -> usize {
        self.queue.lock().len() + self.waiting.lock().len()
    }
}

impl Firmware {
    /// Orders waiting to be sent.
    pub fn queued_orders(&self) -> usize {
        self.inner.orders.len()
    }

    /// Whether an `upgrade` order to this device is still useful (its campaign runs, the device
    /// is still pending) and can go now (its site's gateways know its wave started, or have
    /// been waited for [`MAX_GATEWAY_WAIT`]).
    fn readiness(&self, campaign: u64, device: [u8; 16], registry: &Registry) -> Readiness {
        let started = {
            let state = self.inner.state.read();
            let Some(entry) =
                state.campaigns.get(&campaign).filter(|c| c.campaign.state == CampaignState::Running)
            else {
                return Readiness::Drop;
            };
            let stage = state
                .progress
                .get(&campaign)
                .and_then(|p| p.get(&device))
                .map_or(Stage::Pending, |p| p.stage);
            let Some(&position) = entry.positions.get(&device) else { return Readiness::Drop };
            if stage != Stage::Pending {
                return Readiness::Drop;
            }
            entry.campaign.wave_started_at.get(entry.campaign.wave_of(position)).copied()
        };
        let Some(started) = started else { return Readiness::Drop };
        let waited = crate::model::Timestamp::now().millis() - started.millis();
        if waited < MAX_GATEWAY_WAIT.as_millis() as i64 && !self.gateways_know(device, started, registry) {
            return Readiness::Wait;
        }
        Readiness::Send
    }
}

enum Readiness {
    Send,
    Wait,
    Drop,
}

/// Longest an order waits for a site's gateway to learn of its wave (a gateway that stays away
/// longer serves its last manifest: its devices update at their next boot after it returns).
pub const MAX_GATEWAY_WAIT: Duration = Duration::from_secs(600);

/// Sends queued `upgrade` orders at [`ORDERS_PER_SECOND`] to online devices, until `shutdown`.
pub async fn send_upgrade_orders(
    firmware: Firmware,
    registry: Arc<Registry>,
    mqtt: neosens_runtime::mqtt::MqttHandle,
    shutdown: CancellationToken,
) {
    let mut pace = tokio::time::interval(Duration::from_secs(1) / ORDERS_PER_SECOND);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut skipped = 0u32;
    loop {
        let Some((campaign, device)) = firmware.inner.orders.pop() else {
            if !firmware.inner.orders.requeue() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = firmware.inner.orders.wake.notified() => continue,
                }
            }
            // Orders waiting for a gateway: a look again in a second.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => continue,
            }
        };
        let ready = match firmware.readiness(campaign, device, &registry) {
            Readiness::Send => registry
                .firmware_report(DeviceId::from_bytes(device), Some(crate::model::Timestamp(i64::MAX)))
                .is_some_and(|r| r.state == DeviceState::Ok),
            Readiness::Wait => {
                firmware.inner.orders.set_aside((campaign, device));
                false
            }
            Readiness::Drop => false,
        };
        if !ready {
            // A wave of thousands of offline boards goes through here without sending: let the
            // other tasks of this worker run now and then.
            skipped += 1;
            if skipped % 256 == 0 {
                tokio::task::yield_now().await;
            }
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = pace.tick() => {}
        }
        send_one(&registry, &mqtt, campaign, device).await;
    }
}

async fn send_one(
    registry: &Arc<Registry>,
    mqtt: &neosens_runtime::mqtt::MqttHandle,
    campaign: u64,
    device: [u8; 16],
) {
    let key = DeviceId::from_bytes(device).to_string();
    let spec = OrderSpec { order: "upgrade".into(), value: None, module: None, dest: None };
    let by = format!("campaign {campaign}");
    let order = match registry.prepare_order(&key, &spec, &by) {
        Ok(order) => Arc::new(order),
        Err(e) => {
            tracing::info!(campaign, device = %key, reason = %e, "no upgrade order for this device: it updates at its next boot");
            return;
        }
    };
    let outcome = match mqtt
        .publish(
            &order.record.topic,
            order.record.payload.clone(),
            neosens_runtime::mqtt::Qos::AtMostOnce,
            false,
        )
        .await
    {
        Ok(()) => "sent".to_owned(),
        Err(e) => format!("not sent: {e}"),
    };
    let recorded = Arc::clone(&order);
    let stored = registry
        .acting(Actor::System { component: "campaigns".into() }, move |r| r.record_order(&recorded, &outcome))
        .await;
    if let Err(e) = stored {
        tracing::warn!(campaign, device = %key, error = %e, "recording an upgrade order failed");
    }
}
