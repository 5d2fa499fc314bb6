//! What the registry copy keeps for local-broker mode (docs/edge.md, "Remote sites"): the
//! gateway's settings as central sets them, and each device's account on the local broker
//! (Mosquitto's `$7$` hash, made by central). Both come with sync (`ext=2`); a snapshot
//! replaces them with the rest of the copy.

use neosens_protocol::sync::{BrokerAccount, DeviceRecord, GatewaySettingsRecord, RoomRecord};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Cache, CacheError, DEVICES, Key, META, META_REVISION, ROOMS, backend};

/// Device id → its password-file hash.
pub(super) const BROKER_ACCOUNTS: TableDefinition<Key, &str> = TableDefinition::new("broker_accounts");
/// One entry, [`SETTINGS_KEY`]: the gateway's settings (postcard).
pub(super) const GATEWAY_SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("gateway_settings");
const SETTINGS_KEY: &str = "settings";
/// Beside it, [`CONFIG_KEY`]: the agent's settings from central, their wire form as sync
/// brought it (read by `crate::managed`).
const CONFIG_KEY: &str = "config";
/// What the copy holds beyond the records: [`SYNC_LEVEL`] once a snapshot came with the
/// gateway's settings and its local broker accounts (absent: an older agent's copy).
pub(super) const META_SYNC_LEVEL: &str = "sync_level";
/// The sync level of this build (`ext=3`): a copy made at a lower one is synced again from
/// scratch once.
pub const SYNC_LEVEL: u64 = 3;

/// Applies a `SetBrokerAccount` (`None` forgets the account).
pub(super) fn set_account(
    txn: &redb::WriteTransaction,
    key: Key,
    account: Option<&BrokerAccount>,
) -> Result<(), CacheError> {
    let mut table = txn.open_table(BROKER_ACCOUNTS).map_err(backend)?;
    match account {
        Some(a) => drop(table.insert(key, a.password_hash.as_str()).map_err(backend)?),
        None => drop(table.remove(key).map_err(backend)?),
    }
    Ok(())
}

/// Applies a `SetGatewaySettings`.
pub(super) fn set_settings(
    txn: &redb::WriteTransaction,
    settings: &GatewaySettingsRecord,
) -> Result<(), CacheError> {
    let bytes = postcard::to_allocvec(settings).map_err(backend)?;
    txn.open_table(GATEWAY_SETTINGS)
        .map_err(backend)?
        .insert(SETTINGS_KEY, bytes.as_slice())
        .map_err(backend)?;
    Ok(())
}

/// Applies a `SetGatewayConfig`: the bytes as they came (an agent that cannot read them says
/// so in its report, and keeps its own file).
pub(super) fn set_config(txn: &redb::WriteTransaction, wire: &[u8]) -> Result<(), CacheError> {
    txn.open_table(GATEWAY_SETTINGS).map_err(backend)?.insert(CONFIG_KEY, wire).map_err(backend)?;
    Ok(())
}

/// A device with an account on the local broker, and the base topics of its rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUser {
    /// MQTT login.
    pub login: String,
    /// `$7$…` hash.
    pub password_hash: String,
    /// Base topics of its rooms (its rights: those central's broker gives it).
    pub topics: Vec<String>,
}

