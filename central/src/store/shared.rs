//! What several central processes sharing one store need of it beyond reads and writes: one
//! leader at a time, and the statuses the others ingested.

use crate::model::DeviceStatusRecord;

use super::StoreError;

/// A claim to lead the processes sharing a store (PostgreSQL: a session-level advisory lock on
/// a connection of its own). The database releases it when that session ends — the process
/// died, or its link did — so another process can take over; nothing has to expire first.
pub trait LeaderLock: Send {
    /// Tries to take the lock without waiting; whether this session holds it now.
    fn try_acquire(&mut self) -> Result<bool, StoreError>;

    /// One round trip on the session holding the lock: `Ok` while it lives (and with it the
    /// lock); an error once it is lost — the caller must stop leading.
    fn check(&mut self) -> Result<(), StoreError>;
}

/// Statuses stored since a cursor ([`super::RegistryStore::statuses_since`]).
#[derive(Debug, Default)]
pub struct StatusChanges {
    /// The cursor to ask from next time.
    pub cursor: u64,
    /// Each device's last status, of the devices whose status was stored since (one each, at
    /// most one per device of the registry: the bound of one read).
    pub statuses: Vec<([u8; 16], DeviceStatusRecord)>,
}
