//! Edge gateways and the share of the registry each one holds.

use neosens_protocol::gateway_config::ManagedConfig;
use neosens_protocol::ids::{BuildingId, GatewayId, SiteId};
use neosens_protocol::sync::Sealed;
use serde::{Deserialize, Serialize};

use super::Timestamp;

/// What part of the registry a gateway serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GatewayScope {
    /// A whole site.
    Site(SiteId),
    /// Some buildings.
    Buildings(Vec<BuildingId>),
}

/// An edge gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// Id.
    pub id: GatewayId,
    /// Unique name.
    pub name: String,
    /// Its scope.
    pub scope: GatewayScope,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its long-lived credentials, once enrolled.
    pub credentials: Option<GatewayCredentials>,
    /// A pending one-time enrolment token.
    pub enrolment: Option<Enrolment>,
    /// What central sets for it (schema 9; absent from older PostgreSQL documents).
    #[serde(default)]
    pub settings: GatewaySettings,
}

/// Settings of one gateway, set in central and carried to it by sync.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GatewaySettings {
    /// Local-broker mode: the devices of its scope are given this address (the gateway's
    /// Mosquitto, on the site's LAN) in `/device/credentials`, and the gateway bridges it to
    /// central's broker. `None`: its devices use central's broker.
    pub local_broker: Option<LocalBroker>,
    /// Its agent's settings managed here (schema 10; absent from older PostgreSQL documents):
    /// laid under the gateway's own configuration file.
    #[serde(default)]
    pub config: ManagedConfig,
}

/// Schema version 9 of [`GatewaySettings`], before the agent's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GatewaySettingsV9 {
    /// Local-broker mode.
    pub local_broker: Option<LocalBroker>,
}

/// Schema version 9 of [`Gateway`]: read by the migration to v10.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayV9 {
    /// Id.
    pub id: GatewayId,
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: GatewayScope,
    /// Creation time.
    pub created_at: Timestamp,
    /// Credentials.
    pub credentials: Option<GatewayCredentials>,
    /// Pending enrolment.
    pub enrolment: Option<Enrolment>,
    /// Settings.
    pub settings: GatewaySettingsV9,
}

impl From<GatewayV9> for Gateway {
    fn from(v9: GatewayV9) -> Self {
        Gateway {
            id: v9.id,
            name: v9.name,
            scope: v9.scope,
            created_at: v9.created_at,
            credentials: v9.credentials,
            enrolment: v9.enrolment,
            settings: GatewaySettings {
                local_broker: v9.settings.local_broker,
                config: ManagedConfig::default(),
            },
        }
    }
}

/// Where a gateway's local broker is reached from the site's LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalBroker {
    /// Host name or address, as the devices are given it.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Schema version 8 of [`Gateway`], before its settings: read by the migration to v9.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayV8 {
    /// Id.
    pub id: GatewayId,
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: GatewayScope,
    /// Creation time.
    pub created_at: Timestamp,
    /// Credentials.
    pub credentials: Option<GatewayCredentials>,
    /// Pending enrolment.
    pub enrolment: Option<Enrolment>,
}

impl From<GatewayV8> for GatewayV9 {
    fn from(v8: GatewayV8) -> Self {
        GatewayV9 {
            id: v8.id,
            name: v8.name,
            scope: v8.scope,
            created_at: v8.created_at,
            credentials: v8.credentials,
            enrolment: v8.enrolment,
            settings: GatewaySettingsV9::default(),
        }
    }
}

/// What central keeps of an enrolled gateway's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayCredentials {
    /// Keyed hash of its API secret (its bearer token on `/api/v1/edge/*`).
    pub secret_hash: [u8; 32],
    /// The API secret, sealed with central's key (bound to the gateway id). Read by no one since
    /// the broker knows gateways by MQTT passwords of their own (derived from `keys`); kept so
    /// that stored records keep their shape.
    pub sealed_secret: Sealed,
    /// Its own key pair (hash key, then sealing key: 64 bytes), sealed with central's key and
    /// bound to the gateway id: central hashes and seals device secrets for it at sync time.
    pub keys: Sealed,
    /// When it enrolled.
    pub enrolled_at: Timestamp,
}

/// A one-time enrolment token waiting to be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// Keyed hash of the token.
    pub token_hash: [u8; 32],
    /// It is refused after this.
    pub expires_at: Timestamp,
}

/// Schema version 2 of [`Gateway`], before enrolment: read by the migration to v3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayV2 {
    /// Id.
    pub id: GatewayId,
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: GatewayScope,
    /// Creation time.
    pub created_at: Timestamp,
}

impl From<GatewayV2> for GatewayV8 {
    fn from(v2: GatewayV2) -> Self {
        GatewayV8 {
            id: v2.id,
            name: v2.name,
            scope: v2.scope,
            created_at: v2.created_at,
            credentials: None,
            enrolment: None,
        }
    }
}
