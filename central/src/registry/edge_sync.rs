//! What a gateway receives: its share of the registry since a revision, as a delta or as a
//! snapshot in pages (`GET /api/v1/edge/sync`). Device secrets travel as HMACs under the
//! gateway's own hash key, and undelivered ones sealed with its sealing key.

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;

use neosens_protocol::ids::{BuildingId, DeviceId, GatewayId, RoomId, SiteId};
use neosens_protocol::legacy::ConfigResponse;
use neosens_protocol::sync::{
    BatchKind, BuildingRecord, Change, DeviceRecord, DeviceTypeRecord, GatewaySettingsRecord, MqttEndpoint,
    RoomRecord, SiteRecord, SyncBatch, WireUid,
};
use neosens_runtime::keys::Keys;

use super::edge::device_in_scope;
use super::gateways::building_in_scope;
use super::state::{DeviceEntry, State};
use super::{Registry, RegistryError};
use crate::model::{EntityKind, Gateway};

/// Most change-log entries one delta looks at.
pub const DELTA_LIMIT: usize = 5_000;

/// Devices per snapshot page at most: a gateway holds a page in memory while it writes it (and
/// the next one, fetched meanwhile), and a bounded page keeps that small (a 100k-device snapshot
/// in one piece would cost a Pi tens of megabytes). Larger pages write faster: the gateway
/// sorts each page's index entries, and more of them land on the same index pages
/// (`cargo bench -p neosens-edge --bench sync`).
pub const SNAPSHOT_PAGE: usize = 2_500;

/// A snapshot page's size bound, whatever its devices weigh (configurations can be large).
pub(crate) const SNAPSHOT_PAGE_BYTES: usize = 1024 * 1024;

impl Registry {
    /// What the gateway must apply to go from revision `since` to now: `None` when it is up to
    /// date. A snapshot of its whole scope when it starts (`since` 0), when `since` is not a
    /// revision of this registry, when its own record changed (its scope, its keys), or when a
    /// location change touches more devices of its scope than a snapshot page holds; a delta
    /// otherwise — with, for a site, building or room of its scope renamed, the location and
    /// the devices whose topics follow it. Locations never move between buildings or sites, so
    /// a change outside its scope costs it nothing.
    ///
    /// Snapshots come in pages of [`SNAPSHOT_PAGE`] devices: the first (kind `Snapshot`) carries
    /// the locations and types and the revision the whole snapshot stands for; the next ones
    /// (`after` = the last device id received, kind `Delta`) the following devices; `more` says
    /// whether another page follows. With `ext` (agents that answer joins and decode payload
    /// layouts), each LoRaWAN node's record is followed by its OTAA credentials (`SetOtaa`), each
    /// device type's by its layout (`SetPayloadLayout`). With `ext` 2 (agents that run a local
    /// broker), a snapshot begins with the gateway's settings (`SetGatewaySettings`: a change of
    /// them makes the next sync a snapshot) and, in local-broker mode, each device's record is
    /// followed by its local broker account (`SetBrokerAccount`). With `ext` 3, the gateway's
    /// settings are followed by its agent's (`SetGatewayConfig`).
    pub fn edge_sync(
        &self,
        id: GatewayId,
        since: u64,
        after: Option<DeviceId>,
        ext: u8,
    ) -> Result<Option<SyncBatch>, RegistryError> {
        let Some(mut batch) = self.edge_sync_records(id, since, after)? else { return Ok(None) };
        if ext >= 1 {
            let state = self.state.read();
            let g =
                state.gateways.get(&id).ok_or_else(|| RegistryError::not_found(format!("gateway {id}")))?;
            let keys = self.gateway_keys(g)?;
            let mut changes = with_extensions(&state, std::mem::take(&mut batch.changes), &keys, &self.keys)?;
            if ext >= 2 {
                changes = self.with_broker_accounts(&state, g, changes, &keys)?;
                if batch.kind == BatchKind::Snapshot {
                    let local_broker = g
                        .settings
                        .local_broker
                        .as_ref()
                        .map(|b| MqttEndpoint { server: b.host.clone(), port: b.port });
                    changes.insert(0, Change::SetGatewaySettings(GatewaySettingsRecord { local_broker }));
                    if ext >= 3 {
                        changes.insert(1, Change::SetGatewayConfig(g.settings.config.to_wire()));
                    }
                }
            }
            batch.changes = changes;
        }
        Ok(Some(batch))
    }

