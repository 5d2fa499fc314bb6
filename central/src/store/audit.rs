//! The audit trail in the redb store (schema 7): one table of entries by sequence number,
//! appended in the same transaction as the change they describe and pruned there too, so the
//! table never holds more than the retention allows.

use std::time::Instant;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::redb_store::{META, RedbStore, backend, begin_read, begin_write, encode};
use super::{AuditPage, AuditStore, StoreError};
use crate::audit::AuditRetention;
use crate::model::{AuditEntry, Timestamp};

/// Audit entries by sequence number (schema 7). Numbers only grow; pruning removes the lowest.
pub(super) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// The `meta` key of the last entry number given.
const META_AUDIT_SEQ: &str = "audit_seq";

/// Entries inspected per request at most: a filter that matches nothing in a million entries
/// answers after this many, with where to go on from.
pub const MAX_SCAN: usize = 200_000;

/// Old entries removed by age in one append at most (the rest go with the next ones), so an
/// append after a long pause stays short.
const AGE_PRUNE_STEP: usize = 10_000;

fn decode(id: u64, bytes: &[u8]) -> Result<AuditEntry, StoreError> {
    postcard::from_bytes(bytes)
        .map_err(|e| StoreError::Backend(format!("audit entry {id} does not decode: {e}")))
}

/// Appends `entries` (numbered from the last one) and prunes past `retention`, inside `txn`.
pub(super) fn append_in(
    txn: &redb::WriteTransaction,
    entries: &[AuditEntry],
    retention: AuditRetention,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    // The last number given is kept apart: pruning may empty the table, and a number is never
    // given twice (a client paging with `before` would skip or repeat entries).
    let mut meta = txn.open_table(META).map_err(backend)?;
    let mut next = meta.get(META_AUDIT_SEQ).map_err(backend)?.map_or(0, |v| v.value()) + 1;
    let mut table = txn.open_table(AUDIT).map_err(backend)?;
    for entry in entries {
        let stored = AuditEntry { id: next, ..entry.clone() };
        table.insert(next, encode(&stored)?.as_slice()).map_err(backend)?;
        next += 1;
    }
    meta.insert(META_AUDIT_SEQ, next - 1).map_err(backend)?;
    // Numbers are contiguous from the first kept one: the excess is a range at the front.
    let held = table.len().map_err(backend)?;
    let first = table.first().map_err(backend)?.map_or(next, |(k, _)| k.value());
    let max = retention.max_entries.max(1);
    let mut keep_from = if held > max { first + (held - max) } else { first };
    let cutoff = retention.cutoff(Timestamp::now());
    for item in table.range(keep_from..).map_err(backend)?.take(AGE_PRUNE_STEP) {
        let (k, v) = item.map_err(backend)?;
        if decode(k.value(), v.value())?.at >= cutoff {
            break;
        }
        keep_from = k.value() + 1;
    }
    if keep_from > first {
        table.retain_in(first..keep_from, |_, _| false).map_err(backend)?;
    }
    Ok(())
}

impl AuditStore for RedbStore {
    fn set_audit_retention(&self, retention: AuditRetention) {
        *self.audit_retention.write() = retention;
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(self.database()).map_err(backend)?;
        append_in(&txn, entries, *self.audit_retention.read())?;
        self.commit(txn, started)
    }

    fn last_audit_id(&self) -> Result<u64, StoreError> {
        let txn = begin_read(self.database()).map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        Ok(meta.get(META_AUDIT_SEQ).map_err(backend)?.map_or(0, |v| v.value()))
    }

    fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: &dyn Fn(&AuditEntry) -> bool,
    ) -> Result<AuditPage, StoreError> {
        let txn = begin_read(self.database()).map_err(backend)?;
        let table = txn.open_table(AUDIT).map_err(backend)?;
        let total = table.len().map_err(backend)?;
        let mut page = AuditPage { entries: Vec::new(), next_before: None, total };
        let range = table.range(..before.unwrap_or(u64::MAX)).map_err(backend)?;
        let mut last = None;
        for (scanned, item) in range.rev().enumerate() {
            let (k, v) = item.map_err(backend)?;
            let id = k.value();
            if page.entries.len() == limit || scanned == MAX_SCAN {
                page.next_before = last;
                break;
            }
            last = Some(id);
            let entry = decode(id, v.value())?;
            if keep(&entry) {
                page.entries.push(entry);
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Actor;
    use crate::store::RegistryStore;

    fn entry(action: &str, at: i64) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: Timestamp(at),
            actor: Actor::Token { id: [1; 16], name: "ci".into() },
            action: action.into(),
            target_kind: "device".into(),
            target_id: String::new(),
            target: "24:0a:c4:00:00:01".into(),
            changes: Vec::new(),
            detail: String::new(),
        }
    }

    fn ids(page: &AuditPage) -> Vec<u64> {
        page.entries.iter().map(|e| e.id).collect()
    }

    #[test]
    fn entries_are_numbered_in_order_and_paged_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let now = Timestamp::now().0;
        let batch: Vec<_> =
            (0..10).map(|i| entry(if i % 2 == 0 { "device.update" } else { "order.send" }, now)).collect();
        store.append_audit(&batch).unwrap();
        let page = store.audit_page(None, 3, &|_| true).unwrap();
        assert_eq!((ids(&page), page.next_before, page.total), (vec![10, 9, 8], Some(8), 10));
        let next = store.audit_page(page.next_before, 3, &|_| true).unwrap();
        assert_eq!(ids(&next), [7, 6, 5]);
        let orders = store.audit_page(None, 50, &|e| e.action == "order.send").unwrap();
        assert_eq!((ids(&orders), orders.next_before), (vec![10, 8, 6, 4, 2], None));
        // Registry changes land in the same numbering, in their own transaction.
        store.apply(&[], &[entry("site.update", now)]).unwrap();
        assert_eq!(ids(&store.audit_page(None, 1, &|_| true).unwrap()), [11]);
    }

    #[test]
    fn the_trail_never_holds_more_than_its_bound_nor_older_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store.set_audit_retention(AuditRetention { max_entries: 100, max_age_days: 1 });
        let now = Timestamp::now().0;
        for round in 0..7 {
            let batch: Vec<_> = (0..40).map(|_| entry("device.update", now)).collect();
            store.append_audit(&batch).unwrap();
            let page = store.audit_page(None, 500, &|_| true).unwrap();
            assert!(page.total <= 100, "round {round}: {} entries held", page.total);
        }
        let page = store.audit_page(None, 500, &|_| true).unwrap();
        assert_eq!((page.entries.len(), page.entries[0].id, page.entries[99].id), (100, 280, 181));
        // Two days old: gone at the next append, which stays.
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        store.set_audit_retention(AuditRetention { max_entries: 100, max_age_days: 1 });
        store
            .append_audit(&(0..5).map(|_| entry("device.update", now - 2 * 86_400_000)).collect::<Vec<_>>())
            .unwrap();
        store.append_audit(&[entry("device.delete", now)]).unwrap();
        let page = store.audit_page(None, 500, &|_| true).unwrap();
        assert_eq!((ids(&page), page.total), (vec![6], 1));
    }

    #[test]
    fn a_filter_that_matches_nothing_stops_after_the_scan_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let now = Timestamp::now().0;
        let n = MAX_SCAN + 10;
        for chunk in (0..n).collect::<Vec<_>>().chunks(50_000) {
            store
                .append_audit(&chunk.iter().map(|_| entry("device.update", now)).collect::<Vec<_>>())
                .unwrap();
        }
        let page = store.audit_page(None, 50, &|_| false).unwrap();
        let expected = (n - MAX_SCAN + 1) as u64;
        assert_eq!((page.entries.len(), page.next_before), (0, Some(expected)));
        let rest = store.audit_page(page.next_before, 50, &|_| false).unwrap();
        assert_eq!(rest.next_before, None, "the last 10 entries end the trail");
    }
}
