//! Devices: identity, placement, configuration rules, credentials.

use neosens_protocol::ids::{BuildingId, DeviceId, DeviceTypeId, RoomId};
use neosens_protocol::legacy::{ConfigResponse, validate_zones};
use neosens_protocol::{DeviceUid, UidKind};
use serde_json::Value;

use super::device_sort::DeviceSort;
use super::device_types::resolve_type;
use super::locations::{resolve_site, room_view};
use super::state::{DeviceEntry, State};
use super::{Registry, RegistryError, RoomInfo};
use crate::model::{
    Device, DeviceSecret, DeviceStatusRecord, EntityKind, MqttEndpoint, Record, Timestamp, new_uuid,
};
use crate::secrets::ServerKeys;
use crate::store::Write;

/// The firmware keeps the login in a 32-byte buffer.
pub const MAX_LOGIN_LEN: usize = 31;

/// Largest page of a device listing.
pub const MAX_PAGE: usize = 1000;

/// A new device.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Its uid: a MAC (`24:0a:c4:12:34:56`), a DevEUI (16 hex digits) or a UUID.
    pub uid: String,
    /// The uid's kind (`ethernet`, `lorawan`, `uuid`); guessed from `uid` when absent.
    pub uid_kind: Option<UidKind>,
    /// Device type, by name or id.
    pub device_type: String,
    /// Free text.
    pub description: String,
    /// Room ids, main room first (at least one).
    pub rooms: Vec<RoomId>,
    /// Whether it may fetch its configuration and connect (default true).
    pub enabled: Option<bool>,
    /// Configuration: the legacy array of zones (default `[]`).
    pub config: Option<Value>,
    /// A broker other than the default one.
    pub mqtt: Option<MqttEndpoint>,
    /// MQTT login (default `senso_<12 hex>` for a MAC, `<kind>_<uid>` otherwise).
    pub login: Option<String>,
    /// Outdated threshold overriding the type's, in seconds.
    pub outdated_after_s: Option<u32>,
    /// LoRaWAN session (`lorawan` devices); its keys are never shown again.
    pub lorawan: Option<super::NewLorawanSession>,
    /// OTAA credentials (`lorawan` devices that join); the AppKey is never shown again.
    pub otaa: Option<super::NewOtaa>,
}

/// Changes to a device; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct DeviceChanges {
    /// New type.
    pub device_type: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New rooms, main room first.
    pub rooms: Option<Vec<RoomId>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New configuration.
    pub config: Option<Value>,
    /// New broker (`null`: back to the default one).
    pub mqtt: Option<Option<MqttEndpoint>>,
    /// New threshold (`null`: back to the type's).
    pub outdated_after_s: Option<Option<u32>>,
    /// A new LoRaWAN session (new keys, sealed at once).
    pub lorawan: Option<super::NewLorawanSession>,
    /// New OTAA credentials (`null`: the node no longer joins).
    pub otaa: Option<Option<super::NewOtaa>>,
}

/// Liveness of a device, from its last status and its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// No status ever received.
    NeverSeen,
    /// Seen within its threshold.
    Ok,
    /// Not seen for longer than its threshold.
    Outdated,
    /// Disabled by an operator.
    Disabled,
}

/// Filters of a device listing.
#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    /// Site id or slug (of the main room).
    pub site: Option<String>,
    /// Building id (of the main room).
    pub building: Option<BuildingId>,
    /// Room id (any of its rooms).
    pub room: Option<RoomId>,
    /// Type name or id.
    pub device_type: Option<String>,
    /// State.
    pub state: Option<DeviceState>,
    /// Enabled or not.
    pub enabled: Option<bool>,
    /// Text searched (case-insensitive) in uid, login and description.
    pub q: Option<String>,
    /// Sort key: `uid` (default), `type`, `state`, `last_seen`, `description`, `room`; a leading
    /// `-` sorts in descending order.
    pub sort: Option<String>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Rows to skip.
    pub offset: Option<usize>,
    /// The caller's reach: only devices it sees match (the campus by default).
    pub scope: crate::model::Scope,
}

