//! Device types: an open list (`esp32`, `rpi3`, `lorawan_node` …) with per-type rules.

use neosens_protocol::ids::DeviceTypeId;
use serde::{Deserialize, Serialize};

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

impl From<DeviceTypeV1> for DeviceType {
    fn from(v1: DeviceTypeV1) -> Self {
        DeviceType {
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
