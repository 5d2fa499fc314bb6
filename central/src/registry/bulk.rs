//! Devices in bulk: an import of many rows (create or update by uid) planned against the
//! registry row by row — each bad row reported with its field, the others landing in one
//! transaction — and the export of any listing filter in the same shape, so an export edited in
//! a spreadsheet imports back.

use std::collections::{HashMap, HashSet};

use neosens_protocol::DeviceUid;
use neosens_protocol::ids::{DeviceId, RoomId};
use serde_json::Value;

use super::device_types::resolve_type;
use super::devices::{
    DeviceQuery, check_config, check_login, check_rooms, default_login, matching, new_secret,
};
use super::state::State;
use super::{Registry, RegistryError};
use crate::model::{Device, Record, Timestamp, new_uuid};
use crate::store::Write;

/// Rows in one import at most.
pub const MAX_IMPORT_ROWS: usize = 100_000;

/// Row outcomes listed in a report at most (errors are always all listed, up to the rows).
pub(super) const MAX_LISTED_CHANGES: usize = 1_000;

/// One device as imported or exported. `None` leaves the field as it is (a new device gets the
/// default); `type` and `rooms` are required for a new device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceRow {
    /// MAC, DevEUI or UUID.
    pub uid: String,
    /// Device type, by name or id.
    pub device_type: Option<String>,
    /// Rooms by base topic (`u4/302`) or id, main room first.
    pub rooms: Option<Vec<String>>,
    /// Free text.
    pub description: Option<String>,
    /// Enabled.
    pub enabled: Option<bool>,
    /// Configuration zones.
    pub config: Option<Value>,
    /// Outdated threshold overriding the type's (`Some(None)`: back to the type's).
    pub outdated_after_s: Option<Option<u32>>,
}

/// What became (or would become) of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// A new device.
    Create,
    /// These fields change.
    Update(Vec<&'static str>),
    /// Nothing to change.
    Unchanged,
    /// Refused: the field and why.
    Error {
        /// The field (`uid`, `rooms`, `config` …).
        field: String,
        /// What is wrong, and how to fix it.
        message: String,
    },
}

/// One row's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowReport {
    /// Row number in the file (1 = the first data row).
    pub row: usize,
    /// Its uid, as written.
    pub uid: String,
    /// What happened.
    pub outcome: RowOutcome,
}

/// What an import did, or would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// Rows read.
    pub rows: usize,
    /// Devices created (or that would be).
    pub created: usize,
    /// Devices changed.
    pub updated: usize,
    /// Rows that change nothing.
    pub unchanged: usize,
    /// Rows refused.
    pub failed: usize,
    /// Every refused row, then the first [`MAX_LISTED_CHANGES`] creations and updates.
    pub details: Vec<RowReport>,
}

fn row_error(row: usize, uid: &str, e: RegistryError) -> RowReport {
    let (field, message) = match e {
        RegistryError::Invalid { field, message } => (field, message),
        RegistryError::Config { errors } => ("config".into(), errors.join("; ")),
        RegistryError::Conflict { message } => ("uid".into(), message),
        RegistryError::Forbidden { message } => ("rooms".into(), message),
        other => ("row".into(), other.to_string()),
    };
    RowReport { row, uid: uid.to_owned(), outcome: RowOutcome::Error { field, message } }
}

/// Rows in one transaction of an import: large enough that a 100,000-row file takes 20
/// commits, small enough that the batch (records, audit entries, the store's dirty pages) stays
/// a few tens of megabytes.
pub(super) const IMPORT_CHUNK: usize = 5_000;

/// An import so far: counts, refused rows, the changes listed, and the uids already read (a uid
/// twice in a file is refused, across chunks too).
#[derive(Default)]
struct Progress {
    report: BulkReport,
    errors: Vec<RowReport>,
    listed: Vec<RowReport>,
    seen: HashSet<DeviceUid>,
    /// Logins of the devices this import creates: two uids can share a default login (UUIDs
    /// are cut to 24 hex digits), and the registry's index does not hold them yet.
    logins: HashSet<String>,
}

/// Rooms by base topic (lower case) and by id.
fn room_index(state: &State) -> HashMap<String, RoomId> {
    let mut index: HashMap<String, RoomId> =
        state.room_topics.iter().map(|(id, topic)| (topic.to_lowercase(), *id)).collect();
    index.extend(state.rooms.keys().map(|id| (id.to_string(), *id)));
    index
}