impl Cache {
    /// The revision to sync from: [`Cache::revision`], or 0 (a snapshot) while the copy was made
    /// by an older agent, which did not ask for the gateway's settings and broker accounts —
    /// deltas would never bring them.
    pub fn sync_from(&self) -> Result<u64, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let level = meta.get(META_SYNC_LEVEL).map_err(backend)?.map_or(0, |v| v.value());
        if level < SYNC_LEVEL {
            return Ok(0);
        }
        Ok(meta.get(META_REVISION).map_err(backend)?.map_or(0, |v| v.value()))
    }

    /// The gateway's settings from central (the defaults before central sent any).
    pub fn gateway_settings(&self) -> Result<GatewaySettingsRecord, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let table = match txn.open_table(GATEWAY_SETTINGS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(GatewaySettingsRecord::default()),
            Err(e) => return Err(backend(e)),
        };
        let Some(bytes) = table.get(SETTINGS_KEY).map_err(backend)? else {
            return Ok(GatewaySettingsRecord::default());
        };
        postcard::from_bytes(bytes.value()).map_err(|_| CacheError::Corrupt("gateway settings"))
    }

    /// The agent's settings from central, as sync brought them (`None`: none came).
    pub fn central_config(&self) -> Result<Option<Vec<u8>>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let table = match txn.open_table(GATEWAY_SETTINGS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        let Some(bytes) = table.get(CONFIG_KEY).map_err(backend)? else { return Ok(None) };
        Ok(Some(bytes.value().to_vec()))
    }

    /// The base topics of every room of the scope, sorted (the bridge's topics).
    pub fn scope_topics(&self) -> Result<Vec<String>, CacheError> {
        Ok(self.base_topics()?.into_values().collect::<std::collections::BTreeSet<_>>().into_iter().collect())
    }

    fn base_topics(&self) -> Result<std::collections::HashMap<Key, String>, CacheError> {
        let txn = self.registry.begin_read().map_err(backend)?;
        let rooms = txn.open_table(ROOMS).map_err(backend)?;
        let mut topics = std::collections::HashMap::new();
        for item in rooms.iter().map_err(backend)? {
            let (key, bytes) = item.map_err(backend)?;
            let room: RoomRecord =
                postcard::from_bytes(bytes.value()).map_err(|_| CacheError::Corrupt("room"))?;
            if !room.base_topic.is_empty() {
                topics.insert(key.value(), room.base_topic);
            }
        }
        Ok(topics)
    }

    /// Calls `f` with each enabled device that has an account on the local broker, in id order,
    /// one at a time (10,000 accounts never sit in memory together); `f` returns `false` to stop.
    pub fn each_broker_user(&self, mut f: impl FnMut(&BrokerUser) -> bool) -> Result<(), CacheError> {
        let base_topics = self.base_topics()?;
        let txn = self.registry.begin_read().map_err(backend)?;
        let accounts = match txn.open_table(BROKER_ACCOUNTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(backend(e)),
        };
        let devices = txn.open_table(DEVICES).map_err(backend)?;
        for item in accounts.iter().map_err(backend)? {
            let (key, hash) = item.map_err(backend)?;
            let Some(bytes) = devices.get(key.value()).map_err(backend)? else { continue };
            let d: DeviceRecord =
                postcard::from_bytes(bytes.value()).map_err(|_| CacheError::Corrupt("device"))?;
            if !d.enabled {
                continue;
            }
            let topics = d.rooms.iter().filter_map(|r| base_topics.get(&r.to_bytes()).cloned()).collect();
            let user = BrokerUser { login: d.login, password_hash: hash.value().to_owned(), topics };
            if !f(&user) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use neosens_protocol::ids::{DeviceId, DeviceTypeId, RoomId};
    use neosens_protocol::sync::{BatchKind, Change, MqttEndpoint, SyncBatch, WireUid};

    use super::*;

    fn device(n: u8, enabled: bool) -> Change {
        Change::UpsertDevice(Box::new(DeviceRecord {
            id: DeviceId::from_bytes([n; 16]),
            uid: WireUid::Ethernet(format!("24:0a:c4:00:00:{n:02x}").parse().unwrap()),
            device_type: DeviceTypeId::from_bytes([4; 16]),
            rooms: vec![RoomId::from_bytes([7; 16])],
            enabled,
            config_body: "{}".into(),
            mqtt: None,
            login: format!("senso_{n}"),
            secret_hash: [n; 32],
            credentials_delivered: true,
            staged_secret: None,
            lorawan: None,
        }))
    }

    fn account(n: u8) -> Change {
        let hash = format!("$7$101$salt{n}$hash{n}");
        Change::SetBrokerAccount(DeviceId::from_bytes([n; 16]), Some(BrokerAccount { password_hash: hash }))
    }

    fn users_of(cache: &Cache) -> Vec<BrokerUser> {
        let mut users = Vec::new();
        cache
            .each_broker_user(|u| {
                users.push(u.clone());
                true
            })
            .unwrap();
        users
    }

    fn batch(kind: BatchKind, revision: u64, changes: Vec<Change>) -> SyncBatch {
        SyncBatch { revision, kind, more: false, changes }
    }

    /// A copy an older agent made (deltas only since its last snapshot) is synced again from
    /// scratch once, so the settings and accounts it never asked for arrive.
    #[test]
    fn an_older_agents_copy_is_synced_again_once() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        cache.apply(&batch(BatchKind::Delta, 7, vec![device(1, true)]), 7).unwrap();
        assert_eq!((cache.revision().unwrap(), cache.sync_from().unwrap()), (7, 0));
        cache.apply(&batch(BatchKind::Snapshot, 8, vec![device(1, true)]), 8).unwrap();
        assert_eq!(cache.sync_from().unwrap(), 8);
        cache.apply(&batch(BatchKind::Delta, 9, vec![]), 9).unwrap();
        assert_eq!(cache.sync_from().unwrap(), 9);
    }

    /// Settings and accounts come with sync, follow deltas (a deleted or disabled device loses
    /// its account) and are replaced by the next snapshot.
    #[test]
    fn accounts_follow_the_registry_copy() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!(cache.gateway_settings().unwrap(), GatewaySettingsRecord::default());
        assert_eq!(users_of(&cache), Vec::new());
        assert_eq!(cache.scope_topics().unwrap(), Vec::<String>::new());
        let settings = GatewaySettingsRecord {
            local_broker: Some(MqttEndpoint { server: "gw.site".into(), port: 1883 }),
        };
        let room = RoomRecord {
            id: RoomId::from_bytes([7; 16]),
            building: neosens_protocol::ids::BuildingId::from_bytes([8; 16]),
            name: "302".into(),
            base_topic: "u4/302".into(),
        };
        let changes = vec![
            Change::SetGatewaySettings(settings.clone()),
            Change::UpsertRoom(room),
            device(1, true),
            account(1),
            device(2, true),
            account(2),
            device(3, false),
            account(3),
        ];
        cache.apply(&batch(BatchKind::Snapshot, 1, changes), 1).unwrap();
        assert_eq!(cache.gateway_settings().unwrap(), settings);
        let users = users_of(&cache);
        assert_eq!(cache.scope_topics().unwrap(), ["u4/302"]);
        let logins: Vec<&str> = users.iter().map(|u| u.login.as_str()).collect();
        assert_eq!(logins, ["senso_1", "senso_2"], "a disabled device has no account");
        assert_eq!(users[0].password_hash, "$7$101$salt1$hash1");
        assert_eq!(users[0].topics, ["u4/302"]);

        cache
            .apply(&batch(BatchKind::Delta, 2, vec![Change::DeleteDevice(DeviceId::from_bytes([2; 16]))]), 2)
            .unwrap();
        assert_eq!(users_of(&cache).len(), 1);

        // The mode turned off: a snapshot with default settings and no accounts.
        let off = vec![Change::SetGatewaySettings(GatewaySettingsRecord::default()), device(1, true)];
        cache.apply(&batch(BatchKind::Snapshot, 3, off), 3).unwrap();
        assert_eq!(cache.gateway_settings().unwrap(), GatewaySettingsRecord::default());
        assert!(users_of(&cache).is_empty());
    }
}
