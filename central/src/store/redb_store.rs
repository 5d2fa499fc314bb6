//! The embedded store: one redb file, one table per kind of record, postcard-encoded values.

use std::path::{Path, PathBuf};
use std::time::Instant;

use neosens_protocol::hex;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AlertStore, ChangeEntry, CommitSnapshot, CommitTimes, DeviceHistory, DeviceLogEntry, RegistryStore,
    SCHEMA_VERSION, SettingsStore, Snapshot, StoreError, StoreStats, Write,
};
use crate::model::{AlertRecord, EntityKind, Record};

type Key = [u8; 16];

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SITES: TableDefinition<Key, &[u8]> = TableDefinition::new("sites");
const BUILDINGS: TableDefinition<Key, &[u8]> = TableDefinition::new("buildings");
const ROOMS: TableDefinition<Key, &[u8]> = TableDefinition::new("rooms");
const DEVICE_TYPES: TableDefinition<Key, &[u8]> = TableDefinition::new("device_types");
const DEVICES: TableDefinition<Key, &[u8]> = TableDefinition::new("devices");
const GATEWAYS: TableDefinition<Key, &[u8]> = TableDefinition::new("gateways");
const USERS: TableDefinition<Key, &[u8]> = TableDefinition::new("users");
const TOKENS: TableDefinition<Key, &[u8]> = TableDefinition::new("tokens");
const STATUSES: TableDefinition<Key, &[u8]> = TableDefinition::new("device_statuses");
const CHANGELOG: TableDefinition<u64, &[u8]> = TableDefinition::new("changelog");
/// Device log lines, keyed by (device, sequence) so one device's lines are contiguous.
const DEVICE_LOGS: TableDefinition<(Key, u64), &[u8]> = TableDefinition::new("device_logs");
/// Orders sent to devices, keyed by (device, sequence) (schema 2).
const ORDERS: TableDefinition<(Key, u64), &[u8]> = TableDefinition::new("orders");
/// Alerts, open and resolved, by id (schema 3).
const ALERTS: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts");
/// Dashboard settings of each user (JSON text), by user id (schema 4).
pub(super) const USER_SETTINGS: TableDefinition<Key, &str> = TableDefinition::new("user_settings");
/// Firmware images by SHA-256 (schema 6).
pub(super) const FIRMWARE_IMAGES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("firmware_images");
/// Firmware campaigns by number (schema 6).
pub(super) const CAMPAIGNS: TableDefinition<u64, &[u8]> = TableDefinition::new("campaigns");
/// The fleet's firmware revisions, sampled hourly, by time in ms (schema 6).
pub(super) const FIRMWARE_CENSUS: TableDefinition<i64, &[u8]> = TableDefinition::new("firmware_census");
/// Each device's progress in a campaign, by (campaign, device) (schema 6).
pub(super) const CAMPAIGN_PROGRESS: TableDefinition<(u64, Key), &[u8]> =
    TableDefinition::new("campaign_progress");

/// redb page cache.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

const META_SCHEMA: &str = "schema_version";
const META_REVISION: &str = "revision";
const META_LOG_SEQ: &str = "device_log_seq";
const META_ORDER_SEQ: &str = "order_seq";

fn table(kind: EntityKind) -> TableDefinition<'static, Key, &'static [u8]> {
    match kind {
        EntityKind::Site => SITES,
        EntityKind::Building => BUILDINGS,
        EntityKind::Room => ROOMS,
        EntityKind::DeviceType => DEVICE_TYPES,
        EntityKind::Device => DEVICES,
        EntityKind::Gateway => GATEWAYS,
        EntityKind::User => USERS,
        EntityKind::Token => TOKENS,
    }
}

/// Starts a write transaction; async code must come through the blocking pool (the commit
/// `fsync`s).
#[track_caller]
pub(super) fn begin_write(db: &Database) -> Result<redb::WriteTransaction, redb::TransactionError> {
    neosens_runtime::blocking::assert_off_async_worker("a central store write");
    db.begin_write()
}

/// Starts a read transaction; reads may miss the page cache, so they follow the same rule.
#[track_caller]
pub(super) fn begin_read(db: &Database) -> Result<redb::ReadTransaction, redb::TransactionError> {
    neosens_runtime::blocking::assert_off_async_worker("a central store read");
    db.begin_read()
}

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The one encoding of stored values (postcard); its output is pinned in `disk_format_tests.rs`.
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(value).map_err(backend)
}

/// The redb-backed [`Store`].
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    /// Commit durations of write transactions (for `/metrics`).
    writes: CommitTimes,
    /// How much of the audit trail is kept (set from the configuration).
    pub(super) audit_retention: parking_lot::RwLock<crate::audit::AuditRetention>,
}

