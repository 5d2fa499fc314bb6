//! The registry in memory: every record, and the indexes the hot paths need (uid, login, token
//! hash, room → devices, computed base topics). Rebuilt from the store at start; changed only by
//! [`State::apply`], after the store has committed the same writes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use neosens_protocol::DeviceUid;
use neosens_protocol::ids::{BuildingId, DeviceId, DeviceTypeId, GatewayId, RoomId, SiteId};
use neosens_protocol::location::{BaseTopic, Place, SiteScope};
use serde_json::Value;

use crate::model::{
    ApiToken, Building, Device, DeviceStatusRecord, DeviceType, EntityKind, Gateway, Record, Room, RoomTopic,
    Site, TokenId, User, UserId,
};
use crate::store::{Snapshot, Write};

/// A device type with its compiled configuration schema.
#[derive(Debug)]
pub(crate) struct TypeEntry {
    pub(crate) record: DeviceType,
    pub(crate) validator: Option<jsonschema::Validator>,
}

/// A device as the registry holds it. Its configuration stays JSON text and is parsed when
/// served: a parsed `Value` (an ordered map per object) costs kilobytes per device, which at
/// 100k devices is most of the memory budget, for a parse that takes a microsecond or two.
#[derive(Debug, Clone)]
pub(crate) struct DeviceEntry {
    pub(crate) record: Device,
}

impl DeviceEntry {
    /// The configuration zones.
    pub(crate) fn zones(&self) -> Value {
        serde_json::from_str(&self.record.config).unwrap_or_else(|_| Value::Array(Vec::new()))
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) revision: u64,
    pub(crate) sites: HashMap<SiteId, Site>,
    pub(crate) buildings: HashMap<BuildingId, Building>,
    pub(crate) rooms: HashMap<RoomId, Room>,
    /// Base topic of every room, recomputed when a site, building or room changes.
    pub(crate) room_topics: HashMap<RoomId, String>,
    pub(crate) types: HashMap<DeviceTypeId, Arc<TypeEntry>>,
    pub(crate) devices: HashMap<DeviceId, Arc<DeviceEntry>>,
    /// Every device id, in order: a gateway's snapshot pages walk it from where the last one
    /// stopped (each page costs its own devices, not the whole registry).
    pub(crate) device_order: BTreeSet<DeviceId>,
    pub(crate) by_uid: HashMap<DeviceUid, DeviceId>,
    pub(crate) by_login: HashMap<String, DeviceId>,
    pub(crate) by_room: HashMap<RoomId, BTreeSet<DeviceId>>,
    pub(crate) statuses: HashMap<DeviceId, DeviceStatusRecord>,
    pub(crate) gateways: HashMap<GatewayId, Gateway>,
    pub(crate) users: HashMap<UserId, User>,
    pub(crate) tokens: HashMap<TokenId, ApiToken>,
    pub(crate) token_by_hash: HashMap<[u8; 32], TokenId>,
}

/// Compiles a device type's schema (already checked when the type was saved).
pub(crate) fn compile_schema(schema: Option<&str>) -> Result<Option<jsonschema::Validator>, String> {
    let Some(text) = schema else { return Ok(None) };
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    jsonschema::validator_for(&value).map(Some).map_err(|e| e.to_string())
}

impl State {
    pub(crate) fn from_snapshot(snapshot: Snapshot) -> Self {
        let mut state = State { revision: snapshot.revision, ..State::default() };
        let records = snapshot
            .sites
            .into_iter()
            .map(Record::Site)
            .chain(snapshot.buildings.into_iter().map(Record::Building))
            .chain(snapshot.rooms.into_iter().map(Record::Room))
            .chain(snapshot.device_types.into_iter().map(Record::DeviceType))
            .chain(snapshot.devices.into_iter().map(|d| Record::Device(Box::new(d))))
            .chain(snapshot.gateways.into_iter().map(|g| Record::Gateway(Box::new(g))))
            .chain(snapshot.users.into_iter().map(Record::User))
            .chain(snapshot.tokens.into_iter().map(Record::Token));
        for record in records {
            state.put(record, false);
        }
        state.recompute_all_topics();
        for (key, status) in snapshot.statuses {
            state.statuses.insert(DeviceId::from_bytes(key), status);
        }
        state
    }

    /// Applies writes the store has committed.
    pub(crate) fn apply(&mut self, writes: Vec<Write>, revision: u64) {
        let mut topics_dirty = false;
        for write in writes {
            match write {
                Write::Put(record) => {
                    topics_dirty |=
                        matches!(record.kind(), EntityKind::Site | EntityKind::Building | EntityKind::Room);
                    self.put(record, true);
                }
                Write::Delete(kind, key) => {
                    topics_dirty |=
                        matches!(kind, EntityKind::Site | EntityKind::Building | EntityKind::Room);
                    self.delete(kind, key);
                }
            }
        }
        if topics_dirty {
            self.recompute_all_topics();
        }
        self.revision = revision;
    }

