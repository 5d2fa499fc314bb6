//! Alerts as stored and listed: outages (grouped by building) and failure states (one device,
//! one rule). Kept across restarts, with the operator's acknowledgement.

use neosens_protocol::ids::{BuildingId, DeviceId};
use serde::{Deserialize, Serialize};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Devices of a building past their threshold.
    Outage,
    /// A device's status matches a failure-state rule of its type.
    Failure,
    /// A device's first password was handed to an address outside `[alerts] device_networks`
    /// (someone else may have asked for it first). Resolved when an operator acknowledges it.
    ForeignDelivery,
    /// A gateway in touch with central has not heard one of its LoRaWAN packet forwarders for
    /// 5 min. Stored with `rule` = `<gateway id>/<gateway EUI>` (its key across restarts).
    ForwarderSilent,
    /// A device booted `[alerts.reboot_loop] boots` times within `window_min` minutes; resolved
    /// after a window without a boot.
    RebootLoop,
    /// A gateway in local-broker mode out of touch for `[alerts] site_disconnected_after_min`:
    /// its site's outages are held meanwhile. Stored with `rule` = the gateway id.
    SiteDisconnected,
}

/// An operator's acknowledgement of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Who.
    pub by: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// Notifications are muted until then (ms since the epoch).
    pub silenced_until: Option<i64>,
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Id, increasing.
    pub id: u64,
    /// Outage or failure.
    pub kind: AlertKind,
    /// The building (outages: the grouping key; failures: the device's).
    pub building: Option<BuildingId>,
    /// The device (failures).
    pub device: Option<DeviceId>,
    /// The rule that fired (failures).
    pub rule: Option<String>,
    /// What the rule found (failures), e.g. `heap = 12000 (< 20000)`.
    pub detail: Option<String>,
    /// Devices affected now.
    pub outdated: u64,
    /// Every device that was part of it.
    pub total_devices: u64,
    /// When it opened (ms since the epoch).
    pub opened_at: i64,
    /// When it was resolved.
    pub resolved_at: Option<i64>,
    /// The operator's acknowledgement.
    pub ack: Option<Ack>,
}

impl AlertRecord {
    /// Whether it is still open.
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// Whether notifications are muted at `now`.
    pub fn silenced(&self, now: i64) -> bool {
        self.ack.as_ref().and_then(|a| a.silenced_until).is_some_and(|until| until > now)
    }

    /// Records `ack` (an operator's acknowledgement made at `ack.at`): a notice has nothing
    /// that ends it but the operator having seen it, so an open one is resolved by it.
    pub fn acknowledge(&mut self, ack: Ack) {
        if self.kind == AlertKind::ForeignDelivery && self.is_open() {
            self.resolved_at = Some(ack.at);
        }
        self.ack = Some(ack);
    }

    /// Takes `other`'s acknowledgement when it is newer than this one's (`other` being another
    /// copy of the same alert, written by another replica); whether it did. Replicas that do not
    /// lead write acknowledgements only, the leader everything else: merging keeps both.
    pub fn adopt_newer_ack(&mut self, other: &AlertRecord) -> bool {
        let theirs = other.ack.as_ref().map(|a| a.at);
        if theirs.is_none() || theirs <= self.ack.as_ref().map(|a| a.at) {
            return false;
        }
        let ack = other.ack.clone().expect("checked above");
        self.acknowledge(ack);
        true
    }
}
