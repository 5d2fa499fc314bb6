//! The registry: records in memory, kept consistent by the model rules, persisted through the
//! [`Store`] before they change in memory.
//!
//! Reads take a shared lock on the in-memory state and never touch the disk. Writes are
//! serialized by one writer lock: read the state, decide the writes (checking uniqueness and the
//! other rules against the same state), commit them to the store, then apply them in memory. So a
//! rule checked is a rule that holds when the write lands, and a failed commit changes nothing.

mod access;
mod audit;
mod broker;
mod bulk;
mod bulk_actions;
mod device_sort;
mod device_types;
mod devices;
mod directory_users;
mod dynsec;
mod edge;
mod edge_sync;
mod fleet;
mod follower;
mod gateways;
mod history;
mod import;
mod local_broker;
mod locations;
mod lorawan;
mod node_orders;
mod orders;
mod otaa;
mod provisioning;
mod records;
mod replicas;
pub use replicas::{follow_other_replicas, follow_statuses};
mod site_rights;
mod state;
mod status;
#[cfg(test)]
mod test_support;
mod users;

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::secrets::{KeyError, ServerKeys};
use crate::store::{Store, StoreError, Write};

pub use access::{Credential, IssuedToken, Principal};
pub use broker::{Access, Decision, DenyReason, ServiceAccount};
pub use bulk::{BulkReport, DeviceRow, MAX_IMPORT_ROWS, RowOutcome, RowReport};
pub use device_sort::{DeviceSort, SortBy};
pub use device_types::{DeviceTypeChanges, NewDeviceType};
pub use devices::{DeviceChanges, DeviceInfo, DeviceQuery, DeviceState, MAX_LOGIN_LEN, MAX_PAGE, NewDevice};
pub use directory_users::{DIRECTORY_PASSWORD_MARK, UserSource};
pub use dynsec::BrokerAccount;
pub use edge::{
    ENROLMENT_PREFIX, ENROLMENT_TTL_MS, EnrolmentGrant, GATEWAY_SECRET_PREFIX, GATEWAY_USERNAME_PREFIX,
    IssuedEnrolment, gateway_username,
};
pub use edge_sync::{DELTA_LIMIT, SNAPSHOT_PAGE};
pub use fleet::{BuildingFleet, Fleet, RoomFleet, SiteFleet, StateTally};
pub use follower::{ChangeFollower, Changes};
pub use gateways::{GatewayChanges, GatewayInfo, NewGateway, ScopeSpec};
pub use history::{HISTORY_MIN_INTERVAL_MS, HistoryConfig, MAX_HISTORY_PAYLOAD, TimelineEvent};
pub use import::{Counts, ImportReport};
pub use locations::{
    BuildingChanges, MAX_NAME_LEN, NewBuilding, NewRoom, NewSite, RoomChanges, RoomInfo, SiteChanges,
};
pub use lorawan::{LorawanInfo, NewLorawanSession};
pub use orders::{OrderSpec, PreparedOrder, REINSTALL};
pub use otaa::{NewOtaa, OtaaInfo};
pub use provisioning::Refusal;
pub use site_rights::MAX_GRANTED_SITES;
pub(crate) use site_rights::current_scope;
pub use status::{FirmwareReport, StatusDrop};
pub use users::{NewUser, UserChanges, UserInfo};

/// Slug and name of the site created at first start.
pub const DEFAULT_SITE_SLUG: &str = "ut3";

/// Why a registry operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No such record.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for ("device 24:0A:…").
        what: String,
    },
    /// A uniqueness rule or a reference would break.
    #[error("{message}")]
    Conflict {
        /// Which rule.
        message: String,
    },
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A device configuration breaks its type's schema, the legacy shape or the firmware limit.
    #[error("configuration rejected: {}", .errors.join("; "))]
    Config {
        /// Each violation, with its JSON pointer.
        errors: Vec<String>,
    },
    /// The caller's rights per site do not reach this change.
    #[error("{message}")]
    Forbidden {
        /// What is out of reach and what to do.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server keys failed.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl RegistryError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        RegistryError::Invalid { field: field.into(), message: message.into() }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        RegistryError::NotFound { what: what.into() }
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        RegistryError::Conflict { message: message.into() }
    }
}

/// The registry service.
pub struct Registry {
    store: Arc<dyn Store>,
    keys: Arc<ServerKeys>,
    state: RwLock<state::State>,
    writer: Mutex<()>,
    service_accounts: broker::ServiceAccounts,
    /// The revision after each committed change, for tasks that follow the registry (dynamic
    /// security, gateway sync).
    revisions: tokio::sync::watch::Sender<u64>,
    /// How much of each device's status history is kept.
    history: RwLock<history::HistoryConfig>,
    /// When each device's last status was kept in its history (one a minute at most). Holds
    /// registered devices only; a deleted one's entry goes at the next restart.
    history_last: Mutex<std::collections::HashMap<neosens_protocol::ids::DeviceId, i64>>,
    /// What the gateways in local-broker mode last reported of their broker and link (in
    /// memory, one entry per gateway that reported: bounded by the registered gateways).
    site_links: Mutex<std::collections::HashMap<neosens_protocol::ids::GatewayId, local_broker::SiteLink>>,
}

/// Decisions made again after another replica's change, before the write fails (each retry
/// first reads every change it missed, so only a sustained stream of writes elsewhere
/// exhausts them).
const MAX_STALE_RETRIES: u32 = 8;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("revision", &self.revision()).finish_non_exhaustive()
    }
}

