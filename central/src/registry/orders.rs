//! Orders to devices: checked against what the device understands and what its firmware can
//! receive, then recorded with who sent them (spec §5.6, §5.7).

use neosens_protocol::DeviceUid;
use neosens_protocol::legacy::{Command, CommandValue, KnownOrder, OrderValue};
use serde_json::Value;

use super::devices::resolve_device;
use super::{Registry, RegistryError};
use crate::model::{OrderRecord, Timestamp};

/// The central-side order: reset the credentials, then `reboot` (the device provisions again and
/// receives its new password once).
pub const REINSTALL: &str = "reinstall";

/// An order asked for by an operator, before it is checked against the device.
#[derive(Debug, Clone)]
pub struct OrderSpec {
    /// The order: a device order of the device's type (`status`, `frequency`, `reboot`,
    /// `restart`, `upgrade`, `update`, `reset`), `reinstall`, or any order of a sensor module.
    pub order: String,
    /// Its value (`frequency`: seconds as an integer; `upgrade`: an optional image URL).
    pub value: Option<Value>,
    /// A sensor module (`temperature`, `noise` …) instead of the device itself.
    pub module: Option<String>,
    /// For module orders: the module's `unitID` (`auto_3456`) or `all` (default).
    pub dest: Option<String>,
}

/// An order ready to publish.
#[derive(Debug, Clone)]
pub struct PreparedOrder {
    /// The device's id (text), for the record and a credentials reset.
    pub device: String,
    /// Whether the credentials must be reset before publishing (`reinstall`).
    pub reinstall: bool,
    /// Published with QoS 1 (a node order: the gateways queue it) rather than QoS 0 (the 2016
    /// server's orders to devices).
    pub at_least_once: bool,
    /// The record, `outcome` still to be set.
    pub record: OrderRecord,
}

fn plain_level(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#', '\0'])
}

fn command_value(value: Option<&Value>) -> Result<Option<CommandValue>, RegistryError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(CommandValue::Text(s.clone()))),
        Some(v) => v.as_i64().map(|i| Some(CommandValue::Int(i))).ok_or_else(|| {
            RegistryError::invalid("value", "an integer or a string (the firmware reads nothing else)")
        }),
    }
}

fn check_known_value(order: KnownOrder, value: Option<&CommandValue>) -> Result<(), RegistryError> {
    match (order.value(), value) {
        (OrderValue::None, None) | (OrderValue::OptionalText, None | Some(CommandValue::Text(_))) => Ok(()),
        (OrderValue::Int { min, max }, Some(CommandValue::Int(v))) if (min..=max).contains(v) => Ok(()),
        (OrderValue::Int { min, max }, _) => Err(RegistryError::invalid(
            "value",
            format!("{} takes an integer from {min} to {max}", order.name()),
        )),
        (OrderValue::None, Some(_)) => {
            Err(RegistryError::invalid("value", format!("{} takes no value", order.name())))
        }
        (OrderValue::OptionalText, Some(_)) => {
            Err(RegistryError::invalid("value", format!("{} takes an optional URL string", order.name())))
        }
    }
}

/// Where an order goes and what goes on the wire.
struct Addressed {
    module: String,
    dest: String,
    order: String,
    reinstall: bool,
}

/// An order to the device itself: one its type allows (or `reinstall`), to its MAC.
fn device_order(
    state: &super::state::State,
    device: &crate::model::Device,
    request: &OrderSpec,
    value: Option<&CommandValue>,
) -> Result<Addressed, RegistryError> {
    let DeviceUid::Ethernet(mac) = device.uid else {
        return Err(RegistryError::invalid(
            "order",
            "device orders go to MAC-identified devices (neOSensor, Raspberry Pi); LoRaWAN nodes take downlink",
        ));
    };
    let allowed = state.types.get(&device.device_type).map(|t| t.record.orders.clone()).unwrap_or_default();
    let (wire, reinstall) = if request.order == REINSTALL {
        if !allowed.iter().any(|o| o == "reboot") {
            return Err(RegistryError::invalid(
                "order",
                "reinstall needs the reboot order, which this device type lacks",
            ));
        }
        if value.is_some() {
            return Err(RegistryError::invalid("value", "reinstall takes no value"));
        }
        ("reboot".to_owned(), true)
    } else {
        let known = KnownOrder::from_name(&request.order).filter(|_| allowed.contains(&request.order));
        let Some(known) = known else {
            return Err(RegistryError::invalid(
                "order",
                format!("devices of this type take: {}, {REINSTALL}", allowed.join(", ")),
            ));
        };
        check_known_value(known, value)?;
        (request.order.clone(), false)
    };
    if request.dest.is_some() {
        return Err(RegistryError::invalid("dest", "device orders are addressed to the device's MAC"));
    }
    Ok(Addressed { module: "device".to_owned(), dest: mac.to_string(), order: wire, reinstall })
}

