//! Gateways: each serves a share of the registry — a whole site, or some buildings.

use neosens_protocol::gateway_config::ManagedConfig;
use neosens_protocol::ids::{BuildingId, GatewayId};

use super::locations::resolve_site;
use super::state::State;
use super::{Registry, RegistryError};
use crate::model::{
    EntityKind, Gateway, GatewayScope, GatewaySettings, LocalBroker, Record, Timestamp, new_uuid,
};
use crate::store::Write;

/// A gateway's scope as asked for: a site by id or slug, or buildings by id.
#[derive(Debug, Clone)]
pub enum ScopeSpec {
    /// A whole site.
    Site(String),
    /// Some buildings.
    Buildings(Vec<uuid::Uuid>),
}

/// A new gateway.
#[derive(Debug, Clone)]
pub struct NewGateway {
    /// Unique name.
    pub name: String,
    /// What it serves.
    pub scope: ScopeSpec,
    /// Its local broker, for local-broker mode.
    pub local_broker: Option<LocalBroker>,
    /// Its agent's settings managed here.
    pub config: ManagedConfig,
}

/// Changes to a gateway.
#[derive(Debug, Clone, Default)]
pub struct GatewayChanges {
    /// New name.
    pub name: Option<String>,
    /// New scope (devices leaving it are removed from the gateway at its next sync).
    pub scope: Option<ScopeSpec>,
    /// Local-broker mode: `Some(Some(_))` turns it on (or moves it), `Some(None)` off.
    pub local_broker: Option<Option<LocalBroker>>,
    /// Its agent's settings, replaced as a whole (an empty set clears them).
    pub config: Option<ManagedConfig>,
}

/// A gateway with what the registry knows of it.
#[derive(Debug, Clone)]
pub struct GatewayInfo {
    /// Id.
    pub id: GatewayId,
    /// Name.
    pub name: String,
    /// Scope: `{"site": "<id>"}` or `{"buildings": [...]}`.
    pub scope: GatewayScope,
    /// Devices in its scope now.
    pub devices: usize,
    /// Creation time.
    pub created_at: String,
    /// When it enrolled (`null`: not yet; issue a token with `POST /api/v1/gateways/{id}/enrolment`).
    pub enrolled_at: Option<String>,
    /// Expiry of a pending enrolment token.
    pub enrolment_expires_at: Option<String>,
    /// Its MQTT username.
    pub mqtt_username: String,
    /// Its local broker (local-broker mode), as its devices are given it.
    pub local_broker: Option<LocalBroker>,
    /// Its agent's settings managed here (what it runs with is in its health report).
    pub config: ManagedConfig,
}

/// Settings of a gateway's agent as central keeps them: each value checked by the rules both
/// ends share, and a log filter that the agent's parser takes (the same `Targets` syntax).
pub(super) fn check_config(config: ManagedConfig) -> Result<ManagedConfig, RegistryError> {
    config.check().map_err(|e| RegistryError::invalid(&format!("config.{}", e.key), e.reason))?;
    if let Some(filter) = &config.log.filter
        && let Err(e) = neosens_runtime::telemetry::check_filter(filter)
    {
        return Err(RegistryError::invalid("config.log.filter", e.to_string()));
    }
    Ok(config)
}

/// A local broker's address as devices are given it: a host name or address (the firmware
/// keeps 63 bytes of it, spec §3.1) and a port.
pub(super) fn check_local_broker(broker: Option<LocalBroker>) -> Result<Option<LocalBroker>, RegistryError> {
    let Some(mut b) = broker else { return Ok(None) };
    b.host = b.host.trim().to_owned();
    let plain = b.host.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':'));
    if b.host.is_empty() || b.host.len() > 63 || !plain {
        return Err(RegistryError::invalid(
            "local_broker.host",
            "a host name or IP address of 1 to 63 characters (letters, digits, '.', '-', ':')",
        ));
    }
    if b.port == 0 {
        return Err(RegistryError::invalid("local_broker.port", "1 to 65535"));
    }
    Ok(Some(b))
}