    /// `changes` with, in local-broker mode, each device's broker account after its record.
    fn with_broker_accounts(
        &self,
        state: &State,
        g: &Gateway,
        changes: Vec<Change>,
        gw: &Keys,
    ) -> Result<Vec<Change>, RegistryError> {
        if g.settings.local_broker.is_none() {
            return Ok(changes);
        }
        let mut out = Vec::with_capacity(changes.len() * 2);
        for change in changes {
            let device = match &change {
                Change::UpsertDevice(d) if !matches!(d.uid, WireUid::Lorawan(_)) => state.devices.get(&d.id),
                _ => None,
            };
            out.push(change);
            if let Some(e) = device {
                let d = &e.record;
                // A login reserved for an account that is not a device (registered before the
                // reservation) is no account at central's broker: none at the gateway's either.
                if self.login_reserved(&d.login) {
                    out.push(Change::SetBrokerAccount(d.id, None));
                    continue;
                }
                let secret = self.keys.open(&d.secret.sealed, &d.id.to_bytes())?;
                let account = super::local_broker::broker_account(gw, d, &secret);
                out.push(Change::SetBrokerAccount(d.id, Some(account)));
            }
        }
        Ok(out)
    }

    fn edge_sync_records(
        &self,
        id: GatewayId,
        since: u64,
        after: Option<DeviceId>,
    ) -> Result<Option<SyncBatch>, RegistryError> {
        let current = self.revision();
        if after.is_none() && since == current {
            return Ok(None);
        }
        let log = if after.is_some() || since == 0 || since > current {
            None
        } else {
            // Never past the revision in memory (other processes' newer changes come after
            // this one has applied them).
            Some(self.changes_since(since, DELTA_LIMIT)?)
        };
        let state = self.state.read();
        let g = state.gateways.get(&id).ok_or_else(|| RegistryError::not_found(format!("gateway {id}")))?;
        let keys = self.gateway_keys(g)?;
        let own_record =
            |kind: EntityKind, key: [u8; 16]| kind == EntityKind::Gateway && key == id.to_bytes();
        let delta = match log.filter(|l| !l.iter().any(|c| own_record(c.kind, c.key))) {
            Some(log) => {
                let Some(last) = log.last() else { return Ok(None) };
                let touched: BTreeSet<(EntityKind, [u8; 16])> = log.iter().map(|c| (c.kind, c.key)).collect();
                delta(&state, g, &touched)
                    .map(|(changes, devices)| (last.revision, log.len(), changes, devices))
            }
            None => None,
        };
        let Some((revision, entries, mut changes, devices)) = delta else {
            return Ok(Some(snapshot_page(&state, g, &keys, &self.keys, after, SNAPSHOT_PAGE)?));
        };
        // The latest change of each device is enough: the record is sent as it is now.
        for did in devices {
            changes.push(match state.devices.get(&did).filter(|e| device_in_scope(&state, g, e)) {
                Some(e) => Change::UpsertDevice(Box::new(device_record(&state, e, &keys, &self.keys)?)),
                None => Change::DeleteDevice(did),
            });
        }
        Ok(Some(SyncBatch { revision, kind: BatchKind::Delta, more: entries >= DELTA_LIMIT, changes }))
    }
}

