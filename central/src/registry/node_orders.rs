//! Orders to LoRaWAN nodes (`downlink`): published on the node's command topic
//! `<base>/<DevEUI>/command` in the neOCampus convention (spec §6: `{"data": "<hex>"}`, with
//! the `port` and `confirmed` fields of the downlink JSON of gotthardp/lorawan-server, the
//! server neOCampus ran) plus `ref`, the order's reference. The gateways of the node's scope
//! queue it until the node's next uplink and report each step (queued, sent, acknowledged,
//! expired …) with their health; each step is recorded in the node's order history.

use neosens_protocol::DeviceUid;
use neosens_protocol::edge::{DownlinkOutcome, DownlinkState};
use neosens_protocol::ids::GatewayId;
use serde_json::{Value, json};

use super::devices::resolve_device;
use super::orders::{OrderSpec, PreparedOrder};
use super::{Registry, RegistryError};
use crate::model::{OrderRecord, Timestamp};

/// The order name.
pub(super) const DOWNLINK: &str = "downlink";

/// The module name orders to LoRaWAN nodes are recorded under.
pub(super) const MODULE: &str = "lorawan";

/// The largest application payload (EU868 DR4–7, RP002: 222 bytes).
pub(super) const MAX_DATA: usize = 222;

/// The value of a `downlink` order: `{"f_port": 1–223 (optional: the port of the node's last
/// uplink), "data": "<hex>", "confirmed": bool (optional, false)}`.
fn downlink_value(value: Option<&Value>) -> Result<(Option<u64>, String, bool), RegistryError> {
    let invalid = |m: &str| RegistryError::invalid("value", m.to_owned());
    let obj = value.and_then(Value::as_object).ok_or_else(|| {
        invalid("downlink takes {\"f_port\": 1-223, \"data\": \"<hex>\", \"confirmed\": true|false}")
    })?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "f_port" | "data" | "confirmed")) {
        return Err(invalid(&format!("unknown field {k:?}: f_port, data, confirmed")));
    }
    let data = obj.get("data").and_then(Value::as_str).ok_or_else(|| invalid("data: hex text"))?;
    let bytes = neosens_protocol::hex::decode(data, "data")
        .map_err(|_| invalid("data: an even number of hex digits"))?;
    if bytes.len() > MAX_DATA {
        return Err(invalid("data: at most 222 bytes (EU868)"));
    }
    let f_port = match obj.get("f_port") {
        None | Some(Value::Null) => None,
        Some(p) => {
            Some(p.as_u64().filter(|p| (1..=223).contains(p)).ok_or_else(|| invalid("f_port: 1 to 223"))?)
        }
    };
    let confirmed = match obj.get("confirmed") {
        None | Some(Value::Null) => false,
        Some(c) => c.as_bool().ok_or_else(|| invalid("confirmed: true or false"))?,
    };
    Ok((f_port, neosens_protocol::hex::encode(&bytes), confirmed))
}

impl Registry {
    /// Checks a `downlink` order to a LoRaWAN node and builds its command.
    pub(super) fn prepare_downlink(
        &self,
        key: &str,
        request: &OrderSpec,
        by: &str,
    ) -> Result<PreparedOrder, RegistryError> {
        let state = self.state.read();
        let entry =
            resolve_device(&state, key).ok_or_else(|| RegistryError::not_found(format!("device {key}")))?;
        let device = &entry.record;
        let DeviceUid::Lorawan(eui) = device.uid else {
            return Err(RegistryError::invalid("order", "downlink orders go to LoRaWAN nodes"));
        };
        if device.lorawan.is_none() {
            return Err(RegistryError::invalid("order", "the node has no LoRaWAN session yet"));
        }
        if request.module.is_some() || request.dest.is_some() {
            return Err(RegistryError::invalid(
                "module",
                "a downlink goes to the node itself: no module, no dest",
            ));
        }
        let base =
            state.device_topics(device).into_iter().next().ok_or_else(|| {
                RegistryError::invalid("device", "the node has no room, so no command topic")
            })?;
        let (f_port, data, confirmed) = downlink_value(request.value.as_ref())?;
        let dev_eui = eui.to_string().to_lowercase();
        let reference = new_reference()?;
        let mut command = json!({ "data": data, "confirmed": confirmed, "ref": reference });
        if let Some(port) = f_port {
            command["port"] = json!(port);
        }
        Ok(PreparedOrder {
            device: device.id.to_string(),
            reinstall: false,
            at_least_once: true,
            record: OrderRecord {
                at: Timestamp::now(),
                by: by.to_owned(),
                order: DOWNLINK.to_owned(),
                value: request.value.as_ref().map(Value::to_string),
                module: MODULE.to_owned(),
                dest: reference,
                topic: format!("{base}/{dev_eui}/command"),
                payload: command.to_string(),
                outcome: String::new(),
            },
        })
    }

