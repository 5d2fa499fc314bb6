//! Bulk operations in the redb store (schema 7): the last [`KEPT_BULK_OPERATIONS`], by number.

use std::time::Instant;

use redb::{ReadableTable, TableDefinition};

use super::redb_store::{RedbStore, backend, begin_read, begin_write, encode};
use super::{BulkStore, StoreError};
use crate::model::BulkOperation;

/// Bulk operations by number (schema 7).
pub(super) const BULK_OPERATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("bulk_operations");

/// Operations kept: the oldest go when a newer one is stored.
pub const KEPT_BULK_OPERATIONS: u64 = 50;

impl BulkStore for RedbStore {
    fn bulk_operations(&self) -> Result<Vec<BulkOperation>, StoreError> {
        let txn = begin_read(self.database()).map_err(backend)?;
        let table = txn.open_table(BULK_OPERATIONS).map_err(backend)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            out.push(postcard::from_bytes(v.value()).map_err(|e| {
                StoreError::Backend(format!("bulk operation {} does not decode: {e}", k.value()))
            })?);
        }
        Ok(out)
    }

    fn put_bulk_operation(&self, operation: &BulkOperation) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(self.database()).map_err(backend)?;
        {
            let mut table = txn.open_table(BULK_OPERATIONS).map_err(backend)?;
            table.insert(operation.id, encode(operation)?.as_slice()).map_err(backend)?;
            let oldest_kept = operation.id.saturating_sub(KEPT_BULK_OPERATIONS - 1);
            table.retain_in(..oldest_kept, |_, _| false).map_err(backend)?;
        }
        self.commit(txn, started)
    }
}
