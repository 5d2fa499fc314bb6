//! The registry's records, their change log and the devices' statuses in PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use postgres::types::Json;

use super::{PgStore, from_json, json, kind_name, kind_of, pg_error, table, uuid};
use crate::model::{AuditEntry, DeviceStatusRecord, EntityKind, Record};
use crate::store::{ChangeEntry, RegistryStore, Snapshot, StatusHistoryEntry, StoreError, Write};

/// Reads every record of one kind.
fn read_all<T: serde::de::DeserializeOwned>(
    txn: &mut postgres::Transaction<'_>,
    kind: EntityKind,
) -> Result<Vec<T>, StoreError> {
    let rows =
        txn.query(&format!("SELECT id, body FROM {} ORDER BY id", table(kind)), &[]).map_err(pg_error)?;
    rows.iter()
        .map(|row| {
            let id: uuid::Uuid = row.get(0);
            from_json(row, 1, kind, id.simple())
        })
        .collect()
}

pub(super) fn encoded(record: &Record) -> Result<Json<serde_json::Value>, StoreError> {
    match record {
        Record::Site(r) => json(r),
        Record::Building(r) => json(r),
        Record::Room(r) => json(r),
        Record::DeviceType(r) => json(r),
        Record::Device(r) => json(r.as_ref()),
        Record::Gateway(r) => json(r),
        Record::User(r) => json(r),
        Record::Token(r) => json(r),
    }
}

/// What a batch leaves of each record it touches: the last write of a key wins (the batch is
/// one transaction, so the states in between are never seen).
type FinalStates<'a> = HashMap<(EntityKind, [u8; 16]), Option<&'a Record>>;

fn final_states(writes: &[Write]) -> FinalStates<'_> {
    let mut out = HashMap::with_capacity(writes.len());
    for write in writes {
        match write {
            Write::Put(record) => out.insert((record.kind(), record.key()), Some(record)),
            Write::Delete(kind, key) => out.insert((*kind, *key), None),
        };
    }
    out
}

impl PgStore {
    /// Writes what `writes` leave, one statement per kind and operation (arrays, not one
    /// round trip per record: an import of 10,000 devices is a handful of statements).
    fn write_records(&self, txn: &mut postgres::Transaction<'_>, writes: &[Write]) -> Result<(), StoreError> {
        let mut puts: HashMap<EntityKind, (Vec<uuid::Uuid>, Vec<Json<serde_json::Value>>)> = HashMap::new();
        let mut deletes: HashMap<EntityKind, Vec<uuid::Uuid>> = HashMap::new();
        for ((kind, key), state) in final_states(writes) {
            match state {
                Some(record) => {
                    let entry = puts.entry(kind).or_default();
                    entry.0.push(uuid(key));
                    entry.1.push(encoded(record)?);
                }
                None => deletes.entry(kind).or_default().push(uuid(key)),
            }
        }
        for (kind, ids) in &deletes {
            txn.execute(&format!("DELETE FROM {} WHERE id = ANY($1)", table(*kind)), &[ids])
                .map_err(pg_error)?;
        }
        // What the store keeps of a device beside its record goes with it (also when the batch
        // deletes then re-creates it, as the embedded store does).
        let gone: Vec<uuid::Uuid> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Delete(EntityKind::Device, key) => Some(uuid(*key)),
                _ => None,
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !gone.is_empty() {
            for t in ["device_statuses", "device_logs", "device_orders", "status_history"] {
                let column = "device";
                txn.execute(&format!("DELETE FROM {t} WHERE {column} = ANY($1)"), &[&gone])
                    .map_err(pg_error)?;
            }
        }
        for (kind, (ids, bodies)) in &puts {
            let sql = format!(
                "INSERT INTO {} (id, body) SELECT * FROM unnest($1::uuid[], $2::json[]) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                table(*kind)
            );
            txn.execute(&sql, &[ids, bodies]).map_err(pg_error)?;
        }
        Ok(())
    }

    /// Appends the batch's change-log entries, numbered from `first`.
    fn log_changes(
        txn: &mut postgres::Transaction<'_>,
        writes: &[Write],
        first: i64,
    ) -> Result<(), StoreError> {
        let mut revisions = Vec::with_capacity(writes.len());
        let mut kinds = Vec::with_capacity(writes.len());
        let mut ids = Vec::with_capacity(writes.len());
        let mut deleted = Vec::with_capacity(writes.len());
        for (n, write) in (first..).zip(writes) {
            let (kind, key, del) = match write {
                Write::Put(r) => (r.kind(), r.key(), false),
                Write::Delete(kind, key) => (*kind, *key, true),
            };
            revisions.push(n);
            kinds.push(kind_name(kind));
            ids.push(uuid(key));
            deleted.push(del);
        }
        txn.execute(
            "INSERT INTO changes (revision, kind, id, deleted) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::boolean[])",
            &[&revisions, &kinds, &ids, &deleted],
        )
        .map_err(pg_error)?;
        Ok(())
    }
}

