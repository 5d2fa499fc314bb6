//! Dashboard settings of each user (chosen columns, filters …), kept as the JSON text the
//! dashboard saved: central does not interpret them beyond checking their size and shape.

use std::time::Instant;

use super::StoreError;
use super::redb_store::{RedbStore, USER_SETTINGS, backend, begin_read, begin_write};

impl RedbStore {
    pub(super) fn read_user_settings(&self, user: [u8; 16]) -> Result<Option<String>, StoreError> {
        let txn = begin_read(self.database()).map_err(backend)?;
        let table = txn.open_table(USER_SETTINGS).map_err(backend)?;
        Ok(table.get(user).map_err(backend)?.map(|v| v.value().to_owned()))
    }

    pub(super) fn write_user_settings(
        &self,
        user: [u8; 16],
        settings: Option<&str>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let txn = begin_write(self.database()).map_err(backend)?;
        {
            let mut table = txn.open_table(USER_SETTINGS).map_err(backend)?;
            match settings {
                Some(text) => table.insert(user, text).map_err(backend)?,
                None => table.remove(user).map_err(backend)?,
            };
        }
        self.commit(txn, started)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{RedbStore, SettingsStore};

    #[test]
    fn settings_are_kept_per_user_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            assert_eq!(store.user_settings([1; 16]).unwrap(), None);
            store.put_user_settings([1; 16], Some(r#"{"columns":["heap"]}"#)).unwrap();
            store.put_user_settings([2; 16], Some("{}")).unwrap();
            store.put_user_settings([2; 16], None).unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.user_settings([1; 16]).unwrap().as_deref(), Some(r#"{"columns":["heap"]}"#));
        assert_eq!(store.user_settings([2; 16]).unwrap(), None);
    }
}
