//! Applying sync batches to the registry copy (`registry.redb`). A delta goes in one durable
//! transaction with the revision it brings the cache to. A snapshot replaces the copy in **one**
//! transaction kept open across its pages (each page written on arrival, so the agent holds one
//! page in memory, never the snapshot): one commit however many pages, lookups answering from
//! the previous complete state until it commits (redb's readers see the last commit), and a
//! crash at any point leaves that state or the new one, never a mix. Nothing else writes this
//! file, so the open transaction holds nobody up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use neosens_protocol::sync::{BatchKind, Change, DeviceRecord, SyncBatch};
use redb::{ReadableDatabase, ReadableTable};

use super::{
    BY_DEVADDR, BY_LOGIN, BY_MAC, Cache, CacheError, DEVICES, Key, LOCAL_DELIVERIES, LOCATIONS, META,
    META_REVISION, ROOMS, backend, begin_write, encode, login_derived, mac_key,
};

/// What a sync batch is, for the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Changes to the current state; the cache then stands at `revision`.
    Delta {
        /// The batch's revision.
        revision: u64,
    },
    /// A page of a snapshot. `first` begins the snapshot's transaction; `complete` (the
    /// snapshot's revision) on the last page commits it.
    SnapshotPage {
        /// The snapshot's first page.
        first: bool,
        /// On its last page, the revision the whole snapshot stands for.
        complete: Option<u64>,
    },
}

/// Where applying a batch spent its time (the sync benchmark prints it).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyTiming {
    /// Writing the changes, indexes included.
    pub write: Duration,
    /// The commit (its `fsync`, when durable).
    pub commit: Duration,
}

impl Cache {
    /// Applies a whole batch (a delta, or a snapshot in one piece) and stores `revision` with it.
    pub fn apply(&self, batch: &SyncBatch, revision: u64) -> Result<ApplyTiming, CacheError> {
        let step = match batch.kind {
            BatchKind::Snapshot => Step::SnapshotPage { first: true, complete: Some(revision) },
            BatchKind::Delta => Step::Delta { revision },
        };
        self.apply_step(batch, step)
    }

    /// Applies a batch as `step` says: a delta in its own transaction; a snapshot page in the
    /// snapshot's transaction (begun by its first page, committed by its last).
    pub fn apply_step(&self, batch: &SyncBatch, step: Step) -> Result<ApplyTiming, CacheError> {
        let started = Instant::now();
        let mut pending = self.snapshot.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let txn = match step {
            // A snapshot left unfinished (central went away, the agent gave up on it) is
            // abandoned: its transaction rolls back.
            Step::Delta { .. } | Step::SnapshotPage { first: true, .. } => {
                drop(pending.take());
                let txn = begin_write(&self.registry).map_err(backend)?;
                if let Step::SnapshotPage { .. } = step {
                    for def in [DEVICES, ROOMS, LOCATIONS] {
                        txn.delete_table(def).map_err(backend)?;
                    }
                    txn.delete_table(BY_MAC).map_err(backend)?;
                    txn.delete_table(BY_LOGIN).map_err(backend)?;
                    txn.delete_table(BY_DEVADDR).map_err(backend)?;
                    txn.delete_table(super::otaa::OTAA).map_err(backend)?;
                    txn.delete_table(super::otaa::OTAA_BY_EUI).map_err(backend)?;
                    txn.delete_table(super::layouts::LAYOUTS).map_err(backend)?;
                    txn.delete_table(super::site_broker::BROKER_ACCOUNTS).map_err(backend)?;
                    txn.delete_table(super::site_broker::GATEWAY_SETTINGS).map_err(backend)?;
                }
                txn
            }
            Step::SnapshotPage { first: false, .. } => {
                pending.take().ok_or(CacheError::SnapshotNotStarted)?
            }
        };
        write_changes(&txn, &batch.changes)?;
        let revision = match step {
            Step::Delta { revision } | Step::SnapshotPage { complete: Some(revision), .. } => revision,
            Step::SnapshotPage { complete: None, .. } => {
                // More pages to come: the transaction waits for them.
                *pending = Some(txn);
                return Ok(ApplyTiming { write: started.elapsed(), commit: Duration::ZERO });
            }
        };
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert(META_REVISION, revision).map_err(backend)?;
            if let Step::SnapshotPage { .. } = step {
                meta.insert(super::site_broker::META_SYNC_LEVEL, super::SYNC_LEVEL).map_err(backend)?;
            }
        }
        let write = started.elapsed();
        txn.commit().map_err(backend)?;
        self.commits.fetch_add(1, std::sync::atomic::Ordering::Release);
        drop(pending);
        let commit = started.elapsed() - write;
        // The batch is in: tidying the delivery records may fail without undoing it.
        if let Err(e) = self.forget_local_deliveries() {
            tracing::warn!(error = %e, "tidying the records of offline deliveries");
        }
        Ok(ApplyTiming { write, commit })
    }

    /// Drops the records of deliveries made here that central now knows of (the device's
    /// record says delivered) or that no longer matter (the device left the scope). After the
    /// registry's commit: should a crash come between, the next batch does it.
    fn forget_local_deliveries(&self) -> Result<(), CacheError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let local = txn.open_table(LOCAL_DELIVERIES).map_err(backend)?;
        if redb::ReadableTableMetadata::len(&local).map_err(backend)? == 0 {
            return Ok(());
        }
        let registry = self.registry.begin_read().map_err(backend)?;
        let devices = registry.open_table(DEVICES).map_err(backend)?;
        let mut known = Vec::new();
        for item in local.iter().map_err(backend)? {
            let (key, _) = item.map_err(backend)?;
            let key = key.value();
            let delivered = match devices.get(key).map_err(backend)? {
                Some(record) => decode_device(record.value())?.credentials_delivered,
                None => true,
            };
            if delivered {
                known.push(key);
            }
        }
        drop((local, txn));
        if known.is_empty() {
            return Ok(());
        }
        let txn = begin_write(&self.db).map_err(backend)?;
        {
            let mut local = txn.open_table(LOCAL_DELIVERIES).map_err(backend)?;
            for key in &known {
                local.remove(key).map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)
    }
}

