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
}
