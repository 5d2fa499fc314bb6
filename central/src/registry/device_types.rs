//! Device types: an open list, each with an optional configuration schema and its timing.

use neosens_protocol::ids::DeviceTypeId;
use serde_json::Value;

use super::state::{State, compile_schema};
use super::{Registry, RegistryError};
use crate::model::{
    DEFAULT_STATUS_PERIOD_S, DeviceType, EntityKind, MAX_RULES, Record, StatusRule, StatusRuleSpec, new_uuid,
};
use crate::store::Write;

/// Bounds on periods and thresholds: a minute to a week.
const SECONDS_RANGE: std::ops::RangeInclusive<u32> = 60..=604_800;

/// A new device type.
#[derive(Debug, Clone)]
pub struct NewDeviceType {
    /// Unique name: lowercase letters, digits, `_` (`esp32`, `lorawan_node`).
    pub name: String,
    /// Free text.
    pub description: String,
    /// JSON Schema that device configurations of this type must satisfy.
    pub config_schema: Option<Value>,
    /// Seconds between two statuses (default 1800).
    pub status_period_s: Option<u32>,
    /// Seconds without status before a device is outdated (default: the status period).
    pub outdated_after_s: Option<u32>,
    /// Device orders its devices understand (default: the ESP firmware's `status`, `frequency`,
    /// `reboot`, `restart`, `upgrade`; a Raspberry Pi type adds `update`, `reset`).
    pub orders: Option<Vec<String>>,
    /// Failure-state rules on status fields: each raises an alert while it holds.
    pub status_rules: Vec<StatusRuleSpec>,
    /// How its LoRaWAN nodes' payloads read (nodes whose codec is `layout`).
    pub payload_layout: Option<neosens_protocol::layout::PayloadLayout>,
}

/// Changes to a device type.
#[derive(Debug, Clone, Default)]
pub struct DeviceTypeChanges {
    /// New description.
    pub description: Option<String>,
    /// New schema; `null` removes it.
    pub config_schema: Option<Option<Value>>,
    /// New status period.
    pub status_period_s: Option<u32>,
    /// New outdated threshold.
    pub outdated_after_s: Option<u32>,
    /// New order list.
    pub orders: Option<Vec<String>>,
    /// New failure-state rules (replace the list).
    pub status_rules: Option<Vec<StatusRuleSpec>>,
    /// New payload layout; `null` removes it.
    pub payload_layout: Option<Option<neosens_protocol::layout::PayloadLayout>>,
}

fn check_layout(
    layout: Option<&neosens_protocol::layout::PayloadLayout>,
) -> Result<Option<neosens_protocol::layout::PayloadLayout>, RegistryError> {
    let Some(l) = layout else { return Ok(None) };
    l.check().map_err(|e| RegistryError::invalid("payload_layout", e.0))?;
    Ok(Some(l.clone()))
}

