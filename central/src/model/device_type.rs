//! Device types: an open list (`esp32`, `rpi3`, `lorawan_node` …) with per-type rules.

use neosens_protocol::ids::DeviceTypeId;
use serde::{Deserialize, Serialize};

use super::status_rule::StatusRule;

/// Default status period and outdated threshold: the firmware reports every 1800 s.
pub const DEFAULT_STATUS_PERIOD_S: u32 = 1800;

/// A device type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceType {
    /// Id.
    pub id: DeviceTypeId,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// JSON Schema the configuration of devices of this type must satisfy (JSON text), if any.
    pub config_schema: Option<String>,
    /// Seconds between two statuses of a healthy device.
    pub status_period_s: u32,
    /// Seconds without a status after which a device is outdated.
    pub outdated_after_s: u32,
    /// The device orders its devices understand (`status`, `reboot` … — spec §5.6); `reinstall`
    /// is added by central wherever `reboot` is there.
    pub orders: Vec<String>,
    /// Failure-state rules on the status payload: each raises an alert while it holds.
    pub status_rules: Vec<StatusRule>,
    /// How its LoRaWAN nodes' payloads read (nodes whose codec is `layout`).
    pub payload_layout: Option<neosens_protocol::layout::PayloadLayout>,
}

/// Schema version 3 of [`DeviceType`] (schemas 3 and 4), before payload layouts: read by the
/// migration to v5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTypeV3 {
    /// Id.
    pub id: DeviceTypeId,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// JSON Schema the configuration of devices of this type must satisfy (JSON text), if any.
    pub config_schema: Option<String>,
    /// Seconds between two statuses of a healthy device.
    pub status_period_s: u32,
    /// Seconds without a status after which a device is outdated.
    pub outdated_after_s: u32,
    /// The device orders its devices understand (`status`, `reboot` … — spec §5.6); `reinstall`
    /// is added by central wherever `reboot` is there.
    pub orders: Vec<String>,
    /// Failure-state rules on the status payload: each raises an alert while it holds.
    pub status_rules: Vec<StatusRule>,
}

/// Orders the ESP firmware acts on: the default list of a new type.
pub fn firmware_orders() -> Vec<String> {
    neosens_protocol::legacy::KnownOrder::FIRMWARE.iter().map(|o| o.name().to_owned()).collect()
}

/// Schema version 1 of [`DeviceType`], before per-type orders: read by the migration to v2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTypeV1 {
    /// Id.
    pub id: DeviceTypeId,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// JSON Schema text.
    pub config_schema: Option<String>,
    /// Status period.
    pub status_period_s: u32,
    /// Outdated threshold.
    pub outdated_after_s: u32,
}

/// Schema version 2 of [`DeviceType`], before failure-state rules: read by the migration to v3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTypeV2 {
    /// Id.
    pub id: DeviceTypeId,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// JSON Schema text.
    pub config_schema: Option<String>,
    /// Status period.
    pub status_period_s: u32,
    /// Outdated threshold.
    pub outdated_after_s: u32,
    /// Orders.
    pub orders: Vec<String>,
}

impl From<DeviceTypeV2> for DeviceTypeV3 {
    fn from(v2: DeviceTypeV2) -> Self {
        DeviceTypeV3 {
            id: v2.id,
            name: v2.name,
            description: v2.description,
            config_schema: v2.config_schema,
            status_period_s: v2.status_period_s,
            outdated_after_s: v2.outdated_after_s,
            orders: v2.orders,
            status_rules: Vec::new(),
        }
    }
}

impl From<DeviceTypeV3> for DeviceType {
    fn from(v: DeviceTypeV3) -> Self {
        DeviceType {
            id: v.id,
            name: v.name,
            description: v.description,
            config_schema: v.config_schema,
            status_period_s: v.status_period_s,
            outdated_after_s: v.outdated_after_s,
            orders: v.orders,
            status_rules: v.status_rules,
            payload_layout: None,
        }
    }
}

impl From<DeviceTypeV1> for DeviceTypeV2 {
    fn from(v1: DeviceTypeV1) -> Self {
        DeviceTypeV2 {
            id: v1.id,
            name: v1.name,
            description: v1.description,
            config_schema: v1.config_schema,
            status_period_s: v1.status_period_s,
            outdated_after_s: v1.outdated_after_s,
            orders: firmware_orders(),
        }
    }
}
