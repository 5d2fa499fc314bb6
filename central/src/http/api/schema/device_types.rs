//! The JSON forms of device types (`/api/v1/types`).

use serde::Deserialize;
use serde_json::Value;

use super::present;
use crate::model::StatusRuleSpec;
use crate::registry;

/// A new device type.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceTypeInput {
    /// Unique name: lowercase letters, digits, `_` (`esp32`, `lorawan_node`).
    pub(crate) name: String,
    /// Free text.
    #[serde(default)]
    pub(crate) description: String,
    /// JSON Schema that device configurations of this type must satisfy.
    pub(crate) config_schema: Option<Value>,
    /// Seconds between two statuses (default 1800).
    pub(crate) status_period_s: Option<u32>,
    /// Seconds without status before a device is outdated (default: the status period).
    pub(crate) outdated_after_s: Option<u32>,
    /// Device orders its devices understand (default: the ESP firmware's `status`, `frequency`,
    /// `reboot`, `restart`, `upgrade`; a Raspberry Pi type adds `update`, `reset`).
    pub(crate) orders: Option<Vec<String>>,
    /// Failure-state rules on status fields: each raises an alert while it holds.
    #[serde(default)]
    pub(crate) status_rules: Vec<StatusRuleSpec>,
}

/// Changes to a device type.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceTypePatch {
    /// New description.
    pub(crate) description: Option<String>,
    /// New schema; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    pub(crate) config_schema: Option<Option<Value>>,
    /// New status period.
    pub(crate) status_period_s: Option<u32>,
    /// New outdated threshold.
    pub(crate) outdated_after_s: Option<u32>,
    /// New order list.
    pub(crate) orders: Option<Vec<String>>,
    /// New failure-state rules (replace the list).
    pub(crate) status_rules: Option<Vec<StatusRuleSpec>>,
}

impl From<DeviceTypeInput> for registry::NewDeviceType {
    fn from(v: DeviceTypeInput) -> Self {
        registry::NewDeviceType {
            name: v.name,
            description: v.description,
            config_schema: v.config_schema,
            status_period_s: v.status_period_s,
            outdated_after_s: v.outdated_after_s,
            orders: v.orders,
            status_rules: v.status_rules,
        }
    }
}

impl From<DeviceTypePatch> for registry::DeviceTypeChanges {
    fn from(v: DeviceTypePatch) -> Self {
        registry::DeviceTypeChanges {
            description: v.description,
            config_schema: v.config_schema,
            status_period_s: v.status_period_s,
            outdated_after_s: v.outdated_after_s,
            orders: v.orders,
            status_rules: v.status_rules,
        }
    }
}
