//! The gateway's inbound MQTT messages, sorted: a command on a LoRaWAN node's topic
//! (`<base>/<DevEUI>/command`) is a node order for [`super::orders`]; anything else (the
//! gateway's own `<base>/device/command`) goes to the status task.
//!
//! The uplink subscribes to `<base>/+/command` for each room that holds a node of the scope
//! (the broker lets a gateway read the command topics of its scope's rooms, and no wider), at
//! most [`MAX_ORDER_ROOMS`] rooms, followed as the registry changes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::LoraStats;
use super::orders::{TX_ACK_WAIT, dev_eui_of_topic, parse_command};
use crate::cache::{Cache, ScopeNodes};
use crate::uplink::{Inbound, Subscriber};

/// Rooms whose command topics the gateway follows at most (each is one subscription, sent
/// again after every reconnection).
pub const MAX_ORDER_ROOMS: usize = 1024;

/// How often the registry revision is checked for new nodes and rooms.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// How often frames carrying orders are checked for a forwarder's answer that never came.
const SETTLE_EVERY: Duration = Duration::from_secs(1);

/// Sorts inbound messages until `shutdown`.
pub async fn route(
    mut inbound: mpsc::Receiver<Inbound>,
    to_status: mpsc::Sender<Inbound>,
    cache: Cache,
    stats: Arc<LoraStats>,
    subscriber: Option<Subscriber>,
    sync: Arc<crate::sync::SyncStats>,
    shutdown: CancellationToken,
) {
    let mut scope = ScopeNodes { revision: u64::MAX, ..ScopeNodes::default() };
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    // When to look at frames whose forwarder has not answered yet (none out: never).
    let mut settle_at: Option<tokio::time::Instant> = None;
    let mut open = true;
    loop {
        let settle_deadline = settle_at.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            () = shutdown.cancelled() => return,
            // At start, after each sync (a new node's room is followed at once), and every
            // REFRESH_EVERY (a sync while a message was being sorted).
            () = sync.synced.notified() => refresh.reset_immediately(),
            _ = refresh.tick() => {
                if let Some(fresh) = read_scope(&cache, scope.revision).await {
                    scope = fresh;
                    follow_rooms(&scope, subscriber.as_ref(), &mut subscribed);
                }
            }
            // A frame whose forwarder never answers counts as sent after a while: said soon.
            () = stats.orders.taken() => {
                settle_at.get_or_insert_with(|| tokio::time::Instant::now() + TX_ACK_WAIT + SETTLE_EVERY);
            }
            () = tokio::time::sleep_until(settle_deadline), if settle_at.is_some() => {
                stats.orders.settle(Instant::now());
                settle_at = stats.orders.in_flight().then(|| tokio::time::Instant::now() + SETTLE_EVERY);
            }
            // Without an uplink (not enrolled, no broker) the channel is closed: the task stays,
            // idle, like the rest of the gateway.
            message = inbound.recv(), if open => {
                let Some(message) = message else {
                    open = false;
                    continue;
                };
                match dev_eui_of_topic(&message.topic) {
                    Some(dev_eui) => take_order(&stats, &scope, dev_eui, &message.payload),
                    None => {
                        if to_status.try_send(message).is_err() {
                            tracing::warn!("gateway order dropped: the status task is busy");
                        }
                    }
                }
            }
        }
    }
}

/// The scope's nodes, when the registry revision moved since `known` (read off the runtime).
async fn read_scope(cache: &Cache, known: u64) -> Option<ScopeNodes> {
    if cache.revision().ok()? == known {
        return None;
    }
    let cache = cache.clone();
    match neosens_runtime::blocking::run(move || cache.scope_nodes()).await {
        Ok(scope) => Some(scope),
        Err(e) => {
            tracing::error!(error = %e, "reading the LoRaWAN nodes of the scope");
            None
        }
    }
}

fn follow_rooms(scope: &ScopeNodes, subscriber: Option<&Subscriber>, subscribed: &mut HashSet<String>) {
    let Some(subscriber) = subscriber else { return };
    for base in &scope.rooms {
        if subscribed.contains(base) {
            continue;
        }
        if subscribed.len() >= MAX_ORDER_ROOMS {
            tracing::warn!(
                rooms = scope.rooms.len(),
                max = MAX_ORDER_ROOMS,
                "node orders: too many rooms to follow, the rest are not"
            );
            return;
        }
        subscriber.subscribe(&format!("{base}/+/command"));
        subscribed.insert(base.clone());
    }
}

/// A command on a node's topic: queued, or refused with a reason central will record.
fn take_order(stats: &LoraStats, scope: &ScopeNodes, dev_eui: String, payload: &[u8]) {
    let now = Instant::now();
    if !scope.dev_euis.contains(&dev_eui) {
        // Another gateway's node (rooms are shared), or none: not ours to answer.
        tracing::debug!(%dev_eui, "command for a node this gateway does not serve");
        stats.downlink("order_not_ours");
        return;
    }
    match parse_command(dev_eui.clone(), payload) {
        Ok(command) => {
            stats.downlink("order_received");
            stats.orders.queue(command, now);
        }
        Err(e) => {
            tracing::info!(%dev_eui, error = %e, "node order refused");
            stats.downlink("order_malformed");
            stats.orders.refuse(&dev_eui, reference_of(payload), &e.to_string(), now);
        }
    }
}

/// The `ref` of a command that is otherwise malformed, if it has a usable one.
fn reference_of(payload: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("ref")?.as_str().filter(|r| !r.is_empty() && r.len() <= 64).map(str::to_owned)
}
