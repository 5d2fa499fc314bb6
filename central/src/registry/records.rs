//! What the registry keeps in the store without mirroring it in memory: device log lines, each
//! user's dashboard settings, and the store's own health. Callers outside the registry reach the
//! store only through these (and through [`Registry::blocking`] when they are async).

use super::{Registry, RegistryError};
use crate::model::UserId;
use crate::store::{ChangeEntry, DeviceLogEntry, StoreError};

impl Registry {
    /// The device's last `limit` log lines, newest first.
    pub fn device_logs(&self, key: &str, limit: usize) -> Result<Vec<DeviceLogEntry>, RegistryError> {
        let device = self.device(key)?;
        Ok(self.store.device_logs(device.id.to_bytes(), limit)?)
    }

    /// The user's saved dashboard settings (JSON text), if any.
    pub fn user_settings(&self, user: UserId) -> Result<Option<String>, RegistryError> {
        Ok(self.store.user_settings(user.to_bytes())?)
    }

    /// Saves (or, with `None`, forgets) the user's dashboard settings.
    pub fn put_user_settings(&self, user: UserId, settings: Option<&str>) -> Result<(), RegistryError> {
        Ok(self.store.put_user_settings(user.to_bytes(), settings)?)
    }

    /// Reads the head of the change log: whether the store answers (`/readyz`).
    pub fn probe_store(&self) -> Result<(), StoreError> {
        self.store.changes_since(self.revision(), 1).map(|_| ())
    }

    /// Bytes the store takes on disk (`/metrics`; a file size, no I/O wait).
    pub fn store_size_bytes(&self) -> u64 {
        self.store.size_bytes()
    }

    /// The store's commit durations, when it measures them (`/metrics`).
    pub fn store_commit_times(&self) -> Option<crate::store::CommitSnapshot> {
        self.store.commit_times()
    }

    /// Up to `limit` change-log entries after `revision` (followers: dynamic security, monitor,
    /// gateway sync), never past the revision in memory: with several processes on one
    /// database the log may already hold changes this one has not applied yet, and a follower
    /// must not read them before the records they name (it gets them after the catch-up).
    pub fn changes_since(&self, revision: u64, limit: usize) -> Result<Vec<ChangeEntry>, StoreError> {
        let applied = self.revision();
        let mut entries = self.store.changes_since(revision, limit)?;
        entries.retain(|c| c.revision <= applied);
        Ok(entries)
    }
}
