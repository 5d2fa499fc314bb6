//! What the broker's own access control needs to know of each device: its login, its secret
//! (unsealed for this hand-over only), the topics of its rooms, and whether it is enabled.
//! Enrolled gateways are accounts too, with the topics of every room of their scope (the rights
//! of its devices, which it relays).

use std::collections::HashSet;

use neosens_protocol::ids::DeviceId;

use super::{Registry, RegistryError};

/// A device as the broker's dynamic security sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAccount {
    /// The device.
    pub id: DeviceId,
    /// MQTT username.
    pub login: String,
    /// The secret in clear (never logged: `Debug` hides it).
    pub secret: String,
    /// Keyed hash of the secret, to notice a reset.
    pub secret_hash: [u8; 32],
    /// Base topics of its rooms.
    pub topics: Vec<String>,
    /// Whether it may connect.
    pub enabled: bool,
}

impl std::fmt::Debug for BrokerAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAccount")
            .field("login", &self.login)
            .field("topics", &self.topics)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Registry {
    /// Broker accounts of every device and enrolled gateway (`only: None`) or of some (a gateway's
    /// account is keyed by its id's bytes).
    pub fn broker_accounts(
        &self,
        only: Option<&HashSet<DeviceId>>,
    ) -> Result<Vec<BrokerAccount>, RegistryError> {
        let state = self.state.read();
        let mut out = Vec::new();
        for entry in state.devices.values() {
            let d = &entry.record;
            if only.is_some_and(|set| !set.contains(&d.id)) {
                continue;
            }
            if self.login_reserved(&d.login) {
                // Stored before the login was reserved: never handed to the broker, where it
                // would change the password of central, the admin or a gateway.
                tracing::warn!(device = %d.id, login = %d.login, "device login is reserved for a service account: not given to the broker");
                continue;
            }
            let secret = self.keys.open(&d.secret.sealed, &d.id.to_bytes())?;
            out.push(BrokerAccount {
                id: d.id,
                login: d.login.clone(),
                secret: String::from_utf8(secret).map_err(|_| crate::secrets::KeyError::Unseal)?,
                secret_hash: d.secret.hash,
                topics: state.device_topics(d),
                enabled: d.enabled,
            });
        }
        for g in state.gateways.values() {
            let id = DeviceId::from_bytes(g.id.to_bytes());
            if g.credentials.is_none() {
                continue;
            }
            if only.is_some_and(|set| !set.contains(&id)) {
                continue;
            }
            // The broker knows the gateway by its MQTT password, never its API secret.
            let secret = neosens_runtime::gateway_secrets::mqtt_password(&self.gateway_keys(g)?);
            let mut topics: Vec<String> = state
                .rooms
                .values()
                .filter(|r| super::gateways::building_in_scope(&state, &g.scope, r.building))
                .filter_map(|r| state.room_topics.get(&r.id).cloned())
                .collect();
            topics.sort();
            out.push(BrokerAccount {
                id,
                login: super::gateway_username(g.id),
                secret_hash: self.keys.hash(secret.as_bytes()),
                secret,
                topics,
                enabled: true,
            });
        }
        Ok(out)
    }
}
