//! What OTAA joins need on the gateway's disk. In the registry copy (`registry.redb`, written by
//! the sync): each node's credentials (JoinEUI, AppKey sealed for this gateway), by device and
//! by DevEUI. In `edge.redb`, written with the batch that answers a join: the DevNonces each node
//! used (a replayed join request is refused, across restarts) and the sessions this gateway's
//! joins gave (used until central's copy of the node's session is as recent).

use neosens_protocol::sync::{DeviceRecord, LorawanSession, OtaaRecord, WireUid};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};

use super::{BY_DEVADDR, Cache, CacheError, DEVICES, F_CNT, Key, SessionCounter, backend};

/// OTAA credentials by device (registry copy): postcard [`OtaaRecord`].
pub(super) const OTAA: TableDefinition<Key, &[u8]> = TableDefinition::new("otaa");
/// Devices by DevEUI (big-endian), for those with OTAA credentials.
pub(super) const OTAA_BY_EUI: TableDefinition<[u8; 8], Key> = TableDefinition::new("otaa_by_dev_eui");
/// DevNonces used per node, with when (ms): (device, DevNonce) → ms.
const DEV_NONCES: TableDefinition<(Key, u16), u64> = TableDefinition::new("otaa_dev_nonces");
/// The session this gateway's last join gave each node: postcard [`LocalSession`].
const LOCAL_SESSIONS: TableDefinition<Key, &[u8]> = TableDefinition::new("otaa_local_sessions");
/// Those sessions by DevAddr: (DevAddr, device) → ().
const LOCAL_BY_DEVADDR: TableDefinition<(u32, Key), ()> = TableDefinition::new("otaa_local_by_devaddr");

/// DevNonces remembered per node: a replay of any of its last 256 join requests is refused
/// (LoRaWAN 1.0.x nodes draw them at random; 1.0.4 ones count up).
pub const MAX_DEV_NONCES: usize = 256;

/// A session given by a join this gateway answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalSession {
    /// The session (keys sealed for this gateway, as a synced one).
    pub session: LorawanSession,
    /// The join request's DevNonce.
    pub dev_nonce: u16,
    /// When the join was answered, ms since the Unix epoch (the gateway's clock: for the age
    /// it reports).
    pub joined_at_ms: u64,
    /// The DevNonce of the join central held when this one was answered: while central still
    /// holds that one, this session is newer than central's (no clocks compared).
    pub replaces: Option<u16>,
}

/// A node that may join: its registry record and credentials.
#[derive(Debug, Clone)]
pub struct OtaaNode {
    /// The node.
    pub record: DeviceRecord,
    /// Its credentials.
    pub otaa: OtaaRecord,
}

fn eui_of(uid: &WireUid) -> Option<[u8; 8]> {
    match uid {
        WireUid::Lorawan(eui) => Some(eui.to_be_bytes()),
        _ => None,
    }
}

/// Applies a `SetOtaa` (the node's record is already in `devices`).
pub(super) fn set(
    txn: &redb::WriteTransaction,
    device: Key,
    record: Option<&OtaaRecord>,
) -> Result<(), CacheError> {
    let devices = txn.open_table(DEVICES).map_err(backend)?;
    let mut otaa = txn.open_table(OTAA).map_err(backend)?;
    let mut by_eui = txn.open_table(OTAA_BY_EUI).map_err(backend)?;
    let eui = match devices.get(device).map_err(backend)? {
        Some(bytes) => {
            postcard::from_bytes::<DeviceRecord>(bytes.value())
                .map_err(|_| CacheError::Corrupt("device"))?
                .uid
        }
        None => return Ok(()),
    };
    let Some(eui) = eui_of(&eui) else { return Ok(()) };
    match record {
        Some(r) => {
            otaa.insert(device, postcard::to_allocvec(r).map_err(backend)?.as_slice()).map_err(backend)?;
            by_eui.insert(eui, device).map_err(backend)?;
        }
        None => {
            otaa.remove(device).map_err(backend)?;
            if by_eui.get(eui).map_err(backend)?.is_some_and(|v| v.value() == device) {
                by_eui.remove(eui).map_err(backend)?;
            }
        }
    }
    Ok(())
}

/// Forgets a deleted device's credentials (`old` is its record before deletion).
pub(super) fn forget(
    txn: &redb::WriteTransaction,
    device: Key,
    old: &DeviceRecord,
) -> Result<(), CacheError> {
    txn.open_table(OTAA).map_err(backend)?.remove(device).map_err(backend)?;
    if let Some(eui) = eui_of(&old.uid) {
        let mut by_eui = txn.open_table(OTAA_BY_EUI).map_err(backend)?;
        if by_eui.get(eui).map_err(backend)?.is_some_and(|v| v.value() == device) {
            by_eui.remove(eui).map_err(backend)?;
        }
    }
    Ok(())
}

/// Creates the join state's tables of `edge.redb`.
pub(super) fn create_local_tables(txn: &redb::WriteTransaction) -> Result<(), CacheError> {
    txn.open_table(DEV_NONCES).map_err(backend)?;
    txn.open_table(LOCAL_SESSIONS).map_err(backend)?;
    txn.open_table(LOCAL_BY_DEVADDR).map_err(backend)?;
    Ok(())
}

