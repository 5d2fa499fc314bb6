//! The JSON contracts between central and its gateways on `/api/v1/edge/*` (DESIGN.md §4), and
//! the LoRaWAN payload codecs both sides name. Defined here, once: central serializes what it
//! answers and deserializes what gateways send with these types, and the agent does the reverse,
//! so a field renamed on one side is renamed on the other.
//!
//! Compatibility rules, as the two sides had them before they shared these types:
//!
//! - bodies **central reads** refuse unknown fields (`deny_unknown_fields`), except the health
//!   report, which a newer agent may extend;
//! - bodies **the agent reads** accept unknown fields, so a newer central can add to them.
//!
//! With the `utoipa` feature (central only; it needs `std`) each body also derives
//! `utoipa::ToSchema`, so central's OpenAPI document describes them field by field.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::DeviceId;

/// Most log lines in one `POST /api/v1/edge/logs`.
pub const MAX_RELAYED_LOGS: usize = 100;

/// The body of `POST /api/v1/edge/enroll`: the agent (`neosens-edge enroll`) sends it, central
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrolmentRequest {
    /// The one-time token an admin issued.
    pub token: String,
}

/// What a gateway receives when it enrols (`POST /api/v1/edge/enroll`): everything it needs,
/// shown once. Central writes it; the agent reads it and keeps it in `gateway.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct EnrolmentGrant {
    /// Its id.
    pub gateway_id: String,
    /// Its name.
    pub name: String,
    /// Its API secret: bearer token on `/api/v1/edge/*`.
    pub secret: String,
    /// Its MQTT username.
    pub mqtt_username: String,
    /// Its MQTT password (derived from its key pair: `neosens_runtime::gateway_secrets`).
    /// Central always sends it; the agent derives it from `keys` again, so a grant without it
    /// (centrals older than the gateways' own MQTT passwords) still enrols.
    #[serde(default)]
    #[cfg_attr(feature = "utoipa", schema(required = true))]
    pub mqtt_password: String,
    /// Its key pair (hash key then sealing key), 64 bytes in hex.
    pub keys: String,
}

/// Figures a gateway reports about itself (`POST /api/v1/edge/health`, after each sync round):
/// the agent writes it, central reads it and shows it per gateway in `/metrics` and the API.
/// Unknown fields are accepted, so a newer agent may report more.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct HealthReport {
    /// Messages waiting in its outbox.
    pub outbox_depth: u64,
    /// Age of the oldest of them, seconds.
    pub outbox_oldest_s: u64,
    /// Messages its outbox dropped (full or too old) since it started.
    pub outbox_dropped: u64,
    /// Its agent version.
    pub version: String,
    /// The LoRaWAN packet forwarders it hears (at most [`MAX_FORWARDERS`]; absent from agents
    /// older than forwarder health, and from gateways without a LoRaWAN listener).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarders: Vec<ForwarderReport>,
    /// Unregistered MACs that asked it for their credentials while central was out of reach
    /// (online, central sees them itself), for central's adoption inbox; at most
    /// [`MAX_UNCLAIMED_REPORTED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unclaimed: Vec<UnclaimedReport>,
    /// What became of the node orders (LoRaWAN application downlinks) queued at the gateway
    /// since its last report, oldest first; at most [`MAX_DOWNLINK_OUTCOMES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downlinks: Vec<DownlinkOutcome>,
    /// Its local broker, in local-broker mode (absent otherwise, and from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_broker: Option<LocalBrokerReport>,
    /// The settings it runs with, and which of central's its own file overrides (absent from
    /// older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<crate::gateway_config::ConfigReport>,
}

/// A gateway's local broker as it reports it: central gives devices of its scope this broker
/// only while the gateway says it runs, bridged, at a known address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LocalBrokerReport {
    /// Whether Mosquitto runs.
    pub running: bool,
    /// Device accounts in its password file.
    pub accounts: u64,
    /// The host devices are given (`None`: none known, devices are not moved to it).
    pub host: Option<String>,
    /// Its port.
    pub port: Option<u16>,
}

/// Joins a gateway reports at most at once.
pub const MAX_JOIN_REPORTS: usize = 64;

/// Sessions of OTAA joins a gateway answered, once the node used them (`POST /api/v1/edge/joins`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct JoinReports {
    /// At most [`MAX_JOIN_REPORTS`].
    pub joins: Vec<JoinReport>,
}