fn check_rules(specs: &[StatusRuleSpec]) -> Result<Vec<StatusRule>, RegistryError> {
    if specs.len() > MAX_RULES {
        return Err(RegistryError::invalid("status_rules", format!("at most {MAX_RULES} rules")));
    }
    let mut rules: Vec<StatusRule> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let rule =
            spec.clone().into_rule().map_err(|e| RegistryError::invalid(&format!("status_rules[{i}]"), e))?;
        if rules.iter().any(|r| r.name == rule.name) {
            return Err(RegistryError::invalid(
                &format!("status_rules[{i}]"),
                format!("name: {:?} is already used by another rule", rule.name),
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn check_orders(orders: &[String]) -> Result<Vec<String>, RegistryError> {
    for (i, o) in orders.iter().enumerate() {
        if neosens_protocol::legacy::KnownOrder::from_name(o).is_none() {
            let known: Vec<&str> =
                neosens_protocol::legacy::KnownOrder::ALL.iter().map(|k| k.name()).collect();
            return Err(RegistryError::invalid(
                &format!("orders[{i}]"),
                format!("unknown order {o:?}; known: {}", known.join(", ")),
            ));
        }
    }
    let mut out = orders.to_vec();
    out.dedup();
    Ok(out)
}

fn check_type_name(name: &str) -> Result<String, RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(RegistryError::invalid("name", "1 to 64 characters among a-z, 0-9, _ and -"))
    }
}

fn check_seconds(field: &str, v: u32) -> Result<u32, RegistryError> {
    if SECONDS_RANGE.contains(&v) {
        Ok(v)
    } else {
        Err(RegistryError::invalid(
            field,
            format!("between {} and {} seconds", SECONDS_RANGE.start(), SECONDS_RANGE.end()),
        ))
    }
}

fn check_schema(schema: Option<&Value>) -> Result<Option<String>, RegistryError> {
    let Some(schema) = schema else { return Ok(None) };
    let text = schema.to_string();
    compile_schema(Some(&text))
        .map_err(|e| RegistryError::invalid("config_schema", format!("not a valid JSON Schema: {e}")))?;
    Ok(Some(text))
}

pub(super) fn resolve_type<'a>(state: &'a State, key: &str) -> Option<&'a DeviceType> {
    let by_id = key.parse::<DeviceTypeId>().ok().and_then(|id| state.types.get(&id));
    by_id.or_else(|| state.types.values().find(|t| t.record.name == key)).map(|t| &t.record)
}

