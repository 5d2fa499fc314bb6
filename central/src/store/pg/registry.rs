//! The registry's records, their change log and the devices' statuses in PostgreSQL.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use postgres::types::{Json, Type};

use super::extras::big;

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

/// A record from an `(id, body)` row of its kind's table.
fn decode_record(kind: EntityKind, row: &postgres::Row) -> Result<Record, StoreError> {
    let id: uuid::Uuid = row.get(0);
    let key = id.simple();
    Ok(match kind {
        EntityKind::Site => Record::Site(from_json(row, 1, kind, key)?),
        EntityKind::Building => Record::Building(from_json(row, 1, kind, key)?),
        EntityKind::Room => Record::Room(from_json(row, 1, kind, key)?),
        EntityKind::DeviceType => Record::DeviceType(from_json(row, 1, kind, key)?),
        EntityKind::Device => Record::Device(Box::new(from_json(row, 1, kind, key)?)),
        EntityKind::Gateway => Record::Gateway(Box::new(from_json(row, 1, kind, key)?)),
        EntityKind::User => Record::User(from_json(row, 1, kind, key)?),
        EntityKind::Token => Record::Token(from_json(row, 1, kind, key)?),
    })
}

/// What a batch leaves of each record it touches: the last write of a key wins (the batch is
/// one transaction, so the states in between are never seen). In key order: every process
/// locks rows in the same order, so two batches never deadlock each other.
type FinalStates<'a> = BTreeMap<(EntityKind, [u8; 16]), Option<&'a Record>>;

fn final_states(writes: &[Write]) -> FinalStates<'_> {
    let mut out = BTreeMap::new();
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
        let mut puts: BTreeMap<EntityKind, (Vec<uuid::Uuid>, Vec<Json<serde_json::Value>>)> = BTreeMap::new();
        let mut deletes: BTreeMap<EntityKind, Vec<uuid::Uuid>> = BTreeMap::new();
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
            let sql = format!("DELETE FROM {} WHERE id = ANY($1)", table(*kind));
            txn.execute_typed(&sql, &[(ids, Type::UUID_ARRAY)]).map_err(pg_error)?;
        }
        // What the store keeps of a device beside its record goes with it (also when the batch
        // deletes then re-creates it, as the embedded store does).
        let gone: Vec<uuid::Uuid> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Delete(EntityKind::Device, key) => Some(uuid(*key)),
                _ => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !gone.is_empty() {
            txn.execute_typed(
                "WITH s AS (DELETE FROM device_statuses WHERE device = ANY($1)), \
                      l AS (DELETE FROM device_logs WHERE device = ANY($1)), \
                      o AS (DELETE FROM device_orders WHERE device = ANY($1)) \
                 DELETE FROM status_history WHERE device = ANY($1)",
                &[(&gone, Type::UUID_ARRAY)],
            )
            .map_err(pg_error)?;
        }
        for (kind, (ids, bodies)) in &puts {
            let sql = format!(
                "INSERT INTO {} (id, body) SELECT * FROM unnest($1::uuid[], $2::json[]) \
                 ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                table(*kind)
            );
            txn.execute_typed(&sql, &[(ids, Type::UUID_ARRAY), (bodies, Type::JSON_ARRAY)])
                .map_err(pg_error)?;
        }
        Ok(())
    }

    /// Appends the batch's change-log entries, numbered from `first`, and notifies the other
    /// processes (delivered at the commit to every `listen`er), in one round trip.
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
        let last = (first + revisions.len() as i64 - 1).to_string();
        txn.query_typed(
            "WITH logged AS (INSERT INTO changes (revision, kind, id, deleted) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::boolean[])) \
             SELECT pg_notify('neosens_changes', $5)",
            &[
                (&revisions, Type::INT8_ARRAY),
                (&kinds, Type::TEXT_ARRAY),
                (&ids, Type::UUID_ARRAY),
                (&deleted, Type::BOOL_ARRAY),
                (&last, Type::TEXT),
            ],
        )
        .map_err(pg_error)?;
        Ok(())
    }
}

impl PgStore {
    /// A registry batch, refused with [`StoreError::Stale`] when `expected` is given and the
    /// database has moved past it.
    fn apply_checked(
        &self,
        expected: Option<u64>,
        writes: &[Write],
        audit: &[AuditEntry],
    ) -> Result<u64, StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        let n = i64::try_from(writes.len()).map_err(|_| StoreError::Backend("batch too large".into()))?;
        // The row lock this update takes is held to the commit: batches from every replica
        // are numbered one after the other, never interleaved. With `expected`, the update only
        // matches while the revision is still that one (re-checked after waiting for the lock).
        let counted = match expected {
            Some(e) => txn.query_typed_opt(
                "UPDATE neosens_revision SET revision = revision + $1 WHERE revision = $2 RETURNING revision",
                &[(&n, Type::INT8), (&big(e), Type::INT8)],
            ),
            None => txn.query_typed_opt(
                "UPDATE neosens_revision SET revision = revision + $1 RETURNING revision",
                &[(&n, Type::INT8)],
            ),
        }
        .map_err(pg_error)?;
        let Some(row) = counted else {
            let current: i64 =
                txn.query_one("SELECT revision FROM neosens_revision", &[]).map_err(pg_error)?.get(0);
            return Err(StoreError::Stale {
                expected: expected.unwrap_or(0),
                current: u64::try_from(current).unwrap_or(0),
            });
        };
        let last: i64 = row.get(0);
        if !writes.is_empty() {
            self.write_records(&mut txn, writes)?;
            Self::log_changes(&mut txn, writes, last - n + 1)?;
        }
        super::extras::append_audit_in(&mut txn, audit, self.audit_retention())?;
        self.commit(txn, started)?;
        Ok(u64::try_from(last).unwrap_or(0))
    }
}

