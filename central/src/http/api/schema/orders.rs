//! The JSON form of an order to a device (`/api/v1/devices/{id}/orders`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry;

/// An order as the API receives it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderRequest {
    /// The order: a device order of the device's type (`status`, `frequency`, `reboot`,
    /// `restart`, `upgrade`, `update`, `reset`), `reinstall`, or any order of a sensor module.
    pub(crate) order: String,
    /// Its value (`frequency`: seconds as an integer; `upgrade`: an optional image URL).
    pub(crate) value: Option<Value>,
    /// A sensor module (`temperature`, `noise` …) instead of the device itself.
    pub(crate) module: Option<String>,
    /// For module orders: the module's `unitID` (`auto_3456`) or `all` (default).
    pub(crate) dest: Option<String>,
}

impl From<OrderRequest> for registry::OrderSpec {
    fn from(v: OrderRequest) -> Self {
        registry::OrderSpec { order: v.order, value: v.value, module: v.module, dest: v.dest }
    }
}

/// One order, as recorded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct OrderRecord {
    /// When it was requested (ms since the epoch).
    pub(crate) at: i64,
    /// Who asked (token or user name).
    pub(crate) by: String,
    /// The order (`reboot`, `frequency`, `reinstall` …).
    pub(crate) order: String,
    /// Its value, as JSON text.
    pub(crate) value: Option<String>,
    /// The module addressed (`device` for device orders).
    pub(crate) module: String,
    /// The `dest` sent.
    pub(crate) dest: String,
    /// The topic it was published on.
    pub(crate) topic: String,
    /// The exact payload.
    pub(crate) payload: String,
    /// `sent`, or why it was not.
    pub(crate) outcome: String,
}

impl From<crate::model::OrderRecord> for OrderRecord {
    fn from(v: crate::model::OrderRecord) -> Self {
        OrderRecord {
            at: v.at.millis(),
            by: v.by,
            order: v.order,
            value: v.value,
            module: v.module,
            dest: v.dest,
            topic: v.topic,
            payload: v.payload,
            outcome: v.outcome,
        }
    }
}
