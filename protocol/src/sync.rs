//! Central → edge sync messages (DESIGN.md §4: `GET /api/v1/edge/sync`, `application/x-postcard`).
//!
//! A body is a postcard-encoded version number followed by a postcard-encoded [`SyncBatch`].
//! The version comes first and on its own so that an old agent facing a newer central says
//! "unsupported version 2" instead of "does not decode". Records carry only what a gateway needs
//! for its scope: secrets travel as keyed hashes, or sealed for that gateway.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::edge::{Codec, UnknownCodec};
use crate::ids::{BuildingId, DevAddr, DeviceId, DeviceTypeId, RoomId, SiteId};
use crate::{DevEui, DeviceUid, Error, Mac};

/// Version of the messages this build reads and writes.
pub const SYNC_VERSION: u16 = 1;

/// Media type of sync bodies.
pub const CONTENT_TYPE: &str = "application/x-postcard";

/// One answer to a sync request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncBatch {
    /// Revision of central's change log this batch brings the gateway to.
    pub revision: u64,
    /// Whether the gateway must first drop everything it has (a snapshot) or apply on top.
    pub kind: BatchKind,
    /// Whether more batches follow for the same request (large snapshots come in pages).
    pub more: bool,
    /// The changes, in revision order.
    pub changes: Vec<Change>,
}

/// Snapshot or delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchKind {
    /// The whole scope; replaces what the gateway holds.
    Snapshot,
    /// What changed since the revision the gateway asked from.
    Delta,
}

/// One change to the gateway's copy of the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// A site was created or changed.
    UpsertSite(SiteRecord),
    /// A site left the scope or was deleted.
    DeleteSite(SiteId),
    /// A building was created or changed.
    UpsertBuilding(BuildingRecord),
    /// A building left the scope or was deleted.
    DeleteBuilding(BuildingId),
    /// A room was created or changed (renames carry the new base topic).
    UpsertRoom(RoomRecord),
    /// A room left the scope or was deleted.
    DeleteRoom(RoomId),
    /// A device type was created or changed.
    UpsertDeviceType(DeviceTypeRecord),
    /// A device type was deleted.
    DeleteDeviceType(DeviceTypeId),
    /// A device was created or changed, or entered the scope.
    UpsertDevice(Box<DeviceRecord>),
    /// A device left the scope or was deleted.
    DeleteDevice(DeviceId),
    /// A LoRaWAN node's OTAA credentials (after its `UpsertDevice`), or their removal. Only to
    /// agents that ask for it (`ext=1` on the sync request): an older agent would not decode
    /// this variant.
    SetOtaa(DeviceId, Option<OtaaRecord>),
    /// A device type's payload layout (after its `UpsertDeviceType`), or its removal; to the
    /// same agents as `SetOtaa`.
    SetPayloadLayout(DeviceTypeId, Option<crate::layout::PayloadLayout>),
    /// The gateway's own settings, set in central (first in every snapshot, which a change of
    /// them triggers). Only to agents that ask for local-broker changes (`ext=2`).
    SetGatewaySettings(GatewaySettingsRecord),
    /// A device's line for the local broker's password file (after its `UpsertDevice`), to
    /// gateways in local-broker mode (`ext=2`); `None` when it has none (the mode is off).
    SetBrokerAccount(DeviceId, Option<BrokerAccount>),
    /// The gateway's settings managed in central, in their wire form
    /// ([`crate::gateway_config::ManagedConfig::to_wire`]; empty: none), second in every
    /// snapshot. Bytes rather than the struct so that a field added later does not break an
    /// older agent's batches: it refuses the settings (their version), says so, and keeps its
    /// own file. Only to agents that ask for it (`ext=3`).
    SetGatewayConfig(Vec<u8>),
}

/// What central sets for one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GatewaySettingsRecord {
    /// Local-broker mode: the devices of the scope use a Mosquitto on the gateway, bridged to
    /// central's broker; `None` keeps them on central's broker.
    pub local_broker: Option<MqttEndpoint>,
}

