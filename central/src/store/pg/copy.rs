//! `neosens-central copy-store`: moves a whole store (the embedded redb file) into an empty
//! PostgreSQL database in one transaction — records, the change log with its revision numbers
//! (gateways go on syncing from where they were), statuses and histories, alerts, settings,
//! firmware records, the audit trail with its numbers — then reads both back and compares them
//! record by record.

use std::collections::BTreeMap;

use super::extras::big;
use super::{PgStore, json, kind_name, pg_error, table, uuid};
use crate::model::{EntityKind, Record};
use crate::store::{AuditPage, RegistryStore, Snapshot, Store, StoreError};

/// What was copied, by table.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Rows copied (and then found equal) per table.
    pub rows: BTreeMap<&'static str, u64>,
    /// The revision the database now has.
    pub revision: u64,
}

/// Every registry record of a snapshot, by kind and key.
pub fn records(snapshot: &Snapshot) -> BTreeMap<(EntityKind, [u8; 16]), Record> {
    let all = snapshot
        .sites
        .iter()
        .cloned()
        .map(Record::Site)
        .chain(snapshot.buildings.iter().cloned().map(Record::Building))
        .chain(snapshot.rooms.iter().cloned().map(Record::Room))
        .chain(snapshot.device_types.iter().cloned().map(Record::DeviceType))
        .chain(snapshot.devices.iter().cloned().map(|d| Record::Device(Box::new(d))))
        .chain(snapshot.gateways.iter().cloned().map(|g| Record::Gateway(Box::new(g))))
        .chain(snapshot.users.iter().cloned().map(Record::User))
        .chain(snapshot.tokens.iter().cloned().map(Record::Token));
    all.map(|r| ((r.kind(), r.key()), r)).collect()
}

/// Everything a store holds, read through the [`Store`] interface (the same reading for the
/// source and, afterwards, for the copy).
#[derive(Debug, PartialEq)]
struct Contents {
    revision: u64,
    records: BTreeMap<(EntityKind, [u8; 16]), Record>,
    changes: Vec<crate::store::ChangeEntry>,
    statuses: BTreeMap<[u8; 16], crate::model::DeviceStatusRecord>,
    /// Per device, oldest first.
    logs: BTreeMap<[u8; 16], Vec<crate::store::DeviceLogEntry>>,
    orders: BTreeMap<[u8; 16], Vec<crate::model::OrderRecord>>,
    history: BTreeMap<[u8; 16], Vec<(i64, String)>>,
    alerts: Vec<crate::model::AlertRecord>,
    settings: BTreeMap<[u8; 16], String>,
    images: Vec<crate::model::FirmwareImage>,
    campaigns: Vec<crate::model::Campaign>,
    progress: Vec<crate::store::CampaignProgress>,
    census: Vec<(i64, Vec<crate::model::RevisionCount>)>,
    /// Oldest first.
    audit: Vec<crate::model::AuditEntry>,
    /// The last audit number given (entries may have been pruned since).
    audit_last: u64,
    bulk: Vec<crate::model::BulkOperation>,
}