/// A device with what the registry derives for it: its rooms, state and last status.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    /// Internal id.
    pub id: DeviceId,
    /// Uid kind.
    pub uid_kind: UidKind,
    /// Uid, canonical.
    pub uid: String,
    /// Type name.
    pub device_type: String,
    /// Type id.
    pub type_id: DeviceTypeId,
    /// Description.
    pub description: String,
    /// Rooms, main first.
    pub rooms: Vec<RoomInfo>,
    /// Base topic of the main room.
    pub base_topic: Option<String>,
    /// Enabled.
    pub enabled: bool,
    /// Configuration.
    pub config: Value,
    /// Custom broker.
    pub mqtt: Option<MqttEndpoint>,
    /// MQTT login.
    pub login: String,
    /// Whether the secret has been delivered.
    pub credentials_delivered: bool,
    /// Threshold override.
    pub outdated_after_s: Option<u32>,
    /// Threshold in force.
    pub effective_outdated_after_s: u32,
    /// Liveness.
    pub state: DeviceState,
    /// Last status time (RFC 3339).
    pub last_seen: Option<String>,
    /// Last status text.
    pub last_status: Option<String>,
    /// Last status payload.
    pub last_payload: Option<Value>,
    /// Registration time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// LoRaWAN session, without its keys.
    pub lorawan: Option<super::LorawanInfo>,
    /// OTAA credentials, without the key.
    pub otaa: Option<super::OtaaInfo>,
}

pub(super) fn state_of(
    device: &Device,
    status: Option<&DeviceStatusRecord>,
    threshold_s: u32,
    now: Timestamp,
) -> DeviceState {
    if !device.enabled {
        return DeviceState::Disabled;
    }
    match status.and_then(|s| s.last_seen) {
        None => DeviceState::NeverSeen,
        Some(seen) if now.millis() - seen.millis() > i64::from(threshold_s) * 1000 => DeviceState::Outdated,
        Some(_) => DeviceState::Ok,
    }
}

pub(super) fn threshold(state: &State, device: &Device) -> u32 {
    device
        .outdated_after_s
        .or_else(|| state.types.get(&device.device_type).map(|t| t.record.outdated_after_s))
        .unwrap_or(crate::model::DEFAULT_STATUS_PERIOD_S)
}

fn view(state: &State, entry: &DeviceEntry, now: Timestamp) -> DeviceInfo {
    let d = &entry.record;
    let status = state.statuses.get(&d.id);
    let threshold_s = threshold(state, d);
    let rooms: Vec<RoomInfo> =
        d.rooms.iter().filter_map(|r| state.rooms.get(r)).map(|r| room_view(state, r)).collect();
    DeviceInfo {
        id: d.id,
        uid_kind: d.uid.kind(),
        uid: d.uid.to_string(),
        device_type: state.types.get(&d.device_type).map(|t| t.record.name.clone()).unwrap_or_default(),
        type_id: d.device_type,
        description: d.description.clone(),
        base_topic: rooms.first().and_then(|r| r.base_topic.clone()),
        rooms,
        enabled: d.enabled,
        config: entry.zones(),
        mqtt: d.mqtt.clone(),
        login: d.login.clone(),
        credentials_delivered: d.credentials_delivered,
        outdated_after_s: d.outdated_after_s,
        effective_outdated_after_s: threshold_s,
        state: state_of(d, status, threshold_s, now),
        last_seen: status.and_then(|s| s.last_seen).map(Timestamp::to_rfc3339),
        last_status: status.and_then(|s| s.last_status.clone()),
        last_payload: status
            .and_then(|s| s.last_payload.as_deref())
            .and_then(|p| serde_json::from_str(p).ok()),
        created_at: d.created_at.to_rfc3339(),
        updated_at: d.updated_at.to_rfc3339(),
        lorawan: d.lorawan.as_ref().map(super::LorawanInfo::from),
        otaa: d.otaa.as_ref().map(super::OtaaInfo::from),
    }
}

pub(super) fn resolve_device<'a>(state: &'a State, key: &str) -> Option<&'a DeviceEntry> {
    if let Some(entry) = key.parse::<DeviceId>().ok().and_then(|id| state.devices.get(&id)) {
        return Some(entry);
    }
    let uid = DeviceUid::guess(key)?;
    state.by_uid.get(&uid).and_then(|id| state.devices.get(id)).map(AsRef::as_ref)
}

/// The default login of a uid: the 2016 rule for MACs.
pub(super) fn default_login(uid: &DeviceUid) -> String {
    match uid {
        DeviceUid::Ethernet(mac) => mac.legacy_login(),
        DeviceUid::Lorawan(eui) => format!("lora_{}", eui.to_string().to_lowercase()),
        DeviceUid::Uuid(u) => format!("dev_{}", &u.simple().to_string()[..24]),
    }
}

pub(super) fn check_login(login: &str) -> Result<(), RegistryError> {
    if login.is_empty() || login.len() > MAX_LOGIN_LEN {
        return Err(RegistryError::invalid(
            "login",
            format!("1 to {MAX_LOGIN_LEN} characters (the firmware's buffer)"),
        ));
    }
    if !login.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'+' | b'#' | b'/' | b':')) {
        return Err(RegistryError::invalid("login", "printable ASCII without '+', '#', '/' or ':'"));
    }
    Ok(())
}

