//! The JSON forms of devices and their LoRaWAN sessions: what `/api/v1/devices` reads and
//! answers. The registry works on plain values ([`registry::NewDevice`], [`registry::DeviceInfo`]…);
//! these types add the wire names, defaults and OpenAPI schemas, so an attribute added for the API
//! cannot change what the registry stores or decides.

use neosens_protocol::UidKind;
use neosens_protocol::ids::{BuildingId, DeviceId, DeviceTypeId, RoomId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::locations::RoomView;
use super::present;
use crate::model::Codec;
use crate::registry;

/// A new device.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceInput {
    /// Its uid: a MAC (`24:0a:c4:12:34:56`), a DevEUI (16 hex digits) or a UUID.
    pub(crate) uid: String,
    /// The uid's kind (`ethernet`, `lorawan`, `uuid`); guessed from `uid` when absent.
    #[schema(value_type = Option<String>, example = "ethernet")]
    pub(crate) uid_kind: Option<UidKind>,
    /// Device type, by name or id.
    #[serde(rename = "type")]
    pub(crate) device_type: String,
    /// Free text.
    #[serde(default)]
    pub(crate) description: String,
    /// Room ids, main room first (at least one).
    #[schema(value_type = Vec<String>)]
    pub(crate) rooms: Vec<RoomId>,
    /// Whether it may fetch its configuration and connect (default true).
    pub(crate) enabled: Option<bool>,
    /// Configuration: the legacy array of zones (default `[]`).
    pub(crate) config: Option<Value>,
    /// A broker other than the default one.
    pub(crate) mqtt: Option<MqttEndpoint>,
    /// MQTT login (default `senso_<12 hex>` for a MAC, `<kind>_<uid>` otherwise).
    pub(crate) login: Option<String>,
    /// Outdated threshold overriding the type's, in seconds.
    pub(crate) outdated_after_s: Option<u32>,
    /// LoRaWAN session (`lorawan` devices); its keys are never shown again.
    pub(crate) lorawan: Option<LorawanInput>,
    /// OTAA credentials (`lorawan` devices that join); the AppKey is never shown again.
    pub(crate) otaa: Option<OtaaInput>,
}

/// Changes to a device; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevicePatch {
    /// New type.
    #[serde(rename = "type")]
    pub(crate) device_type: Option<String>,
    /// New description.
    pub(crate) description: Option<String>,
    /// New rooms, main room first.
    #[schema(value_type = Option<Vec<String>>)]
    pub(crate) rooms: Option<Vec<RoomId>>,
    /// Enable or disable.
    pub(crate) enabled: Option<bool>,
    /// New configuration.
    pub(crate) config: Option<Value>,
    /// New broker (`null`: back to the default one).
    #[serde(default, deserialize_with = "present")]
    pub(crate) mqtt: Option<Option<MqttEndpoint>>,
    /// New threshold (`null`: back to the type's).
    #[serde(default, deserialize_with = "present")]
    pub(crate) outdated_after_s: Option<Option<u32>>,
    /// A new LoRaWAN session (new keys, sealed at once).
    pub(crate) lorawan: Option<LorawanInput>,
    /// New OTAA credentials (`null`: the node no longer joins).
    #[serde(default, deserialize_with = "present")]
    pub(crate) otaa: Option<Option<OtaaInput>>,
}

/// Filters of a device listing.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeviceFilter {
    /// Site id or slug (of the main room).
    pub(crate) site: Option<String>,
    /// Building id (of the main room).
    #[param(value_type = Option<String>)]
    pub(crate) building: Option<BuildingId>,
    /// Room id (any of its rooms).
    #[param(value_type = Option<String>)]
    pub(crate) room: Option<RoomId>,
    /// Type name or id.
    #[serde(rename = "type")]
    pub(crate) device_type: Option<String>,
    /// State.
    pub(crate) state: Option<DeviceState>,
    /// Enabled or not.
    pub(crate) enabled: Option<bool>,
    /// Text searched (case-insensitive) in uid, login and description.
    pub(crate) q: Option<String>,
    /// Sort key: `uid` (default), `type`, `state`, `last_seen`, `description`, `room`; a leading
    /// `-` sorts in descending order.
    pub(crate) sort: Option<String>,
    /// Page size (default 100, at most 1000).
    pub(crate) limit: Option<usize>,
    /// Rows to skip.
    pub(crate) offset: Option<usize>,
}

