//! Replicas on one database: the leader's advisory lock, the statuses every replica ingested,
//! acknowledgements written by replicas that do not lead the monitor.

use std::time::Instant;

use super::extras::big;
use super::{PgStore, from_json, json, pg_error};
use crate::model::{Ack, AlertRecord, DeviceStatusRecord, EntityKind};
use crate::store::{LeaderLock, StatusChanges, StoreError};

/// The leader's advisory lock key ("neoslead" in ASCII, as a number); the migrations use
/// another.
const LEADER_LOCK: i64 = 0x6e65_6f73_6c65_6164;

/// How soon the database notices a leader whose machine or link died (its process killed, the
/// kernel closes the connection at once): keepalives after 5 s idle, every 2 s, 3 lost — about
/// 11 s; unacknowledged data 10 s. Only then is the lock free for another replica.
const LEADER_SESSION: &str = "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; \
     SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000; \
     SET application_name = 'neosens-central leader'";

/// A connection of its own holding (or trying to take) the leader's lock; dropping it ends the
/// session, and so releases the lock.
pub struct PgLeaderSession(super::OwnConnection);

impl PgStore {
    /// A new session for the leader's lock (not from the pool: the lock lives as long as the
    /// session, which must end when leadership is given up).
    pub fn leader_session(&self) -> Result<PgLeaderSession, StoreError> {
        Ok(PgLeaderSession(self.own_connection(LEADER_SESSION)?))
    }
}

impl PgLeaderSession {
    fn client(&mut self) -> &mut postgres::Client {
        self.0.client()
    }
}

impl LeaderLock for PgLeaderSession {
    fn try_acquire(&mut self) -> Result<bool, StoreError> {
        let row =
            self.client().query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]).map_err(pg_error)?;
        Ok(row.get(0))
    }

    fn check(&mut self) -> Result<(), StoreError> {
        // The lock itself, not only the link: held by this very backend.
        let row = self
            .client()
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND pid = pg_backend_pid() AND objid = ($1::bigint & 4294967295)::oid \
                 AND classid = ($1::bigint >> 32)::oid",
                &[&LEADER_LOCK],
            )
            .map_err(pg_error)?;
        let held: i64 = row.get(0);
        if held == 0 {
            return Err(StoreError::Backend("postgresql: the leader's lock is no longer held".into()));
        }
        Ok(())
    }
}

/// Statuses stored after batch number `cursor` (0: all): each device's row at most once, so one
/// read is bounded by the number of devices.
pub(super) fn statuses_since(store: &PgStore, cursor: u64) -> Result<StatusChanges, StoreError> {
    let mut conn = store.connection()?;
    // From 0: every status, those stored before statuses were numbered (0) too.
    let rows = if cursor == 0 {
        conn.query("SELECT device, body, seq FROM device_statuses", &[])
    } else {
        conn.query("SELECT device, body, seq FROM device_statuses WHERE seq > $1", &[&big(cursor)])
    }
    .map_err(pg_error)?;
    let mut changes = StatusChanges { cursor, statuses: Vec::with_capacity(rows.len()) };
    for row in &rows {
        let device: uuid::Uuid = row.get(0);
        let status: DeviceStatusRecord = from_json(row, 1, EntityKind::Device, device.simple())?;
        let seq = u64::try_from(row.get::<_, i64>(2)).unwrap_or(0);
        changes.cursor = changes.cursor.max(seq);
        changes.statuses.push((seq, *device.as_bytes(), status));
    }
    Ok(changes)
}

