//! Each device's status history in the redb store (schema 7): every status kept, by (device,
//! time), appended in the transaction that stores the last statuses and pruned there to the
//! device's retention (count and age), so a device never holds more than it allows.

use redb::{ReadableTable, TableDefinition};

use super::redb_store::{RedbStore, backend, begin_read};
use super::{StatusHistoryEntry, StatusHistoryStore, StoreError};

/// Statuses by (device, time in ms) (schema 7): the payload as received.
pub(super) const STATUS_HISTORY: TableDefinition<([u8; 16], i64), &str> =
    TableDefinition::new("status_history");

/// Statuses held per device: kept with the history so pruning by count costs the statuses it
/// removes, not the history's length.
pub(super) const STATUS_HISTORY_COUNTS: TableDefinition<[u8; 16], u32> =
    TableDefinition::new("status_history_counts");

/// Appends `entries` and prunes each device past its retention, inside `txn`.
pub(super) fn append_in(
    txn: &redb::WriteTransaction,
    entries: &[StatusHistoryEntry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(STATUS_HISTORY).map_err(backend)?;
    let mut counts = txn.open_table(STATUS_HISTORY_COUNTS).map_err(backend)?;
    for e in entries {
        let added = table.insert((e.device, e.at_ms), e.payload.as_str()).map_err(backend)?.is_none();
        let mut held = counts.get(e.device).map_err(backend)?.map_or(0, |v| v.value()) + u32::from(added);
        // By age: what is older than the retention before the device's newest status (a late,
        // older status never prunes by its own time).
        let newest = table
            .range((e.device, i64::MIN)..=(e.device, i64::MAX))
            .map_err(backend)?
            .next_back()
            .map(|item| item.map(|(k, _)| k.value().1))
            .transpose()
            .map_err(backend)?
            .unwrap_or(e.at_ms);
        let cutoff = newest.saturating_sub(i64::from(e.keep.max_age_days) * 86_400_000);
        let old = table.range((e.device, i64::MIN)..(e.device, cutoff)).map_err(backend)?.count();
        // By count: the oldest beyond the bound.
        let excess = (held as usize).saturating_sub(old).saturating_sub(e.keep.max_statuses as usize);
        let remove = old + excess;
        if remove > 0 {
            let keep_from = table
                .range((e.device, i64::MIN)..=(e.device, i64::MAX))
                .map_err(backend)?
                .nth(remove)
                .map(|item| item.map(|(k, _)| k.value().1))
                .transpose()
                .map_err(backend)?
                .unwrap_or(i64::MAX);
            table.retain_in((e.device, i64::MIN)..(e.device, keep_from), |_, _| false).map_err(backend)?;
            held = held.saturating_sub(u32::try_from(remove).unwrap_or(u32::MAX));
        }
        counts.insert(e.device, held).map_err(backend)?;
    }
    Ok(())
}

/// Removes a device's whole history, inside `txn` (the device is deleted).
pub(super) fn forget_in(txn: &redb::WriteTransaction, device: [u8; 16]) -> Result<(), StoreError> {
    let mut table = txn.open_table(STATUS_HISTORY).map_err(backend)?;
    table.retain_in((device, i64::MIN)..=(device, i64::MAX), |_, _| false).map_err(backend)?;
    txn.open_table(STATUS_HISTORY_COUNTS).map_err(backend)?.remove(device).map_err(backend)?;
    Ok(())
}

impl StatusHistoryStore for RedbStore {
    fn status_history(
        &self,
        device: [u8; 16],
        since_ms: i64,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let txn = begin_read(self.database()).map_err(backend)?;
        let table = txn.open_table(STATUS_HISTORY).map_err(backend)?;
        let mut out = Vec::new();
        for item in table.range((device, since_ms)..(device, before_ms)).map_err(backend)?.rev().take(limit) {
            let (k, v) = item.map_err(backend)?;
            out.push((k.value().1, v.value().to_owned()));
        }
        Ok(out)
    }
}