fn resolve_rooms(index: &HashMap<String, RoomId>, rooms: &[String]) -> Result<Vec<RoomId>, RegistryError> {
    rooms
        .iter()
        .enumerate()
        .map(|(i, r)| {
            index.get(&r.trim().to_lowercase()).copied().ok_or_else(|| {
                RegistryError::invalid(&format!("rooms[{i}]"), format!("no room with topic or id {r:?}"))
            })
        })
        .collect()
}

impl Registry {
    /// A new device for `row`, with its default login and a new secret; its type, rooms and the
    /// rest are set from the row by [`Registry::planned`].
    fn new_device(&self, state: &State, uid: DeviceUid, row: &DeviceRow) -> Result<Device, RegistryError> {
        let login = default_login(&uid);
        check_login(&login)?;
        if self.login_reserved(&login) || state.by_login.contains_key(&login) {
            return Err(RegistryError::invalid("uid", format!("its login {login:?} is taken or reserved")));
        }
        if row.device_type.is_none() || row.rooms.is_none() {
            return Err(RegistryError::invalid("type", "a new device needs a type and rooms"));
        }
        let id = DeviceId::from_uuid(new_uuid());
        let now = Timestamp::now();
        Ok(Device {
            id,
            uid,
            device_type: neosens_protocol::ids::DeviceTypeId::from_uuid(uuid::Uuid::nil()),
            description: String::new(),
            rooms: Vec::new(),
            enabled: true,
            config: "[]".into(),
            mqtt: None,
            login,
            secret: new_secret(&self.keys, id)?,
            credentials_delivered: false,
            outdated_after_s: None,
            created_at: now,
            updated_at: now,
            lorawan: None,
            otaa: None,
        })
    }

    /// A device record for `row`, new (with a new secret) or changed from `existing`; and the
    /// fields that change.
    fn planned(
        &self,
        state: &State,
        rooms: &HashMap<String, RoomId>,
        uid: DeviceUid,
        row: &DeviceRow,
        existing: Option<&Device>,
        scope: &crate::model::Scope,
    ) -> Result<(Device, Vec<&'static str>), RegistryError> {
        let mut d = match existing {
            Some(d) => d.clone(),
            None => self.new_device(state, uid, row)?,
        };
        let mut changed = Vec::new();
        if let Some(t) = &row.device_type {
            let t = resolve_type(state, t)
                .ok_or_else(|| RegistryError::invalid("type", format!("no device type {t:?}")))?;
            if t.id != d.device_type {
                d.device_type = t.id;
                changed.push("type");
            }
        }
        if let Some(r) = &row.rooms {
            let r = resolve_rooms(rooms, r)?;
            check_rooms(state, &r)?;
            if r != d.rooms {
                d.rooms = r;
                changed.push("rooms");
            }
        }
        if let Some(desc) = row.description.as_ref().filter(|v| **v != d.description) {
            d.description.clone_from(desc);
            changed.push("description");
        }
        if let Some(en) = row.enabled.filter(|v| *v != d.enabled) {
            d.enabled = en;
            changed.push("enabled");
        }
        if let Some(o) = row.outdated_after_s.filter(|v| *v != d.outdated_after_s) {
            d.outdated_after_s = o;
            changed.push("outdated_after_s");
        }
        let current: Value = serde_json::from_str(&d.config).unwrap_or(Value::Null);
        let config = match &row.config {
            Some(c) if *c != current => {
                d.config = c.to_string();
                changed.push("config");
                c.clone()
            }
            _ => current,
        };
        if existing.is_none() || changed.iter().any(|f| matches!(*f, "type" | "rooms" | "config")) {
            check_config(state, d.device_type, &state.device_topics(&d), &config)?;
        }
        // Checked per row (the commit checks the batch again): a row outside the importer's
        // sites is one refused row, not a refused file.
        super::site_rights::check_device(state, scope, existing, Some(&d)).map_err(|e| match e {
            RegistryError::NotFound { .. } => {
                RegistryError::invalid("uid", format!("{uid} is registered on a site outside your rights"))
            }
            other => other,
        })?;
        Ok((d, changed))
    }

