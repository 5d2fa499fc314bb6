//! The monitor with several replicas on one store: only the leader ([`crate::leader`]) tracks
//! devices, opens alerts and notifies. The others show the leader's alerts (read back from the
//! store every [`FOLLOW_EVERY`]), store acknowledgements alone, and relay what their request
//! handlers saw — notices, boots — to the leader through the store.

use std::time::Duration;

use neosens_protocol::ids::DeviceId;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Inputs, Monitor, Notice};
use crate::leader::Leadership;

/// How often a replica that does not lead reads the alerts again, and how often the leader
/// takes relayed items and acknowledgements made through other replicas.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// Relayed items taken at most per pass (the rest at the next).
const TAKE_AT_ONCE: usize = 500;

/// What a replica that does not lead saw for the monitor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Relayed {
    /// A request handler's notice.
    Notice {
        /// The notice.
        notice: Notice,
        /// When the replica saw it (ms since the epoch).
        at: i64,
    },
    /// A device booting (its configuration asked).
    Boot {
        /// The device.
        device: DeviceId,
        /// When (ms since the epoch): reboot loops count boots in a window.
        at: i64,
    },
}

fn now() -> i64 {
    crate::model::Timestamp::now().millis()
}

/// Stores `item` for the leader (on the blocking pool); a failure is logged — it is lost.
async fn relay(monitor: &Monitor, item: &Relayed) {
    let Some(store) = monitor.store().cloned() else { return };
    let text = match serde_json::to_string(item) {
        Ok(text) => text,
        Err(e) => return tracing::error!(error = %e, "monitor: cannot encode an item for the leader"),
    };
    if let Err(e) = neosens_runtime::blocking::run(move || store.relay_to_leader(&[text])).await {
        tracing::warn!(error = %e, item = ?item, "monitor: cannot relay to the leader (lost)");
    }
}

/// While this replica does not lead: follows the leader's alerts and relays notices and boots
/// to it; statuses seen are dropped (the leader reads them from the store). Returns `true` once
/// this replica leads, `false` at shutdown or when an input closed.
pub(super) async fn follow(
    monitor: &Monitor,
    inputs: &mut Inputs,
    leadership: &mut Leadership,
    shutdown: &CancellationToken,
) -> bool {
    let mut every = tokio::time::interval(FOLLOW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = leadership.until(true) => return true,
            _ = every.tick() => {
                if let Err(e) = monitor.reload().await {
                    tracing::warn!(error = %e, "monitor: cannot read the leader's alerts");
                }
            }
            seen = inputs.seen.recv() => if seen.is_none() { return false },
            notice = inputs.notices.recv() => match notice {
                Some(notice) => relay(monitor, &Relayed::Notice { notice, at: now() }).await,
                None => return false,
            },
            device = inputs.boots.recv() => match device {
                Some(device) => relay(monitor, &Relayed::Boot { device, at: now() }).await,
                None => return false,
            },
        }
    }
}

/// The leader's pass: acknowledgements made through other replicas, then what they relayed.
pub(super) async fn take_relayed(monitor: &Monitor) -> Vec<Relayed> {
    if let Err(e) = monitor.merge_acks().await {
        tracing::warn!(error = %e, "monitor: cannot read acknowledgements made through other replicas");
    }
    let Some(store) = monitor.store().cloned() else { return Vec::new() };
    match neosens_runtime::blocking::run(move || store.take_relayed(TAKE_AT_ONCE)).await {
        Ok(items) => items
            .into_iter()
            .filter_map(|text| match serde_json::from_str(&text) {
                Ok(item) => Some(item),
                Err(e) => {
                    tracing::warn!(error = %e, "monitor: an item relayed by another replica does not parse (dropped)");
                    None
                }
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "monitor: cannot take what other replicas relayed");
            Vec::new()
        }
    }
}
