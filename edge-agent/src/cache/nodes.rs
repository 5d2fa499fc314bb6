//! The LoRaWAN nodes of the scope, as the node-order intake needs them: which DevEUIs are ours
//! and which rooms they are in (whose command topics the uplink subscribes to).

use std::collections::{BTreeSet, HashSet};

use neosens_protocol::sync::{DeviceRecord, WireUid};
use redb::{ReadableDatabase, ReadableTable};

use super::{BY_DEVADDR, Cache, CacheError, DEVICES, ROOMS, backend};

/// The LoRaWAN nodes with a session in the scope, and their rooms' base topics.
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
    /// The LoRaWAN nodes of the scope (one read of the device-address index: nodes only).
    pub fn scope_nodes(&self) -> Result<ScopeNodes, CacheError> {
        let revision = self.revision()?;
        let txn = self.registry.begin_read().map_err(backend)?;
        let index = txn.open_table(BY_DEVADDR).map_err(backend)?;
        let devices = txn.open_table(DEVICES).map_err(backend)?;
        let rooms = txn.open_table(ROOMS).map_err(backend)?;
        let mut out = ScopeNodes { revision, ..ScopeNodes::default() };
        for item in index.iter().map_err(backend)? {
            let (k, _) = item.map_err(backend)?;
            let (_, key) = k.value();
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
