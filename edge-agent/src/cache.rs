//! The gateway's copy of its share of the registry, and what must survive a crash with it.
//!
//! Two redb files. `<data_dir>/registry.redb` holds the registry copy (devices and their
//! indexes, rooms, locations, the revision): only the sync writes it, one transaction per batch,
//! and a snapshot of any size in **one** transaction kept open across its pages — so it costs
//! one commit, lookups answer from the previous complete state until it commits, and a crash
//! leaves that state or the new one, never a mix. `<data_dir>/edge.redb` holds the outbox,
//! the LoRaWAN frame counters, first-time credentials the agent handed over while central was
//! out of reach (until central confirms them) and device log lines waiting to be forwarded:
//! separate so that a snapshot in progress never holds up an uplink's commit.
//!
//! Lookups read the files (redb's page cache keeps the hot part in memory): the agent holds no
//! copy of the registry in its heap, which is how it stays small with 100k devices.

use std::path::Path;
use std::sync::Arc;

use neosens_protocol::Mac;
use neosens_protocol::ids::DeviceId;
use neosens_protocol::sync::{DeviceRecord, DeviceTypeRecord, RoomRecord, WireUid};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

mod apply;
mod layout;
mod layouts;
mod nodes;
mod otaa;
mod site_broker;

pub use apply::{ApplyTiming, Step};
pub use nodes::ScopeNodes;
pub use otaa::{LocalSession, MAX_DEV_NONCES, OtaaNode, write_join};
pub use site_broker::{BrokerUser, SYNC_LEVEL};

type Key = [u8; 16];

/// In both files: the revision in the registry's, the log sequence in the other.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const DEVICES: TableDefinition<Key, &[u8]> = TableDefinition::new("devices");
const BY_MAC: TableDefinition<&str, Key> = TableDefinition::new("devices_by_mac");
const BY_LOGIN: TableDefinition<&str, Key> = TableDefinition::new("devices_by_login");
const ROOMS: TableDefinition<Key, &[u8]> = TableDefinition::new("rooms");
/// Other records of the scope (sites, buildings, device types), kept whole for later uses.
const LOCATIONS: TableDefinition<Key, &[u8]> = TableDefinition::new("locations");
/// Devices this gateway gave their first password to, not yet confirmed by central (→ ms).
const LOCAL_DELIVERIES: TableDefinition<Key, u64> = TableDefinition::new("local_deliveries");
/// LoRaWAN sessions by device address: (DevAddr, device) → () (several nodes may share one).
const BY_DEVADDR: TableDefinition<(u32, Key), ()> = TableDefinition::new("devices_by_devaddr");
/// Last uplink frame counter accepted per LoRaWAN node (replay protection, kept across restarts),
/// with the fingerprint of the session it belongs to ([`SessionCounter`]).
const F_CNT: TableDefinition<Key, (u64, u32)> = TableDefinition::new("lorawan_f_cnt_v2");
/// The first version of that table, without the session: moved into it at open (fingerprint
/// [`SessionCounter::ANY_SESSION`]).
const F_CNT_V1: TableDefinition<Key, u32> = TableDefinition::new("lorawan_f_cnt");
/// Last downlink frame counter used per LoRaWAN node, with its session's fingerprint: written
/// with the batch whose confirmed uplink the downlink answers, before the frame leaves.
const F_CNT_DOWN: TableDefinition<Key, (u64, u32)> = TableDefinition::new("lorawan_f_cnt_down");
/// Device log lines received offline, to relay: (sequence, device) → postcard [`PendingLog`].
const PENDING_LOGS: TableDefinition<(u64, Key), &[u8]> = TableDefinition::new("pending_logs_v2");
/// The first version of that queue kept each device's `Authorization` header (its password) to
/// replay it: deleted at open.
const PENDING_LOGS_V1: TableDefinition<u64, &[u8]> = TableDefinition::new("pending_logs");

/// Device log lines queued at most, all devices together (a line is at most 16 KiB: 16 MiB).
pub const MAX_PENDING_LOGS: usize = 1000;
/// Device log lines queued at most per device: its oldest go first.
pub const MAX_PENDING_LOGS_PER_DEVICE: usize = 50;

const META_REVISION: &str = "revision";
const META_LOG_SEQ: &str = "log_seq";