pub(super) fn check_rooms(state: &State, rooms: &[RoomId]) -> Result<(), RegistryError> {
    if rooms.is_empty() {
        return Err(RegistryError::invalid(
            "rooms",
            "at least one room: the first is the device's base topic",
        ));
    }
    for (i, r) in rooms.iter().enumerate() {
        if !state.rooms.contains_key(r) {
            return Err(RegistryError::invalid(&format!("rooms[{i}]"), format!("no room {r}")));
        }
        if rooms[..i].contains(r) {
            return Err(RegistryError::invalid(&format!("rooms[{i}]"), "listed twice"));
        }
    }
    Ok(())
}

fn check_mqtt(mqtt: Option<&MqttEndpoint>) -> Result<(), RegistryError> {
    if let Some(m) = mqtt {
        if m.server.is_empty() || m.server.len() > 63 {
            return Err(RegistryError::invalid("mqtt.server", "1 to 63 characters (the firmware's buffer)"));
        }
        if m.port == 0 {
            return Err(RegistryError::invalid("mqtt.port", "1 to 65535"));
        }
    }
    Ok(())
}

/// Checks a configuration: the legacy shape, the type's schema, and the firmware's 1023-byte limit
/// on the `/device/config` answer it produces with these topics.
pub(super) fn check_config(
    state: &State,
    type_id: DeviceTypeId,
    topics: &[String],
    zones: &Value,
) -> Result<(), RegistryError> {
    let mut errors = Vec::new();
    if let Err(e) = validate_zones(zones) {
        errors.push(e.to_string());
    }
    if let Some(validator) = state.types.get(&type_id).and_then(|t| t.validator.as_ref()) {
        for e in validator.iter_errors(zones) {
            errors.push(format!("schema of the device type: at '{}': {e}", e.instance_path()));
        }
    }
    if errors.is_empty() {
        let answer = ConfigResponse { topics: topics.to_vec(), zones: zones.clone() };
        if let Err(e) = answer.to_legacy_body() {
            errors.push(format!("/device/config answer: {e}"));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(RegistryError::Config { errors }) }
}

pub(super) fn new_secret(keys: &ServerKeys, id: DeviceId) -> Result<DeviceSecret, RegistryError> {
    let secret = keys.new_device_secret()?;
    Ok(DeviceSecret {
        hash: keys.hash(secret.as_bytes()),
        sealed: keys.seal(secret.as_bytes(), &id.to_bytes())?,
    })
}

/// The devices matching `filter` (its sort and paging aside).
pub(super) fn matching<'a>(
    state: &'a State,
    filter: &DeviceQuery,
    now: Timestamp,
) -> Result<Vec<&'a DeviceEntry>, RegistryError> {
    let site = filter.site.as_deref().map(|s| resolve_site(state, s).map(|s| s.id)).transpose()?;
    let device_type = match filter.device_type.as_deref() {
        Some(t) => Some(
            resolve_type(state, t)
                .ok_or_else(|| RegistryError::invalid("type", format!("no device type {t}")))?
                .id,
        ),
        None => None,
    };
    let q = filter.q.as_deref().map(str::to_lowercase);
    let main_building = |d: &Device| d.rooms.first().and_then(|r| state.rooms.get(r)).map(|r| r.building);
    let matching: Vec<&DeviceEntry> = state
        .devices
        .values()
        .map(AsRef::as_ref)
        .filter(|e| {
            let d = &e.record;
            device_type.is_none_or(|t| d.device_type == t)
                && super::site_rights::sees(state, &filter.scope, d)
                && filter.enabled.is_none_or(|en| d.enabled == en)
                && filter.room.is_none_or(|r| d.rooms.contains(&r))
                && filter.building.is_none_or(|b| main_building(d) == Some(b))
                && site.is_none_or(|s| {
                    main_building(d).and_then(|b| state.buildings.get(&b)).is_some_and(|b| b.site == s)
                })
                && filter
                    .state
                    .is_none_or(|st| state_of(d, state.statuses.get(&d.id), threshold(state, d), now) == st)
                && q.as_deref().is_none_or(|q| {
                    d.uid.to_string().to_lowercase().contains(q)
                        || d.login.to_lowercase().contains(q)
                        || d.description.to_lowercase().contains(q)
                })
        })
        .collect();
    Ok(matching)
}