/// A device's account on a gateway's local broker: Mosquitto's own PBKDF2-SHA512 password-file
/// hash of its secret (`$7$<iterations>$<salt>$<hash>`), made by central. The gateway never
/// holds the secret itself (only while it is staged for first delivery), and the hash of a
/// 122-bit random secret cannot be turned back into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerAccount {
    /// The `$7$…` hash, as Mosquitto's `password_file` reads it after `login:`.
    pub password_hash: String,
}

/// A node's OTAA credentials (LoRaWAN 1.0.x), as a gateway needs them to answer its joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtaaRecord {
    /// JoinEUI (AppEUI), big-endian.
    pub join_eui: [u8; 8],
    /// AppKey, sealed for the gateway ([`lorawan_key_context`] with `appkey`).
    pub app_key: Sealed,
    /// Payload codec of its sessions (a [`Codec`] name).
    pub codec: String,
    /// The join central last accepted (its session is the device's `lorawan` session).
    pub last_join: Option<LastJoin>,
}

/// A join accepted by a gateway and reported to central.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastJoin {
    /// The node's DevNonce.
    pub dev_nonce: u16,
    /// When the gateway accepted it, ms since the Unix epoch (central's clock).
    pub joined_at_ms: u64,
}

/// A site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// Its id.
    pub id: SiteId,
    /// Short name used in topics (`ut3`, `carcassonne`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Whether it is the default site (topics without the `abroad/<slug>/` prefix).
    pub is_default: bool,
}

/// A building.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildingRecord {
    /// Its id.
    pub id: BuildingId,
    /// The site it belongs to.
    pub site: SiteId,
    /// Display name.
    pub name: String,
    /// Whether it is the special `outside` building of outdoor areas.
    pub outside: bool,
}

/// A room (or an outdoor area).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// Its id.
    pub id: RoomId,
    /// The building it belongs to.
    pub building: BuildingId,
    /// Display name.
    pub name: String,
    /// Its base topic, as central computed or imported it.
    pub base_topic: String,
}

/// A device type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceTypeRecord {
    /// Its id.
    pub id: DeviceTypeId,
    /// Name (`esp32`, `lorawan_node` …).
    pub name: String,
    /// Expected seconds between two statuses.
    pub status_period_s: u32,
    /// Seconds without a status after which a device of this type is outdated.
    pub outdated_after_s: u32,
}

/// A device's uid on the wire (postcard has no "guess the type" decoding, so the kind is a tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireUid {
    /// A MAC.
    Ethernet(Mac),
    /// A DevEUI.
    Lorawan(DevEui),
    /// A UUID, as 16 bytes.
    Uuid([u8; 16]),
}

impl From<DeviceUid> for WireUid {
    fn from(uid: DeviceUid) -> Self {
        match uid {
            DeviceUid::Ethernet(mac) => WireUid::Ethernet(mac),
            DeviceUid::Lorawan(eui) => WireUid::Lorawan(eui),
            DeviceUid::Uuid(uuid) => WireUid::Uuid(*uuid.as_bytes()),
        }
    }
}

impl From<WireUid> for DeviceUid {
    fn from(uid: WireUid) -> Self {
        match uid {
            WireUid::Ethernet(mac) => DeviceUid::Ethernet(mac),
            WireUid::Lorawan(eui) => DeviceUid::Lorawan(eui),
            WireUid::Uuid(bytes) => DeviceUid::Uuid(uuid::Uuid::from_bytes(bytes)),
        }
    }
}

/// A secret sealed with AES-256-GCM (for the server itself, or for one gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The 96-bit nonce.
    pub nonce: [u8; 12],
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

/// What a LoRaWAN session key is sealed to (central's store and the gateway's copy alike): the
/// device id, `/`, and `nwk` or `app` — a key moved to another device or role does not open.
pub fn lorawan_key_context(device: [u8; 16], which: &str) -> Vec<u8> {
    let mut c = device.to_vec();
    c.push(b'/');
    c.extend_from_slice(which.as_bytes());
    c
}