/// Stores alerts, keeping any acknowledgement newer than the one a record carries (written
/// meanwhile by another replica: see [`AlertRecord::adopt_newer_ack`]). Rows are locked in id
/// order.
pub(super) fn put_alerts_in(
    txn: &mut postgres::Transaction<'_>,
    alerts: &[AlertRecord],
) -> Result<(), StoreError> {
    let mut last: std::collections::BTreeMap<u64, AlertRecord> = std::collections::BTreeMap::new();
    for alert in alerts {
        last.insert(alert.id, alert.clone());
    }
    if last.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = last.keys().map(|id| big(*id)).collect();
    let stored = txn
        .query("SELECT id, body FROM alerts WHERE id = ANY($1) ORDER BY id FOR UPDATE", &[&ids])
        .map_err(pg_error)?;
    for row in &stored {
        let id: i64 = row.get(0);
        let theirs: AlertRecord = from_json(row, 1, EntityKind::Device, format!("alert {id}"))?;
        if let Some(ours) = last.get_mut(&theirs.id) {
            ours.adopt_newer_ack(&theirs);
        }
    }
    let bodies = last.values().map(json).collect::<Result<Vec<_>, _>>()?;
    txn.execute(
        "INSERT INTO alerts (id, body) SELECT * FROM unnest($1::bigint[], $2::json[]) \
         ON CONFLICT (id) DO UPDATE SET body = excluded.body",
        &[&ids, &bodies],
    )
    .map_err(pg_error)?;
    Ok(())
}

/// Writes an acknowledgement into the stored alert (its row locked meanwhile).
pub(super) fn acknowledge(store: &PgStore, id: u64, ack: &Ack) -> Result<Option<AlertRecord>, StoreError> {
    let started = Instant::now();
    let mut conn = store.connection()?;
    let mut txn = conn.transaction().map_err(pg_error)?;
    let Some(row) =
        txn.query_opt("SELECT body FROM alerts WHERE id = $1 FOR UPDATE", &[&big(id)]).map_err(pg_error)?
    else {
        return Ok(None);
    };
    let mut alert: AlertRecord = from_json(&row, 0, EntityKind::Device, format!("alert {id}"))?;
    alert.acknowledge(ack.clone());
    txn.execute("UPDATE alerts SET body = $2 WHERE id = $1", &[&big(id), &json(&alert)?])
        .map_err(pg_error)?;
    store.commit(txn, started)?;
    Ok(Some(alert))
}

/// Queues items for the leader, keeping the newest [`crate::store::RELAYED_KEPT`].
pub(super) fn relay_to_leader(store: &PgStore, items: &[String]) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut conn = store.connection()?;
    let mut txn = conn.transaction().map_err(pg_error)?;
    let kept = i64::try_from(crate::store::RELAYED_KEPT).unwrap_or(i64::MAX);
    txn.execute("INSERT INTO relayed_to_leader (body) SELECT * FROM unnest($1::text[])", &[&items])
        .map_err(pg_error)?;
    // A statement of its own: a data-modifying CTE's rows are not visible to its main statement.
    txn.execute(
        "DELETE FROM relayed_to_leader WHERE seq <= (SELECT max(seq) FROM relayed_to_leader) - $1",
        &[&kept],
    )
    .map_err(pg_error)?;
    store.commit(txn, started)
}

/// Takes the oldest `limit` relayed items (removed in the same transaction).
pub(super) fn take_relayed(store: &PgStore, limit: usize) -> Result<Vec<String>, StoreError> {
    let started = Instant::now();
    let mut conn = store.connection()?;
    let mut txn = conn.transaction().map_err(pg_error)?;
    let rows = txn
        .query(
            "DELETE FROM relayed_to_leader WHERE seq IN \
             (SELECT seq FROM relayed_to_leader ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING seq, body",
            &[&i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .map_err(pg_error)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    store.commit(txn, started)?;
    let mut taken: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    taken.sort_by_key(|(seq, _)| *seq);
    Ok(taken.into_iter().map(|(_, body)| body).collect())
}

/// Records the keys' check value when none is, and compares.
pub(super) fn check_keys(store: &PgStore, check: &[u8; 32]) -> Result<bool, StoreError> {
    let mut conn = store.connection()?;
    conn.execute(
        "INSERT INTO neosens_keys (key_check) VALUES ($1) ON CONFLICT DO NOTHING",
        &[&check.as_slice()],
    )
    .map_err(pg_error)?;
    // A statement of its own: it sees the row whichever replica's insert won.
    let recorded: Vec<u8> =
        conn.query_one("SELECT key_check FROM neosens_keys", &[]).map_err(pg_error)?.get(0);
    Ok(recorded == check)
}
