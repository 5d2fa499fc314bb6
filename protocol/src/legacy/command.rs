//! Orders on `<base>/<kind>/command` (§5.6, §5.7).

use alloc::format;
use alloc::string::{String, ToString};

use serde_json::{Map, Value};

use super::json::{kind, parse_object};
use super::{MAX_COMMAND_KEYS, MAX_MQTT_PACKET};
use crate::{Error, Mac, pyjson};

/// The `value` of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandValue {
    /// An integer (`frequency`, `sensitivity`, `threshold`).
    Int(i64),
    /// A string (`upgrade` URL).
    Text(String),
}

/// An order: `{"dest": …, "order": …, "value": …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Who it is for: a MAC (device module), a module `unitID`, or `all`.
    pub dest: String,
    /// The order name (`status`, `reboot`, `frequency` …).
    pub order: String,
    /// The order's argument, if any.
    pub value: Option<CommandValue>,
}

impl Command {
    /// An order for a device's device module: `dest` is the MAC in uppercase, as the 2016 server
    /// stored and sent it (the firmware lowercases `dest` before comparing).
    pub fn to_device(mac: Mac, order: &str, value: Option<CommandValue>) -> Self {
        Command { dest: mac.to_string(), order: order.into(), value }
    }

    /// The payload as the 2016 server sent it (Python `json.dumps`):
    /// `{"dest": "24:0A:C4:12:34:56", "order": "status"}`.
    pub fn to_legacy_json(&self) -> String {
        let mut map = Map::new();
        map.insert("dest".into(), Value::String(self.dest.clone()));
        map.insert("order".into(), Value::String(self.order.clone()));
        match &self.value {
            Some(CommandValue::Int(i)) => {
                map.insert("value".into(), Value::from(*i));
            }
            Some(CommandValue::Text(s)) => {
                map.insert("value".into(), Value::String(s.clone()));
            }
            None => {}
        }
        pyjson::to_string(&Value::Object(map))
    }

    /// The payload, refused when the PUBLISH on `topic` would not fit PubSubClient's 256-byte
    /// buffer (the device would drop it without a trace).
    pub fn encode_for(&self, topic: &str) -> Result<String, Error> {
        let payload = self.to_legacy_json();
        let size = publish_packet_len(topic.len(), payload.len());
        if size > MAX_MQTT_PACKET {
            return Err(Error::TooLarge { what: "command packet", size, limit: MAX_MQTT_PACKET });
        }
        Ok(payload)
    }

    /// Parses an order as the firmware would accept it: a JSON object of at most five members
    /// with a string `dest`; `order` a string; `value` an integer or a string when present.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let map = parse_object(payload)?;
        if map.len() > MAX_COMMAND_KEYS {
            return Err(Error::TooManyKeys { keys: map.len(), limit: MAX_COMMAND_KEYS });
        }
        let text = |key: &'static str| match map.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(Error::InvalidJson(format!("'{key}' must be a string, got {}", kind(other)))),
            None => Err(Error::InvalidJson(format!("missing '{key}'"))),
        };
        let dest = text("dest")?;
        let order = text("order")?;
        let value = match map.get("value") {
            None => None,
            Some(Value::String(s)) => Some(CommandValue::Text(s.clone())),
            Some(v) => Some(CommandValue::Int(v.as_i64().ok_or_else(|| {
                Error::InvalidJson(format!("'value' must be an integer or a string, got {}", kind(v)))
            })?)),
        };
        Ok(Command { dest, order, value })
    }

    /// Whether a firmware module with this `unitID` acts on the order: `dest`, lowercased, starts
    /// with `all` or with the unitID (prefix compares, as `strncmp` does on the device).
    pub fn addresses_module(&self, unit_id: &str) -> bool {
        let dest = self.dest.to_lowercase();
        dest.starts_with("all") || dest.starts_with(unit_id)
    }

    /// Whether a Raspberry Pi client with this MAC acts on it: `dest.lower()` equals its MAC
    /// (lowercase with colons) or `all`.
    pub fn addresses_rpi(&self, mac: Mac) -> bool {
        let dest = self.dest.to_lowercase();
        dest == "all" || dest == mac.to_firmware_string()
    }
}

/// Size of an MQTT 3.1.1 PUBLISH at QoS 0: fixed header, remaining length, topic length prefix,
/// topic and payload.
pub fn publish_packet_len(topic_len: usize, payload_len: usize) -> usize {
    let remaining = 2 + topic_len + payload_len;
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining
}

/// What kind of `value` an order takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderValue {
    /// No value.
    None,
    /// A required integer, within the range the device clamps to.
    Int {
        /// Smallest value the device keeps.
        min: i64,
        /// Largest value the device keeps.
        max: i64,
    },
    /// An optional string (a URL).
    OptionalText,
}

/// The device-module orders the firmware and the RPi client know (§5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownOrder {
    /// Publish the device status now.
    Status,
    /// Set the status period (seconds, clamped to 900..=21600).
    Frequency,
    /// Reboot (status `rebooting` first).
    Reboot,
    /// Same as reboot on the firmware.
    Restart,
    /// OTA update from the URL in `value`, or the default image check.
    Upgrade,
    /// RPi: fetch `/device/config` again (a no-op on the ESP firmware).
    Update,
    /// RPi: erase the saved configuration and restart (ignored by the ESP firmware).
    Reset,
}

impl KnownOrder {
    /// Every known order.
    pub const ALL: [KnownOrder; 7] = [
        KnownOrder::Status,
        KnownOrder::Frequency,
        KnownOrder::Reboot,
        KnownOrder::Restart,
        KnownOrder::Upgrade,
        KnownOrder::Update,
        KnownOrder::Reset,
    ];