fn resolve_scope(state: &State, input: &ScopeSpec) -> Result<GatewayScope, RegistryError> {
    match input {
        ScopeSpec::Site(key) => Ok(GatewayScope::Site(
            resolve_site(state, key)
                .map_err(|_| RegistryError::invalid("scope.site", format!("no site {key}")))?
                .id,
        )),
        ScopeSpec::Buildings(list) => {
            if list.is_empty() {
                return Err(RegistryError::invalid("scope.buildings", "at least one building"));
            }
            let list: Vec<BuildingId> = list.iter().copied().map(BuildingId::from_uuid).collect();
            for (i, b) in list.iter().enumerate() {
                if !state.buildings.contains_key(b) {
                    return Err(RegistryError::invalid(
                        &format!("scope.buildings[{i}]"),
                        format!("no building {b}"),
                    ));
                }
            }
            Ok(GatewayScope::Buildings(list))
        }
    }
}

/// Whether a building is in a scope.
pub(crate) fn building_in_scope(state: &State, scope: &GatewayScope, building: BuildingId) -> bool {
    match scope {
        GatewayScope::Site(site) => state.buildings.get(&building).is_some_and(|b| b.site == *site),
        GatewayScope::Buildings(list) => list.contains(&building),
    }
}

fn view(state: &State, g: &Gateway) -> GatewayInfo {
    let devices = state
        .devices
        .values()
        .filter(|e| {
            e.record.rooms.iter().any(|r| {
                state.rooms.get(r).is_some_and(|room| building_in_scope(state, &g.scope, room.building))
            })
        })
        .count();
    let scope = g.scope.clone();
    GatewayInfo {
        id: g.id,
        name: g.name.clone(),
        scope,
        devices,
        created_at: g.created_at.to_rfc3339(),
        enrolled_at: g.credentials.as_ref().map(|c| c.enrolled_at.to_rfc3339()),
        enrolment_expires_at: g.enrolment.as_ref().map(|e| e.expires_at.to_rfc3339()),
        mqtt_username: super::gateway_username(g.id),
        local_broker: g.settings.local_broker.clone(),
        config: g.settings.config.clone(),
    }
}

fn check_name(name: &str) -> Result<String, RegistryError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(RegistryError::invalid("name", "1 to 64 characters"));
    }
    Ok(name.to_owned())
}