    /// Records what gateway `gateway` reports of node orders, in the nodes' order histories:
    /// nodes outside its scope (or unknown) are skipped. Returns how many were recorded.
    pub fn record_downlink_outcomes(
        &self,
        gateway: GatewayId,
        outcomes: &[DownlinkOutcome],
        now_ms: i64,
    ) -> Result<usize, RegistryError> {
        let records: Vec<([u8; 16], OrderRecord)> = {
            let state = self.state.read();
            let Some(g) = state.gateways.get(&gateway) else { return Ok(0) };
            let by = format!("gateway {}", g.name);
            outcomes
                .iter()
                .filter_map(|o| {
                    let entry = resolve_device(&state, &o.dev_eui)?;
                    let in_scope = entry.record.rooms.iter().any(|r| {
                        state.rooms.get(r).is_some_and(|room| {
                            super::gateways::building_in_scope(&state, &g.scope, room.building)
                        })
                    });
                    in_scope.then(|| (entry.record.id.to_bytes(), outcome_record(o, &by, now_ms)))
                })
                .collect()
        };
        for (device, record) in &records {
            self.store.append_order(*device, record)?;
        }
        Ok(records.len())
    }
}

/// A fresh order reference: 12 random hex digits (the gateways tell copies of one order apart
/// by it).
fn new_reference() -> Result<String, RegistryError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 6];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RegistryError::invalid("order", "no randomness available for the order's reference"))?;
    Ok(neosens_protocol::hex::encode(&bytes))
}