impl RedbStore {
    /// Opens (or creates) `<data_dir>/central.redb`, migrating it to [`SCHEMA_VERSION`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("central.redb");
        // The registry keeps every record in memory and reads the file only at start: a small
        // page cache is enough (redb's default would grow to a gigabyte).
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let store = RedbStore {
            db,
            path,
            writes: CommitTimes::default(),
            audit_retention: parking_lot::RwLock::new(crate::audit::AuditRetention::default()),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Brings the schema to [`SCHEMA_VERSION`], one step per transaction.
    fn migrate(&self) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { found, supported: SCHEMA_VERSION });
        }
        for version in found + 1..=SCHEMA_VERSION {
            let txn = begin_write(&self.db).map_err(backend)?;
            migration_step(&txn, version)?;
            txn.open_table(META)
                .map_err(backend)?
                .insert(META_SCHEMA, u64::from(version))
                .map_err(backend)?;
            txn.commit().map_err(backend)?;
            tracing::info!(version, "storage schema migrated");
        }
        Ok(())
    }

    /// The database, for the store's other modules.
    pub(super) fn database(&self) -> &Database {
        &self.db
    }

    /// The schema version in the file (0 for a new file).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let txn = begin_read(&self.db).map_err(backend)?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(backend(e)),
        };
        let v = meta.get(META_SCHEMA).map_err(backend)?.map(|v| v.value()).unwrap_or(0);
        u32::try_from(v).map_err(|_| StoreError::TooNew { found: u32::MAX, supported: SCHEMA_VERSION })
    }

    /// Commits a write transaction, timing it.
    pub(super) fn commit(&self, txn: redb::WriteTransaction, started: Instant) -> Result<(), StoreError> {
        txn.commit().map_err(backend)?;
        self.writes.observe(started.elapsed());
        Ok(())
    }
}

/// Re-encodes every record of a table from its previous schema (a migration step).
/// One step of [`RedbStore::migrate`]: what schema `version` adds to the one before it.
fn migration_step(txn: &redb::WriteTransaction, version: u32) -> Result<(), StoreError> {
    match version {
        // Version 1: every table exists (opening creates them), revision 0.
        1 => {
            for t in [SITES, BUILDINGS, ROOMS, DEVICE_TYPES, DEVICES, GATEWAYS, USERS, TOKENS, STATUSES] {
                txn.open_table(t).map_err(backend)?;
            }
            txn.open_table(CHANGELOG).map_err(backend)?;
            txn.open_table(DEVICE_LOGS).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert(META_REVISION, 0).map_err(backend)?;
            meta.insert(META_LOG_SEQ, 0).map_err(backend)?;
        }
        // Version 2: per-type order lists (device types re-encoded), an order history.
        2 => {
            txn.open_table(ORDERS).map_err(backend)?;
            txn.open_table(META).map_err(backend)?.insert(META_ORDER_SEQ, 0).map_err(backend)?;
            reencode::<crate::model::DeviceTypeV1, crate::model::DeviceTypeV2>(
                txn,
                DEVICE_TYPES,
                EntityKind::DeviceType,
            )?;
        }
        // Version 3: failure-state rules per device type, gateway credentials, LoRaWAN sessions
        // (re-encoded),
        // stored alerts.
        3 => {
            txn.open_table(ALERTS).map_err(backend)?;
            reencode::<crate::model::DeviceTypeV2, crate::model::DeviceTypeV3>(
                txn,
                DEVICE_TYPES,
                EntityKind::DeviceType,
            )?;
            reencode::<crate::model::GatewayV2, crate::model::GatewayV8>(txn, GATEWAYS, EntityKind::Gateway)?;
            reencode::<crate::model::DeviceV2, crate::model::DeviceV3>(txn, DEVICES, EntityKind::Device)?;
        }
        // Version 4: dashboard settings per user.
        4 => {
            txn.open_table(USER_SETTINGS).map_err(backend)?;
        }
        // Version 5: OTAA credentials on devices, payload layouts on device types
        // (re-encoded).
        5 => {
            reencode::<crate::model::DeviceTypeV3, crate::model::DeviceType>(
                txn,
                DEVICE_TYPES,
                EntityKind::DeviceType,
            )?;
            reencode::<crate::model::DeviceV3, crate::model::Device>(txn, DEVICES, EntityKind::Device)?;
        }
        // Version 6: firmware images and campaigns.
        6 => {
            txn.open_table(FIRMWARE_IMAGES).map_err(backend)?;
            txn.open_table(CAMPAIGNS).map_err(backend)?;
            txn.open_table(CAMPAIGN_PROGRESS).map_err(backend)?;
            txn.open_table(FIRMWARE_CENSUS).map_err(backend)?;
        }
        // Version 7: the audit trail, bulk operations, status histories.
        7 => {
            txn.open_table(super::audit::AUDIT).map_err(backend)?;
            txn.open_table(super::bulk::BULK_OPERATIONS).map_err(backend)?;
            txn.open_table(super::history::STATUS_HISTORY).map_err(backend)?;
            txn.open_table(super::history::STATUS_HISTORY_COUNTS).map_err(backend)?;
        }
        // Version 8: rights per site on users and tokens (re-encoded).
        8 => {
            reencode::<crate::model::UserV7, crate::model::User>(txn, USERS, EntityKind::User)?;
            reencode::<crate::model::ApiTokenV7, crate::model::ApiToken>(txn, TOKENS, EntityKind::Token)?;
        }
        // Version 9: settings per gateway (re-encoded).
        9 => {
            reencode::<crate::model::GatewayV8, crate::model::GatewayV9>(txn, GATEWAYS, EntityKind::Gateway)?;
        }
        // Version 10: the agents' settings managed in central (re-encoded).
        10 => {
            reencode::<crate::model::GatewayV9, crate::model::Gateway>(txn, GATEWAYS, EntityKind::Gateway)?;
        }
        _ => unreachable!("no migration to version {version}"),
    }
    Ok(())
}