impl Registry {
    /// Ids of the devices matching `filter` (its sort and paging ignored); more than `max` is
    /// refused.
    pub fn matching_device_ids(
        &self,
        filter: &DeviceQuery,
        max: usize,
    ) -> Result<Vec<DeviceId>, RegistryError> {
        let state = self.state.read();
        let matching = matching(&state, filter, Timestamp::now())?;
        if matching.len() > max {
            return Err(RegistryError::invalid(
                "target",
                format!("{} devices match, more than {max}", matching.len()),
            ));
        }
        Ok(matching.into_iter().map(|e| e.record.id).collect())
    }

    /// The id of a device by internal id or uid.
    pub fn device_id(&self, key: &str) -> Option<DeviceId> {
        resolve_device(&self.state.read(), key).map(|e| e.record.id)
    }

    /// Devices matching `filter`, sorted by uid, one page; and how many match in all.
    pub fn devices(&self, filter: &DeviceQuery) -> Result<(Vec<DeviceInfo>, usize), RegistryError> {
        let state = self.state.read();
        let now = Timestamp::now();
        let limit = filter.limit.unwrap_or(100).min(MAX_PAGE);
        let offset = filter.offset.unwrap_or(0);
        let mut matching = matching(&state, filter, now)?;
        let total = matching.len();
        let sort = filter.sort.as_deref().unwrap_or("uid").parse::<DeviceSort>()?;
        matching.sort_by_cached_key(|e| sort.key(&state, e, now));
        if sort.descending {
            matching.reverse();
        }
        let page = matching.into_iter().skip(offset).take(limit).map(|e| view(&state, e, now)).collect();
        Ok((page, total))
    }

    /// A device by internal id or uid (MAC, DevEUI, UUID).
    pub fn device(&self, key: &str) -> Result<DeviceInfo, RegistryError> {
        self.device_within(key, &crate::model::Scope::Campus)
    }

    /// A device `scope` sees, by internal id or uid; one it does not see is not found.
    pub fn device_within(&self, key: &str, scope: &crate::model::Scope) -> Result<DeviceInfo, RegistryError> {
        let state = self.state.read();
        resolve_device(&state, key)
            .filter(|e| super::site_rights::sees(&state, scope, &e.record))
            .map(|e| view(&state, e, Timestamp::now()))
            .ok_or_else(|| RegistryError::not_found(format!("device {key}")))
    }

    /// The id of a device `scope` sees, by internal id or uid; one it does not see is not found
    /// (for the routes about one device: its logs, history, orders).
    pub fn visible_device(&self, key: &str, scope: &crate::model::Scope) -> Result<DeviceId, RegistryError> {
        let state = self.state.read();
        resolve_device(&state, key)
            .filter(|e| super::site_rights::sees(&state, scope, &e.record))
            .map(|e| e.record.id)
            .ok_or_else(|| RegistryError::not_found(format!("device {key}")))
    }

    /// Registers a device with a new, undelivered secret.
    pub fn create_device(&self, input: NewDevice) -> Result<DeviceInfo, RegistryError> {
        let uid = match input.uid_kind {
            Some(kind) => DeviceUid::parse(kind, input.uid.trim()),
            None => DeviceUid::guess(input.uid.trim()).ok_or(neosens_protocol::Error::InvalidMac),
        }
        .map_err(|e| {
            RegistryError::invalid("uid", format!("{e} (a MAC, a DevEUI of 16 hex digits, or a UUID)"))
        })?;
        let login = input.login.clone().unwrap_or_else(|| default_login(&uid));
        check_login(&login)?;
        if self.login_reserved(&login) {
            return Err(RegistryError::invalid(
                "login",
                format!(
                    "{login:?} is reserved for an account that is not a device (central, the broker's admin, gateways gw-*, [mqtt] reserved_logins): choose another"
                ),
            ));
        }
        check_mqtt(input.mqtt.as_ref())?;
        let config = input.config.clone().unwrap_or(Value::Array(Vec::new()));
        let id = DeviceId::from_uuid(new_uuid());
        let secret = new_secret(&self.keys, id)?;
        let lorawan = input
            .lorawan
            .as_ref()
            .map(|l| super::lorawan::seal_session(&self.keys, id, &uid, l))
            .transpose()?;
        let otaa =
            input.otaa.as_ref().map(|o| super::otaa::seal_otaa(&self.keys, id, &uid, o)).transpose()?;
        let key = self.mutate(|state| {
            if let Some(other) = state.by_uid.get(&uid) {
                return Err(RegistryError::conflict(format!(
                    "device {uid} is already registered (id {other})"
                )));
            }
            if state.by_login.contains_key(&login) {
                return Err(RegistryError::conflict(format!("login {login:?} is taken")));
            }
            let device_type = resolve_type(state, &input.device_type)
                .ok_or_else(|| {
                    RegistryError::invalid("type", format!("no device type {:?}", input.device_type))
                })?
                .id;
            check_rooms(state, &input.rooms)?;
            let topics: Vec<String> =
                input.rooms.iter().filter_map(|r| state.room_topics.get(r).cloned()).collect();
            check_config(state, device_type, &topics, &config)?;
            let now = Timestamp::now();
            let device = Device {
                id,
                uid,
                device_type,
                description: input.description.clone(),
                rooms: input.rooms.clone(),
                enabled: input.enabled.unwrap_or(true),
                config: config.to_string(),
                mqtt: input.mqtt.clone(),
                login: login.clone(),
                secret: secret.clone(),
                credentials_delivered: false,
                outdated_after_s: input.outdated_after_s,
                created_at: now,
                updated_at: now,
                lorawan: lorawan.clone(),
                otaa: otaa.clone(),
            };
            Ok((vec![Write::Put(Record::Device(Box::new(device)))], id.to_string()))
        })?;
        self.device(&key)
    }