fn read(store: &dyn Store) -> Result<Contents, StoreError> {
    let snapshot = store.load()?;
    let mut changes = Vec::new();
    loop {
        let after = changes.last().map_or(0, |c: &crate::store::ChangeEntry| c.revision);
        let next = store.changes_since(after, 10_000)?;
        if next.is_empty() {
            break;
        }
        changes.extend(next);
    }
    let (mut logs, mut orders, mut history) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for device in &snapshot.devices {
        let key = device.id.to_bytes();
        let mut l = store.device_logs(key, usize::MAX)?;
        l.reverse();
        let mut o = store.device_orders(key, usize::MAX)?;
        o.reverse();
        let mut h = store.status_history(key, i64::MIN, i64::MAX, usize::MAX)?;
        h.reverse();
        logs.insert(key, l);
        orders.insert(key, o);
        history.insert(key, h);
    }
    let mut settings = BTreeMap::new();
    for user in &snapshot.users {
        if let Some(s) = store.user_settings(user.id.to_bytes())? {
            settings.insert(user.id.to_bytes(), s);
        }
    }
    let mut audit = Vec::new();
    let mut before = None;
    loop {
        let AuditPage { entries, next_before, .. } = store.audit_page(before, 10_000, &|_| true)?;
        audit.extend(entries);
        match next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    audit.reverse();
    Ok(Contents {
        revision: snapshot.revision,
        records: records(&snapshot),
        changes,
        statuses: snapshot.statuses.iter().cloned().collect(),
        logs,
        orders,
        history,
        alerts: store.alerts()?,
        settings,
        images: store.firmware_images()?,
        campaigns: store.campaigns()?,
        progress: store.campaign_progress()?,
        census: store.firmware_census()?,
        audit,
        audit_last: store.last_audit_id()?,
        bulk: store.bulk_operations()?,
    })
}

/// Copies `source` into `target`, which must be empty, then checks the copy.
pub fn copy(source: &dyn Store, target: &PgStore) -> Result<CopyReport, StoreError> {
    let target_now = target.load()?;
    if target_now.revision != 0 || !records(&target_now).is_empty() {
        return Err(StoreError::Backend(format!(
            "the target database is not empty (revision {}): copy-store only fills a new database",
            target_now.revision
        )));
    }
    tracing::info!("reading the source store");
    let contents = read(source)?;
    tracing::info!(records = contents.records.len(), changes = contents.changes.len(), "writing the copy");
    let report = write(target, &contents)?;
    tracing::info!("checking the copy record by record");
    let copied = read(target)?;
    if let Some(what) = first_difference(&contents, &copied) {
        return Err(StoreError::Backend(format!("the copy differs from the source: {what}")));
    }
    Ok(report)
}

/// The first part that differs, named.
fn first_difference(a: &Contents, b: &Contents) -> Option<String> {
    if a.revision != b.revision {
        return Some(format!("revision {} against {}", a.revision, b.revision));
    }
    for (key, record) in &a.records {
        if b.records.get(key) != Some(record) {
            return Some(format!("{:?} {}", key.0, uuid(key.1)));
        }
    }
    let parts: [(&str, bool); 14] = [
        ("records", a.records.len() == b.records.len()),
        ("change log", a.changes == b.changes),
        ("statuses", a.statuses == b.statuses),
        ("device logs", a.logs == b.logs),
        ("orders", a.orders == b.orders),
        ("status histories", a.history == b.history),
        ("alerts", a.alerts == b.alerts),
        ("dashboard settings", a.settings == b.settings),
        ("firmware images", a.images == b.images),
        ("campaigns", a.campaigns == b.campaigns),
        ("campaign progress", a.progress == b.progress),
        ("firmware census", a.census == b.census),
        ("audit trail", a.audit == b.audit && a.audit_last == b.audit_last),
        ("bulk operations", a.bulk == b.bulk),
    ];
    parts.iter().find(|(_, same)| !same).map(|(name, _)| (*name).to_owned())
}

fn write(target: &PgStore, c: &Contents) -> Result<CopyReport, StoreError> {
    let mut conn = target.connection()?;
    let mut txn = conn.transaction().map_err(pg_error)?;
    let mut report = CopyReport { revision: c.revision, ..CopyReport::default() };
    let mut count = |name: &'static str, n: usize| {
        report.rows.insert(name, n as u64);
        tracing::info!(table = name, rows = n, "copied");
    };
    for kind in EntityKind::ALL {
        let (mut ids, mut bodies) = (Vec::new(), Vec::new());
        for ((k, key), record) in &c.records {
            if *k == kind {
                ids.push(uuid(*key));
                bodies.push(super::registry::encoded(record)?);
            }
        }
        let sql =
            format!("INSERT INTO {} (id, body) SELECT * FROM unnest($1::uuid[], $2::json[])", table(kind));
        txn.execute(&sql, &[&ids, &bodies]).map_err(pg_error)?;
        count(table(kind), ids.len());
    }
    let revisions: Vec<i64> = c.changes.iter().map(|e| big(e.revision)).collect();
    let kinds: Vec<&str> = c.changes.iter().map(|e| kind_name(e.kind)).collect();
    let keys: Vec<uuid::Uuid> = c.changes.iter().map(|e| uuid(e.key)).collect();
    let deleted: Vec<bool> = c.changes.iter().map(|e| e.deleted).collect();
    txn.execute(
        "INSERT INTO changes (revision, kind, id, deleted) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::boolean[])",
        &[&revisions, &kinds, &keys, &deleted],
    )
    .map_err(pg_error)?;
    count("changes", c.changes.len());
    txn.execute("UPDATE neosens_revision SET revision = $1", &[&big(c.revision)]).map_err(pg_error)?;
    write_device_data(&mut txn, c, &mut count)?;
    write_fleet_data(&mut txn, c, &mut count)?;
    txn.commit().map_err(pg_error)?;
    Ok(report)
}

