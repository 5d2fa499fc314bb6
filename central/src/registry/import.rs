//! Planning an import of the 2016 database against the current registry: what to create, what
//! to update, what is already there, and which rows cannot be imported and why.
//!
//! Matching uses natural keys — type name, building name (default site), room name within its
//! building, device MAC — so running the same import twice changes nothing the second time.
//! Everything the first run writes goes into one store batch: all of it lands, or none.

use std::collections::{HashMap, HashSet};

use neosens_protocol::ids::{BuildingId, DeviceId, DeviceTypeId, RoomId, SiteId};
use neosens_protocol::legacy::validate_zones;
use neosens_protocol::{DeviceUid, Mac};
use serde::Serialize;
use serde_json::Value;

use super::state::State;
use super::{Registry, RegistryError};
use crate::import_legacy::dump::{LegacyDevice, LegacyExport};
use crate::model::{
    Building, DEFAULT_STATUS_PERIOD_S, Device, DeviceSecret, DeviceStatusRecord, DeviceType, MqttEndpoint,
    Record, Room, RoomTopic, Timestamp, new_uuid,
};
use crate::secrets::ServerKeys;
use crate::store::Write;

/// Counts of one kind of record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// New records.
    pub created: usize,
    /// Existing records changed to match the export.
    pub updated: usize,
    /// Existing records that already match.
    pub unchanged: usize,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportReport {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Device types.
    pub types: Counts,
    /// Buildings.
    pub buildings: Counts,
    /// Rooms.
    pub rooms: Counts,
    /// Devices.
    pub devices: Counts,
    /// Rows not imported, with why.
    pub rejected: Vec<(String, String)>,
    /// Rows imported with a caveat an operator should read.
    pub warnings: Vec<(String, String)>,
    /// Permissions matching the rule neosens derives from rooms.
    pub standard_permissions: usize,
    /// Rows of other apps skipped (`auth.*`, `sessions.*` …) and log messages not imported.
    pub skipped_rows: usize,
}

impl ImportReport {
    /// Whether the second run of the same import would change nothing.
    pub fn changes_nothing(&self) -> bool {
        [self.types, self.buildings, self.rooms, self.devices]
            .iter()
            .all(|c| c.created == 0 && c.updated == 0)
    }
}

struct Plan {
    writes: Vec<Write>,
    statuses: Vec<(DeviceId, DeviceStatusRecord)>,
    report: ImportReport,
}

/// A legacy type name as a neosens type name (`ESP32 neOSensor` → `esp32_neosensor`).
fn type_name(name: &str, pk: i64) -> String {
    let s = neosens_protocol::sanitize(name).to_lowercase();
    let s = s.trim_matches('_');
    if s.is_empty() { format!("type_{pk}") } else { s.chars().take(64).collect() }
}

fn upsert<T: PartialEq>(counts: &mut Counts, old: Option<&T>, new: &T) -> bool {
    match old {
        None => {
            counts.created += 1;
            true
        }
        Some(old) if old == new => {
            counts.unchanged += 1;
            false
        }
        Some(_) => {
            counts.updated += 1;
            true
        }
    }
}