impl Registry {
    /// Loads everything from `store`, and creates the default site on first start.
    pub fn open(store: Arc<dyn Store>, keys: Arc<ServerKeys>) -> Result<Self, RegistryError> {
        let snapshot = store.load()?;
        let (revisions, _) = tokio::sync::watch::channel(snapshot.revision);
        let registry = Registry {
            store,
            keys,
            state: RwLock::new(state::State::from_snapshot(snapshot)),
            writer: Mutex::new(()),
            service_accounts: broker::ServiceAccounts::default(),
            revisions,
            history: RwLock::new(history::HistoryConfig::default()),
            history_last: Mutex::new(std::collections::HashMap::new()),
            site_links: Mutex::new(std::collections::HashMap::new()),
        };
        registry.ensure_default_site()?;
        Ok(registry)
    }

    /// The change-log revision of the state in memory.
    pub fn revision(&self) -> u64 {
        self.state.read().revision
    }

    /// Follows the revision: changes after each committed batch.
    pub fn watch_revision(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revisions.subscribe()
    }

    /// Number of devices.
    pub fn device_count(&self) -> usize {
        self.state.read().devices.len()
    }

    /// The server keys.
    pub fn keys(&self) -> &ServerKeys {
        &self.keys
    }

    /// The store (for what the registry does not mirror in memory: device logs, change log).
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The store, shared (for components that keep their own records in it: alerts).
    pub fn alert_store(&self) -> Arc<dyn crate::store::AlertStore> {
        Arc::clone(&self.store) as Arc<dyn crate::store::AlertStore>
    }

    /// The whole store, shared (for components that keep their own records in it: firmware).
    pub fn shared_store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Runs `work` against the registry on the blocking pool: the way async code calls anything
    /// that commits to (or reads from) the store, so a slow disk never stalls an async worker —
    /// the broker-auth answers and `/healthz` it also serves. Debug builds check the rule where
    /// store transactions start (`neosens_runtime::blocking`).
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Registry) -> T + Send + 'static,
    ) -> T {
        let registry = Arc::clone(self);
        neosens_runtime::blocking::run(move || work(&registry)).await
    }

    /// Runs one write: `decide` sees the current state and returns the writes and a result; the
    /// writes are committed, then applied in memory.
    /// Each change is recorded in the audit trail as the current actor's (see
    /// [`crate::audit::acting`]), in the same store transaction.
    fn mutate<T>(
        &self,
        decide: impl FnMut(&state::State) -> Result<(Vec<Write>, T), RegistryError>,
    ) -> Result<T, RegistryError> {
        self.mutate_as(None, decide)
    }

    /// [`Registry::mutate`], with the audit entries of `action`'s kind named `action`
    /// (`device.reset_credentials`) instead of create/update/delete.
    ///
    /// With several central processes on one database, the batch is committed only if no other
    /// process changed the registry since the revision `decide` saw; otherwise this one reads
    /// those changes ([`Registry::catch_up`]) and decides again, on the state they made.
    fn mutate_as<T>(
        &self,
        action: Option<&str>,
        mut decide: impl FnMut(&state::State) -> Result<(Vec<Write>, T), RegistryError>,
    ) -> Result<T, RegistryError> {
        let _writer = self.writer.lock();
        let mut attempts = 0;
        loop {
            let (writes, audit, out, seen) = {
                let state = self.state.read();
                let (writes, out) = decide(&state)?;
                site_rights::check_writes(&state, &site_rights::current_scope(), &writes)?;
                let audit = audit::entries_for(&state, &writes, action);
                (writes, audit, out, state.revision)
            };
            if writes.is_empty() {
                return Ok(out);
            }
            match self.store.apply_at(seen, &writes, &audit) {
                Ok(revision) => {
                    self.state.write().apply(writes, revision);
                    self.revisions.send_replace(revision);
                    return Ok(out);
                }
                Err(crate::store::StoreError::Stale { current, .. }) if attempts < MAX_STALE_RETRIES => {
                    attempts += 1;
                    tracing::debug!(seen, current, "another replica changed the registry: catching up");
                    self.catch_up_locked()?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A registry for unit tests: building `U4`, room `302`, type `esp32` and `devices` ESP32s in it
/// (MACs `24:0a:c4:00:00:<n>`), stored in `dir`.
#[cfg(test)]
pub(crate) fn test_registry(
    dir: &std::path::Path,
    devices: u8,
) -> (Arc<Registry>, neosens_protocol::ids::BuildingId, Vec<neosens_protocol::ids::DeviceId>) {
    let keys = Arc::new(ServerKeys::load_or_create(dir).unwrap());
    let registry = Registry::open(Arc::new(crate::store::RedbStore::open(dir).unwrap()), keys).unwrap();
    let b = registry
        .create_building(NewBuilding { site: None, name: "U4".into(), description: String::new() })
        .unwrap();
    let r = registry
        .create_room(NewRoom { building: b.id, name: "302".into(), description: String::new(), topic: None })
        .unwrap();
    registry
        .create_device_type(NewDeviceType {
            name: "esp32".into(),
            description: String::new(),
            config_schema: None,
            status_period_s: None,
            outdated_after_s: None,
            orders: None,
            status_rules: Vec::new(),
            payload_layout: None,
        })
        .unwrap();
    let ids = (0..devices)
        .map(|i| {
            registry
                .create_device(test_support::device_input(&format!("24:0a:c4:00:00:{i:02x}"), vec![r.id]))
                .unwrap()
                .id
        })
        .collect();
    (Arc::new(registry), b.id, ids)
}
