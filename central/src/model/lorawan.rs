//! A LoRaWAN node's ABP session (or one imported from a network server): its address, its keys
//! (sealed: never shown again after creation, never logged), the frame-counter policy and the
//! payload codec its gateways decode its uplinks with.

use neosens_protocol::ids::DevAddr;
use neosens_protocol::sync::Sealed;
use serde::{Deserialize, Serialize};

/// How the application payload of a node is decoded into neOCampus readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Cayenne LPP (standard types).
    CayenneLpp,
    /// The neOCampus extended Cayenne format of the 2016 LoRa prototype.
    NeocampusLpp,
    /// No decoding: the payload in hex.
    Hex,
}

impl Codec {
    /// Its name on the wire (sync messages, API).
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::CayenneLpp => "cayenne_lpp",
            Codec::NeocampusLpp => "neocampus_lpp",
            Codec::Hex => "hex",
        }
    }
}

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
