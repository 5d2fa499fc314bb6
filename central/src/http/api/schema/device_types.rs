//! The JSON forms of device types (`/api/v1/types`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::present;
use crate::model;
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
    /// How its LoRaWAN nodes' payloads read, for nodes whose codec is `layout`: records by type
    /// byte (kind, unit, size, sign, byte order, scale, offset, decimals), the channel as subID.
    pub(crate) payload_layout: Option<neosens_protocol::layout::PayloadLayout>,
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
    /// New payload layout; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    pub(crate) payload_layout: Option<Option<neosens_protocol::layout::PayloadLayout>>,
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
            status_rules: rules(v.status_rules),
            payload_layout: v.payload_layout,
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
            status_rules: v.status_rules.map(rules),
            payload_layout: v.payload_layout,
        }
    }
}

/// How a field is compared with a rule's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RuleOp {
    /// The field equals the value.
    Eq,
    /// The field is present and differs from the value.
    Ne,
    /// The field is a number below the value.
    Lt,
    /// The field is a number at most the value.
    Le,
    /// The field is a number above the value.
    Gt,
    /// The field is a number at least the value.
    Ge,
    /// The field is absent (no value).
    Missing,
}

/// A failure-state rule as the API reads and shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusRuleSpec {
    /// Name, unique in its type: letters, digits, `_`, `-`.
    pub(crate) name: String,
    /// Dotted path into the status JSON (`status`, `heap`, `modules.0.name`).
    pub(crate) field: String,
    /// `eq`, `ne`, `lt`, `le`, `gt`, `ge` or `missing`.
    pub(crate) op: RuleOp,
    /// The operand: a number for `lt`/`le`/`gt`/`ge`, a string, number or boolean for `eq`/`ne`,
    /// absent for `missing`.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub(crate) value: Value,
}

impl From<RuleOp> for model::RuleOp {
    fn from(v: RuleOp) -> Self {
        match v {
            RuleOp::Eq => model::RuleOp::Eq,
            RuleOp::Ne => model::RuleOp::Ne,
            RuleOp::Lt => model::RuleOp::Lt,
            RuleOp::Le => model::RuleOp::Le,
            RuleOp::Gt => model::RuleOp::Gt,
            RuleOp::Ge => model::RuleOp::Ge,
            RuleOp::Missing => model::RuleOp::Missing,
        }
    }
}

impl From<model::RuleOp> for RuleOp {
    fn from(v: model::RuleOp) -> Self {
        match v {
            model::RuleOp::Eq => RuleOp::Eq,
            model::RuleOp::Ne => RuleOp::Ne,
            model::RuleOp::Lt => RuleOp::Lt,
            model::RuleOp::Le => RuleOp::Le,
            model::RuleOp::Gt => RuleOp::Gt,
            model::RuleOp::Ge => RuleOp::Ge,
            model::RuleOp::Missing => RuleOp::Missing,
        }
    }
}

impl From<StatusRuleSpec> for model::StatusRuleSpec {
    fn from(v: StatusRuleSpec) -> Self {
        model::StatusRuleSpec { name: v.name, field: v.field, op: v.op.into(), value: v.value }
    }
}

impl From<model::StatusRuleSpec> for StatusRuleSpec {
    fn from(v: model::StatusRuleSpec) -> Self {
        StatusRuleSpec { name: v.name, field: v.field, op: v.op.into(), value: v.value }
    }
}

/// Converts a list of rules read from a body.
fn rules(list: Vec<StatusRuleSpec>) -> Vec<model::StatusRuleSpec> {
    list.into_iter().map(Into::into).collect()
}
