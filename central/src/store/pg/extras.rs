//! What PostgreSQL keeps beside the registry: device logs and orders, status histories,
//! alerts, dashboard settings and the audit trail — each bounded the way the embedded store
//! bounds it, pruned in the transaction that adds to it.

use std::collections::BTreeMap;
use std::time::Instant;

use postgres::types::Type;

use super::{PgStore, from_json, json, pg_error, uuid};
use crate::audit::AuditRetention;
use crate::model::{AlertRecord, AuditEntry, EntityKind, OrderRecord, Timestamp};
use crate::store::{
    AUDIT_MAX_SCAN, AlertStore, AuditPage, AuditStore, DeviceHistory, DeviceLogEntry, SettingsStore,
    StatusHistoryEntry, StatusHistoryStore, StoreError,
};

/// Converts a count or number for a `bigint` parameter.
pub(super) fn big(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Appends to a device's bounded list (`device_logs` or `device_orders`), dropping its
/// oldest beyond `keep` in the same transaction.
fn append_bounded(
    store: &PgStore,
    table: &str,
    device: [u8; 16],
    body: postgres::types::Json<serde_json::Value>,
    keep: usize,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut conn = store.connection()?;
    let mut txn = conn.transaction().map_err(pg_error)?;
    let id = uuid(device);
    txn.execute(&format!("INSERT INTO {table} (device, body) VALUES ($1, $2)"), &[&id, &body])
        .map_err(pg_error)?;
    txn.execute(
        &format!(
            "DELETE FROM {table} WHERE device = $1 AND seq <= \
             (SELECT seq FROM {table} WHERE device = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1)"
        ),
        &[&id, &big(keep)],
    )
    .map_err(pg_error)?;
    store.commit(txn, started)
}

/// A device's newest entries of a bounded list, newest first.
fn newest<T: serde::de::DeserializeOwned>(
    store: &PgStore,
    table: &str,
    device: [u8; 16],
    limit: usize,
) -> Result<Vec<T>, StoreError> {
    let mut conn = store.connection()?;
    let id = uuid(device);
    let rows = conn
        .query(
            &format!("SELECT body FROM {table} WHERE device = $1 ORDER BY seq DESC LIMIT $2"),
            &[&id, &big(limit)],
        )
        .map_err(pg_error)?;
    rows.iter().map(|row| from_json(row, 0, EntityKind::Device, id.simple())).collect()
}

impl DeviceHistory for PgStore {
    fn append_device_log(&self, entry: &DeviceLogEntry) -> Result<(), StoreError> {
        append_bounded(self, "device_logs", entry.device, json(entry)?, crate::store::MAX_LOGS_PER_DEVICE)
    }

    fn device_logs(&self, device: [u8; 16], limit: usize) -> Result<Vec<DeviceLogEntry>, StoreError> {
        newest(self, "device_logs", device, limit)
    }

    fn append_order(&self, device: [u8; 16], order: &OrderRecord) -> Result<(), StoreError> {
        append_bounded(self, "device_orders", device, json(order)?, crate::store::MAX_ORDERS_PER_DEVICE)
    }

    fn device_orders(&self, device: [u8; 16], limit: usize) -> Result<Vec<OrderRecord>, StoreError> {
        newest(self, "device_orders", device, limit)
    }
}

/// Appends statuses to their devices' histories and prunes each device to its retention (by
/// age before its newest status, then by count), inside `txn`: two statements for the batch.
pub(super) fn append_history_in(
    txn: &mut postgres::Transaction<'_>,
    entries: &[StatusHistoryEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    // A (device, time) seen twice keeps the last payload; a device's retention is its last.
    // In key order: two processes' batches lock rows in the same order (no deadlock).
    let mut rows: BTreeMap<([u8; 16], i64), &str> = BTreeMap::new();
    let mut keep: BTreeMap<[u8; 16], crate::store::HistoryRetention> = BTreeMap::new();
    for e in entries {
        rows.insert((e.device, e.at_ms), &e.payload);
        keep.insert(e.device, e.keep);
    }
    let (mut devices, mut times, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
    for ((device, at), payload) in rows {
        devices.push(uuid(device));
        times.push(at);
        payloads.push(payload.as_bytes());
    }
    txn.execute_typed(
        "INSERT INTO status_history (device, at_ms, payload) \
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bytea[]) \
         ON CONFLICT (device, at_ms) DO UPDATE SET payload = excluded.payload",
        &[(&devices, Type::UUID_ARRAY), (&times, Type::INT8_ARRAY), (&payloads, Type::BYTEA_ARRAY)],
    )
    .map_err(pg_error)?;
    let (mut ids, mut max_statuses, mut max_age_ms) = (Vec::new(), Vec::new(), Vec::new());
    for (device, k) in keep {
        ids.push(uuid(device));
        max_statuses.push(i64::from(k.max_statuses));
        max_age_ms.push(i64::from(k.max_age_days) * 86_400_000);
    }
    txn.execute_typed(
        "WITH d AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS d(device, max_statuses, max_age_ms)), \
         bounds AS (SELECT d.device, \
             (SELECT max(at_ms) FROM status_history s WHERE s.device = d.device) - d.max_age_ms AS cutoff, \
             (SELECT at_ms FROM status_history s WHERE s.device = d.device \
                ORDER BY at_ms DESC OFFSET d.max_statuses LIMIT 1) AS last_gone \
           FROM d) \
         DELETE FROM status_history h USING bounds b \
         WHERE h.device = b.device AND (h.at_ms < b.cutoff OR h.at_ms <= b.last_gone)",
        &[(&ids, Type::UUID_ARRAY), (&max_statuses, Type::INT8_ARRAY), (&max_age_ms, Type::INT8_ARRAY)],
    )
    .map_err(pg_error)?;
    Ok(())
}

impl StatusHistoryStore for PgStore {
    fn status_history(
        &self,
        device: [u8; 16],
        since_ms: i64,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut conn = self.connection()?;
        let id = uuid(device);
        let rows = conn
            .query(
                "SELECT at_ms, payload FROM status_history WHERE device = $1 AND at_ms >= $2 AND at_ms < $3 \
                 ORDER BY at_ms DESC LIMIT $4",
                &[&id, &since_ms, &before_ms, &big(limit)],
            )
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|row| {
                let payload: Vec<u8> = row.get(1);
                (row.get(0), String::from_utf8_lossy(&payload).into_owned())
            })
            .collect())
    }
}

impl AlertStore for PgStore {
    fn put_alerts(&self, alerts: &[AlertRecord], forget: &[u64]) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        super::shared::put_alerts_in(&mut txn, alerts)?;
        if !forget.is_empty() {
            let gone: Vec<i64> = forget.iter().map(|id| big(*id)).collect();
            txn.execute("DELETE FROM alerts WHERE id = ANY($1)", &[&gone]).map_err(pg_error)?;
        }
        self.commit(txn, started)
    }

    fn acknowledge(&self, id: u64, ack: &crate::model::Ack) -> Result<Option<AlertRecord>, StoreError> {
        super::shared::acknowledge(self, id, ack)
    }

    fn relay_to_leader(&self, items: &[String]) -> Result<(), StoreError> {
        super::shared::relay_to_leader(self, items)
    }

    fn take_relayed(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        super::shared::take_relayed(self, limit)
    }

    fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        let mut conn = self.connection()?;
        let rows = conn.query("SELECT id, body FROM alerts ORDER BY id", &[]).map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.get(0);
                from_json(row, 1, EntityKind::Device, format!("alert {id}"))
            })
            .collect()
    }
}