    fn put(&mut self, record: Record, replace_indexes: bool) {
        match record {
            Record::Site(s) => {
                self.sites.insert(s.id, s);
            }
            Record::Building(b) => {
                self.buildings.insert(b.id, b);
            }
            Record::Room(r) => {
                self.rooms.insert(r.id, r);
            }
            Record::DeviceType(t) => {
                // A schema that no longer compiles (newer jsonschema rules) validates nothing
                // rather than blocking start; it was valid when saved.
                let validator = compile_schema(t.config_schema.as_deref()).unwrap_or_else(|e| {
                    tracing::warn!(device_type = %t.name, error = %e, "configuration schema does not compile");
                    None
                });
                self.types.insert(t.id, Arc::new(TypeEntry { record: t, validator }));
            }
            Record::Device(d) => {
                let d = *d;
                if replace_indexes {
                    self.unindex_device(d.id);
                }
                self.by_uid.insert(d.uid, d.id);
                self.by_login.insert(d.login.clone(), d.id);
                for room in &d.rooms {
                    self.by_room.entry(*room).or_default().insert(d.id);
                }
                self.device_order.insert(d.id);
                self.devices.insert(d.id, Arc::new(DeviceEntry { record: d }));
            }
            Record::Gateway(g) => {
                self.gateways.insert(g.id, *g);
            }
            Record::User(u) => {
                self.users.insert(u.id, u);
            }
            Record::Token(t) => {
                if let Some(old) = self.tokens.get(&t.id) {
                    self.token_by_hash.remove(&old.hash);
                }
                self.token_by_hash.insert(t.hash, t.id);
                self.tokens.insert(t.id, t);
            }
        }
    }

    fn unindex_device(&mut self, id: DeviceId) {
        if let Some(old) = self.devices.get(&id).map(|e| e.record.clone()) {
            self.by_uid.remove(&old.uid);
            self.by_login.remove(&old.login);
            for room in &old.rooms {
                if let Some(set) = self.by_room.get_mut(room) {
                    set.remove(&id);
                }
            }
        }
    }

    fn delete(&mut self, kind: EntityKind, key: [u8; 16]) {
        match kind {
            EntityKind::Site => {
                self.sites.remove(&SiteId::from_bytes(key));
            }
            EntityKind::Building => {
                self.buildings.remove(&BuildingId::from_bytes(key));
            }
            EntityKind::Room => {
                self.rooms.remove(&RoomId::from_bytes(key));
            }
            EntityKind::DeviceType => {
                self.types.remove(&DeviceTypeId::from_bytes(key));
            }
            EntityKind::Device => {
                let id = DeviceId::from_bytes(key);
                self.unindex_device(id);
                self.devices.remove(&id);
                self.device_order.remove(&id);
                self.statuses.remove(&id);
            }
            EntityKind::Gateway => {
                self.gateways.remove(&GatewayId::from_bytes(key));
            }
            EntityKind::User => {
                self.users.remove(&UserId(uuid::Uuid::from_bytes(key)));
            }
            EntityKind::Token => {
                if let Some(t) = self.tokens.remove(&crate::model::TokenId(uuid::Uuid::from_bytes(key))) {
                    self.token_by_hash.remove(&t.hash);
                }
            }
        }
    }

    /// The base topic a room would have by the rule, given the current names.
    pub(crate) fn derived_topic(&self, room: &Room) -> Option<String> {
        let building = self.buildings.get(&room.building)?;
        let site = self.sites.get(&building.site)?;
        let scope = if site.is_default { SiteScope::Default } else { SiteScope::Abroad(&site.slug) };
        let place = if building.outside {
            Place::Outside { area: &room.name }
        } else {
            Place::Room { building: &building.name, room: &room.name }
        };
        BaseTopic::derive(scope, place).ok().map(|t| t.as_str().to_owned())
    }

    fn recompute_all_topics(&mut self) {
        let topics: HashMap<RoomId, String> = self
            .rooms
            .values()
            .filter_map(|room| {
                let topic = match &room.topic {
                    RoomTopic::Imported(t) => Some(t.clone()),
                    RoomTopic::Derived => self.derived_topic(room),
                };
                topic.map(|t| (room.id, t))
            })
            .collect();
        self.room_topics = topics;
    }

    /// Base topics of a device's rooms, main room first.
    pub(crate) fn device_topics(&self, device: &Device) -> Vec<String> {
        device.rooms.iter().filter_map(|r| self.room_topics.get(r).cloned()).collect()
    }

    pub(crate) fn default_site(&self) -> Option<&Site> {
        self.sites.values().find(|s| s.is_default)
    }
}