impl Registry {
    /// Every device type, by name.
    pub fn device_types(&self) -> Vec<DeviceType> {
        let mut v: Vec<DeviceType> = self.state.read().types.values().map(|t| t.record.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A device type by id or name.
    pub fn device_type(&self, key: &str) -> Result<DeviceType, RegistryError> {
        resolve_type(&self.state.read(), key)
            .cloned()
            .ok_or_else(|| RegistryError::not_found(format!("device type {key}")))
    }

    /// Creates a device type.
    pub fn create_device_type(&self, input: NewDeviceType) -> Result<DeviceType, RegistryError> {
        let name = check_type_name(&input.name)?;
        let period =
            check_seconds("status_period_s", input.status_period_s.unwrap_or(DEFAULT_STATUS_PERIOD_S))?;
        let outdated = check_seconds("outdated_after_s", input.outdated_after_s.unwrap_or(period))?;
        let schema = check_schema(input.config_schema.as_ref())?;
        let orders = match &input.orders {
            Some(o) => check_orders(o)?,
            None => crate::model::firmware_orders(),
        };
        let status_rules = check_rules(&input.status_rules)?;
        let payload_layout = check_layout(input.payload_layout.as_ref())?;
        self.mutate(|state| {
            if state.types.values().any(|t| t.record.name == name) {
                return Err(RegistryError::conflict(format!("a device type {name:?} exists")));
            }
            let t = DeviceType {
                id: DeviceTypeId::from_uuid(new_uuid()),
                name: name.clone(),
                description: input.description.clone(),
                config_schema: schema.clone(),
                status_period_s: period,
                outdated_after_s: outdated,
                orders: orders.clone(),
                status_rules: status_rules.clone(),
                payload_layout: payload_layout.clone(),
            };
            Ok((vec![Write::Put(Record::DeviceType(t.clone()))], t))
        })
    }

    /// Changes a device type. A new schema applies to configurations saved from now on.
    pub fn update_device_type(
        &self,
        key: &str,
        patch: DeviceTypeChanges,
    ) -> Result<DeviceType, RegistryError> {
        let schema = match &patch.config_schema {
            Some(s) => Some(check_schema(s.as_ref())?),
            None => None,
        };
        let orders = patch.orders.as_deref().map(check_orders).transpose()?;
        let rules = patch.status_rules.as_deref().map(check_rules).transpose()?;
        let layout = patch.payload_layout.as_ref().map(|l| check_layout(l.as_ref())).transpose()?;
        self.mutate(|state| {
            let mut t = resolve_type(state, key)
                .cloned()
                .ok_or_else(|| RegistryError::not_found(format!("device type {key}")))?;
            if let Some(d) = patch.description.clone() {
                t.description = d;
            }
            if let Some(s) = schema.clone() {
                t.config_schema = s;
            }
            if let Some(p) = patch.status_period_s {
                t.status_period_s = check_seconds("status_period_s", p)?;
            }
            if let Some(o) = patch.outdated_after_s {
                t.outdated_after_s = check_seconds("outdated_after_s", o)?;
            }
            if let Some(o) = orders.clone() {
                t.orders = o;
            }
            if let Some(r) = rules.clone() {
                t.status_rules = r;
            }
            if let Some(l) = layout.clone() {
                t.payload_layout = l;
            }
            Ok((vec![Write::Put(Record::DeviceType(t.clone()))], t))
        })
    }

    /// Deletes a device type no device uses.
    pub fn delete_device_type(&self, key: &str) -> Result<(), RegistryError> {
        self.mutate(|state| {
            let t = resolve_type(state, key)
                .ok_or_else(|| RegistryError::not_found(format!("device type {key}")))?;
            let used = state.devices.values().filter(|d| d.record.device_type == t.id).count();
            if used > 0 {
                return Err(RegistryError::conflict(format!(
                    "device type {:?} is used by {used} device(s)",
                    t.name
                )));
            }
            Ok((vec![Write::Delete(EntityKind::DeviceType, t.id.to_bytes())], ()))
        })
    }
}

#[cfg(test)]
mod layout_tests {
    use neosens_protocol::layout::neocampus_lpp;
    use neosens_protocol::sync::Change;

    use super::super::test_support::assert_invalid;
    use super::super::{NewGateway, ScopeSpec, test_registry};
    use super::*;

    /// A type's payload layout is checked, stored, removed by `null`, and synced after the type
    /// to agents that ask for it (`ext`), never to the others.
    #[test]
    fn payload_layouts_are_checked_stored_and_synced() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, u4, _) = test_registry(dir.path(), 0);
        let new = |layout| NewDeviceType {
            name: "cubecell".into(),
            description: String::new(),
            config_schema: None,
            status_period_s: None,
            outdated_after_s: None,
            orders: Some(Vec::new()),
            status_rules: Vec::new(),
            payload_layout: Some(layout),
        };
        let mut twice = neocampus_lpp();
        twice.records[1].type_byte = 1;
        assert_invalid(registry.create_device_type(new(twice)), "payload_layout");
        let t = registry.create_device_type(new(neocampus_lpp())).unwrap();
        assert_eq!(t.payload_layout, Some(neocampus_lpp()));

        let g = registry
            .create_gateway(NewGateway {
                local_broker: None,
                config: Default::default(),
                name: "gw".into(),
                scope: ScopeSpec::Buildings(vec![*u4.as_uuid()]),
            })
            .unwrap();
        let token = registry.start_enrolment(g.id).unwrap().token;
        registry.enroll_gateway(&token).unwrap().expect("enrolled");
        let layouts = |ext| -> Vec<Option<neosens_protocol::layout::PayloadLayout>> {
            let batch = registry.edge_sync(g.id, 0, None, ext).unwrap().expect("a snapshot");
            batch
                .changes
                .into_iter()
                .filter_map(|c| match c {
                    Change::SetPayloadLayout(id, l) if id == t.id => Some(l),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(layouts(1), [Some(neocampus_lpp())]);
        assert!(layouts(0).is_empty(), "an older agent never receives it");

        let patch = DeviceTypeChanges { payload_layout: Some(None), ..DeviceTypeChanges::default() };
        assert_eq!(registry.update_device_type("cubecell", patch).unwrap().payload_layout, None);
        assert_eq!(layouts(1), [None]);
    }
}