/// redb page cache of the registry copy: lookups of a busy gateway stay fast with 1 MiB (the
/// kernel caches the file too), and every MiB counts on a Pi (`cargo bench -p neosens-edge
/// --bench footprint`, `--bench sync`).
const REGISTRY_CACHE_BYTES: usize = 1024 * 1024;
/// redb page cache of the outbox's file: its working set is the queue's tail and head.
const CACHE_BYTES: usize = 512 * 1024;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The storage engine failed.
    #[error("local database: {0}")]
    Backend(String),
    /// A snapshot page came without the pages before it (the agent restarted in between): the
    /// snapshot must start again.
    #[error("a snapshot page without its first page (the snapshot starts again)")]
    SnapshotNotStarted,
    /// A stored record does not decode.
    #[error("local database: a {0} record does not decode (resync with a fresh data directory)")]
    Corrupt(&'static str),
}

/// Starts a write transaction. Its commit `fsync`s, so async code must come through the
/// blocking pool (`neosens_runtime::blocking::run`) or the outbox's writer; debug builds check
/// it. Reads stay inline: redb serves them from its page cache without waiting for a writer.
#[track_caller]
pub(crate) fn begin_write(db: &Database) -> Result<redb::WriteTransaction, redb::TransactionError> {
    neosens_runtime::blocking::assert_off_async_worker("a gateway database write");
    db.begin_write()
}

fn backend(e: impl std::fmt::Display) -> CacheError {
    CacheError::Backend(e.to_string())
}

/// A device log line received while central was out of reach, from a device this gateway
/// authenticated: relayed later in the gateway's own name (`POST /api/v1/edge/logs`), so the
/// device's credentials are never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLog {
    /// The device.
    pub device: DeviceId,
    /// When it was received, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The form body.
    pub body: Vec<u8>,
    /// The device's address.
    pub device_addr: String,
}

/// Where a queued log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogKey(u64, Key);

/// A device's registry data, as the gateway holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedDevice {
    /// What central sent.
    pub record: DeviceRecord,
    /// Whether this gateway handed its first password over and central does not know yet.
    pub delivered_here: bool,
}

impl CachedDevice {
    /// Whether the password was delivered (by central, or here).
    pub fn delivered(&self) -> bool {
        self.record.credentials_delivered || self.delivered_here
    }
}

/// The local databases (`edge.redb` shared with the outbox, which keeps its own tables in it).
#[derive(Clone)]
pub struct Cache {
    /// A snapshot arriving in pages: its transaction, open until its last page (first here: it
    /// is dropped, so rolled back, before the databases).
    snapshot: Arc<std::sync::Mutex<Option<redb::WriteTransaction>>>,
    db: Arc<Database>,
    registry: Arc<Database>,
    /// Registry batches committed by this process: readers of the revision
    /// ([`Self::registry_commits`]) read the database only when it moved.
    commits: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache { .. }")
    }
}

/// The MAC a legacy login (`senso_<12 lowercase hex>`) was made from.
fn legacy_login_mac(login: &str) -> Option<Mac> {
    let hex = login.strip_prefix(neosens_protocol::ids::LOGIN_PREFIX)?;
    if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    Mac::parse_lenient(hex).ok()
}

/// Whether a device's login is the legacy one of its MAC: the MAC index finds it then, and it
/// gets no entry of its own in the login index (a third fewer index writes per snapshot).
fn login_derived(record: &DeviceRecord) -> bool {
    matches!(&record.uid, WireUid::Ethernet(mac) if legacy_login_mac(&record.login) == Some(*mac))
}

/// The MAC index's key of a device (its MAC's canonical text, `24:0A:C4:12:34:56`).
fn mac_key(uid: &WireUid) -> Option<String> {
    match uid {
        WireUid::Ethernet(mac) => Some(mac_text(*mac)),
        _ => None,
    }
}

/// `mac.to_string()` without the formatting machinery: a snapshot writes 100k of them.
fn mac_text(mac: Mac) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(17);
    for (i, b) in mac.to_bytes().into_iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

impl Cache {
    /// Opens (or creates) `<data_dir>/registry.redb` and `<data_dir>/edge.redb`; a registry
    /// copy kept in `edge.redb` by an older version moves to its own file.
    pub fn open(data_dir: &Path) -> Result<Self, CacheError> {
        let open = |name: &str, cache: usize| {
            let path = data_dir.join(name);
            Database::builder()
                .set_cache_size(cache)
                .create(&path)
                .map_err(|e| CacheError::Backend(format!("{}: {e}", path.display())))
        };
        let registry = open("registry.redb", REGISTRY_CACHE_BYTES)?;
        Self::with_tables(open("edge.redb", CACHE_BYTES)?, registry)
    }