fn reencode<Old: DeserializeOwned, New: Serialize + From<Old>>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<Key, &[u8]>,
    kind: EntityKind,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(def).map_err(backend)?;
    let old: Vec<(Key, Vec<u8>)> = table
        .iter()
        .map_err(backend)?
        .map(|item| item.map(|(k, v)| (k.value(), v.value().to_vec())))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for (key, bytes) in old {
        let previous: Old = postcard::from_bytes(&bytes).map_err(|e| StoreError::Corrupt {
            kind,
            key: hex::encode(&key),
            reason: e.to_string(),
        })?;
        table.insert(key, encode(&New::from(previous))?.as_slice()).map_err(backend)?;
    }
    Ok(())
}

fn read_all<T: DeserializeOwned>(
    txn: &redb::ReadTransaction,
    kind: EntityKind,
    def: TableDefinition<Key, &[u8]>,
) -> Result<Vec<(Key, T)>, StoreError> {
    let t = txn.open_table(def).map_err(backend)?;
    let mut out = Vec::with_capacity(usize::try_from(t.len().map_err(backend)?).unwrap_or(0));
    for item in t.iter().map_err(backend)? {
        let (k, v) = item.map_err(backend)?;
        let value = postcard::from_bytes(v.value()).map_err(|e| StoreError::Corrupt {
            kind,
            key: hex::encode(&k.value()),
            reason: e.to_string(),
        })?;
        out.push((k.value(), value));
    }
    Ok(out)
}

fn values<T>(pairs: Vec<(Key, T)>) -> Vec<T> {
    pairs.into_iter().map(|(_, v)| v).collect()
}

