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

impl From<DeviceTypeV2> for DeviceType {
    fn from(v2: DeviceTypeV2) -> Self {
        DeviceType {
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