/// An order to one of the device's modules (`temperature`, …), to a unit or `all`.
fn module_order(module: &str, request: &OrderSpec) -> Result<Addressed, RegistryError> {
    if !plain_level(module) {
        return Err(RegistryError::invalid("module", "one topic level, such as temperature"));
    }
    let order = request.order.trim();
    if order.is_empty() || order.len() > 32 || order == REINSTALL {
        return Err(RegistryError::invalid("order", "1 to 32 characters (reinstall is a device order)"));
    }
    let dest = request.dest.clone().unwrap_or_else(|| "all".into());
    if dest.is_empty() {
        return Err(RegistryError::invalid("dest", "a unitID such as auto_3456, or all"));
    }
    Ok(Addressed { module: module.to_owned(), dest, order: order.to_owned(), reinstall: false })
}

impl Registry {
    /// Checks an order and builds its bytes and record.
    pub fn prepare_order(
        &self,
        key: &str,
        request: &OrderSpec,
        by: &str,
    ) -> Result<PreparedOrder, RegistryError> {
        if request.order == super::node_orders::DOWNLINK {
            return self.prepare_downlink(key, request, by);
        }
        let state = self.state.read();
        let entry =
            resolve_device(&state, key).ok_or_else(|| RegistryError::not_found(format!("device {key}")))?;
        let device = &entry.record;
        let base =
            state.device_topics(device).into_iter().next().ok_or_else(|| {
                RegistryError::invalid("device", "the device has no room, so no command topic")
            })?;
        let value = command_value(request.value.as_ref())?;
        let Addressed { module, dest, order: wire_order, reinstall } = match request.module.as_deref() {
            None | Some("device") => device_order(&state, device, request, value.as_ref())?,
            Some(module) => module_order(module, request)?,
        };
        let topic = format!("{base}/{module}/command");
        let command = Command { dest: dest.clone(), order: wire_order, value };
        let payload =
            command.encode_for(&topic).map_err(|e| RegistryError::invalid("order", e.to_string()))?;
        Ok(PreparedOrder {
            device: device.id.to_string(),
            reinstall,
            at_least_once: false,
            record: OrderRecord {
                at: Timestamp::now(),
                by: by.to_owned(),
                order: request.order.clone(),
                value: request.value.as_ref().filter(|v| !v.is_null()).map(Value::to_string),
                module,
                dest,
                topic,
                payload,
                outcome: String::new(),
            },
        })
    }

    /// Records an order's outcome in the device's history.
    pub fn record_order(&self, order: &PreparedOrder, outcome: &str) -> Result<OrderRecord, RegistryError> {
        let id: neosens_protocol::ids::DeviceId =
            order.device.parse().map_err(|_| RegistryError::not_found(format!("device {}", order.device)))?;
        let record = OrderRecord { outcome: outcome.to_owned(), ..order.record.clone() };
        self.store.append_order(id.to_bytes(), &record)?;
        let uid = self.state.read().devices.get(&id).map(|d| d.record.uid.to_string()).unwrap_or_default();
        let value = record.value.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
        let detail = format!("{}{value} on {}: {outcome}", record.order, record.topic);
        self.store.append_audit(&[crate::audit::event(
            "order.send",
            "device",
            id.to_string(),
            uid,
            detail,
        )])?;
        tracing::info!(device = %order.device, order = %record.order, by = %record.by, outcome, "order");
        Ok(record)
    }

    /// A device's orders, newest first.
    pub fn orders(&self, key: &str, limit: usize) -> Result<Vec<OrderRecord>, RegistryError> {
        let id = {
            let state = self.state.read();
            resolve_device(&state, key)
                .ok_or_else(|| RegistryError::not_found(format!("device {key}")))?
                .record
                .id
        };
        Ok(self.store.device_orders(id.to_bytes(), limit)?)
    }
}