impl RegistryStore for PgStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let mut conn = self.connection()?;
        // One snapshot of the whole database, as a redb read transaction gives.
        let mut txn = conn
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg_error)?;
        let revision: i64 =
            txn.query_one("SELECT revision FROM neosens_revision", &[]).map_err(pg_error)?.get(0);
        let statuses = txn
            .query("SELECT device, body FROM device_statuses ORDER BY device", &[])
            .map_err(pg_error)?
            .iter()
            .map(|row| {
                let id: uuid::Uuid = row.get(0);
                let status: DeviceStatusRecord = from_json(row, 1, EntityKind::Device, id.simple())?;
                Ok((*id.as_bytes(), status))
            })
            .collect::<Result<_, StoreError>>()?;
        let snapshot = Snapshot {
            revision: u64::try_from(revision).unwrap_or(0),
            sites: read_all(&mut txn, EntityKind::Site)?,
            buildings: read_all(&mut txn, EntityKind::Building)?,
            rooms: read_all(&mut txn, EntityKind::Room)?,
            device_types: read_all(&mut txn, EntityKind::DeviceType)?,
            devices: read_all(&mut txn, EntityKind::Device)?,
            statuses,
            gateways: read_all(&mut txn, EntityKind::Gateway)?,
            users: read_all(&mut txn, EntityKind::User)?,
            tokens: read_all(&mut txn, EntityKind::Token)?,
        };
        txn.commit().map_err(pg_error)?;
        Ok(snapshot)
    }

    fn apply(&self, writes: &[Write], audit: &[AuditEntry]) -> Result<u64, StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        let n = i64::try_from(writes.len()).map_err(|_| StoreError::Backend("batch too large".into()))?;
        // The row lock taken here is held to the commit: batches from every replica are
        // numbered one after the other, never interleaved.
        let last: i64 = txn
            .query_one("UPDATE neosens_revision SET revision = revision + $1 RETURNING revision", &[&n])
            .map_err(pg_error)?
            .get(0);
        if !writes.is_empty() {
            self.write_records(&mut txn, writes)?;
            Self::log_changes(&mut txn, writes, last - n + 1)?;
        }
        super::extras::append_audit_in(&mut txn, audit, self.audit_retention())?;
        self.commit(txn, started)?;
        Ok(u64::try_from(last).unwrap_or(0))
    }

    fn put_statuses(
        &self,
        statuses: &[([u8; 16], DeviceStatusRecord)],
        history: &[StatusHistoryEntry],
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        // Last one of a device wins, as in a batch of redb inserts.
        let mut last: HashMap<[u8; 16], &DeviceStatusRecord> = HashMap::with_capacity(statuses.len());
        for (key, status) in statuses {
            last.insert(*key, status);
        }
        let mut ids = Vec::with_capacity(last.len());
        let mut bodies = Vec::with_capacity(last.len());
        for (key, status) in last {
            ids.push(uuid(key));
            bodies.push(json(status)?);
        }
        if !ids.is_empty() {
            txn.execute(
                "INSERT INTO device_statuses (device, body) SELECT * FROM unnest($1::uuid[], $2::json[]) \
                 ON CONFLICT (device) DO UPDATE SET body = excluded.body",
                &[&ids, &bodies],
            )
            .map_err(pg_error)?;
        }
        super::extras::append_history_in(&mut txn, history)?;
        self.commit(txn, started)
    }

    fn changes_since(&self, revision: u64, limit: usize) -> Result<Vec<ChangeEntry>, StoreError> {
        let mut conn = self.connection()?;
        let after = i64::try_from(revision).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .query(
                "SELECT revision, kind, id, deleted FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2",
                &[&after, &limit],
            )
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let revision: i64 = row.get(0);
                let kind: &str = row.get(1);
                let id: uuid::Uuid = row.get(2);
                let kind = kind_of(kind).ok_or_else(|| StoreError::Corrupt {
                    kind: EntityKind::Site,
                    key: format!("change {revision}"),
                    reason: format!("unknown kind {kind:?}"),
                })?;
                Ok(ChangeEntry {
                    revision: u64::try_from(revision).unwrap_or(0),
                    kind,
                    key: *id.as_bytes(),
                    deleted: row.get(3),
                })
            })
            .collect()
    }
}
