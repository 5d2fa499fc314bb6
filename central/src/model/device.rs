//! Devices and what is known of them at run time.

use neosens_protocol::DeviceUid;
use neosens_protocol::ids::{DeviceId, DeviceTypeId, RoomId};
use neosens_protocol::sync::Sealed;
use serde::{Deserialize, Serialize};

use super::Timestamp;

/// A broker other than the default one, sent to the device in its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttEndpoint {
    /// Host name.
    pub server: String,
    /// Port.
    pub port: u16,
}

/// A device's MQTT secret, never in clear: a keyed hash to verify it, and the secret sealed with
/// the server key for the hand-overs that need it (first delivery, broker dynamic security).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSecret {
    /// HMAC-SHA-256 of the secret under the server's hash key.
    pub hash: [u8; 32],
    /// The secret, sealed with the server's sealing key (AES-256-GCM).
    pub sealed: Sealed,
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Internal id (never changes).
    pub id: DeviceId,
    /// Identity: MAC, DevEUI or UUID; unique.
    #[serde(with = "wire_uid")]
    pub uid: DeviceUid,
    /// Its type.
    pub device_type: DeviceTypeId,
    /// Free text.
    pub description: String,
    /// Its rooms, main room first (the firmware takes the first topic as its base topic).
    pub rooms: Vec<RoomId>,
    /// Disabled devices still get their credentials (as in 2016) but no config and no broker access.
    pub enabled: bool,
    /// Configuration: the legacy array of zones, as JSON text.
    pub config: String,
    /// A broker other than the default one.
    pub mqtt: Option<MqttEndpoint>,
    /// MQTT login; unique.
    pub login: String,
    /// The MQTT secret.
    pub secret: DeviceSecret,
    /// Whether the secret has been handed to the device once (it is never sent again).
    pub credentials_delivered: bool,
    /// Outdated threshold for this device, overriding its type's.
    pub outdated_after_s: Option<u32>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// LoRaWAN session (`lorawan` devices): given by an admin (ABP, or imported), or by the last
    /// OTAA join a gateway reported.
    pub lorawan: Option<super::LorawanSession>,
    /// OTAA credentials (`lorawan` devices that join).
    pub otaa: Option<super::OtaaKeys>,
}

/// Schema version 3 of [`Device`] (schemas 3 and 4), before OTAA credentials: read by the
/// migration to v5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceV3 {
    /// Internal id (never changes).
    pub id: DeviceId,
    /// Identity: MAC, DevEUI or UUID; unique.
    #[serde(with = "wire_uid")]
    pub uid: DeviceUid,
    /// Its type.
    pub device_type: DeviceTypeId,
    /// Free text.
    pub description: String,
    /// Its rooms, main room first (the firmware takes the first topic as its base topic).
    pub rooms: Vec<RoomId>,
    /// Disabled devices still get their credentials (as in 2016) but no config and no broker access.
    pub enabled: bool,
    /// Configuration: the legacy array of zones, as JSON text.
    pub config: String,
    /// A broker other than the default one.
    pub mqtt: Option<MqttEndpoint>,
    /// MQTT login; unique.
    pub login: String,
    /// The MQTT secret.
    pub secret: DeviceSecret,
    /// Whether the secret has been handed to the device once (it is never sent again).
    pub credentials_delivered: bool,
    /// Outdated threshold for this device, overriding its type's.
    pub outdated_after_s: Option<u32>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// LoRaWAN session (`lorawan` devices).
    pub lorawan: Option<super::LorawanSession>,
}

/// Schema version 2 of [`Device`], before LoRaWAN sessions: read by the migration to v3
/// ([`DeviceV3`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceV2 {
    /// Id.
    pub id: DeviceId,
    /// Uid.
    #[serde(with = "wire_uid")]
    pub uid: DeviceUid,
    /// Type.
    pub device_type: DeviceTypeId,
    /// Description.
    pub description: String,
    /// Rooms.
    pub rooms: Vec<RoomId>,
    /// Enabled.
    pub enabled: bool,
    /// Configuration.
    pub config: String,
    /// Broker.
    pub mqtt: Option<MqttEndpoint>,
    /// Login.
    pub login: String,
    /// Secret.
    pub secret: DeviceSecret,
    /// Delivered.
    pub credentials_delivered: bool,
    /// Threshold.
    pub outdated_after_s: Option<u32>,
    /// Created.
    pub created_at: Timestamp,
    /// Updated.
    pub updated_at: Timestamp,
}

impl From<DeviceV2> for DeviceV3 {
    fn from(v: DeviceV2) -> Self {
        DeviceV3 {
            id: v.id,
            uid: v.uid,
            device_type: v.device_type,
            description: v.description,
            rooms: v.rooms,
            enabled: v.enabled,
            config: v.config,
            mqtt: v.mqtt,
            login: v.login,
            secret: v.secret,
            credentials_delivered: v.credentials_delivered,
            outdated_after_s: v.outdated_after_s,
            created_at: v.created_at,
            updated_at: v.updated_at,
            lorawan: None,
        }
    }
}

impl From<DeviceV3> for Device {
    fn from(v: DeviceV3) -> Self {
        Device {
            id: v.id,
            uid: v.uid,
            device_type: v.device_type,
            description: v.description,
            rooms: v.rooms,
            enabled: v.enabled,
            config: v.config,
            mqtt: v.mqtt,
            login: v.login,
            secret: v.secret,
            credentials_delivered: v.credentials_delivered,
            outdated_after_s: v.outdated_after_s,
            created_at: v.created_at,
            updated_at: v.updated_at,
            lorawan: v.lorawan,
            otaa: None,
        }
    }
}

/// What the device itself last told (kept apart from the registry record: it changes every few
/// minutes per device and is not synced to gateways).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatusRecord {
    /// When a status was last received.
    pub last_seen: Option<Timestamp>,
    /// The last `status` text (`running`, `Status.run` …).
    pub last_status: Option<String>,
    /// The last status payload, as JSON text.
    pub last_payload: Option<String>,
}

/// Serde for [`DeviceUid`] through the tagged wire form of the sync messages.
mod wire_uid {
    use neosens_protocol::DeviceUid;
    use neosens_protocol::sync::WireUid;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(uid: &DeviceUid, s: S) -> Result<S::Ok, S::Error> {
        WireUid::from(*uid).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceUid, D::Error> {
        WireUid::deserialize(d).map(DeviceUid::from)
    }
}