/// A broker other than the default one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttEndpoint {
    /// Host name.
    pub server: String,
    /// Port.
    pub port: u16,
}

/// An ABP LoRaWAN session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LorawanSession {
    /// The session's device address.
    pub dev_addr: DevAddr,
    /// NwkSKey, sealed for the gateway.
    pub nwk_s_key: Sealed,
    /// AppSKey, sealed for the gateway.
    pub app_s_key: Sealed,
    /// Last uplink frame counter central knows of (the gateway keeps its own, higher one).
    pub f_cnt_up: u32,
    /// Whether a counter that went back (a node reset) is accepted.
    pub relax_f_cnt: bool,
    /// Payload codec: the name of a [`Codec`] ([`Codec::as_str`]; [`LorawanSession::codec`]
    /// parses it). A string, not the enum, on purpose: the bytes stay those of version 1, and a
    /// gateway given a codec newer than itself refuses that node's payloads, not the whole batch.
    pub codec: String,
}

impl LorawanSession {
    /// The session's codec, or the name no [`Codec`] of this build has.
    pub fn codec(&self) -> Result<Codec, UnknownCodec> {
        self.codec.parse()
    }
}

/// A device, as much of it as a gateway needs to provision it and relay its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Internal id.
    pub id: DeviceId,
    /// Its uid.
    pub uid: WireUid,
    /// Its type.
    pub device_type: DeviceTypeId,
    /// Its rooms, main room first.
    pub rooms: Vec<RoomId>,
    /// Whether it may fetch its config and connect.
    pub enabled: bool,
    /// The exact `/device/config` body central serves it (topics and zones, Python-printed), so
    /// that the gateway answers offline byte for byte as central would.
    pub config_body: String,
    /// A broker other than the default one.
    pub mqtt: Option<MqttEndpoint>,
    /// MQTT login.
    pub login: String,
    /// HMAC-SHA-256 of the secret under the gateway's verification key.
    pub secret_hash: [u8; 32],
    /// Whether the password has been delivered once.
    pub credentials_delivered: bool,
    /// The secret itself, sealed for this gateway, while it is still to be delivered.
    pub staged_secret: Option<Sealed>,
    /// LoRaWAN session, for `lorawan` devices.
    pub lorawan: Option<LorawanSession>,
}