fn plan(
    state: &State,
    keys: &ServerKeys,
    reserved: &dyn Fn(&str) -> bool,
    export: &LegacyExport,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Plan, RegistryError> {
    let mut report = ImportReport {
        skipped_rows: export.other_rows + export.log_messages,
        rejected: export.bad_rows.clone(),
        ..ImportReport::default()
    };
    let mut writes = Vec::new();
    let site = state.default_site().ok_or_else(|| RegistryError::not_found("default site"))?.id;
    let type_ids = plan_types(state, export, &mut report, &mut writes);
    let building_ids = plan_buildings(state, site, export, &mut report, &mut writes);
    let room_ids = plan_rooms(state, export, &building_ids, &mut report, &mut writes);
    let ids = Ids { types: &type_ids, rooms: &room_ids };
    let (statuses, imported) =
        plan_devices(state, keys, reserved, export, ids, &mut report, &mut writes, progress)?;
    check_permissions(export, &imported, &mut report);
    Ok(Plan { writes, statuses, report })
}

/// Device types, by name (`type_name`); returns their ids by 2016 primary key.
fn plan_types(
    state: &State,
    export: &LegacyExport,
    report: &mut ImportReport,
    writes: &mut Vec<Write>,
) -> HashMap<i64, DeviceTypeId> {
    let mut type_ids: HashMap<i64, DeviceTypeId> = HashMap::new();
    for t in export.types.values() {
        let name = type_name(&t.name, t.pk);
        let existing = state.types.values().find(|e| e.record.name == name).map(|e| &e.record);
        let mut record = existing.cloned().unwrap_or(DeviceType {
            id: DeviceTypeId::from_uuid(new_uuid()),
            name,
            description: String::new(),
            config_schema: None,
            status_period_s: DEFAULT_STATUS_PERIOD_S,
            outdated_after_s: DEFAULT_STATUS_PERIOD_S,
            orders: crate::model::firmware_orders(),
            status_rules: Vec::new(),
            payload_layout: None,
        });
        record.description = if t.description.is_empty() { t.name.clone() } else { t.description.clone() };
        type_ids.insert(t.pk, record.id);
        if upsert(&mut report.types, existing, &record) {
            writes.push(Write::Put(Record::DeviceType(record)));
        }
    }
    type_ids
}

/// Buildings, in the default site, by name; returns their ids by 2016 primary key.
fn plan_buildings(
    state: &State,
    site: SiteId,
    export: &LegacyExport,
    report: &mut ImportReport,
    writes: &mut Vec<Write>,
) -> HashMap<i64, BuildingId> {
    let mut building_ids: HashMap<i64, BuildingId> = HashMap::new();
    for b in export.buildings.values() {
        let existing =
            state.buildings.values().find(|e| e.site == site && e.name.eq_ignore_ascii_case(&b.name));
        let mut record = existing.cloned().unwrap_or(Building {
            id: BuildingId::from_uuid(new_uuid()),
            site,
            name: b.name.clone(),
            description: String::new(),
            outside: false,
        });
        record.description.clone_from(&b.description);
        building_ids.insert(b.pk, record.id);
        if upsert(&mut report.buildings, existing, &record) {
            writes.push(Write::Put(Record::Building(record)));
        }
    }
    building_ids
}

/// Rooms: their stored topics are kept exactly. Returns their ids by 2016 primary key.
fn plan_rooms(
    state: &State,
    export: &LegacyExport,
    building_ids: &HashMap<i64, BuildingId>,
    report: &mut ImportReport,
    writes: &mut Vec<Write>,
) -> HashMap<i64, RoomId> {
    let mut room_ids: HashMap<i64, RoomId> = HashMap::new();
    let mut topics_taken: HashMap<String, RoomId> =
        state.room_topics.iter().map(|(r, t)| (t.clone(), *r)).collect();
    for l in export.locations.values() {
        let row = format!("devices.location pk={}", l.pk);
        let Some(&building) = building_ids.get(&l.building) else {
            report.rejected.push((row, format!("its building pk={} is not in the export", l.building)));
            continue;
        };
        let existing =
            state.rooms.values().find(|r| r.building == building && r.name.eq_ignore_ascii_case(&l.room));
        if let Some(room) = existing {
            room_ids.insert(l.pk, room.id);
            report.rooms.unchanged += 1;
            if state.room_topics.get(&room.id) != Some(&l.topic) {
                report.warnings.push((
                    row,
                    format!("room exists with another topic; kept {:?}", state.room_topics.get(&room.id)),
                ));
            }
            continue;
        }
        if let Err(e) = neosens_protocol::BaseTopic::from_stored(&l.topic) {
            report.rejected.push((row, format!("topic {:?}: {e}", l.topic)));
            continue;
        }
        let id = RoomId::from_uuid(new_uuid());
        if topics_taken.insert(l.topic.clone(), id).is_some() {
            report.rejected.push((row, format!("topic {:?} belongs to another room", l.topic)));
            continue;
        }
        room_ids.insert(l.pk, id);
        report.rooms.created += 1;
        writes.push(Write::Put(Record::Room(Room {
            id,
            building,
            name: l.room.clone(),
            description: String::new(),
            topic: RoomTopic::Imported(l.topic.clone()),
        })));
    }
    room_ids
}

/// The ids the devices refer to, by 2016 primary key.
#[derive(Clone, Copy)]
struct Ids<'a> {
    types: &'a HashMap<i64, DeviceTypeId>,
    rooms: &'a HashMap<i64, RoomId>,
}

