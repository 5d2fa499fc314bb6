//! OTAA nodes (LoRaWAN 1.0.x): their credentials (JoinEUI, AppKey — sealed at once, never shown
//! again), synced to the gateways of their scope, which answer their joins; and the sessions
//! those joins gave, reported by the gateway once the node used them, which become the node's
//! session here and reach the other gateways of the scope (the node roams without joining
//! again).
//!
//! Two gateways answering the same join request: the node takes one join-accept, and only the
//! gateway whose session the node then uses reports it (on the first uplink decoded with it).
//! A report older than the join central already holds is ignored; a newer one replaces it, and
//! every gateway of the scope adopts it at its next sync (a gateway keeps its own session only
//! while central still holds the join that session replaced).

use neosens_protocol::DeviceUid;
use neosens_protocol::edge::JoinReport;
use neosens_protocol::ids::{DevAddr, DeviceId, GatewayId};
use neosens_protocol::sync::lorawan_key_context as key_context;
use neosens_runtime::keys::Keys;

use super::devices::resolve_device;
use super::{Registry, RegistryError};
use crate::model::{Codec, LastJoin, LorawanSession, OtaaKeys, Record, Timestamp};
use crate::store::Write;

/// OTAA credentials as an admin gives them.
#[derive(Clone)]
pub struct NewOtaa {
    /// JoinEUI (AppEUI), 16 hex digits.
    pub join_eui: String,
    /// AppKey, 32 hex digits.
    pub app_key: String,
    /// Payload codec of its sessions (default `cayenne_lpp`).
    pub codec: Option<Codec>,
}

impl std::fmt::Debug for NewOtaa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewOtaa").field("join_eui", &self.join_eui).finish_non_exhaustive()
    }
}

/// OTAA credentials without the key.
#[derive(Debug, Clone)]
pub struct OtaaInfo {
    /// JoinEUI, 16 lowercase hex digits.
    pub join_eui: String,
    /// Payload codec.
    pub codec: Codec,
    /// Always `"sealed"`.
    pub app_key: &'static str,
    /// The last join a gateway reported: (DevNonce, when).
    pub last_join: Option<(u16, Timestamp)>,
}

impl From<&OtaaKeys> for OtaaInfo {
    fn from(o: &OtaaKeys) -> Self {
        OtaaInfo {
            join_eui: neosens_protocol::hex::encode(&o.join_eui),
            codec: o.codec,
            app_key: "sealed",
            last_join: o.last_join.map(|j| (j.dev_nonce, j.at)),
        }
    }
}

/// The context an AppKey is sealed to: the device id and `/appkey`.
const APP_KEY: &str = "appkey";

/// Checks OTAA credentials for a device and seals the AppKey with central's key.
pub(super) fn seal_otaa(
    keys: &Keys,
    id: DeviceId,
    uid: &DeviceUid,
    input: &NewOtaa,
) -> Result<OtaaKeys, RegistryError> {
    if !matches!(uid, DeviceUid::Lorawan(_)) {
        return Err(RegistryError::invalid("otaa", "only LoRaWAN devices (a DevEUI uid) join by OTAA"));
    }
    let join_eui: [u8; 8] = neosens_protocol::hex::decode_array(input.join_eui.trim(), "JoinEUI")
        .map_err(|_| RegistryError::invalid("otaa.join_eui", "16 hex digits"))?;
    let app_key: [u8; 16] = neosens_protocol::hex::decode_array(input.app_key.trim(), "AppKey")
        .map_err(|_| RegistryError::invalid("otaa.app_key", "an AES-128 key: 32 hex digits"))?;
    Ok(OtaaKeys {
        join_eui,
        app_key: keys.seal(&app_key, &key_context(id.to_bytes(), APP_KEY))?,
        codec: input.codec.unwrap_or(Codec::CayenneLpp),
        last_join: None,
    })
}