impl SyncBatch {
    /// Encodes the batch as a sync body: version, then the batch.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = postcard::to_allocvec(&SYNC_VERSION).map_err(|_| Error::InvalidSyncMessage)?;
        let body = postcard::to_allocvec(self).map_err(|_| Error::InvalidSyncMessage)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a sync body, refusing other versions and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (version, rest) =
            postcard::take_from_bytes::<u16>(bytes).map_err(|_| Error::InvalidSyncMessage)?;
        if version != SYNC_VERSION {
            return Err(Error::UnsupportedSyncVersion(version));
        }
        let (batch, rest) =
            postcard::take_from_bytes::<SyncBatch>(rest).map_err(|_| Error::InvalidSyncMessage)?;
        if !rest.is_empty() {
            return Err(Error::InvalidSyncMessage);
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> SyncBatch {
        let site = SiteId::from_bytes([1; 16]);
        let building = BuildingId::from_bytes([2; 16]);
        let room = RoomId::from_bytes([3; 16]);
        let dtype = DeviceTypeId::from_bytes([4; 16]);
        SyncBatch {
            revision: 42,
            kind: BatchKind::Snapshot,
            more: false,
            changes: vec![
                Change::UpsertSite(SiteRecord {
                    id: site,
                    slug: "ut3".into(),
                    name: "UT3".into(),
                    is_default: true,
                }),
                Change::UpsertBuilding(BuildingRecord {
                    id: building,
                    site,
                    name: "U4".into(),
                    outside: false,
                }),
                Change::UpsertRoom(RoomRecord {
                    id: room,
                    building,
                    name: "302".into(),
                    base_topic: "u4/302".into(),
                }),
                Change::UpsertDeviceType(DeviceTypeRecord {
                    id: dtype,
                    name: "esp32".into(),
                    status_period_s: 1800,
                    outdated_after_s: 1800,
                }),
                Change::UpsertDevice(Box::new(DeviceRecord {
                    id: DeviceId::from_bytes([5; 16]),
                    uid: WireUid::Ethernet("24:0a:c4:12:34:56".parse().unwrap()),
                    device_type: dtype,
                    rooms: vec![room],
                    enabled: true,
                    config_body: "{}".into(),
                    mqtt: Some(MqttEndpoint { server: "neocampus.univ-tlse3.fr".into(), port: 10883 }),
                    login: "senso_240ac4123456".into(),
                    secret_hash: [9; 32],
                    credentials_delivered: false,
                    staged_secret: Some(Sealed { nonce: [7; 12], ciphertext: vec![1, 2, 3] }),
                    lorawan: None,
                })),
                Change::UpsertDevice(Box::new(DeviceRecord {
                    id: DeviceId::from_bytes([6; 16]),
                    uid: WireUid::Lorawan("70B3D57ED0000001".parse().unwrap()),
                    device_type: dtype,
                    rooms: vec![room],
                    enabled: true,
                    config_body: "{}".into(),
                    mqtt: None,
                    login: "lora".into(),
                    secret_hash: [0; 32],
                    credentials_delivered: true,
                    staged_secret: None,
                    lorawan: Some(LorawanSession {
                        dev_addr: "49BE7DF1".parse().unwrap(),
                        nwk_s_key: Sealed { nonce: [1; 12], ciphertext: vec![0; 32] },
                        app_s_key: Sealed { nonce: [2; 12], ciphertext: vec![0; 32] },
                        f_cnt_up: 2,
                        relax_f_cnt: false,
                        codec: Codec::CayenneLpp.as_str().into(),
                    }),
                })),
                Change::DeleteDevice(DeviceId::from_bytes([8; 16])),
            ],
        }
    }

    #[test]
    fn round_trips_through_postcard() {
        let batch = sample();
        let bytes = batch.encode().unwrap();
        assert_eq!(bytes[0], 1, "version first");
        assert_eq!(SyncBatch::decode(&bytes), Ok(batch));
    }

    #[test]
    fn the_codec_travels_as_its_name() {
        let session = |codec: &str| LorawanSession {
            dev_addr: "49BE7DF1".parse().unwrap(),
            nwk_s_key: Sealed { nonce: [1; 12], ciphertext: vec![] },
            app_s_key: Sealed { nonce: [2; 12], ciphertext: vec![] },
            f_cnt_up: 2,
            relax_f_cnt: false,
            codec: codec.into(),
        };
        // Version 1's bytes: DevAddr (big-endian), two sealed keys, counter, flag, then the name
        // (length, UTF-8).
        let bytes = postcard::to_allocvec(&session(Codec::NeocampusLpp.as_str())).unwrap();
        let mut expected = vec![0x49, 0xbe, 0x7d, 0xf1];
        expected.extend([1; 12]);
        expected.push(0);
        expected.extend([2; 12]);
        expected.extend([0, 2, 0, 13]);
        expected.extend(b"neocampus_lpp");
        assert_eq!(bytes, expected);
        for codec in Codec::ALL {
            assert_eq!(session(codec.as_str()).codec(), Ok(codec));
        }
        assert_eq!(session("lz4").codec(), Err(UnknownCodec("lz4".into())));
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let mut bytes = sample().encode().unwrap();
        bytes[0] = 2;
        assert_eq!(SyncBatch::decode(&bytes), Err(Error::UnsupportedSyncVersion(2)));
        let good = sample().encode().unwrap();
        assert_eq!(SyncBatch::decode(&good[..good.len() - 1]), Err(Error::InvalidSyncMessage));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(SyncBatch::decode(&trailing), Err(Error::InvalidSyncMessage));
        assert_eq!(SyncBatch::decode(&[]), Err(Error::InvalidSyncMessage));
        assert_eq!(
            SyncBatch::decode(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(Error::InvalidSyncMessage)
        );
    }
}