    /// Changes a device.
    pub fn update_device(&self, key: &str, patch: DeviceChanges) -> Result<DeviceInfo, RegistryError> {
        if let Some(Some(m)) = &patch.mqtt {
            check_mqtt(Some(m))?;
        }
        let id = self.mutate(|state| {
            let entry = resolve_device(state, key)
                .ok_or_else(|| RegistryError::not_found(format!("device {key}")))?;
            let mut d = entry.record.clone();
            let mut zones = entry.zones();
            if let Some(t) = &patch.device_type {
                d.device_type = resolve_type(state, t)
                    .ok_or_else(|| RegistryError::invalid("type", format!("no device type {t:?}")))?
                    .id;
            }
            if let Some(desc) = &patch.description {
                d.description.clone_from(desc);
            }
            if let Some(rooms) = &patch.rooms {
                check_rooms(state, rooms)?;
                d.rooms.clone_from(rooms);
            }
            if let Some(en) = patch.enabled {
                d.enabled = en;
            }
            if let Some(config) = &patch.config {
                zones = config.clone();
            }
            if let Some(m) = &patch.mqtt {
                d.mqtt.clone_from(m);
            }
            if let Some(o) = patch.outdated_after_s {
                d.outdated_after_s = o;
            }
            if let Some(o) = &patch.otaa {
                d.otaa =
                    o.as_ref().map(|o| super::otaa::seal_otaa(&self.keys, d.id, &d.uid, o)).transpose()?;
            }
            if let Some(l) = &patch.lorawan {
                d.lorawan = Some(super::lorawan::seal_session(&self.keys, d.id, &d.uid, l)?);
            }
            if patch.config.is_some() || patch.rooms.is_some() || patch.device_type.is_some() {
                let topics = state.device_topics(&d);
                check_config(state, d.device_type, &topics, &zones)?;
            }
            d.config = zones.to_string();
            d.updated_at = Timestamp::now();
            Ok((vec![Write::Put(Record::Device(Box::new(d.clone())))], d.id))
        })?;
        self.device(&id.to_string())
    }

    /// Removes a device.
    pub fn delete_device(&self, key: &str) -> Result<(), RegistryError> {
        self.mutate(|state| {
            let entry = resolve_device(state, key)
                .ok_or_else(|| RegistryError::not_found(format!("device {key}")))?;
            Ok((vec![Write::Delete(EntityKind::Device, entry.record.id.to_bytes())], ()))
        })
    }

    /// Gives a device a new secret, not yet delivered: its next `/device/credentials` call gets
    /// it, once. The old secret stops working at once.
    pub fn reset_credentials(&self, key: &str) -> Result<DeviceInfo, RegistryError> {
        let id = self.mutate_as(Some("device.reset_credentials"), |state| {
            let entry = resolve_device(state, key)
                .ok_or_else(|| RegistryError::not_found(format!("device {key}")))?;
            let mut d = entry.record.clone();
            d.secret = new_secret(&self.keys, d.id)?;
            d.credentials_delivered = false;
            d.updated_at = Timestamp::now();
            Ok((vec![Write::Put(Record::Device(Box::new(d.clone())))], d.id))
        })?;
        tracing::info!(device = %id, "credentials reset");
        self.device(&id.to_string())
    }
}

#[cfg(test)]
#[path = "devices_tests.rs"]
pub(super) mod tests;