/// One OTAA join a gateway answered, and the session it gave the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct JoinReport {
    /// The node's device id.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = Uuid))]
    pub device: crate::ids::DeviceId,
    /// The session's DevAddr, 8 hex digits.
    pub dev_addr: String,
    /// NwkSKey, sealed with the gateway's key (context: device id, `/nwk`).
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    pub nwk_s_key: crate::sync::Sealed,
    /// AppSKey, sealed likewise (`/app`).
    #[cfg_attr(feature = "utoipa", schema(value_type = Object))]
    pub app_s_key: crate::sync::Sealed,
    /// The join request's DevNonce.
    pub dev_nonce: u16,
    /// Seconds since the gateway accepted the join, when it reports.
    pub joined_age_s: u64,
    /// The last uplink counter the gateway accepted in this session.
    pub f_cnt_up: u32,
}

/// Downlink outcomes a gateway keeps until reported, and reports at most at once.
pub const MAX_DOWNLINK_OUTCOMES: usize = 256;

/// What became of a node order (an application downlink) at a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DownlinkState {
    /// Queued: it goes with the node's next uplink.
    Queued,
    /// Emitted by the packet forwarder (its `TX_ACK`, or no answer from a forwarder that gives
    /// none); a confirmed downlink then waits for the node's ACK.
    Sent,
    /// The node acknowledged it (FCtrl.ACK of its next uplink): confirmed downlinks only.
    Acknowledged,
    /// The node's next uplink did not acknowledge it (confirmed downlinks only).
    NotAcknowledged,
    /// The node sent nothing before the order's time to live ran out.
    Expired,
    /// The forwarder could not emit it, in RX1 nor RX2, three times.
    Failed,
    /// Not queued: the queue was full, or the order was malformed (see `detail`).
    Refused,
}

/// One step of a node order at a gateway, reported to central, which records it in the node's
/// order history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DownlinkOutcome {
    /// The node's DevEUI, 16 lowercase hex digits.
    pub dev_eui: String,
    /// The order's reference (`ref` of the command; central's orders carry one), ≤ 64
    /// characters.
    pub reference: Option<String>,
    /// FPort (`None` until sent when the order left it to the node's last uplink port).
    pub f_port: Option<u8>,
    /// The application payload, hex.
    pub data: String,
    /// A confirmed downlink.
    pub confirmed: bool,
    /// What happened.
    pub state: DownlinkState,
    /// The downlink counter of the frame that carried it (sent and later states).
    pub f_cnt_down: Option<u32>,
    /// Why it was refused, in words.
    pub detail: Option<String>,
    /// Seconds since it happened, when the gateway reports.
    pub age_s: u64,
}

/// Unregistered MACs a gateway keeps and reports at most (the most recent ones).
pub const MAX_UNCLAIMED_REPORTED: usize = 64;

/// An unregistered MAC that asked a gateway for its credentials while central was out of reach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct UnclaimedReport {
    /// The MAC, as the gateway read it (`24:0A:C4:12:34:56`).
    pub mac: String,
    /// Seconds since it last asked, when the gateway reports.
    pub last_seen_age_s: u64,
    /// How many times it asked.
    pub count: u64,
    /// The address it asked from.
    pub source: String,
    /// Its `User-Agent` (128 characters at most).
    pub user_agent: Option<String>,
}

/// Packet forwarders one gateway keeps and reports at most: a site's gateway hears its own
/// concentrator and perhaps a few neighbours'; a LAN host inventing gateway EUIs is refused past
/// this (counted), and central refuses a report with more.
pub const MAX_FORWARDERS: usize = 32;

/// One Semtech UDP packet forwarder (a LoRa concentrator, by gateway EUI) as the agent hears it:
/// from its datagrams (`PUSH_DATA` uplinks, `PULL_DATA` keep-alives) and the `stat` objects it
/// sends (every 30 s by default). Ages are measured by the agent when it reports, so central
/// places them on its own clock whatever the gateway's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ForwarderReport {
    /// Gateway EUI, 16 lowercase hex digits.
    pub eui: String,
    /// Seconds since its last datagram of any kind.
    pub silent_s: u64,
    /// Seconds since its last `PULL_DATA` (its downlink path); `None`: never sent one.
    pub pull_age_s: Option<u64>,
    /// Seconds since its last `stat`; `None`: never sent one.
    pub stat_age_s: Option<u64>,
    /// What it sent and said, counted.
    #[serde(flatten)]
    pub figures: ForwarderFigures,
}

/// A packet forwarder's figures, as its gateway counts them (since the agent started) and as its
/// `stat` objects say: the part of its report central shows as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ForwarderFigures {
    /// Datagrams received from it.
    pub datagrams: u64,
    /// Radio packets it pushed (`rxpk` entries).
    pub uplinks: u64,
    /// Sums of its `stat` counters: packets received (`rxnb`), with a valid CRC (`rxok`),
    /// forwarded (`rxfw`); downlinks asked for (`dwnb`) and emitted (`txnb`).
    pub rx_received: u64,
    /// See `rx_received`.
    pub rx_ok: u64,
    /// See `rx_received`.
    pub rx_forwarded: u64,
    /// See `rx_received`.
    pub tx_requested: u64,
    /// See `rx_received`.
    pub tx_emitted: u64,
    /// Percentage of its upstream datagrams acknowledged, as it last counted (`ackr`).
    pub ack_ratio: Option<f64>,
    /// Where it says it is (`lati`, `long`, `alti`), when it has a GPS or a fake one set.
    pub position: Option<ForwarderPosition>,
}