    /// Plans `rows` (the file's rows from number `first`) against `state`: the writes of the
    /// good ones; outcomes go to `progress`.
    fn plan_chunk(
        &self,
        state: &State,
        rows: &[DeviceRow],
        first: usize,
        progress: &mut Progress,
    ) -> Vec<Write> {
        let rooms = room_index(state);
        let scope = super::site_rights::current_scope();
        let mut writes = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let n = first + i;
            let Some(uid) = DeviceUid::guess(row.uid.trim()) else {
                let e = RegistryError::invalid("uid", "not a MAC, a DevEUI of 16 hex digits, or a UUID");
                progress.errors.push(row_error(n, &row.uid, e));
                continue;
            };
            if !progress.seen.insert(uid) {
                let e = RegistryError::invalid("uid", format!("{uid} is on an earlier row too"));
                progress.errors.push(row_error(n, &row.uid, e));
                continue;
            }
            let existing = state.by_uid.get(&uid).and_then(|id| state.devices.get(id)).map(|e| &e.record);
            let outcome = match self.planned(state, &rooms, uid, row, existing, &scope) {
                Err(e) => {
                    progress.errors.push(row_error(n, &row.uid, e));
                    continue;
                }
                Ok((_, changed)) if existing.is_some() && changed.is_empty() => {
                    progress.report.unchanged += 1;
                    continue;
                }
                Ok((d, _)) if existing.is_none() && !progress.logins.insert(d.login.clone()) => {
                    let e =
                        RegistryError::invalid("uid", format!("its login {:?} is an earlier row's", d.login));
                    progress.errors.push(row_error(n, &row.uid, e));
                    continue;
                }
                Ok((mut d, changed)) => {
                    d.updated_at = Timestamp::now();
                    writes.push(Write::Put(Record::Device(Box::new(d))));
                    if existing.is_some() {
                        progress.report.updated += 1;
                        RowOutcome::Update(changed)
                    } else {
                        progress.report.created += 1;
                        RowOutcome::Create
                    }
                }
            };
            if progress.listed.len() < MAX_LISTED_CHANGES {
                progress.listed.push(RowReport { row: n, uid: row.uid.clone(), outcome });
            }
        }
        writes
    }

    /// Imports `rows` (or with `dry_run`, says what it would do). The good rows land in
    /// transactions of [`IMPORT_CHUNK`] rows — each created or changed device recorded in the
    /// audit trail as `device.import` — so a large file holds a bounded batch in memory at a
    /// time; bad rows are reported. Running the same file again finishes an interrupted import:
    /// rows already in are unchanged.
    pub fn import_devices(&self, rows: &[DeviceRow], dry_run: bool) -> Result<BulkReport, RegistryError> {
        if rows.len() > MAX_IMPORT_ROWS {
            return Err(RegistryError::invalid(
                "rows",
                format!("{} rows, more than {MAX_IMPORT_ROWS}: split the file", rows.len()),
            ));
        }
        let mut progress = Progress::default();
        for (c, chunk) in rows.chunks(IMPORT_CHUNK).enumerate() {
            let first = c * IMPORT_CHUNK + 1;
            if dry_run {
                self.plan_chunk(&self.state.read(), chunk, first, &mut progress);
            } else {
                self.mutate_as(Some("device.import"), |state| {
                    Ok((self.plan_chunk(state, chunk, first, &mut progress), ()))
                })?;
            }
        }
        let Progress { mut report, errors, listed, .. } = progress;
        report.dry_run = dry_run;
        report.rows = rows.len();
        report.failed = errors.len();
        report.details = errors;
        report.details.extend(listed);
        Ok(report)
    }

    /// Every device matching `filter` (its paging ignored), as rows: rooms by base topic.
    pub fn export_devices(&self, filter: &DeviceQuery) -> Result<Vec<DeviceRow>, RegistryError> {
        let state = self.state.read();
        let mut rows: Vec<DeviceRow> = matching(&state, filter, Timestamp::now())?
            .into_iter()
            .map(|e| {
                let d = &e.record;
                DeviceRow {
                    uid: d.uid.to_string(),
                    device_type: state.types.get(&d.device_type).map(|t| t.record.name.clone()),
                    rooms: Some(
                        d.rooms
                            .iter()
                            .map(|r| state.room_topics.get(r).cloned().unwrap_or_else(|| r.to_string()))
                            .collect(),
                    ),
                    description: Some(d.description.clone()),
                    enabled: Some(d.enabled),
                    config: serde_json::from_str(&d.config).ok(),
                    outdated_after_s: Some(d.outdated_after_s),
                }
            })
            .collect();
        rows.sort_by(|a, b| a.uid.cmp(&b.uid));
        Ok(rows)
    }
}

#[cfg(test)]
#[path = "bulk_tests.rs"]
mod tests;
