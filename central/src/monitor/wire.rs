//! The JSON form of an alert: what `/api/v1/alerts`, the MQTT alert messages and the webhook
//! carry. Its own types, not the stored [`AlertRecord`] (postcard): a field or attribute added
//! for these readers cannot change the store's bytes, and a store change cannot silently change
//! what they read.

use neosens_protocol::ids::{BuildingId, DeviceId};
use serde::Serialize;

use crate::model::{Ack, AlertKind, AlertRecord};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AlertKind)]
pub enum AlertKindJson {
    /// Devices of a building past their threshold.
    Outage,
    /// A device's status matches a failure-state rule of its type.
    Failure,
    /// A device's first password was handed to an address outside `[alerts] device_networks`.
    ForeignDelivery,
    /// A gateway has not heard one of its LoRaWAN packet forwarders for 5 min.
    ForwarderSilent,
    /// A device keeps rebooting (`[alerts.reboot_loop]`).
    RebootLoop,
    /// A gateway in local-broker mode out of touch for long (`rule`: its id): its site's
    /// outages are held meanwhile.
    SiteDisconnected,
}

impl From<AlertKind> for AlertKindJson {
    fn from(k: AlertKind) -> Self {
        match k {
            AlertKind::Outage => AlertKindJson::Outage,
            AlertKind::Failure => AlertKindJson::Failure,
            AlertKind::ForeignDelivery => AlertKindJson::ForeignDelivery,
            AlertKind::ForwarderSilent => AlertKindJson::ForwarderSilent,
            AlertKind::RebootLoop => AlertKindJson::RebootLoop,
            AlertKind::SiteDisconnected => AlertKindJson::SiteDisconnected,
        }
    }
}

/// An operator's acknowledgement of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Ack)]
pub struct AckJson {
    /// Who.
    pub by: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// Notifications are muted until then (ms since the epoch).
    pub silenced_until: Option<i64>,
}

impl From<&Ack> for AckJson {
    fn from(a: &Ack) -> Self {
        AckJson { by: a.by.clone(), at: a.at, silenced_until: a.silenced_until }
    }
}

/// An alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = AlertRecord)]
pub struct AlertJson {
    /// Id, increasing.
    pub id: u64,
    /// Outage or failure.
    pub kind: AlertKindJson,
    /// The building (outages: the grouping key; failures: the device's).
    #[schema(value_type = Option<String>)]
    pub building: Option<BuildingId>,
    /// The device (failures).
    #[schema(value_type = Option<String>)]
    pub device: Option<DeviceId>,
    /// The rule that fired (failures).
    pub rule: Option<String>,
    /// The gateway (silent forwarders).
    pub gateway: Option<String>,
    /// The packet forwarder's gateway EUI (silent forwarders).
    pub forwarder: Option<String>,
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
    pub ack: Option<AckJson>,
}

impl From<&AlertRecord> for AlertJson {
    fn from(r: &AlertRecord) -> Self {
        // A silent forwarder's record keeps its key in `rule`; readers get it as two fields.
        let forwarder = (r.kind == AlertKind::ForwarderSilent)
            .then(|| r.rule.as_deref().and_then(super::forwarders::parse_key))
            .flatten();
        AlertJson {
            id: r.id,
            kind: r.kind.into(),
            building: r.building,
            device: r.device,
            rule: if forwarder.is_some() { None } else { r.rule.clone() },
            gateway: forwarder.as_ref().map(|(g, _)| g.to_string()),
            forwarder: forwarder.map(|(_, eui)| eui),
            detail: r.detail.clone(),
            outdated: r.outdated,
            total_devices: r.total_devices,
            opened_at: r.opened_at,
            resolved_at: r.resolved_at,
            ack: r.ack.as_ref().map(AckJson::from),
        }
    }
}