fn write_changes(txn: &redb::WriteTransaction, changes: &[Change]) -> Result<(), CacheError> {
    let mut devices = txn.open_table(DEVICES).map_err(backend)?;
    let mut by_mac = txn.open_table(BY_MAC).map_err(backend)?;
    let mut by_login = txn.open_table(BY_LOGIN).map_err(backend)?;
    let mut by_devaddr = txn.open_table(BY_DEVADDR).map_err(backend)?;
    let mut rooms = txn.open_table(ROOMS).map_err(backend)?;
    let mut locations = txn.open_table(LOCATIONS).map_err(backend)?;
    // Index entries go in after the devices, in key order: a page's devices arrive in id order
    // but their MACs and logins in any, and sorted inserts walk each index's pages once instead
    // of at random (half the cost of a snapshot with redb's small page cache).
    let mut new_macs = BTreeMap::new();
    let mut new_logins = BTreeMap::new();
    // One encoding buffer for the batch (an allocation less per device).
    let mut buf = Vec::new();
    let mut otaa_changes = Vec::new();
    let mut layout_changes = Vec::new();
    let mut accounts = Vec::new();
    for change in changes {
        match change {
            Change::UpsertDevice(d) => {
                let key = d.id.to_bytes();
                buf.clear();
                buf = postcard::to_extend(d.as_ref(), buf).map_err(backend)?;
                if let Some(old) = devices.insert(key, buf.as_slice()).map_err(backend)? {
                    let old = decode_device(old.value())?;
                    drop_indexes([&mut by_mac, &mut by_login], &mut by_devaddr, &old, key)?;
                    forget_new([&mut new_macs, &mut new_logins], &old, key);
                }
                if let Some(l) = &d.lorawan {
                    by_devaddr.insert((l.dev_addr.to_u32(), key), ()).map_err(backend)?;
                }
                if let Some(mac) = mac_key(&d.uid) {
                    new_macs.insert(mac, key);
                }
                if !login_derived(d) {
                    new_logins.insert(d.login.clone(), key);
                }
            }
            Change::DeleteDevice(id) => {
                if let Some(old) = devices.remove(id.to_bytes()).map_err(backend)? {
                    let old = decode_device(old.value())?;
                    drop_indexes([&mut by_mac, &mut by_login], &mut by_devaddr, &old, id.to_bytes())?;
                    forget_new([&mut new_macs, &mut new_logins], &old, id.to_bytes());
                    otaa_changes.push((id.to_bytes(), OtaaChange::Forget(Box::new(old))));
                }
                accounts.push((id.to_bytes(), None));
            }
            Change::SetBrokerAccount(id, account) => accounts.push((id.to_bytes(), account.as_ref())),
            Change::SetGatewaySettings(settings) => super::site_broker::set_settings(txn, settings)?,
            Change::SetGatewayConfig(wire) => super::site_broker::set_config(txn, wire)?,
            Change::SetOtaa(id, record) => {
                otaa_changes.push((id.to_bytes(), OtaaChange::Set(record.clone())))
            }
            Change::SetPayloadLayout(id, layout) => layout_changes.push((id.to_bytes(), layout.clone())),
            Change::UpsertRoom(r) => {
                drop(rooms.insert(r.id.to_bytes(), encode(r)?.as_slice()).map_err(backend)?)
            }
            Change::DeleteRoom(id) => drop(rooms.remove(id.to_bytes()).map_err(backend)?),
            Change::UpsertSite(s) => {
                drop(locations.insert(s.id.to_bytes(), encode(s)?.as_slice()).map_err(backend)?)
            }
            Change::UpsertBuilding(b) => {
                drop(locations.insert(b.id.to_bytes(), encode(b)?.as_slice()).map_err(backend)?)
            }
            Change::UpsertDeviceType(t) => {
                drop(locations.insert(t.id.to_bytes(), encode(t)?.as_slice()).map_err(backend)?)
            }
            Change::DeleteSite(id) => drop(locations.remove(id.to_bytes()).map_err(backend)?),
            Change::DeleteBuilding(id) => drop(locations.remove(id.to_bytes()).map_err(backend)?),
            Change::DeleteDeviceType(id) => {
                drop(locations.remove(id.to_bytes()).map_err(backend)?);
                layout_changes.push((id.to_bytes(), None));
            }
        }
    }
    for (mac, key) in &new_macs {
        by_mac.insert(mac.as_str(), key).map_err(backend)?;
    }
    for (login, key) in &new_logins {
        by_login.insert(login.as_str(), key).map_err(backend)?;
    }
    // OTAA credentials look their node's DevEUI up: once the devices are written.
    drop((devices, by_mac, by_login, by_devaddr, rooms, locations));
    for (key, account) in accounts {
        super::site_broker::set_account(txn, key, account)?;
    }
    write_extensions(txn, layout_changes, otaa_changes)
}