/// A device as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct DeviceView {
    /// Internal id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: DeviceId,
    /// Uid kind.
    #[schema(value_type = String, example = "ethernet")]
    pub(crate) uid_kind: UidKind,
    /// Uid, canonical.
    pub(crate) uid: String,
    /// Type name.
    #[serde(rename = "type")]
    pub(crate) device_type: String,
    /// Type id.
    #[schema(value_type = String, format = Uuid)]
    pub(crate) type_id: DeviceTypeId,
    /// Description.
    pub(crate) description: String,
    /// Rooms, main first.
    pub(crate) rooms: Vec<RoomView>,
    /// Base topic of the main room.
    pub(crate) base_topic: Option<String>,
    /// Enabled.
    pub(crate) enabled: bool,
    /// Configuration.
    pub(crate) config: Value,
    /// Custom broker.
    pub(crate) mqtt: Option<MqttEndpoint>,
    /// MQTT login.
    pub(crate) login: String,
    /// Whether the secret has been delivered.
    pub(crate) credentials_delivered: bool,
    /// Threshold override.
    pub(crate) outdated_after_s: Option<u32>,
    /// Threshold in force.
    pub(crate) effective_outdated_after_s: u32,
    /// Liveness.
    pub(crate) state: DeviceState,
    /// Last status time (RFC 3339).
    pub(crate) last_seen: Option<String>,
    /// Last status text.
    pub(crate) last_status: Option<String>,
    /// Last status payload.
    pub(crate) last_payload: Option<Value>,
    /// Registration time.
    pub(crate) created_at: String,
    /// Last change.
    pub(crate) updated_at: String,
    /// LoRaWAN session, without its keys.
    pub(crate) lorawan: Option<LorawanView>,
    /// OTAA credentials, without the AppKey.
    pub(crate) otaa: Option<OtaaView>,
}

/// OTAA credentials as an admin gives them (LoRaWAN 1.0.x; the AppKey shown nowhere afterwards).
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtaaInput {
    /// JoinEUI (AppEUI), 16 hex digits.
    pub(crate) join_eui: String,
    /// AppKey, 32 hex digits.
    pub(crate) app_key: String,
    /// Payload codec of its sessions: `cayenne_lpp` (default), `neocampus_lpp`, `hex`, or `layout` (its device type's payload layout).
    pub(crate) codec: Option<Codec>,
}

/// OTAA credentials as the API shows them: never the AppKey.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct OtaaView {
    /// JoinEUI, 16 lowercase hex digits.
    pub(crate) join_eui: String,
    /// Payload codec.
    pub(crate) codec: Codec,
    /// Always `"sealed"`.
    pub(crate) app_key: &'static str,
    /// The join whose session is the node's: its DevNonce …
    pub(crate) last_join_dev_nonce: Option<u16>,
    /// … and when a gateway accepted it (RFC 3339).
    pub(crate) last_join_at: Option<String>,
}

impl From<OtaaInput> for registry::NewOtaa {
    fn from(v: OtaaInput) -> Self {
        registry::NewOtaa { join_eui: v.join_eui, app_key: v.app_key, codec: v.codec }
    }
}

impl From<registry::OtaaInfo> for OtaaView {
    fn from(v: registry::OtaaInfo) -> Self {
        OtaaView {
            join_eui: v.join_eui,
            codec: v.codec,
            app_key: v.app_key,
            last_join_dev_nonce: v.last_join.map(|(n, _)| n),
            last_join_at: v.last_join.map(|(_, at)| at.to_rfc3339()),
        }
    }
}

/// A session as an admin gives it (keys in hex, shown nowhere afterwards).
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LorawanInput {
    /// Device address, 8 hex digits.
    pub(crate) dev_addr: String,
    /// NwkSKey, 32 hex digits.
    pub(crate) nwk_s_key: String,
    /// AppSKey, 32 hex digits.
    pub(crate) app_s_key: String,
    /// `cayenne_lpp` (default), `neocampus_lpp`, `hex`, or `layout` (its device type's payload layout).
    pub(crate) codec: Option<Codec>,
    /// Accept a frame counter that went back (nodes resetting it at reboot; default false).
    pub(crate) relax_f_cnt: Option<bool>,
    /// Last uplink counter of an imported session (default 0).
    pub(crate) f_cnt_up: Option<u32>,
}

/// A session as the API shows it: never the keys.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct LorawanView {
    /// Device address.
    pub(crate) dev_addr: String,
    /// Payload codec.
    pub(crate) codec: Codec,
    /// Whether a counter going back is accepted.
    pub(crate) relax_f_cnt: bool,
    /// Last uplink counter known to central.
    pub(crate) f_cnt_up: u32,
    /// Always `"sealed"`: keys are not shown after creation.
    pub(crate) keys: &'static str,
}

impl From<DeviceInput> for registry::NewDevice {
    fn from(v: DeviceInput) -> Self {
        registry::NewDevice {
            uid: v.uid,
            uid_kind: v.uid_kind,
            device_type: v.device_type,
            description: v.description,
            rooms: v.rooms,
            enabled: v.enabled,
            config: v.config,
            mqtt: v.mqtt.map(Into::into),
            login: v.login,
            outdated_after_s: v.outdated_after_s,
            lorawan: v.lorawan.map(Into::into),
            otaa: v.otaa.map(Into::into),
        }
    }
}

