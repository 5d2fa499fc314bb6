//! A LoRaWAN node's ABP session (or one imported from a network server): its address, its keys
//! (sealed: never shown again after creation, never logged), the frame-counter policy and the
//! payload codec its gateways decode its uplinks with.

use neosens_protocol::ids::DevAddr;
use neosens_protocol::sync::Sealed;
use serde::{Deserialize, Serialize};

/// How the application payload of a node is decoded: shared with the gateways, which decode by
/// it. Its variant order is part of the stored session's bytes (pinned in its tests).
pub use neosens_protocol::edge::Codec;

/// A node's session, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LorawanSession {
    /// Device address.
    pub dev_addr: DevAddr,
    /// NwkSKey, sealed with central's key (bound to the device id and `/nwk`).
    pub nwk_s_key: Sealed,
    /// AppSKey, sealed with central's key (bound to the device id and `/app`).
    pub app_s_key: Sealed,
    /// Last uplink frame counter known (imported sessions start from it).
    pub f_cnt_up: u32,
    /// Accept a counter that went back (nodes that reset their counter at reboot).
    pub relax_f_cnt: bool,
    /// Payload codec.
    pub codec: Codec,
}

/// A node's OTAA credentials (LoRaWAN 1.0.x), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtaaKeys {
    /// JoinEUI (AppEUI), big-endian.
    pub join_eui: [u8; 8],
    /// AppKey, sealed with central's key (bound to the device id and `/appkey`).
    pub app_key: Sealed,
    /// Payload codec of the sessions its joins give.
    pub codec: Codec,
    /// The join whose session is the device's `lorawan` session.
    pub last_join: Option<LastJoin>,
}

/// A join a gateway answered and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastJoin {
    /// The join request's DevNonce.
    pub dev_nonce: u16,
    /// When the gateway accepted it (central's clock).
    pub at: super::Timestamp,
}