/// The payload layouts and OTAA credentials of a batch, after its records.
fn write_extensions(
    txn: &redb::WriteTransaction,
    layouts: Vec<(Key, Option<neosens_protocol::layout::PayloadLayout>)>,
    otaa: Vec<(Key, OtaaChange)>,
) -> Result<(), CacheError> {
    for (key, layout) in layouts {
        super::layouts::set(txn, key, layout.as_ref())?;
    }
    for (key, change) in otaa {
        match change {
            OtaaChange::Set(record) => super::otaa::set(txn, key, record.as_ref())?,
            OtaaChange::Forget(old) => super::otaa::forget(txn, key, &old)?,
        }
    }
    Ok(())
}

/// An OTAA change of a batch, applied after its devices.
enum OtaaChange {
    Set(Option<neosens_protocol::sync::OtaaRecord>),
    Forget(Box<DeviceRecord>),
}

fn decode_device(bytes: &[u8]) -> Result<DeviceRecord, CacheError> {
    postcard::from_bytes(bytes).map_err(|_| CacheError::Corrupt("device"))
}

/// Forgets the index entries of this batch that still point to a device replaced or deleted
/// later in it.
fn forget_new([macs, logins]: [&mut BTreeMap<String, Key>; 2], old: &DeviceRecord, key: Key) {
    if let Some(mac) = mac_key(&old.uid) {
        if macs.get(&mac) == Some(&key) {
            macs.remove(&mac);
        }
    }
    if logins.get(&old.login) == Some(&key) {
        logins.remove(&old.login);
    }
}

