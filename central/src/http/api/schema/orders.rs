//! The JSON form of an order to a device (`/api/v1/devices/{id}/orders`).

use serde::Deserialize;
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