/// The location and type changes of a delta, and the devices it must send; `None` when the
/// locations touched reach more devices of the scope than a snapshot page (a snapshot then).
fn delta(
    state: &State,
    g: &Gateway,
    touched: &BTreeSet<(EntityKind, [u8; 16])>,
) -> Option<(Vec<Change>, BTreeSet<DeviceId>)> {
    let mut changes = Vec::new();
    let mut devices = BTreeSet::new();
    // Rooms of the scope whose topic may have changed: their devices' configurations follow.
    let mut rooms: BTreeSet<RoomId> = BTreeSet::new();
    let in_scope = |building: BuildingId| building_in_scope(state, &g.scope, building);
    for &(kind, key) in touched {
        match kind {
            EntityKind::Device => drop(devices.insert(DeviceId::from_bytes(key))),
            EntityKind::DeviceType => {
                let tid = neosens_protocol::ids::DeviceTypeId::from_bytes(key);
                changes.push(match state.types.get(&tid) {
                    Some(t) => Change::UpsertDeviceType(type_record(&t.record)),
                    None => Change::DeleteDeviceType(tid),
                });
            }
            EntityKind::Site => match state.sites.get(&SiteId::from_bytes(key)) {
                Some(s) if state.buildings.values().any(|b| b.site == s.id && in_scope(b.id)) => {
                    changes.push(Change::UpsertSite(site_record(s)));
                    rooms.extend(
                        state
                            .rooms
                            .values()
                            .filter(|r| {
                                in_scope(r.building)
                                    && state.buildings.get(&r.building).is_some_and(|b| b.site == s.id)
                            })
                            .map(|r| r.id),
                    );
                }
                Some(_) => {}
                None => changes.push(Change::DeleteSite(SiteId::from_bytes(key))),
            },
            EntityKind::Building => match state.buildings.get(&BuildingId::from_bytes(key)) {
                Some(b) if in_scope(b.id) => {
                    changes.push(Change::UpsertBuilding(building_record(b)));
                    rooms.extend(state.rooms.values().filter(|r| r.building == b.id).map(|r| r.id));
                }
                Some(_) => {}
                None => changes.push(Change::DeleteBuilding(BuildingId::from_bytes(key))),
            },
            EntityKind::Room => match state.rooms.get(&RoomId::from_bytes(key)) {
                Some(r) if in_scope(r.building) => drop(rooms.insert(r.id)),
                Some(_) => {}
                // Central refuses to delete a room that still has devices.
                None => changes.push(Change::DeleteRoom(RoomId::from_bytes(key))),
            },
            _ => {}
        }
    }
    let mut followers = 0;
    for room in &rooms {
        if let Some(r) = state.rooms.get(room) {
            changes.push(Change::UpsertRoom(room_record(state, r)));
        }
        let of_room = state.by_room.get(room);
        followers += of_room.map_or(0, BTreeSet::len);
        if followers > SNAPSHOT_PAGE {
            return None;
        }
        devices.extend(of_room.into_iter().flatten().copied());
    }
    Some((changes, devices))
}

fn site_record(s: &crate::model::Site) -> SiteRecord {
    SiteRecord { id: s.id, slug: s.slug.clone(), name: s.name.clone(), is_default: s.is_default }
}

fn building_record(b: &crate::model::Building) -> BuildingRecord {
    BuildingRecord { id: b.id, site: b.site, name: b.name.clone(), outside: b.outside }
}

fn room_record(state: &State, r: &crate::model::Room) -> RoomRecord {
    RoomRecord {
        id: r.id,
        building: r.building,
        name: r.name.clone(),
        base_topic: state.room_topics.get(&r.id).cloned().unwrap_or_default(),
    }
}

fn type_record(t: &crate::model::DeviceType) -> DeviceTypeRecord {
    DeviceTypeRecord {
        id: t.id,
        name: t.name.clone(),
        status_period_s: t.status_period_s,
        outdated_after_s: t.outdated_after_s,
    }
}

fn device_record(
    state: &State,
    e: &DeviceEntry,
    gw: &Keys,
    central: &Keys,
) -> Result<DeviceRecord, RegistryError> {
    let d = &e.record;
    let context = d.id.to_bytes();
    let secret = central.open(&d.secret.sealed, &context)?;
    let config = ConfigResponse { topics: state.device_topics(d), zones: e.zones() };
    Ok(DeviceRecord {
        id: d.id,
        uid: WireUid::from(d.uid),
        device_type: d.device_type,
        rooms: d.rooms.clone(),
        enabled: d.enabled,
        config_body: config.to_legacy_json(),
        mqtt: d.mqtt.as_ref().map(|m| MqttEndpoint { server: m.server.clone(), port: m.port }),
        login: d.login.clone(),
        secret_hash: gw.hash(&secret),
        credentials_delivered: d.credentials_delivered,
        staged_secret: if d.credentials_delivered { None } else { Some(gw.seal(&secret, &context)?) },
        lorawan: d.lorawan.as_ref().map(|s| super::lorawan::for_gateway(s, d.id, gw, central)).transpose()?,
    })
}

