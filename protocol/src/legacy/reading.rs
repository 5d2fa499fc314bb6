//! Sensor data and module status on `<base>/<kind>` (§5.3, §5.5).

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt::Write;

use serde_json::{Map, Value};

use super::json::{get_string, key_ignore_case, kind, parse_object};
use crate::Error;

/// The `value` of a reading, keeping how it was written.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadingValue {
    /// An integer (`"value":48`): humidity, luminosity, air quality, noise pulses.
    Int(i64),
    /// A number printed with a fixed count of decimals: the firmware prints temperatures with
    /// `String(value, 3)`, so `21.520`, never `21.52`.
    Fixed {
        /// The value.
        value: f64,
        /// Decimals printed.
        decimals: u8,
    },
    /// Any other number, printed shortest.
    Float(f64),
    /// `true`/`false` (digital inputs).
    Bool(bool),
}

impl ReadingValue {
    /// The value as a number (booleans as 0/1), for metrics and thresholds.
    pub fn as_f64(&self) -> f64 {
        match *self {
            ReadingValue::Int(i) => i as f64,
            ReadingValue::Fixed { value, .. } | ReadingValue::Float(value) => value,
            ReadingValue::Bool(b) => f64::from(u8::from(b)),
        }
    }

    fn write_json(&self, out: &mut String) {
        let _ = match self {
            ReadingValue::Int(i) => write!(out, "{i}"),
            ReadingValue::Fixed { value, decimals } if value.is_finite() => {
                write!(out, "{value:.*}", usize::from(*decimals))
            }
            ReadingValue::Float(value) if value.is_finite() => {
                let json = serde_json::Number::from_f64(*value)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| String::from("null"));
                write!(out, "{json}")
            }
            ReadingValue::Bool(b) => write!(out, "{b}"),
            // JSON has no NaN/Infinity: a broken sensor reads as null rather than as bad JSON.
            _ => write!(out, "null"),
        };
    }
}

/// One sensor value as neOCampus consumers expect it: `{"value", "value_units", …, "subID",
/// "unitID"}`. Extra fields (`input`, `type` of digital and noise modules) keep their place.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorReading {
    /// The measurement.
    pub value: ReadingValue,
    /// Its unit (`celsius`, `%r.H.`, `lux`, `ppm`, `µg/m3` …); `None` when the module sends none
    /// (digital, display); may be `""`.
    pub value_units: Option<String>,
    /// Fields between `value_units` and `subID`, in order (`input`, `type` …).
    pub extra: Map<String, Value>,
    /// The sensor within the module: its I2C address in decimal (`"24"`) or a configured name.
    pub sub_id: String,
    /// The module: `auto_<mac4>`, `<unit>_<mac4>`, or a LoRaWAN node's name.
    pub unit_id: String,
}

impl SensorReading {
    /// A reading with no extra fields.
    pub fn new(value: ReadingValue, value_units: Option<&str>, sub_id: &str, unit_id: &str) -> Self {
        SensorReading {
            value,
            value_units: value_units.map(String::from),
            extra: Map::new(),
            sub_id: sub_id.into(),
            unit_id: unit_id.into(),
        }
    }

