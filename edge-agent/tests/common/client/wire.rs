//! The JSON the gateway's tests read, written here independent of the server types (central's
//! and the agent's), so that a change on the wire fails a test instead of following silently:
//! central's API answers, the legacy `/device/credentials` answer, and the MQTT payloads the
//! gateway publishes (statuses and readings). Only the fields tests read; unknown fields are
//! ignored.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A building.
#[derive(Debug, Deserialize)]
pub(crate) struct Building {
    pub id: String,
    pub name: String,
}

/// A room.
#[derive(Debug, Deserialize)]
pub(crate) struct Room {
    pub id: String,
    pub base_topic: Option<String>,
}

/// A device type.
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceType {
    pub name: String,
}

/// A device.
#[derive(Debug, Deserialize)]
pub(crate) struct Device {
    pub id: String,
    pub uid: String,
    pub last_status: Option<String>,
    /// A LoRaWAN node's session, as shown.
    pub lorawan: Option<LorawanSession>,
}

/// A LoRaWAN node's session as the API shows it.
#[derive(Debug, Deserialize)]
pub(crate) struct LorawanSession {
    pub dev_addr: String,
    /// Always `sealed`: the keys are never shown after creation.
    pub keys: String,
}

/// A stored log record (`POST /device/logger`, relayed or direct).
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceLog {
    /// The Python logging record's fields as posted (free-form).
    pub record: Map<String, Value>,
}

/// An order as recorded (the answer to sending one).
#[derive(Debug, Deserialize)]
pub(crate) struct OrderRecord {
    pub order: String,
    /// `sent` or why not.
    pub outcome: String,
}

/// A gateway as created.
#[derive(Debug, Deserialize)]
pub(crate) struct Gateway {
    pub id: String,
    pub name: String,
}

/// A gateway read alone.
#[derive(Debug, Deserialize)]
pub(crate) struct GatewayStatus {
    pub id: String,
    /// Whether central hears from it.
    pub up: bool,
}

/// `POST /api/v1/gateways/{id}/enrolment`.
#[derive(Debug, Deserialize)]
pub(crate) struct EnrolmentToken {
    pub token: String,
}

/// A `/device/credentials` answer (the legacy shape; exact bytes are checked where they
/// matter): the password only at the first delivery.
#[derive(Debug, Deserialize)]
pub(crate) struct LegacyCredentials {
    pub login: String,
    pub password: Option<String>,
}

/// A status on `<room>/device`: the neOCampus fields a device (or the gateway for itself, or for
/// a LoRaWAN node) sends, those the tests read.
#[derive(Debug, Deserialize)]
pub(crate) struct DeviceStatus {
    #[serde(rename = "unitID")]
    pub unit_id: String,
    pub status: String,
    /// The outbox's id, for central's dedupe.
    pub msg_id: Option<u64>,
    /// The gateway's relay stamp on statuses it relays.
    pub relay: Option<String>,
    /// The gateway's own status: `neosens-edge`.
    pub hardware: Option<String>,
    /// The gateway's own status: devices in its cache.
    pub devices: Option<u64>,
    /// A LoRaWAN node's: the frame's counter, port, signal and receiving gateway.
    pub f_cnt: Option<u64>,
    pub f_port: Option<u8>,
    pub rssi: Option<f64>,
    pub gateway: Option<String>,
}

impl DeviceStatus {
    /// The status of `unit` in `payload`, or `None` when the payload is another unit's (or not a
    /// status); a payload of `unit` that does not read as a status fails the test.
    pub(crate) fn of(unit: &str, payload: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Unit {
            #[serde(rename = "unitID")]
            unit_id: String,
        }
        let of_unit = serde_json::from_slice::<Unit>(payload).is_ok_and(|u| u.unit_id == unit);
        of_unit.then(|| super::parse_bytes(&format!("a status of {unit}"), payload))
    }
}

/// A reading on `<room>/<kind>`.
#[derive(Debug, Deserialize)]
pub(crate) struct Reading {
    /// A number, or a string (the `hex` codec's bytes).
    pub value: Value,
    #[serde(rename = "unitID")]
    pub unit_id: String,
    #[serde(rename = "subID")]
    pub sub_id: String,
    /// The outbox's id of the message.
    pub msg_id: Option<u64>,
}