impl RegistryStore for RedbStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let txn = begin_read(&self.db).map_err(backend)?;
        let revision = txn
            .open_table(META)
            .map_err(backend)?
            .get(META_REVISION)
            .map_err(backend)?
            .map_or(0, |v| v.value());
        Ok(Snapshot {
            revision,
            sites: values(read_all(&txn, EntityKind::Site, SITES)?),
            buildings: values(read_all(&txn, EntityKind::Building, BUILDINGS)?),
            rooms: values(read_all(&txn, EntityKind::Room, ROOMS)?),
            device_types: values(read_all(&txn, EntityKind::DeviceType, DEVICE_TYPES)?),
            devices: values(read_all(&txn, EntityKind::Device, DEVICES)?),
            statuses: read_all(&txn, EntityKind::Device, STATUSES)?,
            gateways: values(read_all(&txn, EntityKind::Gateway, GATEWAYS)?),
            users: values(read_all(&txn, EntityKind::User, USERS)?),
            tokens: values(read_all(&txn, EntityKind::Token, TOKENS)?),
        })
    }

    fn apply(&self, writes: &[Write], audit: &[crate::model::AuditEntry]) -> Result<u64, StoreError> {
        let started = Instant::now();
        let txn = begin_write(&self.db).map_err(backend)?;
        let revision = {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let mut revision = meta.get(META_REVISION).map_err(backend)?.map_or(0, |v| v.value());
            let mut log = txn.open_table(CHANGELOG).map_err(backend)?;
            for write in writes {
                revision += 1;
                let entry = match write {
                    Write::Put(record) => {
                        let bytes = match record {
                            Record::Site(r) => encode(r)?,
                            Record::Building(r) => encode(r)?,
                            Record::Room(r) => encode(r)?,
                            Record::DeviceType(r) => encode(r)?,
                            Record::Device(r) => encode(r.as_ref())?,
                            Record::Gateway(r) => encode(r)?,
                            Record::User(r) => encode(r)?,
                            Record::Token(r) => encode(r)?,
                        };
                        let key = record.key();
                        txn.open_table(table(record.kind()))
                            .map_err(backend)?
                            .insert(key, bytes.as_slice())
                            .map_err(backend)?;
                        ChangeEntry { revision, kind: record.kind(), key, deleted: false }
                    }
                    Write::Delete(kind, key) => {
                        txn.open_table(table(*kind)).map_err(backend)?.remove(*key).map_err(backend)?;
                        if *kind == EntityKind::Device {
                            // What the store keeps of a device beside its record goes with it.
                            txn.open_table(STATUSES).map_err(backend)?.remove(*key).map_err(backend)?;
                            for history in [DEVICE_LOGS, ORDERS] {
                                let mut t = txn.open_table(history).map_err(backend)?;
                                t.retain_in((*key, 0)..=(*key, u64::MAX), |_, _| false).map_err(backend)?;
                            }
                            super::history::forget_in(&txn, *key)?;
                        }
                        ChangeEntry { revision, kind: *kind, key: *key, deleted: true }
                    }
                };
                log.insert(revision, encode(&entry)?.as_slice()).map_err(backend)?;
            }
            meta.insert(META_REVISION, revision).map_err(backend)?;
            revision
        };
        super::audit::append_in(&txn, audit, *self.audit_retention.read())?;
        self.commit(txn, started)?;
        Ok(revision)
    }

    fn put_statuses(
        &self,
        statuses: &[([u8; 16], crate::model::DeviceStatusRecord)],
        history: &[super::StatusHistoryEntry],
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(&self.db).map_err(backend)?;
        {
            let mut t = txn.open_table(STATUSES).map_err(backend)?;
            for (key, status) in statuses {
                t.insert(*key, encode(status)?.as_slice()).map_err(backend)?;
            }
        }
        super::history::append_in(&txn, history)?;
        self.commit(txn, started)
    }

    fn records(&self, keys: &[(EntityKind, Key)]) -> Result<Vec<Record>, StoreError> {
        let txn = begin_read(&self.db).map_err(backend)?;
        let mut out = Vec::with_capacity(keys.len());
        for (kind, key) in keys {
            let t = txn.open_table(table(*kind)).map_err(backend)?;
            let Some(bytes) = t.get(*key).map_err(backend)? else { continue };
            let corrupt = |e: postcard::Error| StoreError::Corrupt {
                kind: *kind,
                key: hex::encode(key),
                reason: e.to_string(),
            };
            let bytes = bytes.value();
            out.push(match kind {
                EntityKind::Site => Record::Site(postcard::from_bytes(bytes).map_err(corrupt)?),
                EntityKind::Building => Record::Building(postcard::from_bytes(bytes).map_err(corrupt)?),
                EntityKind::Room => Record::Room(postcard::from_bytes(bytes).map_err(corrupt)?),
                EntityKind::DeviceType => Record::DeviceType(postcard::from_bytes(bytes).map_err(corrupt)?),
                EntityKind::Device => Record::Device(Box::new(postcard::from_bytes(bytes).map_err(corrupt)?)),
                EntityKind::Gateway => {
                    Record::Gateway(Box::new(postcard::from_bytes(bytes).map_err(corrupt)?))
                }
                EntityKind::User => Record::User(postcard::from_bytes(bytes).map_err(corrupt)?),
                EntityKind::Token => Record::Token(postcard::from_bytes(bytes).map_err(corrupt)?),
            });
        }
        Ok(out)
    }

    fn changes_since(&self, revision: u64, limit: usize) -> Result<Vec<ChangeEntry>, StoreError> {
        let txn = begin_read(&self.db).map_err(backend)?;
        let log = txn.open_table(CHANGELOG).map_err(backend)?;
        let mut out = Vec::new();
        for item in log.range(revision.saturating_add(1)..).map_err(backend)?.take(limit) {
            let (k, v) = item.map_err(backend)?;
            out.push(postcard::from_bytes(v.value()).map_err(|e| StoreError::Corrupt {
                kind: EntityKind::Site,
                key: format!("changelog {}", k.value()),
                reason: e.to_string(),
            })?);
        }
        Ok(out)
    }
}

