//! Persistence behind a trait: the embedded redb store (the default) and PostgreSQL
//! ([`PgStore`], `NEOSENS_DATABASE_URL`) for several central replicas sharing one database.
//!
//! The registry keeps every record in memory (lookups on the provisioning and broker-auth paths
//! must not touch the disk) and persists each change through [`Store::apply`]: one atomic batch,
//! which also appends one change-log entry per record, each with the next revision number —
//! gateways sync from that log. A crash at any point leaves the previous batch or the next one,
//! never a mix. Device statuses, which change every few minutes per device and are not synced,
//! are written apart, in batches, by [`Store::put_statuses`].

mod audit;
mod bulk;
mod commit_times;
mod firmware;
mod history;
pub mod pg;
mod redb_store;
mod shared;
mod user_settings;

use neosens_protocol::legacy::LogRecord;
use serde::{Deserialize, Serialize};

use crate::model::{
    AlertRecord, ApiToken, Building, Device, DeviceStatusRecord, DeviceType, EntityKind, Gateway,
    OrderRecord, Record, Room, Site, Timestamp, User,
};

pub use audit::MAX_SCAN as AUDIT_MAX_SCAN;
pub use bulk::KEPT_BULK_OPERATIONS;
pub use commit_times::{BOUNDS as COMMIT_BUCKETS, CommitSnapshot, CommitTimes};
pub use pg::{PgOptions, PgStore};
pub use redb_store::RedbStore;
pub use shared::{LeaderLock, SessionStore, StatusChanges, StoredSession, ThrottleRule};

/// The schema version this build writes. Opening an older store migrates it; a newer one is refused.
pub const SCHEMA_VERSION: u32 = 10;

/// Storage failures. Details are for logs; API clients only see "internal error".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (I/O, corruption, …).
    #[error("storage: {0}")]
    Backend(String),
    /// A record does not decode (written by an incompatible build, or damaged).
    #[error("record {kind:?} {key} does not decode: {reason}")]
    Corrupt {
        /// Table.
        kind: EntityKind,
        /// Record key, hex.
        key: String,
        /// Decoder message.
        reason: String,
    },
    /// Another process changed the registry after the revision this one decided on: it must
    /// read those changes ([`RegistryStore::changes_since`]) and decide again.
    #[error("the registry is at revision {current}, this process decided at {expected}: catch up and retry")]
    Stale {
        /// The revision the batch was decided at.
        expected: u64,
        /// The store's revision.
        current: u64,
    },
    /// The store was written by a newer neosens.
    #[error(
        "the database has schema version {found}, newer than this build's {supported}: upgrade neosens-central"
    )]
    TooNew {
        /// Version in the store.
        found: u32,
        /// Highest version this build knows.
        supported: u32,
    },
}

/// One change in a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create or replace a record.
    Put(Record),
    /// Remove a record (no-op if absent, but still logged).
    Delete(EntityKind, [u8; 16]),
}

/// An entry of the change log: which record changed at which revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    /// The revision this change got.
    pub revision: u64,
    /// Kind of record.
    pub kind: EntityKind,
    /// Its id.
    pub key: [u8; 16],
    /// Whether it was deleted.
    pub deleted: bool,
}

/// Log lines kept per device: the oldest go when a new one comes (a line is at most the
/// logger route's 16 KiB body, so a device holds at most ~3 MiB of logs).
pub const MAX_LOGS_PER_DEVICE: usize = 200;

/// Orders kept per device in its history.
pub const MAX_ORDERS_PER_DEVICE: usize = 200;

/// A device log line (`POST /device/logger`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLogEntry {
    /// Which device.
    pub device: [u8; 16],
    /// When it arrived.
    pub received_at: Timestamp,
    /// The client's address.
    pub remote_addr: String,
    /// The record.
    pub record: LogRecord,
}

/// Everything in the store, as loaded at start.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Current revision of the change log.
    pub revision: u64,
    /// Sites.
    pub sites: Vec<Site>,
    /// Buildings.
    pub buildings: Vec<Building>,
    /// Rooms.
    pub rooms: Vec<Room>,
    /// Device types.
    pub device_types: Vec<DeviceType>,
    /// Devices.
    pub devices: Vec<Device>,
    /// Last statuses, by device key.
    pub statuses: Vec<([u8; 16], DeviceStatusRecord)>,
    /// Gateways.
    pub gateways: Vec<Gateway>,
    /// Users.
    pub users: Vec<User>,
    /// API tokens.
    pub tokens: Vec<ApiToken>,
}