fn outcome_record(o: &DownlinkOutcome, by: &str, now_ms: i64) -> OrderRecord {
    let age_ms = i64::try_from(o.age_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let state = match o.state {
        DownlinkState::Queued => "queued at the gateway",
        DownlinkState::Sent => "sent",
        DownlinkState::Acknowledged => "acknowledged",
        DownlinkState::NotAcknowledged => "not acknowledged",
        DownlinkState::Expired => "expired",
        DownlinkState::Failed => "failed",
        DownlinkState::Refused => "refused",
    };
    let mut outcome = state.to_owned();
    if let Some(n) = o.f_cnt_down {
        outcome.push_str(&format!(", FCntDown {n}"));
    }
    if let Some(detail) = &o.detail {
        outcome.push_str(": ");
        outcome.extend(detail.chars().take(128));
    }
    let value = json!({ "f_port": o.f_port, "data": o.data, "confirmed": o.confirmed });
    OrderRecord {
        at: Timestamp(now_ms.saturating_sub(age_ms)),
        by: by.to_owned(),
        order: DOWNLINK.to_owned(),
        value: Some(value.to_string()),
        module: MODULE.to_owned(),
        dest: o.reference.clone().unwrap_or_default().chars().take(64).collect(),
        topic: String::new(),
        payload: String::new(),
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{assert_invalid, device_input, room_302};
    use super::super::{NewBuilding, NewGateway, NewLorawanSession, ScopeSpec, test_registry};
    use super::*;

    fn spec(value: Value) -> OrderSpec {
        OrderSpec { order: DOWNLINK.into(), value: Some(value), module: None, dest: None }
    }

    fn outcome(state: DownlinkState) -> DownlinkOutcome {
        DownlinkOutcome {
            dev_eui: "70b3d57ed0000001".into(),
            reference: Some("0a0b0c0d0e0f".into()),
            f_port: Some(10),
            data: "0102".into(),
            confirmed: true,
            state,
            f_cnt_down: Some(4),
            detail: None,
            age_s: 2,
        }
    }

    /// A downlink goes to a LoRaWAN node with a session, on its DevEUI's command topic with a
    /// fresh reference; the steps its gateways report land in its history, from gateways of
    /// its scope only.
    #[test]
    fn downlink_orders_and_their_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, u4, esp32) = test_registry(dir.path(), 1);
        let room = room_302(&registry);
        let mut node = device_input("70B3D57ED0000001", vec![room]);
        node.lorawan = Some(NewLorawanSession {
            dev_addr: "26011bda".into(),
            nwk_s_key: "00".repeat(16),
            app_s_key: "11".repeat(16),
            codec: None,
            relax_f_cnt: None,
            f_cnt_up: None,
        });
        registry.create_device(node).unwrap();

        let order = registry
            .prepare_order(
                "70b3d57ed0000001",
                &spec(json!({"f_port": 10, "data": "0A0B", "confirmed": true})),
                "ops",
            )
            .unwrap();
        assert!(order.at_least_once && !order.reinstall);
        assert_eq!(order.record.topic, "u4/302/70b3d57ed0000001/command");
        assert_eq!(order.record.dest.len(), 12, "the reference");
        let payload: Value = serde_json::from_str(&order.record.payload).unwrap();
        assert_eq!(payload, json!({"data": "0a0b", "port": 10, "confirmed": true, "ref": order.record.dest}));
        let other = registry.prepare_order("70b3d57ed0000001", &spec(json!({"data": ""})), "ops").unwrap();
        assert_ne!(other.record.dest, order.record.dest, "each order its own reference");
        let payload: Value = serde_json::from_str(&other.record.payload).unwrap();
        assert_eq!(payload.get("port"), None, "no port: the node's last uplink port, at the gateway");

        let esp = esp32[0].to_string();
        assert_invalid(registry.prepare_order(&esp, &spec(json!({"data": "00"})), "ops"), "order");
        for bad in [
            json!("00"),
            json!({"data": "0"}),
            json!({"data": "00", "f_port": 224}),
            json!({"data": "00", "port": 1}),
        ] {
            assert_invalid(registry.prepare_order("70b3d57ed0000001", &spec(bad), "ops"), "value");
        }
        let with_module = OrderSpec { module: Some("temperature".into()), ..spec(json!({"data": "00"})) };
        assert_invalid(registry.prepare_order("70b3d57ed0000001", &with_module, "ops"), "module");

        let far = registry
            .create_building(NewBuilding { site: None, name: "FAR".into(), description: String::new() })
            .unwrap();
        let gateway = |name: &str, building: neosens_protocol::ids::BuildingId| {
            registry
                .create_gateway(NewGateway {
                    local_broker: None,
                    config: Default::default(),
                    name: name.into(),
                    scope: ScopeSpec::Buildings(vec![*building.as_uuid()]),
                })
                .unwrap()
                .id
        };
        let (near, far) = (gateway("gw-near", u4), gateway("gw-far", far.id));
        let now = Timestamp::now().millis();
        let reported = [outcome(DownlinkState::Sent), outcome(DownlinkState::Acknowledged)];
        assert_eq!(registry.record_downlink_outcomes(far, &reported, now).unwrap(), 0, "not its node");
        assert_eq!(registry.record_downlink_outcomes(near, &reported, now).unwrap(), 2);
        let history = registry.orders("70b3d57ed0000001", 10).unwrap();
        let got: Vec<(&str, &str, &str)> =
            history.iter().map(|o| (o.outcome.as_str(), o.by.as_str(), o.dest.as_str())).collect();
        assert_eq!(
            got,
            [
                ("acknowledged, FCntDown 4", "gateway gw-near", "0a0b0c0d0e0f"),
                ("sent, FCntDown 4", "gateway gw-near", "0a0b0c0d0e0f")
            ]
        );
        assert_eq!(history[0].at.millis(), now - 2000, "placed on central's clock");
    }
}
