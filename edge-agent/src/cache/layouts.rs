//! Payload layouts of the scope's device types (registry copy, written by the sync): nodes whose
//! codec is `layout` decode with their type's.

use neosens_protocol::ids::DeviceTypeId;
use neosens_protocol::layout::PayloadLayout;
use redb::{ReadableDatabase, TableDefinition, TableError};

use super::{Cache, CacheError, Key, backend};

/// Layouts by device type: postcard [`PayloadLayout`].
pub(super) const LAYOUTS: TableDefinition<Key, &[u8]> = TableDefinition::new("payload_layouts");

/// Applies a `SetPayloadLayout`, or forgets a deleted type's layout (`None`).
pub(super) fn set(
    txn: &redb::WriteTransaction,
    device_type: Key,
    layout: Option<&PayloadLayout>,
) -> Result<(), CacheError> {
    let mut table = txn.open_table(LAYOUTS).map_err(backend)?;
    match layout {
        Some(l) => drop(
            table
                .insert(device_type, postcard::to_allocvec(l).map_err(backend)?.as_slice())
                .map_err(backend)?,
        ),
        None => drop(table.remove(device_type).map_err(backend)?),
    }
    Ok(())
}

impl Cache {
    /// A device type's payload layout.
    pub fn layout(&self, device_type: DeviceTypeId) -> Result<Option<PayloadLayout>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let table = match txn.open_table(LAYOUTS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let Some(bytes) = table.get(device_type.to_bytes()).map_err(backend)? else { return Ok(None) };
        postcard::from_bytes(bytes.value()).map(Some).map_err(|_| CacheError::Corrupt("payload layout"))
    }
}