/// `changes` with each LoRaWAN node's OTAA credentials after its record (`None` for a node
/// without: credentials removed), and each device type's payload layout after its record.
fn with_extensions(
    state: &State,
    changes: Vec<Change>,
    gw: &Keys,
    central: &Keys,
) -> Result<Vec<Change>, RegistryError> {
    let mut out = Vec::with_capacity(changes.len());
    for change in changes {
        let node = match &change {
            Change::UpsertDevice(d) if matches!(d.uid, WireUid::Lorawan(_)) => Some(d.id),
            _ => None,
        };
        let layout = match &change {
            Change::UpsertDeviceType(t) => Some(Change::SetPayloadLayout(
                t.id,
                state.types.get(&t.id).and_then(|e| e.record.payload_layout.clone()),
            )),
            _ => None,
        };
        out.push(change);
        out.extend(layout);
        let Some(id) = node else { continue };
        let otaa = state.devices.get(&id).and_then(|e| e.record.otaa.as_ref());
        out.push(Change::SetOtaa(
            id,
            otaa.map(|o| super::otaa::for_gateway(o, id, gw, central)).transpose()?,
        ));
    }
    Ok(out)
}

/// A page of the snapshot of a gateway's scope: the first (`after` = `None`) with every location
/// and type, then devices in id order.
fn snapshot_page(
    state: &State,
    g: &Gateway,
    gw: &Keys,
    central: &Keys,
    after: Option<DeviceId>,
    page: usize,
) -> Result<SyncBatch, RegistryError> {
    let mut changes = Vec::new();
    if after.is_none() {
        changes = locations(state, g);
    }
    let in_scope: HashSet<RoomId> = state
        .rooms
        .values()
        .filter(|r| building_in_scope(state, &g.scope, r.building))
        .map(|r| r.id)
        .collect();
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut ids = state
        .device_order
        .range((start, Bound::Unbounded))
        .filter_map(|id| state.devices.get(id))
        .filter(|e| e.record.rooms.iter().any(|r| in_scope.contains(r)));
    let (mut devices, mut bytes, mut more) = (0, 0, false);
    // In local-broker mode each device's record is followed by its account (with_broker_accounts).
    let account = if g.settings.local_broker.is_some() { BROKER_ACCOUNT_SIZE } else { 0 };
    for e in ids.by_ref() {
        let record = device_record(state, e, gw, central)?;
        devices += 1;
        bytes += record_size(&record) + account;
        changes.push(Change::UpsertDevice(Box::new(record)));
        if devices >= page || bytes >= SNAPSHOT_PAGE_BYTES {
            more = ids.next().is_some();
            break;
        }
    }
    let kind = if after.is_none() { BatchKind::Snapshot } else { BatchKind::Delta };
    Ok(SyncBatch { revision: state.revision, kind, more, changes })
}

/// About what a `SetBrokerAccount` weighs: the id, tags and a `$7$101$<salt>$<hash>` line.
const BROKER_ACCOUNT_SIZE: usize = 150;

/// About what a device record weighs in a sync body (its strings, plus ids, hash and tags).
fn record_size(d: &DeviceRecord) -> usize {
    d.config_body.len() + d.login.len() + d.mqtt.as_ref().map_or(0, |m| m.server.len()) + 160
}

