//! Device status on `<base>/device` (§5.4): firmware and Raspberry Pi flavours.

use alloc::string::String;

use serde::Serialize;
use serde_json::{Map, Value};

use super::json::{get_string, parse_object};
use crate::{Error, Mac};

/// What state a device says it is in, across both client families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceState {
    /// Firmware `starting`, RPi `Status.init`.
    Starting,
    /// Firmware `running`, RPi `Status.run`.
    Running,
    /// Firmware `upgrading`, RPi `Status.upgrade`.
    Upgrading,
    /// Firmware `rebooting`, RPi `Status.reboot` / `Status.restart`.
    Rebooting,
    /// RPi `Status.reset`.
    Resetting,
    /// RPi `Status.update`.
    Updating,
    /// RPi `Status.reinstall`.
    Reinstalling,
    /// RPi `Status.error`.
    Error,
    /// Firmware `unknown`, or anything else (the raw text is kept in [`DeviceStatus::status`]).
    Unknown,
}

impl DeviceState {
    /// Reads a status text from either family (`running`, `Status.run`; case-insensitive).
    pub fn from_status_text(text: &str) -> Self {
        let t = text.trim();
        let t = t.strip_prefix("Status.").or_else(|| t.strip_prefix("status.")).unwrap_or(t);
        let eq = |s: &str| t.eq_ignore_ascii_case(s);
        if eq("running") || eq("run") {
            DeviceState::Running
        } else if eq("starting") || eq("init") {
            DeviceState::Starting
        } else if eq("upgrading") || eq("upgrade") {
            DeviceState::Upgrading
        } else if eq("rebooting") || eq("reboot") || eq("restart") {
            DeviceState::Rebooting
        } else if eq("reset") {
            DeviceState::Resetting
        } else if eq("update") {
            DeviceState::Updating
        } else if eq("reinstall") {
            DeviceState::Reinstalling
        } else if eq("error") {
            DeviceState::Error
        } else {
            DeviceState::Unknown
        }
    }
}

/// A device status as received: the two fields the 2016 server needed, read leniently, and the
/// whole payload kept as sent (fields grow with firmware versions; operators pick what to show).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceStatus {
    /// The `unitID` (key matched ignoring case): the MAC, lowercase with colons, on both families.
    pub unit_id: String,
    /// The `status` text as sent (`running`, `Status.run` …).
    pub status: String,
    /// `status` read into a state.
    pub state: DeviceState,
    /// Every field of the payload, in the order received.
    pub payload: Map<String, Value>,
}

impl DeviceStatus {
    /// Parses a status payload. Needs a JSON object with string `unitID` and `status`.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let map = parse_object(payload)?;
        let unit_id = get_string(&map, "unitID", true)?.unwrap_or_default();
        let status = get_string(&map, "status", true)?.unwrap_or_default();
        let state = DeviceState::from_status_text(&status);
        Ok(DeviceStatus { unit_id, status, state, payload: map })
    }

    /// The MAC in `unitID`, when it is one.
    pub fn mac(&self) -> Option<Mac> {
        self.unit_id.parse().ok()
    }

    /// Whether this status comes from the device with this MAC (the 2016 rule: `unitID` equals the
    /// MAC ignoring case).
    pub fn is_from(&self, mac: Mac) -> bool {
        self.mac() == Some(mac)
    }

    /// A numeric field of the payload (`heap`, `firmware`, `frequency` …).
    pub fn number(&self, field: &str) -> Option<f64> {
        self.payload.get(field).and_then(Value::as_f64)
    }
}

/// The status a neOSensor publishes, field for field (for simulated devices). Printed compact in
/// the firmware's key order, `unitID` last, as ArduinoJson does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirmwareStatus {
    /// Status period in seconds (default 1800, clamped to 900..=21600).
    pub frequency: u32,
    /// Local time, `%Y-%m-%d %H:%M:%S %z` (1970 before NTP sync).
    pub time: String,
    /// `starting` | `running` | `upgrading` | `rebooting` | `unknown`.
    pub status: String,
    /// Active modules, the device module included.
    pub modules: u32,
    /// Free heap in bytes.
    pub heap: u32,
    /// `esp32` | `esp8266`.
    pub hardware: String,
    /// Firmware revision, `YYMMDD` as an integer.
    pub firmware: u32,
    /// `neOSensor` | `AirQuality`.
    pub board: String,
    /// Board revision (1.2, 1.0).
    pub board_rev: f64,
    /// The device MAC, lowercase with colons.
    #[serde(rename = "unitID")]
    pub unit_id: String,
}