    /// The payload as the firmware prints it: compact, `value` first, `unitID` last.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"value\":");
        self.value.write_json(&mut out);
        if let Some(units) = &self.value_units {
            out.push_str(",\"value_units\":");
            out.push_str(&json_string(units));
        }
        for (k, v) in &self.extra {
            let _ = write!(out, ",{}:{}", json_string(k), v);
        }
        let _ = write!(
            out,
            ",\"subID\":{},\"unitID\":{}}}",
            json_string(&self.sub_id),
            json_string(&self.unit_id)
        );
        out
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// What a module publishes on `<base>/<kind>`: data (has `value`) or its status (has none).
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleMessage {
    /// A measurement.
    Reading(SensorReading),
    /// A module status reply (`{"frequency":60,"sensors":1,"time":…,"unitID":…}`).
    Status {
        /// The module's `unitID`.
        unit_id: String,
        /// Every field, in order.
        payload: Map<String, Value>,
    },
}

impl ModuleMessage {
    /// Parses a module payload leniently: `value` may be a float, an integer or a boolean,
    /// `subID` a string or a number, keys `unitID`/`subID` in any case.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let map = parse_object(payload)?;
        let unit_id = get_string(&map, "unitID", true)?.unwrap_or_default();
        let Some(raw) = map.get("value") else {
            return Ok(ModuleMessage::Status { unit_id, payload: map });
        };
        let value = match raw {
            Value::Bool(b) => ReadingValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => ReadingValue::Int(i),
                None => ReadingValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            other => {
                return Err(Error::InvalidJson(format!(
                    "'value' must be a number or a boolean, got {}",
                    kind(other)
                )));
            }
        };
        let value_units = get_string(&map, "value_units", false)?;
        let sub_id = get_string(&map, "subID", false)?.unwrap_or_default();
        let known = |k: &str| {
            k == "value"
                || k == "value_units"
                || Some(k) == key_ignore_case(&map, "subID").map(String::as_str)
                || Some(k) == key_ignore_case(&map, "unitID").map(String::as_str)
        };
        let extra = map.iter().filter(|(k, _)| !known(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(ModuleMessage::Reading(SensorReading { value, value_units, extra, sub_id, unit_id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_every_firmware_message_byte_for_byte() {
        let mut noise = SensorReading::new(ReadingValue::Int(12), Some("pulses"), "96", "auto_3456");
        noise.extra.insert("input".into(), json!(13));
        let mut digital = SensorReading::new(ReadingValue::Bool(true), None, "IRsensor", "auto_3456");
        digital.extra.insert("input".into(), json!(4));
        digital.extra.insert("type".into(), json!("presence"));
        let cases = [
            (
                SensorReading::new(
                    ReadingValue::Fixed { value: 21.375, decimals: 3 },
                    Some("celsius"),
                    "24",
                    "auto_3456",
                ),
                r#"{"value":21.375,"value_units":"celsius","subID":"24","unitID":"auto_3456"}"#,
            ),
            (
                SensorReading::new(
                    ReadingValue::Fixed { value: 21.52, decimals: 3 },
                    Some("celsius"),
                    "68",
                    "auto_3456",
                ),
                r#"{"value":21.520,"value_units":"celsius","subID":"68","unitID":"auto_3456"}"#,
            ),
            (
                SensorReading::new(ReadingValue::Int(48), Some("%r.H."), "68", "auto_3456"),
                r#"{"value":48,"value_units":"%r.H.","subID":"68","unitID":"auto_3456"}"#,
            ),
            (
                SensorReading::new(ReadingValue::Int(312), Some("lux"), "74", "auto_3456"),
                r#"{"value":312,"value_units":"lux","subID":"74","unitID":"auto_3456"}"#,
            ),
            (
                SensorReading::new(ReadingValue::Int(7), Some("µg/m3"), "pm2_5", "pm_sds011_3456"),
                r#"{"value":7,"value_units":"µg/m3","subID":"pm2_5","unitID":"pm_sds011_3456"}"#,
            ),
            (noise, r#"{"value":12,"value_units":"pulses","input":13,"subID":"96","unitID":"auto_3456"}"#),
            (
                digital,
                r#"{"value":true,"input":4,"type":"presence","subID":"IRsensor","unitID":"auto_3456"}"#,
            ),
            (
                SensorReading::new(ReadingValue::Float(f64::NAN), Some(""), "1", "u"),
                r#"{"value":null,"value_units":"","subID":"1","unitID":"u"}"#,
            ),
        ];
        for (reading, expected) in cases {
            assert_eq!(reading.to_json(), expected);
            if reading.value.as_f64().is_finite() {
                // Parse back: equal up to how the number is typed.
                let ModuleMessage::Reading(back) = ModuleMessage::parse(expected.as_bytes()).unwrap() else {
                    panic!("not a reading: {expected}");
                };
                assert_eq!(back.value.as_f64(), reading.value.as_f64());
                assert_eq!(
                    (back.sub_id, back.unit_id, back.extra),
                    (reading.sub_id, reading.unit_id, reading.extra)
                );
            }
        }
    }

    #[test]
    fn tells_module_status_from_data() {
        let msg =
            ModuleMessage::parse(br#"{"frequency":60,"sensors":1,"time":"t","unitID":"auto_3456"}"#).unwrap();
        assert!(
            matches!(msg, ModuleMessage::Status { ref unit_id, ref payload } if unit_id == "auto_3456" && payload.len() == 4)
        );
        let lora =
            ModuleMessage::parse(br#"{"unitID":"node1","value":21.5,"value_units":"celsius","subID":8}"#)
                .unwrap();
        let ModuleMessage::Reading(r) = lora else { panic!("expected a reading") };
        assert_eq!(r.sub_id, "8");
        assert_eq!(r.value, ReadingValue::Float(21.5));
        assert!(r.extra.is_empty());
    }

    #[test]
    fn refuses_garbage() {
        let cases: &[&[u8]] = &[
            b"",
            b"42",
            b"{",
            br#"{"value":1}"#,
            br#"{"value":"1","unitID":"u"}"#,
            br#"{"value":[],"unitID":"u"}"#,
            br#"{"value":1,"unitID":"u","subID":{}}"#,
        ];
        for input in cases {
            assert!(ModuleMessage::parse(input).is_err(), "input {:?}", String::from_utf8_lossy(input));
        }
    }
}