/// The sites, buildings and rooms of a scope, and every device type.
fn locations(state: &State, g: &Gateway) -> Vec<Change> {
    let mut changes = Vec::new();
    let buildings: Vec<_> =
        state.buildings.values().filter(|b| building_in_scope(state, &g.scope, b.id)).collect();
    let mut sites: Vec<_> = buildings.iter().filter_map(|b| state.sites.get(&b.site)).collect();
    sites.sort_by_key(|s| s.id);
    sites.dedup_by_key(|s| s.id);
    changes.extend(sites.into_iter().map(|s| Change::UpsertSite(site_record(s))));
    changes.extend(buildings.iter().map(|b| Change::UpsertBuilding(building_record(b))));
    for r in state.rooms.values().filter(|r| building_in_scope(state, &g.scope, r.building)) {
        changes.push(Change::UpsertRoom(room_record(state, r)));
    }
    changes.extend(state.types.values().map(|t| Change::UpsertDeviceType(type_record(&t.record))));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{NewGateway, ScopeSpec};

    /// A gateway of `building`, enrolled.
    fn enrolled_gateway(registry: &Registry, building: BuildingId) -> crate::registry::GatewayInfo {
        let gw = registry
            .create_gateway(NewGateway {
                local_broker: None,
                config: Default::default(),
                name: "gw".into(),
                scope: ScopeSpec::Buildings(vec![*building.as_uuid()]),
            })
            .unwrap();
        let token = registry.start_enrolment(gw.id).unwrap();
        registry.enroll_gateway(&token.token).unwrap().unwrap();
        gw
    }

    #[test]
    fn a_snapshot_comes_in_pages_in_device_order() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, building, _) = crate::registry::test_registry(dir.path(), 5);
        let gw = enrolled_gateway(&registry, building);

        let state = registry.state.read();
        let g = &state.gateways[&gw.id];
        let keys = registry.gateway_keys(g).unwrap();
        let devices = |b: &SyncBatch| -> Vec<DeviceId> {
            b.changes
                .iter()
                .filter_map(|c| if let Change::UpsertDevice(d) = c { Some(d.id) } else { None })
                .collect()
        };
        let first = snapshot_page(&state, g, &keys, &registry.keys, None, 2).unwrap();
        assert_eq!((first.kind, first.more, devices(&first).len()), (BatchKind::Snapshot, true, 2));
        assert!(first.changes.iter().any(|c| matches!(c, Change::UpsertRoom(_))), "locations come first");
        let mut seen = devices(&first);
        let mut after = *seen.last().unwrap();
        loop {
            let page = snapshot_page(&state, g, &keys, &registry.keys, Some(after), 2).unwrap();
            assert_eq!(page.kind, BatchKind::Delta);
            assert!(!page.changes.iter().any(|c| matches!(c, Change::UpsertRoom(_))));
            seen.extend(devices(&page));
            match (page.more, seen.last()) {
                (true, Some(last)) => after = *last,
                _ => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!((seen.len(), &seen), (5, &sorted), "every device once, in id order");
    }

    /// A room renamed in the scope reaches the gateway as a delta (the room, its devices with
    /// their new topics); a building created and renamed outside it costs the gateway nothing.
    #[test]
    fn a_location_change_is_a_delta_of_what_follows_it() {
        use crate::registry::{BuildingChanges, NewBuilding, NewRoom, RoomChanges};
        let dir = tempfile::tempdir().unwrap();
        let (registry, building, devices) = crate::registry::test_registry(dir.path(), 3);
        let gw = enrolled_gateway(&registry, building);
        let since = registry.revision();

        let other = registry
            .create_building(NewBuilding { site: None, name: "U3".into(), description: String::new() })
            .unwrap();
        registry
            .create_room(NewRoom {
                building: other.id,
                name: "101".into(),
                description: String::new(),
                topic: None,
            })
            .unwrap();
        registry
            .update_building(other.id, BuildingChanges { name: Some("U3bis".into()), description: None })
            .unwrap();
        let outside = registry.edge_sync(gw.id, since, None, 0).unwrap().expect("a batch");
        assert_eq!((outside.kind, outside.changes.len()), (BatchKind::Delta, 0), "{:?}", outside.changes);
        assert_eq!(outside.revision, registry.revision());

        let room = registry.state.read().devices[&devices[0]].record.rooms[0];
        registry
            .update_room(
                room,
                RoomChanges { name: Some("303".into()), description: None, follow_rule: false },
            )
            .unwrap();
        let renamed = registry.edge_sync(gw.id, outside.revision, None, 0).unwrap().expect("a batch");
        assert_eq!(renamed.kind, BatchKind::Delta);
        let topic = match &renamed.changes[0] {
            Change::UpsertRoom(r) => r.base_topic.clone(),
            other => panic!("the room first: {other:?}"),
        };
        assert!(topic.ends_with("303"), "{topic}");
        let sent: Vec<&DeviceRecord> = renamed
            .changes
            .iter()
            .filter_map(|c| if let Change::UpsertDevice(d) = c { Some(d.as_ref()) } else { None })
            .collect();
        assert_eq!(sent.len(), 3, "every device of the room");
        assert!(sent.iter().all(|d| d.config_body.contains(&topic)), "with the new topic");
    }
}