    /// Orders the ESP firmware acts on.
    pub const FIRMWARE: [KnownOrder; 5] = [
        KnownOrder::Status,
        KnownOrder::Frequency,
        KnownOrder::Reboot,
        KnownOrder::Restart,
        KnownOrder::Upgrade,
    ];

    /// Orders the Raspberry Pi client acts on.
    pub const RPI: [KnownOrder; 6] = [
        KnownOrder::Status,
        KnownOrder::Reboot,
        KnownOrder::Restart,
        KnownOrder::Upgrade,
        KnownOrder::Update,
        KnownOrder::Reset,
    ];

    /// The order's name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            KnownOrder::Status => "status",
            KnownOrder::Frequency => "frequency",
            KnownOrder::Reboot => "reboot",
            KnownOrder::Restart => "restart",
            KnownOrder::Upgrade => "upgrade",
            KnownOrder::Update => "update",
            KnownOrder::Reset => "reset",
        }
    }

    /// The value it takes.
    pub const fn value(self) -> OrderValue {
        match self {
            KnownOrder::Frequency => OrderValue::Int { min: 900, max: 21_600 },
            KnownOrder::Upgrade => OrderValue::OptionalText,
            _ => OrderValue::None,
        }
    }

    /// Looks an order up by its wire name (exact, as the RPi compares lowercased names).
    pub fn from_name(name: &str) -> Option<Self> {
        KnownOrder::ALL.into_iter().find(|o| o.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn mac() -> Mac {
        "24:0a:c4:12:34:56".parse().unwrap()
    }

    #[test]
    fn exact_bytes_of_server_orders() {
        let status = Command::to_device(mac(), "status", None);
        assert_eq!(status.to_legacy_json(), r#"{"dest": "24:0A:C4:12:34:56", "order": "status"}"#);
        let freq = Command::to_device(mac(), "frequency", Some(CommandValue::Int(900)));
        assert_eq!(
            freq.to_legacy_json(),
            r#"{"dest": "24:0A:C4:12:34:56", "order": "frequency", "value": 900}"#
        );
        let up = Command::to_device(mac(), "upgrade", Some(CommandValue::Text("http://h/fw.bin".into())));
        assert_eq!(
            up.to_legacy_json(),
            r#"{"dest": "24:0A:C4:12:34:56", "order": "upgrade", "value": "http://h/fw.bin"}"#
        );
        for c in [status, freq, up] {
            assert_eq!(Command::parse(c.to_legacy_json().as_bytes()), Ok(c));
        }
    }

    #[test]
    fn packet_size_limit() {
        // Fixed header, remaining length, topic length, topic (24 bytes), payload (48 bytes).
        let status = Command::to_device(mac(), "status", None);
        assert_eq!(
            publish_packet_len("irit2/366/device/command".len(), status.to_legacy_json().len()),
            1 + 1 + 2 + 24 + 48
        );
        assert!(status.encode_for("irit2/366/device/command").is_ok());
        let url: String = core::iter::repeat_n('x', 200).collect();
        let up = Command::to_device(mac(), "upgrade", Some(CommandValue::Text(url)));
        let err = up.encode_for("irit2/366/device/command").unwrap_err();
        assert!(matches!(err, Error::TooLarge { what: "command packet", limit: 256, size } if size > 256));
        assert_eq!(publish_packet_len(0, 125), 129); // remaining length 127: one byte
        assert_eq!(publish_packet_len(0, 126), 131); // 128: two bytes
    }

    #[test]
    fn addressing_like_the_firmware() {
        let c = |dest: &str| Command { dest: dest.into(), order: "status".into(), value: None };
        let mac_dest = c("24:0A:C4:12:34:56");
        assert!(mac_dest.addresses_module("24:0a:c4:12:34:56"));
        assert!(!mac_dest.addresses_module("auto_3456"));
        assert!(c("AUTO_3456").addresses_module("auto_3456"));
        assert!(c("all").addresses_module("auto_3456"));
        assert!(c("ALLx").addresses_module("auto_3456")); // prefix compare, as strncmp
        assert!(!c("Auto_345").addresses_module("auto_3456"));
        assert!(!c("auto_3456").addresses_module("Auto_3456")); // a unit with capitals is unreachable
        assert!(mac_dest.addresses_rpi(mac()));
        assert!(c("ALL").addresses_rpi(mac()));
        assert!(!c("allx").addresses_rpi(mac()));
    }

    #[test]
    fn refuses_what_the_firmware_drops() {
        assert_eq!(
            Command::parse(br#"{"dest":"all","order":"status","a":1,"b":2,"c":3,"d":4}"#),
            Err(Error::TooManyKeys { keys: 6, limit: 5 })
        );
        let cases: &[&[u8]] = &[
            b"",
            b"{",
            b"[]",
            br#"{"order":"status"}"#,
            br#"{"dest":"all"}"#,
            br#"{"dest":1,"order":"status"}"#,
            br#"{"dest":"all","order":"frequency","value":1.5}"#,
            br#"{"dest":"all","order":"x","value":null}"#,
        ];
        for input in cases {
            assert!(Command::parse(input).is_err(), "input {:?}", String::from_utf8_lossy(input));
        }
        assert_eq!(Command::parse(br#"{"dest":"all","order":"status","junk":[1]}"#).unwrap().order, "status");
    }

    #[test]
    fn known_orders() {
        let names: Vec<_> = KnownOrder::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(names, ["status", "frequency", "reboot", "restart", "upgrade", "update", "reset"]);
        for o in KnownOrder::ALL {
            assert_eq!(KnownOrder::from_name(o.name()), Some(o));
        }
        assert_eq!(KnownOrder::from_name("Reboot"), None);
        assert_eq!(KnownOrder::Frequency.value(), OrderValue::Int { min: 900, max: 21_600 });
    }
}