/// The registry's records, the devices' last statuses and the change log the gateways sync from.
pub trait RegistryStore: Send + Sync {
    /// Reads everything (at start).
    fn load(&self) -> Result<Snapshot, StoreError>;

    /// Applies `writes` atomically, appending one change-log entry per write and the `audit`
    /// entries that describe them; returns the revision of the last one (the current revision
    /// when `writes` is empty). Deleting a device removes its status, log lines and orders with it.
    fn apply(&self, writes: &[Write], audit: &[crate::model::AuditEntry]) -> Result<u64, StoreError>;

    /// Stores the last statuses of some devices and appends `history` to their status
    /// histories, pruned to each one's retention (one transaction, not in the change log).
    fn put_statuses(
        &self,
        statuses: &[([u8; 16], DeviceStatusRecord)],
        history: &[StatusHistoryEntry],
    ) -> Result<(), StoreError>;

    /// Change-log entries after `revision`, oldest first, at most `limit`.
    fn changes_since(&self, revision: u64, limit: usize) -> Result<Vec<ChangeEntry>, StoreError>;

    /// [`apply`](Self::apply), only if the store is still at revision `expected` (the one
    /// the batch was decided against); else [`StoreError::Stale`] and nothing written. With
    /// several processes on one database, this is what keeps a decision made on an outdated
    /// registry (a lost update, a duplicate MAC) out of it. A store only one process writes is
    /// always current: the default applies.
    fn apply_at(
        &self,
        expected: u64,
        writes: &[Write],
        audit: &[crate::model::AuditEntry],
    ) -> Result<u64, StoreError> {
        let _ = expected;
        self.apply(writes, audit)
    }

    /// The current records of `keys` (those that exist).
    fn records(&self, keys: &[(EntityKind, [u8; 16])]) -> Result<Vec<Record>, StoreError>;

    /// What changed after `revision`, for a process catching up with others: the current
    /// revision, and each record changed since with its state at that revision (`None`:
    /// deleted) — one consistent view, never records of two different moments.
    fn changed_since(&self, revision: u64) -> Result<CaughtUp, StoreError> {
        let mut keys = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut last = revision;
        loop {
            let batch = self.changes_since(last, 10_000)?;
            let Some(end) = batch.last().map(|c| c.revision) else { break };
            last = end;
            keys.extend(batch.into_iter().map(|c| (c.kind, c.key)).filter(|k| seen.insert(*k)));
        }
        let mut found: std::collections::HashMap<_, _> =
            self.records(&keys)?.into_iter().map(|r| ((r.kind(), r.key()), r)).collect();
        let changed = keys.into_iter().map(|(kind, key)| (kind, key, found.remove(&(kind, key)))).collect();
        Ok(CaughtUp { revision: last, changed })
    }

    /// A wait for other processes' changes, when the store is shared (`None`: only this
    /// process writes it, there is nothing to follow).
    fn listen(&self) -> Result<Option<Box<dyn ChangeListener>>, StoreError> {
        Ok(None)
    }

    /// Whether other processes may write this store too (the default: only this one).
    fn shared(&self) -> bool {
        false
    }

    /// Records `check` (a value derived from the server keys) when the store has none yet, and
    /// tells whether it is the one recorded: a replica started with keys other than those the
    /// shared database was written with would refuse every device (the default: the keys live
    /// beside the store, they match).
    fn check_keys(&self, check: &[u8; 32]) -> Result<bool, StoreError> {
        let _ = check;
        Ok(true)
    }

    /// A claim to lead the processes sharing the store (`None`: only this process uses it, it
    /// always leads).
    fn leader_lock(&self) -> Result<Option<Box<dyn LeaderLock>>, StoreError> {
        Ok(None)
    }

    /// The statuses stored after `cursor` (0: all), by any process, when the store is shared
    /// (`None`: only this process writes statuses, it has them all in memory).
    fn statuses_since(&self, cursor: u64) -> Result<Option<StatusChanges>, StoreError> {
        let _ = cursor;
        Ok(None)
    }
}

/// What [`RegistryStore::changed_since`] found.
#[derive(Debug, Default)]
pub struct CaughtUp {
    /// The revision the records below are at.
    pub revision: u64,
    /// Each changed record: its kind, key and state (`None`: deleted).
    pub changed: Vec<(EntityKind, [u8; 16], Option<Record>)>,
}

/// Waits for other processes' registry changes (a dedicated connection: PostgreSQL's
/// `LISTEN`).
pub trait ChangeListener: Send {
    /// Waits at most `timeout` for notifications of new revisions; the highest one notified,
    /// if any came (a process's own commits are notified to it too: it compares with the
    /// revision it has).
    fn wait(&mut self, timeout: std::time::Duration) -> Result<Option<u64>, StoreError>;
}