/// Removes the index entries of a replaced or deleted device (those still pointing to it).
fn drop_indexes(
    [by_mac, by_login]: [&mut redb::Table<&str, Key>; 2],
    by_devaddr: &mut redb::Table<(u32, Key), ()>,
    old: &DeviceRecord,
    key: Key,
) -> Result<(), CacheError> {
    let unindex = |table: &mut redb::Table<&str, Key>, name: &str| -> Result<(), CacheError> {
        if table.get(name).map_err(backend)?.is_some_and(|v| v.value() == key) {
            table.remove(name).map_err(backend)?;
        }
        Ok(())
    };
    if let Some(mac) = mac_key(&old.uid) {
        unindex(by_mac, &mac)?;
    }
    unindex(by_login, &old.login)?;
    if let Some(l) = &old.lorawan {
        by_devaddr.remove((l.dev_addr.to_u32(), key)).map_err(backend)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use neosens_protocol::Mac;
    use neosens_protocol::ids::{DeviceId, DeviceTypeId};
    use neosens_protocol::sync::WireUid;

    use super::*;

    fn device(n: u8) -> Change {
        Change::UpsertDevice(Box::new(DeviceRecord {
            id: DeviceId::from_bytes([n; 16]),
            uid: WireUid::Ethernet(mac(n)),
            device_type: DeviceTypeId::from_bytes([4; 16]),
            rooms: Vec::new(),
            enabled: true,
            config_body: "{}".into(),
            mqtt: None,
            login: format!("senso_{n}"),
            secret_hash: [n; 32],
            credentials_delivered: true,
            staged_secret: None,
            lorawan: None,
        }))
    }

    fn mac(n: u8) -> Mac {
        format!("24:0a:c4:00:00:{n:02x}").parse().unwrap()
    }

    fn page(kind: BatchKind, devices: std::ops::RangeInclusive<u8>) -> SyncBatch {
        SyncBatch { revision: 9, kind, more: true, changes: devices.map(device).collect() }
    }

    /// Lookups answer from the previous complete state while a snapshot arrives, and a snapshot
    /// abandoned half-way (the agent restarted) is never read: the next one starts afresh.
    #[test]
    fn a_snapshot_is_invisible_until_its_last_page() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.apply(&page(BatchKind::Snapshot, 1..=3), 5).unwrap();
        assert_eq!((cache.revision().unwrap(), cache.device_count().unwrap()), (5, 3));

        // A new snapshot (devices 2..=6) stopped after its first page.
        cache
            .apply_step(&page(BatchKind::Snapshot, 2..=4), Step::SnapshotPage { first: true, complete: None })
            .unwrap();
        assert_eq!((cache.revision().unwrap(), cache.device_count().unwrap()), (5, 3), "still the old state");
        assert!(
            cache.device_by_mac(mac(1)).unwrap().is_some() && cache.device_by_mac(mac(4)).unwrap().is_none()
        );
        drop(cache);

        // Reopened: the old state; the snapshot starts again and completes.
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!((cache.revision().unwrap(), cache.device_count().unwrap()), (5, 3));
        cache
            .apply_step(&page(BatchKind::Snapshot, 2..=3), Step::SnapshotPage { first: true, complete: None })
            .unwrap();
        cache
            .apply_step(&page(BatchKind::Delta, 4..=5), Step::SnapshotPage { first: false, complete: None })
            .unwrap();
        assert_eq!(cache.device_count().unwrap(), 3);
        cache
            .apply_step(
                &page(BatchKind::Delta, 6..=6),
                Step::SnapshotPage { first: false, complete: Some(9) },
            )
            .unwrap();
        assert_eq!((cache.revision().unwrap(), cache.device_count().unwrap()), (9, 5));
        assert!(cache.device_by_mac(mac(1)).unwrap().is_none(), "a device out of the new snapshot is gone");
        assert!(cache.device_by_login("senso_1").unwrap().is_none());
        for n in 2..=6 {
            let d = cache.device_by_mac(mac(n)).unwrap().expect("in the new snapshot");
            assert_eq!(cache.device_by_login(&format!("senso_{n}")).unwrap(), Some(d));
        }
        // Deltas go to the swapped-in tables.
        cache
            .apply(
                &SyncBatch { revision: 10, kind: BatchKind::Delta, more: false, changes: vec![device(7)] },
                10,
            )
            .unwrap();
        assert_eq!((cache.revision().unwrap(), cache.device_count().unwrap()), (10, 6));
    }

    /// A page that does not follow the pages before it is refused (the sync starts the snapshot
    /// again), and a delta abandons a snapshot left unfinished.
    #[test]
    fn a_snapshot_out_of_order_is_refused_and_a_delta_abandons_one() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let next = Step::SnapshotPage { first: false, complete: Some(9) };
        assert!(matches!(
            cache.apply_step(&page(BatchKind::Delta, 1..=2), next),
            Err(CacheError::SnapshotNotStarted)
        ));
        cache
            .apply_step(&page(BatchKind::Snapshot, 1..=2), Step::SnapshotPage { first: true, complete: None })
            .unwrap();
        cache
            .apply(
                &SyncBatch { revision: 3, kind: BatchKind::Delta, more: false, changes: vec![device(7)] },
                3,
            )
            .unwrap();
        assert_eq!((cache.revision().unwrap(), cache.device_count().unwrap()), (3, 1));
        assert!(matches!(
            cache.apply_step(&page(BatchKind::Delta, 3..=4), next),
            Err(CacheError::SnapshotNotStarted)
        ));
    }

    /// A gateway upgraded from a version that kept its registry copy in `edge.redb` keeps it.
    #[test]
    fn an_older_layout_moves_to_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = redb::Database::create(dir.path().join("edge.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            let Change::UpsertDevice(d) = device(1) else { unreachable!() };
            txn.open_table(DEVICES)
                .unwrap()
                .insert(d.id.to_bytes(), encode(d.as_ref()).unwrap().as_slice())
                .unwrap();
            txn.open_table(BY_MAC).unwrap().insert(mac(1).to_string().as_str(), d.id.to_bytes()).unwrap();
            txn.open_table(BY_LOGIN).unwrap().insert("senso_1", d.id.to_bytes()).unwrap();
            txn.open_table(META).unwrap().insert(META_REVISION, 41).unwrap();
            txn.open_table(META).unwrap().insert("log_seq", 7).unwrap();
            txn.commit().unwrap();
        }
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!((cache.revision().unwrap(), cache.device_count().unwrap()), (41, 1));
        assert!(
            cache.device_by_mac(mac(1)).unwrap().is_some()
                && cache.device_by_login("senso_1").unwrap().is_some()
        );
        drop(cache);
        let db = redb::Database::open(dir.path().join("edge.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        assert!(txn.open_table(DEVICES).is_err(), "the old copy is gone from edge.redb");
        let meta = txn.open_table(META).unwrap();
        assert!(meta.get(META_REVISION).unwrap().is_none());
        assert_eq!(meta.get("log_seq").unwrap().map(|v| v.value()), Some(7), "the rest stays");
        drop((meta, txn, db));
        // Opened again: nothing moves twice.
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!((cache.revision().unwrap(), cache.device_count().unwrap()), (41, 1));
    }

    /// A device whose login is the legacy one of its MAC is found through the MAC index (no login
    /// entry of its own); any other login has its entry.
    #[test]
    fn a_legacy_login_is_found_through_the_mac_index() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let with_login = |n: u8, login: String| {
            let Change::UpsertDevice(mut d) = device(n) else { unreachable!() };
            d.login = login;
            Change::UpsertDevice(d)
        };
        let changes = vec![with_login(1, mac(1).legacy_login()), with_login(2, "custom".into())];
        cache.apply(&SyncBatch { revision: 1, kind: BatchKind::Snapshot, more: false, changes }, 1).unwrap();
        let found = cache.device_by_login(&mac(1).legacy_login()).unwrap().expect("by its MAC");
        assert_eq!(found.record.id, DeviceId::from_bytes([1; 16]));
        assert!(
            cache.device_by_login(&mac(2).legacy_login()).unwrap().is_none(),
            "device 2's login is another"
        );
        assert_eq!(
            cache.device_by_login("custom").unwrap().unwrap().record.id,
            DeviceId::from_bytes([2; 16])
        );
        assert!(cache.device_by_login(&mac(1).legacy_login().to_uppercase()).unwrap().is_none());
        let txn = cache.registry.begin_read().unwrap();
        assert_eq!(redb::ReadableTableMetadata::len(&txn.open_table(BY_LOGIN).unwrap()).unwrap(), 1);
    }

    /// A device record replaced with another MAC and login leaves no stale index entry.
    #[test]
    fn a_replaced_device_leaves_no_stale_index() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.apply(&page(BatchKind::Snapshot, 1..=1), 1).unwrap();
        let Change::UpsertDevice(mut d) = device(1) else { unreachable!() };
        d.uid = WireUid::Ethernet(mac(0x42));
        d.login = "senso_renamed".into();
        let delta = SyncBatch {
            revision: 2,
            kind: BatchKind::Delta,
            more: false,
            changes: vec![Change::UpsertDevice(d)],
        };
        cache.apply(&delta, 2).unwrap();
        assert!(
            cache.device_by_mac(mac(1)).unwrap().is_none()
                && cache.device_by_login("senso_1").unwrap().is_none()
        );
        assert!(cache.device_by_mac(mac(0x42)).unwrap().is_some());
        assert!(cache.device_by_login("senso_renamed").unwrap().is_some());
    }
}