/// Stores an answered join, in the transaction of its batch: its DevNonce (the node's oldest
/// beyond [`MAX_DEV_NONCES`] go) and its session, replacing the node's previous one.
pub fn write_join(txn: &redb::WriteTransaction, device: Key, local: &LocalSession) -> Result<(), CacheError> {
    let mut nonces = txn.open_table(DEV_NONCES).map_err(backend)?;
    nonces.insert((device, local.dev_nonce), local.joined_at_ms).map_err(backend)?;
    let mut held: Vec<(u64, u16)> = nonces
        .range((device, 0)..=(device, u16::MAX))
        .map_err(backend)?
        .map(|item| item.map(|(k, v)| (v.value(), k.value().1)))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    if held.len() > MAX_DEV_NONCES {
        held.sort_unstable();
        for (_, nonce) in &held[..held.len() - MAX_DEV_NONCES] {
            nonces.remove((device, *nonce)).map_err(backend)?;
        }
    }
    let mut sessions = txn.open_table(LOCAL_SESSIONS).map_err(backend)?;
    let mut by_addr = txn.open_table(LOCAL_BY_DEVADDR).map_err(backend)?;
    if let Some(old) = sessions.get(device).map_err(backend)? {
        let old: LocalSession = postcard::from_bytes(old.value()).map_err(|_| CacheError::Corrupt("join"))?;
        by_addr.remove((old.session.dev_addr.to_u32(), device)).map_err(backend)?;
    }
    sessions.insert(device, postcard::to_allocvec(local).map_err(backend)?.as_slice()).map_err(backend)?;
    by_addr.insert((local.session.dev_addr.to_u32(), device), ()).map_err(backend)?;
    Ok(())
}

impl Cache {
    /// The node with this DevEUI (big-endian) that may join, if any.
    pub fn otaa_node(&self, dev_eui: [u8; 8]) -> Result<Option<OtaaNode>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let by_eui = match txn.open_table(OTAA_BY_EUI) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let Some(device) = by_eui.get(dev_eui).map_err(backend)?.map(|v| v.value()) else { return Ok(None) };
        let Some(otaa) = self.otaa_of(device)? else { return Ok(None) };
        let devices = txn.open_table(DEVICES).map_err(backend)?;
        let Some(bytes) = devices.get(device).map_err(backend)? else { return Ok(None) };
        let record = postcard::from_bytes(bytes.value()).map_err(|_| CacheError::Corrupt("device"))?;
        Ok(Some(OtaaNode { record, otaa }))
    }

    /// A node's OTAA credentials.
    pub fn otaa_of(&self, device: Key) -> Result<Option<OtaaRecord>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let table = match txn.open_table(OTAA) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let Some(bytes) = table.get(device).map_err(backend)? else { return Ok(None) };
        postcard::from_bytes(bytes.value()).map(Some).map_err(|_| CacheError::Corrupt("otaa"))
    }

    /// Whether the node already used this DevNonce.
    pub fn dev_nonce_used(&self, device: Key, dev_nonce: u16) -> Result<bool, CacheError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(DEV_NONCES).map_err(backend)?;
        Ok(table.get((device, dev_nonce)).map_err(backend)?.is_some())
    }

    /// The node's session from a join answered here.
    pub fn local_session(&self, device: Key) -> Result<Option<LocalSession>, CacheError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(LOCAL_SESSIONS).map_err(backend)?;
        let Some(bytes) = table.get(device).map_err(backend)? else { return Ok(None) };
        postcard::from_bytes(bytes.value()).map(Some).map_err(|_| CacheError::Corrupt("join"))
    }

    /// The nodes with a session from a join answered here at this DevAddr.
    pub fn local_sessions_by_dev_addr(&self, dev_addr: u32) -> Result<Vec<Key>, CacheError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(LOCAL_BY_DEVADDR).map_err(backend)?;
        table
            .range((dev_addr, [0u8; 16])..=(dev_addr, [0xffu8; 16]))
            .map_err(backend)?
            .map(|item| item.map(|(k, _)| k.value().1).map_err(backend))
            .collect()
    }

    /// Whether a device address is taken, by a synced session or one given here.
    pub fn dev_addr_taken(&self, dev_addr: u32) -> Result<bool, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let index = txn.open_table(BY_DEVADDR).map_err(backend)?;
        if index.range((dev_addr, [0u8; 16])..=(dev_addr, [0xffu8; 16])).map_err(backend)?.next().is_some() {
            return Ok(true);
        }
        Ok(!self.local_sessions_by_dev_addr(dev_addr)?.is_empty())
    }

    /// The last uplink counter accepted from a node, and its session.
    pub fn f_cnt(&self, id: neosens_protocol::ids::DeviceId) -> Result<Option<SessionCounter>, CacheError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(F_CNT).map_err(backend)?;
        Ok(table.get(id.to_bytes()).map_err(backend)?.map(|v| {
            let (session, f_cnt) = v.value();
            SessionCounter { session, f_cnt }
        }))
    }

    /// A device's registry record.
    pub fn device_record(&self, device: Key) -> Result<Option<DeviceRecord>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let devices = txn.open_table(DEVICES).map_err(backend)?;
        let Some(bytes) = devices.get(device).map_err(backend)? else { return Ok(None) };
        postcard::from_bytes(bytes.value()).map(Some).map_err(|_| CacheError::Corrupt("device"))
    }
}