impl Registry {
    /// Every gateway.
    pub fn gateways(&self) -> Vec<GatewayInfo> {
        let state = self.state.read();
        let mut v: Vec<GatewayInfo> = state.gateways.values().map(|g| view(&state, g)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A gateway.
    pub fn gateway(&self, id: GatewayId) -> Result<GatewayInfo, RegistryError> {
        let state = self.state.read();
        state
            .gateways
            .get(&id)
            .map(|g| view(&state, g))
            .ok_or_else(|| RegistryError::not_found(format!("gateway {id}")))
    }

    /// Creates a gateway.
    pub fn create_gateway(&self, input: NewGateway) -> Result<GatewayInfo, RegistryError> {
        let name = check_name(&input.name)?;
        let local_broker = check_local_broker(input.local_broker)?;
        let config = check_config(input.config)?;
        let id = self.mutate(|state| {
            if state.gateways.values().any(|g| g.name.eq_ignore_ascii_case(&name)) {
                return Err(RegistryError::conflict(format!("a gateway {name:?} exists")));
            }
            let gateway = Gateway {
                id: GatewayId::from_uuid(new_uuid()),
                name: name.clone(),
                scope: resolve_scope(state, &input.scope)?,
                created_at: Timestamp::now(),
                credentials: None,
                enrolment: None,
                settings: GatewaySettings { local_broker: local_broker.clone(), config: config.clone() },
            };
            Ok((vec![Write::Put(Record::Gateway(Box::new(gateway.clone())))], gateway.id))
        })?;
        self.gateway(id)
    }

    /// Changes a gateway.
    pub fn update_gateway(&self, id: GatewayId, patch: GatewayChanges) -> Result<GatewayInfo, RegistryError> {
        let name = patch.name.as_deref().map(check_name).transpose()?;
        let local_broker = patch.local_broker.map(check_local_broker).transpose()?;
        let config = patch.config.map(check_config).transpose()?;
        self.mutate(|state| {
            let mut g = state
                .gateways
                .get(&id)
                .cloned()
                .ok_or_else(|| RegistryError::not_found(format!("gateway {id}")))?;
            if let Some(name) = name.clone() {
                if state.gateways.values().any(|o| o.id != id && o.name.eq_ignore_ascii_case(&name)) {
                    return Err(RegistryError::conflict(format!("a gateway {name:?} exists")));
                }
                g.name = name;
            }
            if let Some(scope) = &patch.scope {
                g.scope = resolve_scope(state, scope)?;
            }
            // A change of the gateway's own record makes its next sync a snapshot: it then
            // gets its settings and, in local-broker mode, its devices' broker accounts.
            if let Some(local_broker) = &local_broker {
                g.settings.local_broker = local_broker.clone();
            }
            if let Some(config) = &config {
                g.settings.config = config.clone();
            }
            Ok((vec![Write::Put(Record::Gateway(Box::new(g)))], ()))
        })?;
        self.gateway(id)
    }

    /// Deletes a gateway.
    pub fn delete_gateway(&self, id: GatewayId) -> Result<(), RegistryError> {
        self.mutate(|state| {
            if !state.gateways.contains_key(&id) {
                return Err(RegistryError::not_found(format!("gateway {id}")));
            }
            Ok((vec![Write::Delete(EntityKind::Gateway, id.to_bytes())], ()))
        })?;
        self.site_links.lock().remove(&id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use neosens_protocol::gateway_config::ManagedConfig;
    use neosens_protocol::sync::{BatchKind, Change};

    use crate::registry::{GatewayChanges, NewGateway, RegistryError, ScopeSpec};

    /// Settings set in central are checked with their key named, kept, and sent at the next
    /// sync in the wire form the agent lays under its file — only to agents that ask
    /// (`ext=3`), second after the gateway's own settings.
    #[test]
    fn agent_settings_are_checked_kept_and_synced() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, building, _) = crate::registry::test_registry(dir.path(), 1);
        let mut config = ManagedConfig::default();
        config.log.filter = Some("info,neosens_edge=debug".into());
        config.agent.status_period_s = Some(60);
        config.lorawan.udp_bind = Some("off".into());
        config.hal.sensors = Some(vec!["sht3x@0x44".into()]);
        let gw = registry
            .create_gateway(NewGateway {
                name: "gw".into(),
                scope: ScopeSpec::Buildings(vec![*building.as_uuid()]),
                local_broker: None,
                config: config.clone(),
            })
            .unwrap();
        assert_eq!(gw.config, config);
        let token = registry.start_enrolment(gw.id).unwrap();
        registry.enroll_gateway(&token.token).unwrap().unwrap();

        let batch = registry.edge_sync(gw.id, 0, None, 3).unwrap().unwrap();
        assert_eq!(batch.kind, BatchKind::Snapshot);
        assert!(matches!(batch.changes[0], Change::SetGatewaySettings(_)));
        let Change::SetGatewayConfig(wire) = &batch.changes[1] else { panic!("{:?}", batch.changes[1]) };
        assert_eq!(ManagedConfig::from_wire(wire), Ok(Some(config.clone())));
        let older = registry.edge_sync(gw.id, 0, None, 2).unwrap().unwrap();
        assert!(!older.changes.iter().any(|c| matches!(c, Change::SetGatewayConfig(_))));

        for (bad, field) in [
            (r#"{"lorawan": {"udp_bind": "1700"}}"#, "config.lorawan.udp_bind"),
            (r#"{"log": {"filter": "info,=nonsense=="}}"#, "config.log.filter"),
            (r#"{"hal": {"i2c_bus": "/etc/passwd"}}"#, "config.hal.i2c_bus"),
        ] {
            let config: ManagedConfig = serde_json::from_str(bad).unwrap();
            let patch = GatewayChanges { config: Some(config), ..GatewayChanges::default() };
            match registry.update_gateway(gw.id, patch) {
                Err(RegistryError::Invalid { field: f, .. }) => assert_eq!(f, field, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(registry.gateway(gw.id).unwrap().config, config, "refused changes keep the settings");

        // Cleared: the next sync is a snapshot with an empty document.
        let since = registry.revision();
        let patch = GatewayChanges { config: Some(ManagedConfig::default()), ..GatewayChanges::default() };
        registry.update_gateway(gw.id, patch).unwrap();
        let batch = registry.edge_sync(gw.id, since, None, 3).unwrap().unwrap();
        assert_eq!(batch.kind, BatchKind::Snapshot);
        assert_eq!(batch.changes[1], Change::SetGatewayConfig(Vec::new()));
    }
}