    /// A cache on another storage backend: the tests' failing and slow disks (a real redb
    /// database over a backend that refuses or delays writes when told to), the registry copy
    /// in memory.
    pub fn open_on(storage: impl redb::StorageBackend) -> Result<Self, CacheError> {
        let db =
            Database::builder().set_cache_size(CACHE_BYTES).create_with_backend(storage).map_err(backend)?;
        let registry = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(backend)?;
        Self::with_tables(db, registry)
    }

    fn with_tables(db: Database, registry: Database) -> Result<Self, CacheError> {
        layout::move_registry(&db, &registry)?;
        let txn = begin_write(&db).map_err(backend)?;
        txn.open_table(META).map_err(backend)?;
        txn.open_table(LOCAL_DELIVERIES).map_err(backend)?;
        txn.open_table(PENDING_LOGS).map_err(backend)?;
        if txn.delete_table(PENDING_LOGS_V1).map_err(backend)? {
            tracing::warn!(
                "dropped the device log lines queued by an older version (they held device credentials)"
            );
        }
        migrate_f_cnts(&txn)?;
        txn.open_table(F_CNT_DOWN).map_err(backend)?;
        otaa::create_local_tables(&txn)?;
        txn.commit().map_err(backend)?;
        Ok(Cache {
            snapshot: Arc::default(),
            db: Arc::new(db),
            registry: Arc::new(registry),
            commits: Arc::default(),
        })
    }

    /// The database, for the outbox.
    pub fn database(&self) -> Arc<Database> {
        Arc::clone(&self.db)
    }