impl From<DevicePatch> for registry::DeviceChanges {
    fn from(v: DevicePatch) -> Self {
        registry::DeviceChanges {
            device_type: v.device_type,
            description: v.description,
            rooms: v.rooms,
            enabled: v.enabled,
            config: v.config,
            mqtt: v.mqtt.map(|m| m.map(Into::into)),
            outdated_after_s: v.outdated_after_s,
            lorawan: v.lorawan.map(Into::into),
            otaa: v.otaa.map(|o| o.map(Into::into)),
        }
    }
}

impl From<DeviceFilter> for registry::DeviceQuery {
    fn from(v: DeviceFilter) -> Self {
        registry::DeviceQuery {
            site: v.site,
            building: v.building,
            room: v.room,
            device_type: v.device_type,
            state: v.state.map(Into::into),
            enabled: v.enabled,
            q: v.q,
            sort: v.sort,
            limit: v.limit,
            offset: v.offset,
            scope: crate::model::Scope::Campus,
        }
    }
}

impl From<registry::DeviceInfo> for DeviceView {
    fn from(v: registry::DeviceInfo) -> Self {
        DeviceView {
            id: v.id,
            uid_kind: v.uid_kind,
            uid: v.uid,
            device_type: v.device_type,
            type_id: v.type_id,
            description: v.description,
            rooms: v.rooms.into_iter().map(Into::into).collect(),
            base_topic: v.base_topic,
            enabled: v.enabled,
            config: v.config,
            mqtt: v.mqtt.map(Into::into),
            login: v.login,
            credentials_delivered: v.credentials_delivered,
            outdated_after_s: v.outdated_after_s,
            effective_outdated_after_s: v.effective_outdated_after_s,
            state: v.state.into(),
            last_seen: v.last_seen,
            last_status: v.last_status,
            last_payload: v.last_payload,
            created_at: v.created_at,
            updated_at: v.updated_at,
            lorawan: v.lorawan.map(Into::into),
            otaa: v.otaa.map(Into::into),
        }
    }
}

impl From<LorawanInput> for registry::NewLorawanSession {
    fn from(v: LorawanInput) -> Self {
        registry::NewLorawanSession {
            dev_addr: v.dev_addr,
            nwk_s_key: v.nwk_s_key,
            app_s_key: v.app_s_key,
            codec: v.codec,
            relax_f_cnt: v.relax_f_cnt,
            f_cnt_up: v.f_cnt_up,
        }
    }
}

impl From<registry::LorawanInfo> for LorawanView {
    fn from(v: registry::LorawanInfo) -> Self {
        LorawanView {
            dev_addr: v.dev_addr,
            codec: v.codec,
            relax_f_cnt: v.relax_f_cnt,
            f_cnt_up: v.f_cnt_up,
            keys: v.keys,
        }
    }
}

/// Liveness of a device, from its last status and its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeviceState {
    /// No status ever received.
    NeverSeen,
    /// Seen within its threshold.
    Ok,
    /// Not seen for longer than its threshold.
    Outdated,
    /// Disabled by an operator.
    Disabled,
}

impl From<DeviceState> for registry::DeviceState {
    fn from(v: DeviceState) -> Self {
        match v {
            DeviceState::NeverSeen => registry::DeviceState::NeverSeen,
            DeviceState::Ok => registry::DeviceState::Ok,
            DeviceState::Outdated => registry::DeviceState::Outdated,
            DeviceState::Disabled => registry::DeviceState::Disabled,
        }
    }
}

impl From<registry::DeviceState> for DeviceState {
    fn from(v: registry::DeviceState) -> Self {
        match v {
            registry::DeviceState::NeverSeen => DeviceState::NeverSeen,
            registry::DeviceState::Ok => DeviceState::Ok,
            registry::DeviceState::Outdated => DeviceState::Outdated,
            registry::DeviceState::Disabled => DeviceState::Disabled,
        }
    }
}

impl std::fmt::Debug for OtaaInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtaaInput").field("join_eui", &self.join_eui).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LorawanInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LorawanInput").field("dev_addr", &self.dev_addr).finish_non_exhaustive()
    }
}

/// A broker other than the default one, sent to the device in its credentials.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct MqttEndpoint {
    /// Host name.
    pub(crate) server: String,
    /// Port.
    pub(crate) port: u16,
}

impl From<MqttEndpoint> for crate::model::MqttEndpoint {
    fn from(v: MqttEndpoint) -> Self {
        crate::model::MqttEndpoint { server: v.server, port: v.port }
    }
}

impl From<crate::model::MqttEndpoint> for MqttEndpoint {
    fn from(v: crate::model::MqttEndpoint) -> Self {
        MqttEndpoint { server: v.server, port: v.port }
    }
}