impl SettingsStore for PgStore {
    fn user_settings(&self, user: [u8; 16]) -> Result<Option<String>, StoreError> {
        let mut conn = self.connection()?;
        let row = conn
            .query_opt("SELECT settings FROM user_settings WHERE user_id = $1", &[&uuid(user)])
            .map_err(pg_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn put_user_settings(&self, user: [u8; 16], settings: Option<&str>) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        match settings {
            Some(text) => txn.execute(
                "INSERT INTO user_settings (user_id, settings) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings",
                &[&uuid(user), &text],
            ),
            None => txn.execute("DELETE FROM user_settings WHERE user_id = $1", &[&uuid(user)]),
        }
        .map_err(pg_error)?;
        self.commit(txn, started)
    }
}

/// Entries removed by age in one append at most (the rest go with the next ones), so an
/// append after a long pause stays short.
const AGE_PRUNE_STEP: i64 = 10_000;

/// Appends audit entries, numbered after the last one given (never reused: the counter row is
/// locked to the commit, so numbers also follow commit order across replicas), and prunes past
/// `retention`, inside `txn`.
pub(super) fn append_audit_in(
    txn: &mut postgres::Transaction<'_>,
    entries: &[AuditEntry],
    retention: AuditRetention,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let n = big(entries.len());
    let last: i64 = txn
        .query_typed_one("UPDATE neosens_audit_seq SET last = last + $1 RETURNING last", &[(&n, Type::INT8)])
        .map_err(pg_error)?
        .get(0);
    let (mut ids, mut ats, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
    for (id, entry) in (last - n + 1..).zip(entries) {
        let stored = AuditEntry { id: u64::try_from(id).unwrap_or(0), ..entry.clone() };
        ids.push(id);
        ats.push(stored.at.0);
        bodies.push(json(&stored)?);
    }
    txn.execute_typed(
        "INSERT INTO audit (id, at_ms, body) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::json[])",
        &[(&ids, Type::INT8_ARRAY), (&ats, Type::INT8_ARRAY), (&bodies, Type::JSON_ARRAY)],
    )
    .map_err(pg_error)?;
    // Numbers are contiguous from the first kept one (the counter row is transactional and
    // pruning only takes from the front), so the count bound is a range: O(what it removes).
    // The same round trip reads the oldest entry left, to see whether age pruning is due.
    let keep_after = last - big(retention.max_entries.max(1));
    let oldest = txn
        .query_typed_opt(
            "WITH gone AS (DELETE FROM audit WHERE id <= $1) \
             SELECT id, at_ms FROM audit WHERE id > $1 ORDER BY id LIMIT 1",
            &[(&keep_after, Type::INT8)],
        )
        .map_err(pg_error)?;
    // By age, from the front only (as the embedded store: up to the first entry recent
    // enough), at most AGE_PRUNE_STEP entries per append; nothing to do in the usual case.
    let cutoff = retention.cutoff(Timestamp::now()).0;
    if let Some(row) = oldest.filter(|row| row.get::<_, i64>(1) < cutoff) {
        let first: i64 = row.get(0);
        let bound = first + AGE_PRUNE_STEP;
        txn.execute_typed(
            "DELETE FROM audit WHERE id < coalesce( \
                 (SELECT id FROM audit WHERE id < $2 AND at_ms >= $1 ORDER BY id LIMIT 1), $2)",
            &[(&cutoff, Type::INT8), (&bound, Type::INT8)],
        )
        .map_err(pg_error)?;
    }
    Ok(())
}

/// Rows read at a time while paging the audit trail.
const AUDIT_CHUNK: i64 = 1000;

impl AuditStore for PgStore {
    fn set_audit_retention(&self, retention: AuditRetention) {
        self.set_retention(retention);
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut conn = self.connection()?;
        let mut txn = conn.transaction().map_err(pg_error)?;
        append_audit_in(&mut txn, entries, self.audit_retention())?;
        self.commit(txn, started)
    }

    fn last_audit_id(&self) -> Result<u64, StoreError> {
        let mut conn = self.connection()?;
        let last: i64 = conn.query_one("SELECT last FROM neosens_audit_seq", &[]).map_err(pg_error)?.get(0);
        Ok(u64::try_from(last).unwrap_or(0))
    }

    fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: &dyn Fn(&AuditEntry) -> bool,
    ) -> Result<AuditPage, StoreError> {
        let mut conn = self.connection()?;
        let total: i64 = conn.query_one("SELECT count(*) FROM audit", &[]).map_err(pg_error)?.get(0);
        let mut page =
            AuditPage { entries: Vec::new(), next_before: None, total: u64::try_from(total).unwrap_or(0) };
        let mut cursor = before.map_or(i64::MAX, big);
        let mut last = None;
        let mut scanned = 0usize;
        loop {
            let rows = conn
                .query(
                    "SELECT id, body FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
                    &[&cursor, &AUDIT_CHUNK],
                )
                .map_err(pg_error)?;
            let ended = rows.len() < AUDIT_CHUNK as usize;
            for row in &rows {
                let id: i64 = row.get(0);
                if page.entries.len() == limit || scanned == AUDIT_MAX_SCAN {
                    page.next_before = last;
                    return Ok(page);
                }
                last = u64::try_from(id).ok();
                scanned += 1;
                cursor = id;
                let entry: AuditEntry = from_json(row, 1, EntityKind::User, format!("audit entry {id}"))?;
                if keep(&entry) {
                    page.entries.push(entry);
                }
            }
            if ended {
                return Ok(page);
            }
        }
    }
}
