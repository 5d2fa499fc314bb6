//! The LoRaWAN nodes of the scope, as the node-order intake needs them: which DevEUIs are ours
//! and which rooms they are in (whose command topics the uplink subscribes to).

use std::collections::{BTreeSet, HashSet};

use neosens_protocol::sync::{DeviceRecord, WireUid};
use redb::{ReadableDatabase, ReadableTable};

use super::{BY_DEVADDR, Cache, CacheError, DEVICES, ROOMS, backend};

/// The keys of the nodes that may join (their OTAA credentials), whether or not they have a
/// session yet.
fn joining(txn: &redb::ReadTransaction) -> Result<Vec<[u8; 16]>, CacheError> {
    let table = match txn.open_table(super::otaa::OTAA) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(backend(e)),
    };
    table.iter().map_err(backend)?.map(|item| item.map(|(k, _)| k.value()).map_err(backend)).collect()
}

/// The LoRaWAN nodes of the scope, and their rooms' base topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeNodes {
    /// The registry revision they were read at.
    pub revision: u64,
    /// DevEUIs, 16 lowercase hex digits.
    pub dev_euis: HashSet<String>,
    /// Base topics of the rooms they are in (their first room: where their readings go).
    pub rooms: BTreeSet<String>,
}

impl Cache {
    /// The LoRaWAN nodes of the scope: those with a session (the device-address index) and those
    /// that may join.
    pub fn scope_nodes(&self) -> Result<ScopeNodes, CacheError> {
        let revision = self.revision()?;
        let txn = self.registry.begin_read().map_err(backend)?;
        let index = txn.open_table(BY_DEVADDR).map_err(backend)?;
        let devices = txn.open_table(DEVICES).map_err(backend)?;
        let rooms = txn.open_table(ROOMS).map_err(backend)?;
        let mut out = ScopeNodes { revision, ..ScopeNodes::default() };
        let with_session =
            index.iter().map_err(backend)?.map(|item| item.map(|(k, _)| k.value().1).map_err(backend));
        let keys: Vec<[u8; 16]> =
            with_session.chain(joining(&txn)?.into_iter().map(Ok)).collect::<Result<_, _>>()?;
        for key in keys {
            let Some(bytes) = devices.get(key).map_err(backend)? else { continue };
            let record: DeviceRecord =
                postcard::from_bytes(bytes.value()).map_err(|_| CacheError::Corrupt("device"))?;
            let WireUid::Lorawan(eui) = record.uid else { continue };
            out.dev_euis.insert(eui.to_string().to_lowercase());
            let Some(room) = record.rooms.first() else { continue };
            let Some(bytes) = rooms.get(room.to_bytes()).map_err(backend)? else { continue };
            let room: neosens_protocol::sync::RoomRecord =
                postcard::from_bytes(bytes.value()).map_err(|_| CacheError::Corrupt("room"))?;
            out.rooms.insert(room.base_topic);
        }
        Ok(out)
    }
}