    /// How many registry batches this process committed so far: the revision can only have
    /// changed when this did (a read transaction per uplink batch, saved).
    pub fn registry_commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The registry revision the cache holds (0: nothing yet).
    pub fn revision(&self) -> Result<u64, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        Ok(meta.get(META_REVISION).map_err(backend)?.map_or(0, |v| v.value()))
    }

    fn device_by(
        &self,
        index: TableDefinition<&str, Key>,
        key: &str,
    ) -> Result<Option<CachedDevice>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let Some(id) = txn.open_table(index).map_err(backend)?.get(key).map_err(backend)?.map(|v| v.value())
        else {
            return Ok(None);
        };
        let Some(bytes) = txn.open_table(DEVICES).map_err(backend)?.get(id).map_err(backend)? else {
            return Ok(None);
        };
        let record: DeviceRecord =
            postcard::from_bytes(bytes.value()).map_err(|_| CacheError::Corrupt("device"))?;
        let local = self.db.begin_read().map_err(backend)?;
        let delivered_here =
            local.open_table(LOCAL_DELIVERIES).map_err(backend)?.get(id).map_err(backend)?.is_some();
        Ok(Some(CachedDevice { record, delivered_here }))
    }

    /// The device with this MAC.
    pub fn device_by_mac(&self, mac: Mac) -> Result<Option<CachedDevice>, CacheError> {
        self.device_by(BY_MAC, &mac_text(mac))
    }

    /// The device with this MQTT login: from the login index, or for a legacy login, the
    /// device with its MAC if that login is its own.
    pub fn device_by_login(&self, login: &str) -> Result<Option<CachedDevice>, CacheError> {
        if let Some(device) = self.device_by(BY_LOGIN, login)? {
            return Ok(Some(device));
        }
        let Some(mac) = legacy_login_mac(login) else { return Ok(None) };
        Ok(self.device_by(BY_MAC, &mac_text(mac))?.filter(|d| d.record.login == login))
    }

    /// The LoRaWAN nodes with this device address, with their last accepted frame counter.
    pub fn nodes_by_dev_addr(
        &self,
        dev_addr: u32,
    ) -> Result<Vec<(DeviceRecord, Option<SessionCounter>)>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let index = txn.open_table(BY_DEVADDR).map_err(backend)?;
        let devices = txn.open_table(DEVICES).map_err(backend)?;
        let local = self.db.begin_read().map_err(backend)?;
        let counters = local.open_table(F_CNT).map_err(backend)?;
        let mut out = Vec::new();
        for item in index.range((dev_addr, [0u8; 16])..=(dev_addr, [0xffu8; 16])).map_err(backend)? {
            let (k, _) = item.map_err(backend)?;
            let (_, key) = k.value();
            let Some(bytes) = devices.get(key).map_err(backend)? else { continue };
            let record: DeviceRecord =
                postcard::from_bytes(bytes.value()).map_err(|_| CacheError::Corrupt("device"))?;
            let last = counters.get(key).map_err(backend)?.map(|v| {
                let (session, f_cnt) = v.value();
                SessionCounter { session, f_cnt }
            });
            out.push((record, last));
        }
        Ok(out)
    }

    /// The last downlink frame counter used for a LoRaWAN node, and its session.
    pub fn f_cnt_down(&self, id: DeviceId) -> Result<Option<SessionCounter>, CacheError> {
        let local = self.db.begin_read().map_err(backend)?;
        let table = local.open_table(F_CNT_DOWN).map_err(backend)?;
        Ok(table.get(id.to_bytes()).map_err(backend)?.map(|v| {
            let (session, f_cnt) = v.value();
            SessionCounter { session, f_cnt }
        }))
    }

    /// A room.
    pub fn room(&self, id: neosens_protocol::ids::RoomId) -> Result<Option<RoomRecord>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let rooms = txn.open_table(ROOMS).map_err(backend)?;
        let Some(bytes) = rooms.get(id.to_bytes()).map_err(backend)? else { return Ok(None) };
        postcard::from_bytes(bytes.value()).map(Some).map_err(|_| CacheError::Corrupt("room"))
    }

    /// A device type of the scope.
    pub fn device_type(
        &self,
        id: neosens_protocol::ids::DeviceTypeId,
    ) -> Result<Option<DeviceTypeRecord>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let locations = txn.open_table(LOCATIONS).map_err(backend)?;
        let Some(bytes) = locations.get(id.to_bytes()).map_err(backend)? else { return Ok(None) };
        postcard::from_bytes(bytes.value()).map(Some).map_err(|_| CacheError::Corrupt("device type"))
    }

    /// Number of devices cached.
    pub fn device_count(&self) -> Result<u64, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        txn.open_table(DEVICES).map_err(backend)?.len().map_err(backend)
    }

    /// Records that this gateway handed a device its first password: durably, before the answer
    /// leaves, so that a crash right after cannot hand it out a second time. `false` if it
    /// already had been (by a concurrent request).
    pub fn record_local_delivery(&self, id: DeviceId, now_ms: u64) -> Result<bool, CacheError> {
        let txn = begin_write(&self.db).map_err(backend)?;
        let fresh = {
            let mut local = txn.open_table(LOCAL_DELIVERIES).map_err(backend)?;
            let fresh = local.get(id.to_bytes()).map_err(backend)?.is_none();
            if fresh {
                local.insert(id.to_bytes(), now_ms).map_err(backend)?;
            }
            fresh
        };
        txn.commit().map_err(backend)?;
        Ok(fresh)
    }

    /// Devices delivered here that central has not confirmed yet.
    pub fn unreported_deliveries(&self) -> Result<Vec<DeviceId>, CacheError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let local = txn.open_table(LOCAL_DELIVERIES).map_err(backend)?;
        let mut out = Vec::new();
        for item in local.iter().map_err(backend)? {
            let (k, _) = item.map_err(backend)?;
            out.push(DeviceId::from_bytes(k.value()));
        }
        Ok(out)
    }

    /// Queues a device log line to relay, removing the device's oldest beyond
    /// [`MAX_PENDING_LOGS_PER_DEVICE`]. `false`: the queue holds [`MAX_PENDING_LOGS`] lines
    /// already, and this one is dropped.
    pub fn queue_log(&self, log: &PendingLog) -> Result<bool, CacheError> {
        let bytes = encode(log)?;
        let device = log.device.to_bytes();
        let txn = begin_write(&self.db).map_err(backend)?;
        {
            let mut logs = txn.open_table(PENDING_LOGS).map_err(backend)?;
            // At most MAX_PENDING_LOGS keys to look at, none decoded.
            let mut mine = Vec::new();
            let mut held = 0;
            for item in logs.iter().map_err(backend)? {
                let (k, _) = item.map_err(backend)?;
                held += 1;
                if k.value().1 == device {
                    mine.push(k.value().0);
                }
            }
            let evict = (mine.len() + 1).saturating_sub(MAX_PENDING_LOGS_PER_DEVICE);
            if held - evict >= MAX_PENDING_LOGS {
                return Ok(false);
            }
            for seq in mine.into_iter().take(evict) {
                logs.remove((seq, device)).map_err(backend)?;
            }
            let mut meta = txn.open_table(META).map_err(backend)?;
            let seq = meta.get(META_LOG_SEQ).map_err(backend)?.map_or(0, |v| v.value()) + 1;
            meta.insert(META_LOG_SEQ, seq).map_err(backend)?;
            logs.insert((seq, device), bytes.as_slice()).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(true)
    }

    /// The oldest queued log lines.
    pub fn pending_logs(&self, limit: usize) -> Result<Vec<(LogKey, PendingLog)>, CacheError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let logs = txn.open_table(PENDING_LOGS).map_err(backend)?;
        let mut out = Vec::new();
        for item in logs.iter().map_err(backend)?.take(limit) {
            let (k, v) = item.map_err(backend)?;
            let (seq, device) = k.value();
            out.push((
                LogKey(seq, device),
                postcard::from_bytes(v.value()).map_err(|_| CacheError::Corrupt("log"))?,
            ));
        }
        Ok(out)
    }

    /// Removes relayed log lines.
    pub fn drop_logs(&self, keys: &[LogKey]) -> Result<(), CacheError> {
        let txn = begin_write(&self.db).map_err(backend)?;
        {
            let mut logs = txn.open_table(PENDING_LOGS).map_err(backend)?;
            for LogKey(seq, device) in keys {
                logs.remove((*seq, *device)).map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CacheError> {
    postcard::to_allocvec(value).map_err(backend)
}

/// The last frame counter accepted from a LoRaWAN node, and the session it was accepted in: a
/// new session (new DevAddr or keys: the node was personalised again and counts from 0) does
/// not inherit the old session's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCounter {
    /// The session's fingerprint (`NodeSession::fingerprint`); [`Self::ANY_SESSION`] for a
    /// counter stored by a version that did not record it.
    pub session: u64,
    /// The counter.
    pub f_cnt: u32,
}

impl SessionCounter {
    /// The fingerprint of counters stored before sessions were recorded: they count for whatever
    /// session the node has (replacing them with 0 would reopen the replay window).
    pub const ANY_SESSION: u64 = 0;

    /// This counter, if it belongs to `session`.
    pub fn for_session(self, session: u64) -> Option<u32> {
        (self.session == session || self.session == Self::ANY_SESSION).then_some(self.f_cnt)
    }
}

/// Records accepted frame counters inside a write transaction (the outbox's, so that a reading
/// and the counter that lets it through commit together).
pub fn write_f_cnts(
    txn: &redb::WriteTransaction,
    counters: &[(DeviceId, SessionCounter)],
) -> Result<(), CacheError> {
    let mut table = txn.open_table(F_CNT).map_err(backend)?;
    for (id, counter) in counters {
        table.insert(id.to_bytes(), (counter.session, counter.f_cnt)).map_err(backend)?;
    }
    Ok(())
}

/// Records downlink frame counters used inside a write transaction (the one that stores the
/// uplinks they answer: committed before the frames leave).
pub fn write_f_cnt_downs(
    txn: &redb::WriteTransaction,
    counters: &[(DeviceId, SessionCounter)],
) -> Result<(), CacheError> {
    if counters.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(F_CNT_DOWN).map_err(backend)?;
    for (id, counter) in counters {
        table.insert(id.to_bytes(), (counter.session, counter.f_cnt)).map_err(backend)?;
    }
    Ok(())
}

/// Moves the counters of the first table version into the current one (session unknown).
fn migrate_f_cnts(txn: &redb::WriteTransaction) -> Result<(), CacheError> {
    let mut current = txn.open_table(F_CNT).map_err(backend)?;
    let old: Vec<(Key, u32)> = match txn.open_table(F_CNT_V1) {
        Ok(table) => {
            let mut out = Vec::new();
            for item in table.iter().map_err(backend)? {
                let (k, v) = item.map_err(backend)?;
                out.push((k.value(), v.value()));
            }
            out
        }
        Err(e) => return Err(backend(e)),
    };
    for (key, f_cnt) in &old {
        if current.get(key).map_err(backend)?.is_none() {
            current.insert(key, (SessionCounter::ANY_SESSION, *f_cnt)).map_err(backend)?;
        }
    }
    drop(current);
    txn.delete_table(F_CNT_V1).map_err(backend)?;
    Ok(())
}

#[cfg(test)]
mod tests;