/// What is kept of each device beside its record: its log lines and the orders sent to it,
/// bounded per device.
pub trait DeviceHistory: Send + Sync {
    /// Appends a device log line, removing the device's oldest beyond [`MAX_LOGS_PER_DEVICE`].
    fn append_device_log(&self, entry: &DeviceLogEntry) -> Result<(), StoreError>;

    /// The most recent log lines of a device, newest first.
    fn device_logs(&self, device: [u8; 16], limit: usize) -> Result<Vec<DeviceLogEntry>, StoreError>;

    /// Records an order sent (or refused) to a device, removing the device's oldest beyond
    /// [`MAX_ORDERS_PER_DEVICE`].
    fn append_order(&self, device: [u8; 16], order: &OrderRecord) -> Result<(), StoreError>;

    /// The most recent orders of a device, newest first.
    fn device_orders(&self, device: [u8; 16], limit: usize) -> Result<Vec<OrderRecord>, StoreError>;
}

/// The monitor's alerts.
pub trait AlertStore: Send + Sync {
    /// Stores alerts (new or changed) and removes old ones, in one transaction.
    fn put_alerts(&self, alerts: &[AlertRecord], forget: &[u64]) -> Result<(), StoreError>;

    /// Every stored alert, by id.
    fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError>;

    /// Stores an operator's acknowledgement of alert `id` alone (a replica that does not lead
    /// the monitor writes no other part of an alert); the alert as stored then, `None` if
    /// unknown.
    fn acknowledge(&self, id: u64, ack: &crate::model::Ack) -> Result<Option<AlertRecord>, StoreError> {
        let Some(mut alert) = self.alerts()?.into_iter().find(|a| a.id == id) else { return Ok(None) };
        alert.acknowledge(ack.clone());
        self.put_alerts(std::slice::from_ref(&alert), &[])?;
        Ok(Some(alert))
    }

    /// Queues what a replica that does not lead saw for the monitor (JSON documents: notices,
    /// boots) for the leader, which takes them with [`take_relayed`](Self::take_relayed); the
    /// queue keeps the newest [`RELAYED_KEPT`] while no leader takes them.
    fn relay_to_leader(&self, items: &[String]) -> Result<(), StoreError> {
        let _ = items;
        Err(StoreError::Backend("no other process shares this store: nothing leads but this one".into()))
    }

    /// Takes (removes) the oldest `limit` items other replicas relayed, oldest first.
    fn take_relayed(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let _ = limit;
        Ok(Vec::new())
    }
}

/// Items relayed to the leader kept at most ([`AlertStore::relay_to_leader`]).
pub const RELAYED_KEPT: usize = 10_000;

/// Each dashboard user's settings.
pub trait SettingsStore: Send + Sync {
    /// A user's dashboard settings (JSON text), if saved.
    fn user_settings(&self, user: [u8; 16]) -> Result<Option<String>, StoreError>;

    /// Saves (or with `None` forgets) a user's dashboard settings.
    fn put_user_settings(&self, user: [u8; 16], settings: Option<&str>) -> Result<(), StoreError>;
}

/// How much of a device's status history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryRetention {
    /// Statuses kept at most (the oldest go first).
    pub max_statuses: u32,
    /// Statuses older than this many days (before the device's newest) go.
    pub max_age_days: u32,
}

impl Default for HistoryRetention {
    /// 30 days at one status per 30 min (the firmware's default period), with room for
    /// statuses sent on orders.
    fn default() -> Self {
        HistoryRetention { max_statuses: 2000, max_age_days: 30 }
    }
}

/// One status for a device's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusHistoryEntry {
    /// The device.
    pub device: [u8; 16],
    /// When it was seen (ms).
    pub at_ms: i64,
    /// The payload as received.
    pub payload: String,
    /// The device's retention.
    pub keep: HistoryRetention,
}

/// Reading devices' status histories (appended by [`RegistryStore::put_statuses`]).
pub trait StatusHistoryStore: Send + Sync {
    /// A device's statuses seen in `since_ms..before_ms`, newest first, at most `limit`.
    fn status_history(
        &self,
        device: [u8; 16],
        since_ms: i64,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError>;
}

/// One page of the audit trail, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    /// The entries that matched.
    pub entries: Vec<crate::model::AuditEntry>,
    /// Where the next (older) page starts (`before=`), when there may be more.
    pub next_before: Option<u64>,
    /// Entries held in all.
    pub total: u64,
}