/// A packet forwarder's position, from its `stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ForwarderPosition {
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Metres.
    pub altitude: i32,
}

impl ForwarderReport {
    /// Whether the EUI is as central accepts it (16 lowercase hex digits).
    pub fn eui_is_valid(&self) -> bool {
        self.eui.len() == 16 && self.eui.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

/// First-time credentials a gateway handed to devices while central was out of reach
/// (`POST /api/v1/edge/deliveries`): the agent writes it, central reads it and will not hand
/// those passwords out again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Deliveries {
    /// Device ids.
    #[cfg_attr(feature = "utoipa", schema(value_type = Vec<String>))]
    pub devices: Vec<DeviceId>,
}

/// Central's answer to `POST /api/v1/edge/deliveries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DeliveriesAnswer {
    /// Devices in the report.
    pub reported: u64,
    /// Those central had not marked delivered yet.
    pub newly_delivered: u64,
}

/// A device log line (`POST /device/logger`) a gateway accepted while central was out of reach.
/// The gateway checked the device's Basic credentials against the synced hash and keeps only
/// this — never the credentials — so it relays the line in its own name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RelayedLog {
    /// The device.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = Uuid))]
    pub device: DeviceId,
    /// When the gateway received it, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The device's address on the gateway's network.
    pub device_addr: String,
    /// The form-encoded Python `LogRecord`, as the device sent it.
    pub body: String,
}

/// The body of `POST /api/v1/edge/logs`: at most 100 lines (`MAX_RELAYED_LOGS`). The agent
/// writes it, central reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RelayedLogs {
    /// The lines, oldest first.
    pub logs: Vec<RelayedLog>,
}

/// Central's answer to `POST /api/v1/edge/logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RelayedLogsAnswer {
    /// Lines stored.
    pub stored: u64,
    /// Lines refused (a device unknown, disabled or outside the gateway's scope, or a body that
    /// is not a `LogRecord`).
    pub refused: u64,
}

// Central stores a codec with each node's session (postcard: the variant's index, so the order
// of the variants is part of central's disk format, pinned in the tests) and shows it in its API
// (JSON: the snake-case name). It reaches the gateway by name (`Codec::as_str`, the string
// `sync::LorawanSession::codec`), and the agent parses it back (`FromStr`): a gateway meeting a
// codec it does not know refuses that node's payloads, not the whole sync. (A comment, not the
// doc: the doc is also the OpenAPI description.)
/// How the application payload of a LoRaWAN node is decoded into neOCampus readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// Cayenne LPP (standard types).
    CayenneLpp,
    /// The neOCampus extended Cayenne format of the 2016 LoRa prototype.
    NeocampusLpp,
    /// No decoding: the payload in hex.
    Hex,
    /// The payload layout its device type declares (`crate::layout`).
    Layout,
}

impl Codec {
    /// Every codec, in the order of their (stored) variant index.
    pub const ALL: [Codec; 4] = [Codec::CayenneLpp, Codec::NeocampusLpp, Codec::Hex, Codec::Layout];

    /// Its name on the wire (sync messages, API): what serde writes in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Codec::CayenneLpp => "cayenne_lpp",
            Codec::NeocampusLpp => "neocampus_lpp",
            Codec::Hex => "hex",
            Codec::Layout => "layout",
        }
    }

    /// The LPP format it decodes, if it is one (`hex` is not).
    pub const fn lpp_format(self) -> Option<crate::lpp::Format> {
        match self {
            Codec::CayenneLpp => Some(crate::lpp::Format::Cayenne),
            Codec::NeocampusLpp => Some(crate::lpp::Format::Neocampus),
            Codec::Hex | Codec::Layout => None,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A codec name no [`Codec`] has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCodec(pub String);

impl fmt::Display for UnknownCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown codec {:?} (known: cayenne_lpp, neocampus_lpp, hex, layout)", self.0)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownCodec {}

impl FromStr for Codec {
    type Err = UnknownCodec;

    /// The codec of this exact name (as [`Codec::as_str`] writes it).
    fn from_str(s: &str) -> Result<Self, UnknownCodec> {
        Codec::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownCodec(s.into()))
    }
}

#[cfg(test)]
#[path = "edge_tests.rs"]
mod tests;
