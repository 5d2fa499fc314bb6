//! Where the registry copy lives. Earlier versions kept it in `edge.redb`, beside the outbox;
//! it has its own file now (so that a snapshot's long transaction never holds up an uplink's
//! commit). At open, an older gateway's copy moves over in one transaction, so a gateway
//! upgraded while central is out of reach keeps serving its devices.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError, TableHandle};

use super::{
    BY_DEVADDR, BY_LOGIN, BY_MAC, CacheError, DEVICES, LOCATIONS, META, META_REVISION, ROOMS, backend,
    begin_write,
};

/// Creates the registry's tables and moves an older layout's copy into them.
pub(super) fn move_registry(db: &Database, registry: &Database) -> Result<(), CacheError> {
    let txn = begin_write(registry).map_err(backend)?;
    {
        let mut meta = txn.open_table(META).map_err(backend)?;
        for def in [DEVICES, ROOMS, LOCATIONS] {
            txn.open_table(def).map_err(backend)?;
        }
        txn.open_table(BY_MAC).map_err(backend)?;
        txn.open_table(BY_LOGIN).map_err(backend)?;
        txn.open_table(BY_DEVADDR).map_err(backend)?;
        txn.open_table(super::otaa::OTAA).map_err(backend)?;
        txn.open_table(super::otaa::OTAA_BY_EUI).map_err(backend)?;
        txn.open_table(super::layouts::LAYOUTS).map_err(backend)?;
        let old = db.begin_read().map_err(backend)?;
        let old_revision = match old.open_table(META) {
            Ok(t) => t.get(META_REVISION).map_err(backend)?.map_or(0, |v| v.value()),
            Err(TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(backend(e)),
        };
        let fresh = meta.get(META_REVISION).map_err(backend)?.is_none();
        if fresh && old_revision > 0 {
            let devices = copy(&old, &txn, DEVICES)?;
            for def in [ROOMS, LOCATIONS] {
                copy(&old, &txn, def)?;
            }
            copy(&old, &txn, BY_MAC)?;
            copy(&old, &txn, BY_LOGIN)?;
            copy(&old, &txn, BY_DEVADDR)?;
            meta.insert(META_REVISION, old_revision).map_err(backend)?;
            tracing::info!(revision = old_revision, devices, "registry copy moved to registry.redb");
        }
    }
    txn.commit().map_err(backend)?;

    // The old layout's tables go once the copy is durable.
    let leftover = {
        let old = db.begin_read().map_err(backend)?;
        old.list_tables().map_err(backend)?.any(|t| t.name() == DEVICES.name())
    };
    if leftover {
        let txn = begin_write(db).map_err(backend)?;
        for def in [DEVICES, ROOMS, LOCATIONS] {
            txn.delete_table(def).map_err(backend)?;
        }
        txn.delete_table(BY_MAC).map_err(backend)?;
        txn.delete_table(BY_LOGIN).map_err(backend)?;
        txn.delete_table(BY_DEVADDR).map_err(backend)?;
        txn.open_table(META).map_err(backend)?.remove(META_REVISION).map_err(backend)?;
        txn.commit().map_err(backend)?;
    }
    Ok(())
}

/// Copies a table of `from` into the same table of `to`; the number of entries.
fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, CacheError> {
    let source = match from.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(backend(e)),
    };
    let mut target = to.open_table(def).map_err(backend)?;
    let mut n = 0;
    for item in source.iter().map_err(backend)? {
        let (k, v) = item.map_err(backend)?;
        target.insert(k.value(), v.value()).map_err(backend)?;
        n += 1;
    }
    Ok(n)
}