/// Statuses of the planned devices, and the 2016 keys of the devices imported.
type PlannedDevices = (Vec<(DeviceId, DeviceStatusRecord)>, HashSet<i64>);

/// Devices (each costs a secret hash and seal: progress every thousand).
#[allow(clippy::too_many_arguments)] // the plan's pieces, each used
fn plan_devices(
    state: &State,
    keys: &ServerKeys,
    reserved: &dyn Fn(&str) -> bool,
    export: &LegacyExport,
    ids: Ids<'_>,
    report: &mut ImportReport,
    writes: &mut Vec<Write>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PlannedDevices, RegistryError> {
    let room_topics = room_topics_of(state, writes);
    let mut logins: HashMap<String, DeviceUid> = HashMap::new();
    let mut statuses = Vec::new();
    let mut imported: HashSet<i64> = HashSet::new();
    let total = export.devices.len();
    for (n, d) in export.devices.iter().enumerate() {
        // Each device costs a secret hash and seal: 100k of them take seconds.
        if n % 1000 == 0 {
            progress(n, total);
        }
        let row = format!("devices.device pk={} mac={}", d.pk, d.mac);
        if reserved(&d.login) {
            report
                .rejected
                .push((row, format!("login {:?} is reserved for an account that is not a device", d.login)));
            continue;
        }
        let planned =
            plan_device(state, keys, d, ids.types, ids.rooms, &room_topics, &mut logins, report, &row)?;
        let Some((record, status, changed)) = planned else { continue };
        imported.insert(d.pk);
        if let Some(status) = status {
            statuses.push((record.id, status));
        }
        if changed {
            writes.push(Write::Put(Record::Device(Box::new(record))));
        }
    }
    progress(total, total);
    Ok((statuses, imported))
}

/// Permissions: neosens derives them from rooms; anything else is reported.
fn check_permissions(export: &LegacyExport, imported: &HashSet<i64>, report: &mut ImportReport) {
    let devices_by_pk: HashMap<i64, &LegacyDevice> = export.devices.iter().map(|d| (d.pk, d)).collect();
    for p in &export.permissions {
        let row = format!("devices.permission pk={}", p.pk);
        let Some(device) = devices_by_pk.get(&p.device).filter(|d| imported.contains(&d.pk)) else {
            report.warnings.push((row, format!("device pk={} was not imported", p.device)));
            continue;
        };
        let topics: Vec<&str> = device
            .locations
            .iter()
            .filter_map(|l| export.locations.get(l))
            .map(|l| l.topic.as_str())
            .collect();
        let standard = topics.iter().any(|t| match p.permission_type.as_str() {
            "PUB" => p.topic == format!("{t}/+"),
            "SUB" => p.topic == format!("{t}/+/command"),
            _ => false,
        });
        if standard {
            report.standard_permissions += 1;
        } else {
            report.warnings.push((
                row,
                format!("custom {} permission on {:?} not imported: neosens grants PUB <room>/+ and SUB <room>/+/command", p.permission_type, p.topic),
            ));
        }
    }
}

/// Topics of rooms created by this plan so far (state topics cover the existing ones).
fn room_topics_of(state: &State, writes: &[Write]) -> HashMap<RoomId, String> {
    let mut topics = state.room_topics.clone();
    for w in writes {
        if let Write::Put(Record::Room(Room { id, topic: RoomTopic::Imported(t), .. })) = w {
            topics.insert(*id, t.clone());
        }
    }
    topics
}

/// The device's modules (its configuration), kept as they are; what the firmware would choke
/// on is reported.
fn device_config(
    d: &LegacyDevice,
    rooms: &[RoomId],
    room_topics: &HashMap<RoomId, String>,
    warn: &mut dyn FnMut(String),
) -> Value {
    let config: Value = match serde_json::from_str(&d.modules) {
        Ok(v) => v,
        Err(e) => {
            warn(format!("modules are not JSON ({e}); imported as []"));
            Value::Array(Vec::new())
        }
    };
    if let Err(e) = validate_zones(&config) {
        warn(format!("modules do not have the legacy shape, kept as they are: {e}"));
    } else {
        let topics: Vec<String> = rooms.iter().filter_map(|r| room_topics.get(r).cloned()).collect();
        let answer = neosens_protocol::legacy::ConfigResponse { topics, zones: config.clone() };
        if let Err(e) = answer.to_legacy_body() {
            warn(format!("its /device/config answer breaks the firmware limit: {e}"));
        }
    }
    config
}

/// The device's own broker, when 2016 gave it one.
fn device_mqtt(d: &LegacyDevice, warn: &mut dyn FnMut(String)) -> Option<MqttEndpoint> {
    match (&d.mqtt_server, d.mqtt_port) {
        (Some(server), Some(port)) if !d.mqtt_defaults && !server.is_empty() => match u16::try_from(port) {
            Ok(port) if port > 0 => Some(MqttEndpoint { server: server.clone(), port }),
            _ => {
                warn(format!("mqtt_port {port} is not a port; default broker used"));
                None
            }
        },
        _ => None,
    }
}

/// The device's secret and whether it was delivered: kept when the export's password matches
/// what is stored, a new one (to be delivered) when the export has none.
fn device_secret(
    keys: &ServerKeys,
    existing: Option<&Device>,
    d: &LegacyDevice,
    id: DeviceId,
    warn: &mut dyn FnMut(String),
) -> Result<(DeviceSecret, bool), RegistryError> {
    Ok(match existing {
        Some(e) if !d.password.is_empty() && keys.verify(d.password.as_bytes(), &e.secret.hash) => {
            (e.secret.clone(), d.credentials_delivered)
        }
        _ if d.password.is_empty() => {
            warn("empty password: a new secret was generated, to be delivered".into());
            let s = keys.new_device_secret()?;
            let secret = DeviceSecret {
                hash: keys.hash(s.as_bytes()),
                sealed: keys.seal(s.as_bytes(), &id.to_bytes())?,
            };
            (secret, false)
        }
        _ => {
            let password = d.password.as_bytes();
            let secret =
                DeviceSecret { hash: keys.hash(password), sealed: keys.seal(password, &id.to_bytes())? };
            (secret, d.credentials_delivered)
        }
    })
}

/// What a 2016 device row refers to — its MAC, type and rooms — checked, with its login free
/// for it; `Err` says why the row is rejected.
fn device_refs(
    state: &State,
    d: &LegacyDevice,
    type_ids: &HashMap<i64, DeviceTypeId>,
    room_ids: &HashMap<i64, RoomId>,
    logins: &HashMap<String, DeviceUid>,
) -> Result<(DeviceUid, DeviceTypeId, Vec<RoomId>), String> {
    let Ok(mac) = d.mac.parse::<Mac>() else {
        return Err("invalid MAC".into());
    };
    let uid = DeviceUid::Ethernet(mac);
    let Some(&device_type) = d.device_type.and_then(|t| type_ids.get(&t)) else {
        return Err(format!("its type pk={:?} is not in the export", d.device_type));
    };
    let mut rooms = Vec::new();
    for l in &d.locations {
        match room_ids.get(l) {
            Some(r) => rooms.push(*r),
            None => {
                return Err(format!("its location pk={l} was not imported"));
            }
        }
    }
    if d.login.is_empty()
        || d.login.bytes().any(|b| matches!(b, b'+' | b'#' | b'/' | b':') || !b.is_ascii_graphic())
    {
        return Err(format!(
            "login {:?} cannot be an MQTT username here (empty, or '+', '#', '/', ':', spaces)",
            d.login
        ));
    }
    let login_owner = state.by_login.get(&d.login).and_then(|id| state.devices.get(id)).map(|e| e.record.uid);
    if login_owner.is_some_and(|owner| owner != uid) || logins.get(&d.login).is_some_and(|u| *u != uid) {
        return Err(format!("login {:?} belongs to another device", d.login));
    }
    Ok((uid, device_type, rooms))
}

#[allow(clippy::too_many_arguments)]
fn plan_device(
    state: &State,
    keys: &ServerKeys,
    d: &LegacyDevice,
    type_ids: &HashMap<i64, DeviceTypeId>,
    room_ids: &HashMap<i64, RoomId>,
    room_topics: &HashMap<RoomId, String>,
    logins: &mut HashMap<String, DeviceUid>,
    report: &mut ImportReport,
    row: &str,
) -> Result<Option<(Device, Option<DeviceStatusRecord>, bool)>, RegistryError> {
    let (uid, device_type, rooms) = match device_refs(state, d, type_ids, room_ids, logins) {
        Ok(refs) => refs,
        Err(reason) => {
            report.rejected.push((row.to_owned(), reason));
            return Ok(None);
        }
    };
    let existing = state.by_uid.get(&uid).and_then(|id| state.devices.get(id)).map(|e| &e.record);
    logins.insert(d.login.clone(), uid);

    let mut warn = |reason: String| report.warnings.push((row.to_owned(), reason));
    if d.login.len() > super::MAX_LOGIN_LEN {
        warn(format!("login longer than {} bytes: the firmware cuts it", super::MAX_LOGIN_LEN));
    }
    if rooms.is_empty() {
        warn("no location: its /device/config answer has no topic".into());
    }
    let config = device_config(d, &rooms, room_topics, &mut warn);
    let mqtt = device_mqtt(d, &mut warn);
    let id = existing.map_or_else(|| DeviceId::from_uuid(new_uuid()), |e| e.id);
    let (secret, delivered) = device_secret(keys, existing, d, id, &mut warn)?;
    let now = Timestamp::now();
    let record = Device {
        id,
        uid,
        device_type,
        description: d.description.clone(),
        rooms,
        enabled: d.enabled,
        config: config.to_string(),
        mqtt,
        login: d.login.clone(),
        secret,
        credentials_delivered: delivered,
        outdated_after_s: existing.and_then(|e| e.outdated_after_s),
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: existing.map_or(now, |e| e.updated_at),
        lorawan: existing.and_then(|e| e.lorawan.clone()),
        otaa: existing.and_then(|e| e.otaa.clone()),
    };
    let changed = upsert(&mut report.devices, existing, &record);
    let record = if changed { Device { updated_at: now, ..record } } else { record };
    let status = DeviceStatusRecord {
        last_seen: d.last_update.as_deref().and_then(Timestamp::parse_rfc3339),
        last_status: d.last_status.clone().filter(|s| !s.is_empty()),
        last_payload: None,
    };
    let status = (status.last_seen.is_some()
        && state.statuses.get(&id).is_none_or(|s| s.last_seen < status.last_seen))
    .then_some(status);
    Ok(Some((record, status, changed)))
}

impl Registry {
    /// Imports (or with `dry_run`, plans) a 2016 export. Rows that cannot be imported are
    /// reported; the rest lands in one transaction. `progress` hears (devices planned, devices
    /// in all) every thousand devices.
    pub fn import_legacy(
        &self,
        export: &LegacyExport,
        dry_run: bool,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ImportReport, RegistryError> {
        if dry_run {
            let plan = plan(&self.state.read(), &self.keys, &|l| self.login_reserved(l), export, progress)?;
            return Ok(ImportReport { dry_run: true, ..plan.report });
        }
        let (statuses, report) = self.mutate(|state| {
            let plan = plan(state, &self.keys, &|l| self.login_reserved(l), export, progress)?;
            Ok((plan.writes, (plan.statuses, plan.report)))
        })?;
        self.put_statuses(statuses)?;
        Ok(report)
    }

    /// Persists, then records, the last statuses of some devices.
    pub fn put_statuses(&self, statuses: Vec<(DeviceId, DeviceStatusRecord)>) -> Result<(), RegistryError> {
        if statuses.is_empty() {
            return Ok(());
        }
        let keyed: Vec<([u8; 16], DeviceStatusRecord)> =
            statuses.iter().map(|(id, s)| (id.to_bytes(), s.clone())).collect();
        let history = self.history_entries(&statuses);
        self.store.put_statuses(&keyed, &history)?;
        let mut state = self.state.write();
        for (id, status) in statuses {
            // A device deleted while its status waited in a batch stays deleted.
            if state.devices.contains_key(&id) {
                state.statuses.insert(id, status);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