fn write_device_data(
    txn: &mut postgres::Transaction<'_>,
    c: &Contents,
    count: &mut impl FnMut(&'static str, usize),
) -> Result<(), StoreError> {
    let devices: Vec<uuid::Uuid> = c.statuses.keys().map(|k| uuid(*k)).collect();
    let bodies = c.statuses.values().map(json).collect::<Result<Vec<_>, _>>()?;
    txn.execute(
        "INSERT INTO device_statuses (device, body) SELECT * FROM unnest($1::uuid[], $2::json[])",
        &[&devices, &bodies],
    )
    .map_err(pg_error)?;
    count("device_statuses", devices.len());
    let mut n = 0;
    for (device, lines) in &c.logs {
        n += insert_list(txn, "device_logs", *device, lines)?;
    }
    count("device_logs", n);
    n = 0;
    for (device, orders) in &c.orders {
        n += insert_list(txn, "device_orders", *device, orders)?;
    }
    count("device_orders", n);
    n = 0;
    for (device, entries) in &c.history {
        let times: Vec<i64> = entries.iter().map(|(t, _)| *t).collect();
        let payloads: Vec<&[u8]> = entries.iter().map(|(_, p)| p.as_bytes()).collect();
        txn.execute(
            "INSERT INTO status_history (device, at_ms, payload) SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])",
            &[&uuid(*device), &times, &payloads],
        )
        .map_err(pg_error)?;
        n += entries.len();
    }
    count("status_history", n);
    for (user, settings) in &c.settings {
        txn.execute(
            "INSERT INTO user_settings (user_id, settings) VALUES ($1, $2)",
            &[&uuid(*user), settings],
        )
        .map_err(pg_error)?;
    }
    count("user_settings", c.settings.len());
    Ok(())
}

/// Appends a device's list (oldest first) in one statement, numbered in its order.
fn insert_list<T: serde::Serialize>(
    txn: &mut postgres::Transaction<'_>,
    table: &str,
    device: [u8; 16],
    items: &[T],
) -> Result<usize, StoreError> {
    let bodies = items.iter().map(json).collect::<Result<Vec<_>, _>>()?;
    txn.execute(
        &format!(
            "INSERT INTO {table} (device, body) SELECT $1, b FROM unnest($2::json[]) WITH ORDINALITY AS u(b, n) ORDER BY n"
        ),
        &[&uuid(device), &bodies],
    )
    .map_err(pg_error)?;
    Ok(items.len())
}

fn write_fleet_data(
    txn: &mut postgres::Transaction<'_>,
    c: &Contents,
    count: &mut impl FnMut(&'static str, usize),
) -> Result<(), StoreError> {
    for alert in &c.alerts {
        txn.execute("INSERT INTO alerts (id, body) VALUES ($1, $2)", &[&big(alert.id), &json(alert)?])
            .map_err(pg_error)?;
    }
    count("alerts", c.alerts.len());
    for image in &c.images {
        txn.execute(
            "INSERT INTO firmware_images (sha256, body) VALUES ($1, $2)",
            &[&image.sha256.as_slice(), &json(image)?],
        )
        .map_err(pg_error)?;
    }
    count("firmware_images", c.images.len());
    for campaign in &c.campaigns {
        txn.execute(
            "INSERT INTO campaigns (id, body) VALUES ($1, $2)",
            &[&big(campaign.id), &json(campaign)?],
        )
        .map_err(pg_error)?;
    }
    count("campaigns", c.campaigns.len());
    // One row per device of each campaign: one statement, not a round trip each.
    let campaigns: Vec<i64> = c.progress.iter().map(|(campaign, _, _)| big(*campaign)).collect();
    let devices: Vec<uuid::Uuid> = c.progress.iter().map(|(_, device, _)| uuid(*device)).collect();
    let bodies = c.progress.iter().map(|(_, _, p)| json(p)).collect::<Result<Vec<_>, _>>()?;
    txn.execute(
        "INSERT INTO campaign_progress (campaign, device, body) \
         SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::json[])",
        &[&campaigns, &devices, &bodies],
    )
    .map_err(pg_error)?;
    count("campaign_progress", c.progress.len());
    for (at, counts) in &c.census {
        txn.execute("INSERT INTO firmware_census (at_ms, body) VALUES ($1, $2)", &[at, &json(counts)?])
            .map_err(pg_error)?;
    }
    count("firmware_census", c.census.len());
    for chunk in c.audit.chunks(10_000) {
        let ids: Vec<i64> = chunk.iter().map(|e| big(e.id)).collect();
        let ats: Vec<i64> = chunk.iter().map(|e| e.at.0).collect();
        let bodies = chunk.iter().map(json).collect::<Result<Vec<_>, _>>()?;
        txn.execute(
            "INSERT INTO audit (id, at_ms, body) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::json[])",
            &[&ids, &ats, &bodies],
        )
        .map_err(pg_error)?;
    }
    txn.execute("UPDATE neosens_audit_seq SET last = $1", &[&big(c.audit_last)]).map_err(pg_error)?;
    count("audit", c.audit.len());
    for op in &c.bulk {
        txn.execute("INSERT INTO bulk_operations (id, body) VALUES ($1, $2)", &[&big(op.id), &json(op)?])
            .map_err(pg_error)?;
    }
    count("bulk_operations", c.bulk.len());
    Ok(())
}