/// A read-only transaction that sees one snapshot of the whole database (as a redb read
/// transaction does), and the revision of that snapshot.
fn snapshot(conn: &mut postgres::Client) -> Result<(postgres::Transaction<'_>, i64), StoreError> {
    let mut txn = conn
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg_error)?;
    let revision: i64 = txn.query_one("SELECT revision FROM neosens_revision", &[]).map_err(pg_error)?.get(0);
    Ok((txn, revision))
}

/// The current records of `keys` that exist, one query per kind.
fn fetch_records(
    conn: &mut impl postgres::GenericClient,
    keys: &[(EntityKind, [u8; 16])],
) -> Result<Vec<Record>, StoreError> {
    let mut by_kind: BTreeMap<EntityKind, Vec<uuid::Uuid>> = BTreeMap::new();
    for (kind, key) in keys {
        by_kind.entry(*kind).or_default().push(uuid(*key));
    }
    let mut out = Vec::with_capacity(keys.len());
    for (kind, ids) in by_kind {
        let sql = format!("SELECT id, body FROM {} WHERE id = ANY($1)", table(kind));
        for row in conn.query(&sql, &[&ids]).map_err(pg_error)? {
            out.push(decode_record(kind, &row)?);
        }
    }
    Ok(out)
}

impl RegistryStore for PgStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let mut conn = self.connection()?;
        let (mut txn, revision) = snapshot(&mut conn)?;
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
        self.apply_checked(None, writes, audit)
    }

    fn apply_at(&self, expected: u64, writes: &[Write], audit: &[AuditEntry]) -> Result<u64, StoreError> {
        self.apply_checked(Some(expected), writes, audit)
    }

    fn records(&self, keys: &[(EntityKind, [u8; 16])]) -> Result<Vec<Record>, StoreError> {
        fetch_records(&mut *self.connection()?, keys)
    }

    fn changed_since(&self, revision: u64) -> Result<crate::store::CaughtUp, StoreError> {
        let mut conn = self.connection()?;
        // One snapshot: the revision, the keys changed up to it and their bodies at it.
        let (mut txn, now) = snapshot(&mut conn)?;
        let from = i64::try_from(revision).unwrap_or(i64::MAX);
        let rows = txn
            .query(
                "SELECT kind, id FROM changes WHERE revision > $1 GROUP BY kind, id ORDER BY min(revision)",
                &[&from],
            )
            .map_err(pg_error)?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let kind: &str = row.get(0);
            let id: uuid::Uuid = row.get(1);
            let kind = kind_of(kind)
                .ok_or_else(|| StoreError::Backend(format!("change log: unknown kind {kind:?}")))?;
            keys.push((kind, *id.as_bytes()));
        }
        let mut found: HashMap<(EntityKind, [u8; 16]), Record> =
            fetch_records(&mut txn, &keys)?.into_iter().map(|r| ((r.kind(), r.key()), r)).collect();
        txn.commit().map_err(pg_error)?;
        let changed = keys.into_iter().map(|(kind, key)| (kind, key, found.remove(&(kind, key)))).collect();
        Ok(crate::store::CaughtUp { revision: u64::try_from(now).unwrap_or(0), changed })
    }

    fn listen(&self) -> Result<Option<Box<dyn crate::store::ChangeListener>>, StoreError> {
        Ok(Some(Box::new(self.listener()?)))
    }

    fn shared(&self) -> bool {
        true
    }

    fn check_keys(&self, check: &[u8; 32]) -> Result<bool, StoreError> {
        super::shared::check_keys(self, check)
    }

    fn leader_lock(&self) -> Result<Option<Box<dyn crate::store::LeaderLock>>, StoreError> {
        Ok(Some(Box::new(self.leader_session()?)))
    }

    fn statuses_since(&self, cursor: u64) -> Result<Option<crate::store::StatusChanges>, StoreError> {
        super::shared::statuses_since(self, cursor).map(Some)
    }

    fn put_statuses(
        &self,
        statuses: &[([u8; 16], DeviceStatusRecord)],
        history: &[StatusHistoryEntry],
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        // Last one of a device wins, as in a batch of redb inserts; in key order (no deadlock
        // between two processes' batches).
        let mut last: BTreeMap<[u8; 16], &DeviceStatusRecord> = BTreeMap::new();
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
            // The batch's number from the counter row, whose lock is held to the commit: batches
            // commit in the order of their numbers, so a replica reading `seq > cursor` never
            // skips one that commits later with a smaller number. A status older than the one
            // stored (another replica's batch, committed first) does not replace it.
            txn.execute_typed(
                "WITH n AS (UPDATE neosens_status_seq SET last = last + 1 RETURNING last) \
                 INSERT INTO device_statuses (device, body, seq) \
                 SELECT u.device, u.body, n.last FROM unnest($1::uuid[], $2::json[]) AS u(device, body), n \
                 ON CONFLICT (device) DO UPDATE SET body = excluded.body, seq = excluded.seq \
                 WHERE NOT ((device_statuses.body->>'last_seen')::bigint \
                    > (excluded.body->>'last_seen')::bigint) IS TRUE",
                &[(&ids, Type::UUID_ARRAY), (&bodies, Type::JSON_ARRAY)],
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