impl FirmwareStatus {
    /// The exact payload bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRMWARE: &str = r#"{"frequency":1800,"time":"2023-10-27 10:15:02 +0200","status":"running","modules":4,"heap":171204,"hardware":"esp32","firmware":231027,"board":"neOSensor","board_rev":1.2,"unitID":"24:0a:c4:12:34:56"}"#;
    const RPI: &str =
        r#"{"unitID": "b8:27:eb:12:34:56", "status": "Status.run", "backend": "...", "modules": "..."}"#;

    #[test]
    fn prints_the_firmware_status_byte_for_byte() {
        let s = FirmwareStatus {
            frequency: 1800,
            time: "2023-10-27 10:15:02 +0200".into(),
            status: "running".into(),
            modules: 4,
            heap: 171_204,
            hardware: "esp32".into(),
            firmware: 231_027,
            board: "neOSensor".into(),
            board_rev: 1.2,
            unit_id: "24:0a:c4:12:34:56".into(),
        };
        assert_eq!(s.to_json(), FIRMWARE);
        assert_eq!(s.to_json().len(), 200); // §5.4: "200 bytes here"
    }

    #[test]
    fn parses_both_families() {
        let fw = DeviceStatus::parse(FIRMWARE.as_bytes()).unwrap();
        assert_eq!(fw.state, DeviceState::Running);
        assert!(fw.is_from("24:0A:C4:12:34:56".parse().unwrap()));
        assert_eq!(fw.number("heap"), Some(171_204.0));
        assert_eq!(fw.payload.len(), 10);
        assert_eq!(fw.payload.keys().next_back().map(String::as_str), Some("unitID"));

        let rpi = DeviceStatus::parse(RPI.as_bytes()).unwrap();
        assert_eq!(rpi.state, DeviceState::Running);
        assert_eq!(rpi.status, "Status.run");
        assert_eq!(rpi.mac(), "b8:27:eb:12:34:56".parse().ok());
        assert_eq!(rpi.payload["backend"], "...");
    }

    #[test]
    fn lenient_where_devices_differ() {
        let upper =
            DeviceStatus::parse(br#"{"UNITID":"24:0A:C4:12:34:56","status":"rebooting","extra":{"a":1}}"#)
                .unwrap();
        assert!(upper.is_from("24:0a:c4:12:34:56".parse().unwrap()));
        assert_eq!(upper.state, DeviceState::Rebooting);
        assert_eq!(upper.payload["extra"]["a"], 1);
        let other = DeviceStatus::parse(br#"{"unitid":"auto_3456","status":"weird"}"#).unwrap();
        assert_eq!(other.state, DeviceState::Unknown);
        assert_eq!(other.mac(), None);
        let states = [
            ("starting", DeviceState::Starting),
            ("Status.init", DeviceState::Starting),
            ("upgrading", DeviceState::Upgrading),
            ("Status.restart", DeviceState::Rebooting),
            ("Status.reset", DeviceState::Resetting),
            ("Status.update", DeviceState::Updating),
            ("Status.error", DeviceState::Error),
            ("Status.reinstall", DeviceState::Reinstalling),
            ("unknown", DeviceState::Unknown),
            ("RUNNING", DeviceState::Running),
        ];
        for (text, state) in states {
            assert_eq!(DeviceState::from_status_text(text), state, "text {text:?}");
        }
    }

    #[test]
    fn refuses_garbage() {
        let cases: &[&[u8]] = &[
            b"",
            b"running",
            b"\xff\xfe",
            b"[1,2]",
            b"{}",
            br#"{"unitID":"24:0a:c4:12:34:56"}"#,
            br#"{"status":"running"}"#,
            br#"{"unitID":null,"status":"running"}"#,
            br#"{"unitID":"x","status":["running"]}"#,
            br#"{"unitID":"x","status":"running""#,
        ];
        for input in cases {
            assert!(DeviceStatus::parse(input).is_err(), "input {:?}", String::from_utf8_lossy(input));
        }
    }
}