impl DeviceHistory for RedbStore {
    fn append_device_log(&self, entry: &DeviceLogEntry) -> Result<(), StoreError> {
        self.append_keyed(
            DEVICE_LOGS,
            META_LOG_SEQ,
            entry.device,
            &encode(entry)?,
            super::MAX_LOGS_PER_DEVICE,
        )
    }

    fn device_logs(&self, device: [u8; 16], limit: usize) -> Result<Vec<DeviceLogEntry>, StoreError> {
        self.newest_keyed(DEVICE_LOGS, EntityKind::Device, device, limit)
    }

    fn append_order(&self, device: [u8; 16], order: &crate::model::OrderRecord) -> Result<(), StoreError> {
        self.append_keyed(ORDERS, META_ORDER_SEQ, device, &encode(order)?, super::MAX_ORDERS_PER_DEVICE)
    }

    fn device_orders(
        &self,
        device: [u8; 16],
        limit: usize,
    ) -> Result<Vec<crate::model::OrderRecord>, StoreError> {
        self.newest_keyed(ORDERS, EntityKind::Device, device, limit)
    }
}

impl AlertStore for RedbStore {
    fn put_alerts(&self, alerts: &[AlertRecord], forget: &[u64]) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(&self.db).map_err(backend)?;
        {
            let mut t = txn.open_table(ALERTS).map_err(backend)?;
            for alert in alerts {
                t.insert(alert.id, encode(alert)?.as_slice()).map_err(backend)?;
            }
            for id in forget {
                t.remove(*id).map_err(backend)?;
            }
        }
        self.commit(txn, started)
    }

    fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        let txn = begin_read(&self.db).map_err(backend)?;
        let t = txn.open_table(ALERTS).map_err(backend)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            out.push(postcard::from_bytes(v.value()).map_err(|e| StoreError::Corrupt {
                kind: EntityKind::Device,
                key: format!("alert {}", k.value()),
                reason: e.to_string(),
            })?);
        }
        Ok(out)
    }
}

impl SettingsStore for RedbStore {
    fn user_settings(&self, user: [u8; 16]) -> Result<Option<String>, StoreError> {
        self.read_user_settings(user)
    }

    fn put_user_settings(&self, user: [u8; 16], settings: Option<&str>) -> Result<(), StoreError> {
        self.write_user_settings(user, settings)
    }
}

/// Sessions and throttles stay in the process's memory (`http::Sessions`): nobody shares
/// this store.
impl super::SessionStore for RedbStore {}

impl StoreStats for RedbStore {
    fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    fn commit_times(&self) -> Option<CommitSnapshot> {
        Some(self.writes.snapshot())
    }
}

impl RedbStore {
    fn append_keyed(
        &self,
        table: TableDefinition<(Key, u64), &[u8]>,
        seq_key: &str,
        device: Key,
        bytes: &[u8],
        keep: usize,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(&self.db).map_err(backend)?;
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let seq = meta.get(seq_key).map_err(backend)?.map_or(0, |v| v.value()) + 1;
            meta.insert(seq_key, seq).map_err(backend)?;
            let mut t = txn.open_table(table).map_err(backend)?;
            t.insert((device, seq), bytes).map_err(backend)?;
            // Pruned in the same transaction: never more than `keep` entries for one device.
            let held = t.range((device, 0)..=(device, u64::MAX)).map_err(backend)?.count();
            if held > keep {
                let oldest: Vec<u64> = t
                    .range((device, 0)..=(device, u64::MAX))
                    .map_err(backend)?
                    .take(held - keep)
                    .map(|item| item.map(|(k, _)| k.value().1))
                    .collect::<Result<_, _>>()
                    .map_err(backend)?;
                for s in oldest {
                    t.remove((device, s)).map_err(backend)?;
                }
            }
        }
        self.commit(txn, started)
    }

    fn newest_keyed<T: DeserializeOwned>(
        &self,
        table: TableDefinition<(Key, u64), &[u8]>,
        kind: EntityKind,
        device: Key,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let txn = begin_read(&self.db).map_err(backend)?;
        let t = txn.open_table(table).map_err(backend)?;
        let mut out = Vec::new();
        for item in t.range((device, 0)..=(device, u64::MAX)).map_err(backend)?.rev().take(limit) {
            let (_, v) = item.map_err(backend)?;
            out.push(postcard::from_bytes(v.value()).map_err(|e| StoreError::Corrupt {
                kind,
                key: hex::encode(&device),
                reason: e.to_string(),
            })?);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "redb_store_tests.rs"]
mod tests;