/// The credentials as a gateway receives them: the AppKey opened with central's key, sealed for
/// the gateway.
pub(super) fn for_gateway(
    otaa: &OtaaKeys,
    id: DeviceId,
    gw: &Keys,
    central: &Keys,
) -> Result<neosens_protocol::sync::OtaaRecord, RegistryError> {
    let context = key_context(id.to_bytes(), APP_KEY);
    let plain = central.open(&otaa.app_key, &context)?;
    Ok(neosens_protocol::sync::OtaaRecord {
        join_eui: otaa.join_eui,
        app_key: gw.seal(&plain, &context)?,
        codec: otaa.codec.as_str().to_owned(),
        last_join: otaa.last_join.map(|j| neosens_protocol::sync::LastJoin {
            dev_nonce: j.dev_nonce,
            joined_at_ms: u64::try_from(j.at.millis()).unwrap_or(0),
        }),
    })
}

impl Registry {
    /// Takes the joins gateway `gateway` reports: each node of its scope with OTAA credentials
    /// gets the session (keys opened with the gateway's key, sealed with central's), unless
    /// central holds a newer join; a report whose address or keys do not read is skipped
    /// (logged). Returns how many sessions changed.
    pub fn record_joins(
        &self,
        gateway: GatewayId,
        reports: &[JoinReport],
        now_ms: i64,
    ) -> Result<usize, RegistryError> {
        let gw_keys = {
            let state = self.state.read();
            let g = state.gateways.get(&gateway).ok_or_else(|| RegistryError::not_found("gateway"))?;
            self.gateway_keys(g)?
        };
        let mut changed = 0;
        for report in reports {
            let at =
                Timestamp(now_ms.saturating_sub(
                    i64::try_from(report.joined_age_s.saturating_mul(1000)).unwrap_or(i64::MAX),
                ));
            // One report that does not read is skipped, not the others.
            let session = match self.reported_session(&gw_keys, report) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%gateway, device = %report.device, error = %e, "a join report skipped");
                    continue;
                }
            };
            let actor = crate::model::Actor::Gateway { id: gateway.to_bytes() };
            let outcome = crate::audit::acting(actor, || {
                self.mutate_as(Some("device.otaa_join"), |state| {
                    let Some(entry) = resolve_device(state, &report.device.to_string()) else {
                        return Ok((Vec::new(), false));
                    };
                    let g =
                        state.gateways.get(&gateway).ok_or_else(|| RegistryError::not_found("gateway"))?;
                    let in_scope = entry.record.rooms.iter().any(|r| {
                        state.rooms.get(r).is_some_and(|room| {
                            super::gateways::building_in_scope(state, &g.scope, room.building)
                        })
                    });
                    let mut d = entry.record.clone();
                    let Some(otaa) = d.otaa.as_mut().filter(|_| in_scope) else {
                        return Ok((Vec::new(), false));
                    };
                    if otaa.last_join.is_some_and(|j| j.at > at) {
                        return Ok((Vec::new(), false));
                    }
                    let same = d.lorawan.as_ref().is_some_and(|l| l.dev_addr == session.dev_addr)
                        && otaa.last_join.is_some_and(|j| j.dev_nonce == report.dev_nonce);
                    if same {
                        return Ok((Vec::new(), false));
                    }
                    otaa.last_join = Some(LastJoin { dev_nonce: report.dev_nonce, at });
                    d.lorawan = Some(LorawanSession { codec: otaa.codec, ..session.clone() });
                    d.updated_at = Timestamp::now();
                    Ok((vec![Write::Put(Record::Device(Box::new(d)))], true))
                })
            })?;
            if outcome {
                changed += 1;
                tracing::info!(device = %report.device, dev_addr = %report.dev_addr, %gateway, "OTAA session from a gateway");
            }
        }
        Ok(changed)
    }

    /// A reported session, its keys resealed with central's key.
    fn reported_session(&self, gw_keys: &Keys, report: &JoinReport) -> Result<LorawanSession, RegistryError> {
        let dev_addr: DevAddr =
            report.dev_addr.parse().map_err(|_| RegistryError::invalid("joins.dev_addr", "8 hex digits"))?;
        let device = report.device.to_bytes();
        let reseal = |sealed, which: &str| -> Result<_, RegistryError> {
            let context = key_context(device, which);
            let plain = gw_keys.open(sealed, &context).map_err(|_| {
                RegistryError::invalid("joins", "a session key that does not open with this gateway's key")
            })?;
            Ok(self.keys.seal(&plain, &context)?)
        };
        Ok(LorawanSession {
            dev_addr,
            nwk_s_key: reseal(&report.nwk_s_key, "nwk")?,
            app_s_key: reseal(&report.app_s_key, "app")?,
            f_cnt_up: report.f_cnt_up,
            relax_f_cnt: false,
            codec: Codec::CayenneLpp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{device_input, room_302};
    use super::super::{NewBuilding, NewGateway, ScopeSpec, test_registry};
    use super::*;

    /// Reports from a gateway of the node's scope set its session; an older one, one from
    /// another scope, or one whose keys do not open are left out.
    #[test]
    fn joins_reported_by_gateways() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, u4, _) = test_registry(dir.path(), 0);
        let mut node = device_input("70B3D57ED00000AA", vec![room_302(&registry)]);
        node.otaa =
            Some(NewOtaa { join_eui: "70b3d57ed0000001".into(), app_key: "11".repeat(16), codec: None });
        let id = registry.create_device(node).unwrap().id;
        let far = registry
            .create_building(NewBuilding { site: None, name: "FAR".into(), description: String::new() })
            .unwrap();
        let enrolled = |name: &str, building: neosens_protocol::ids::BuildingId| {
            let g = registry
                .create_gateway(NewGateway {
                    local_broker: None,
                    config: Default::default(),
                    name: name.into(),
                    scope: ScopeSpec::Buildings(vec![*building.as_uuid()]),
                })
                .unwrap();
            let token = registry.start_enrolment(g.id).unwrap().token;
            registry.enroll_gateway(&token).unwrap().expect("enrolled");
            let keys = {
                let state = registry.state.read();
                registry.gateway_keys(&state.gateways[&g.id]).unwrap()
            };
            (g.id, keys)
        };
        let ((near, near_keys), (other, other_keys)) = (enrolled("gw-near", u4), enrolled("gw-far", far.id));
        let report = |keys: &Keys, dev_nonce: u16, age_s: u64| {
            let seal = |k: u8, which: &str| keys.seal(&[k; 16], &key_context(id.to_bytes(), which)).unwrap();
            JoinReport {
                device: id,
                dev_addr: "01ABCDEF".into(),
                nwk_s_key: seal(1, "nwk"),
                app_s_key: seal(2, "app"),
                dev_nonce,
                joined_age_s: age_s,
                f_cnt_up: 3,
            }
        };
        let now = Timestamp::now().millis();
        assert_eq!(
            registry.record_joins(other, &[report(&other_keys, 7, 0)], now).unwrap(),
            0,
            "not its node"
        );
        assert_eq!(
            registry.record_joins(near, &[report(&other_keys, 7, 0)], now).unwrap(),
            0,
            "keys it did not seal"
        );
        assert_eq!(registry.record_joins(near, &[report(&near_keys, 7, 10)], now).unwrap(), 1);
        let d = registry.device("70B3D57ED00000AA").unwrap();
        assert_eq!(d.lorawan.as_ref().map(|l| (l.dev_addr.as_str(), l.f_cnt_up)), Some(("01ABCDEF", 3)));
        assert_eq!(d.otaa.as_ref().and_then(|o| o.last_join).map(|(n, _)| n), Some(7));
        // The same join again: nothing changes; an older one is refused; a newer one wins.
        assert_eq!(registry.record_joins(near, &[report(&near_keys, 7, 10)], now).unwrap(), 0);
        assert_eq!(registry.record_joins(near, &[report(&near_keys, 5, 60)], now).unwrap(), 0, "older");
        assert_eq!(registry.record_joins(near, &[report(&near_keys, 8, 1)], now).unwrap(), 1);
        let state = registry.state.read();
        let stored = state.devices[&id].record.lorawan.clone().unwrap();
        assert_eq!(
            registry.keys.open(&stored.nwk_s_key, &key_context(id.to_bytes(), "nwk")).unwrap(),
            [1; 16],
            "resealed with central's key"
        );
    }
}