/// The audit trail (registry changes are appended by [`RegistryStore::apply`]).
pub trait AuditStore: Send + Sync {
    /// Sets how much is kept (from the configuration, at start).
    fn set_audit_retention(&self, retention: crate::audit::AuditRetention);

    /// Appends entries about something else than a registry change (orders, sign-ins),
    /// numbering them and pruning past the retention in the same transaction.
    fn append_audit(&self, entries: &[crate::model::AuditEntry]) -> Result<(), StoreError>;

    /// The last number given to an entry (kept apart from the entries: pruning may remove them
    /// all, and a number is never given twice).
    fn last_audit_id(&self) -> Result<u64, StoreError>;

    /// Entries older than `before` (all when `None`), newest first, that `keep` accepts: at most
    /// `limit`, looking at no more than [`AUDIT_MAX_SCAN`] entries.
    fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: &dyn Fn(&crate::model::AuditEntry) -> bool,
    ) -> Result<AuditPage, StoreError>;
}

/// Bulk operations on devices, with each device's outcome.
pub trait BulkStore: Send + Sync {
    /// The kept operations, oldest first.
    fn bulk_operations(&self) -> Result<Vec<crate::model::BulkOperation>, StoreError>;

    /// Stores (or replaces) an operation; operations older than the last
    /// [`KEPT_BULK_OPERATIONS`] go in the same transaction.
    fn put_bulk_operation(&self, operation: &crate::model::BulkOperation) -> Result<(), StoreError>;
}

/// Firmware images' records (their content is in files beside the store) and campaigns.
pub trait FirmwareStore: Send + Sync {
    /// Every image record.
    fn firmware_images(&self) -> Result<Vec<crate::model::FirmwareImage>, StoreError>;

    /// Stores (or replaces) an image record.
    fn put_firmware_image(&self, image: &crate::model::FirmwareImage) -> Result<(), StoreError>;

    /// Removes an image record.
    fn delete_firmware_image(&self, sha256: [u8; 32]) -> Result<(), StoreError>;

    /// Every campaign.
    fn campaigns(&self) -> Result<Vec<crate::model::Campaign>, StoreError>;

    /// Stores (or replaces) a campaign.
    fn put_campaign(&self, campaign: &crate::model::Campaign) -> Result<(), StoreError>;

    /// Every device's progress in every campaign.
    fn campaign_progress(&self) -> Result<Vec<CampaignProgress>, StoreError>;

    /// Stores devices' progress, in one transaction.
    fn put_campaign_progress(&self, progress: &[CampaignProgress]) -> Result<(), StoreError>;

    /// The stored census samples (time in ms, counts), oldest first.
    fn firmware_census(&self) -> Result<Vec<(i64, Vec<crate::model::RevisionCount>)>, StoreError>;

    /// Stores a census sample and forgets those before `forget_before` (ms).
    fn put_firmware_census(
        &self,
        at: i64,
        counts: &[crate::model::RevisionCount],
        forget_before: i64,
    ) -> Result<(), StoreError>;
}

/// One device's progress in one campaign: (campaign, device, progress).
pub type CampaignProgress = (u64, [u8; 16], crate::model::DeviceProgress);

/// What `/metrics` reads of the store itself.
pub trait StoreStats: Send + Sync {
    /// Bytes the store takes on disk.
    fn size_bytes(&self) -> u64;

    /// Durations of its write commits, when the backend measures them.
    fn commit_times(&self) -> Option<CommitSnapshot>;
}

/// A whole persistence backend: every concern above. The registry holds one; the monitor only
/// its alerts ([`AlertStore`]).
pub trait Store:
    RegistryStore
    + DeviceHistory
    + AlertStore
    + SettingsStore
    + FirmwareStore
    + AuditStore
    + BulkStore
    + StatusHistoryStore
    + StoreStats
    + SessionStore
    + 'static
{
}

impl<
    T: RegistryStore
        + DeviceHistory
        + AlertStore
        + SettingsStore
        + FirmwareStore
        + AuditStore
        + BulkStore
        + StatusHistoryStore
        + StoreStats
        + SessionStore
        + 'static,
> Store for T
{
}

#[cfg(test)]
#[path = "disk_format_access_tests.rs"]
mod disk_format_access_tests;
#[cfg(test)]
#[path = "disk_format_history_tests.rs"]
mod disk_format_history_tests;
#[cfg(test)]
#[path = "disk_format_migration_tests.rs"]
mod disk_format_migration_tests;
#[cfg(test)]
#[path = "disk_format_tests.rs"]
mod disk_format_tests;
