//! `GET /device/config` answer (§3.2) and the legacy shape of a device configuration (§4).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::{Map, Value};

use super::MAX_HTTP_BODY;
use super::json::{kind, parse_object};
use crate::{Error, pyjson};

/// What a device learns from `/device/config`: its topics (main room first — the firmware takes
/// `topics[0]` as its base topic) and its configuration zones.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigResponse {
    /// Base topics of the device's rooms, main room first. Never empty when served.
    pub topics: Vec<String>,
    /// The configuration: an array of zones (see [`validate_zones`]).
    pub zones: Value,
}

impl ConfigResponse {
    /// The exact body the 2016 server sent: `{"topics": [...], "zones": [...]}` with Python
    /// separators and `\uXXXX` escapes.
    pub fn to_legacy_json(&self) -> String {
        let mut map = Map::new();
        map.insert("topics".into(), Value::Array(self.topics.iter().cloned().map(Value::String).collect()));
        map.insert("zones".into(), self.zones.clone());
        pyjson::to_string(&Value::Object(map))
    }

    /// The body, refused when the firmware could not read it (over 1023 bytes, or no topic).
    pub fn to_legacy_body(&self) -> Result<String, Error> {
        if self.topics.is_empty() {
            return Err(Error::InvalidJson("a device needs at least one topic".into()));
        }
        let body = self.to_legacy_json();
        if body.len() > MAX_HTTP_BODY {
            return Err(Error::TooLarge { what: "config body", size: body.len(), limit: MAX_HTTP_BODY });
        }
        Ok(body)
    }

    /// Parses an answer as the firmware does: `topics` is required (an array of strings); `zones`
    /// defaults to `[]` when absent (the firmware only reads it when a module asks).
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let map = parse_object(body)?;
        let topics = match map.get("topics") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|t| match t {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(Error::InvalidJson(format!("topics must be strings, got {}", kind(other)))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(Error::InvalidJson(format!("'topics' must be an array, got {}", kind(other))));
            }
            None => return Err(Error::InvalidJson("missing 'topics'".into())),
        };
        let zones = map.get("zones").cloned().unwrap_or(Value::Array(Vec::new()));
        Ok(ConfigResponse { topics, zones })
    }

    /// The base topic the firmware uses: `topics[0]`.
    pub fn base_topic(&self) -> Option<&str> {
        self.topics.first().map(String::as_str)
    }

    /// The entries of `zones[0].modules` whose `module` is exactly `name` (case-sensitive), as
    /// the firmware's `getModuleConf` picks them. Other zones are ignored, as on the device.
    pub fn modules<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Map<String, Value>> + 'a {
        self.zones
            .get(0)
            .and_then(|z| z.get("modules"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .filter(move |m| m.get("module").and_then(Value::as_str) == Some(name))
    }
}

/// Checks a configuration against the shape the 2016 server enforced (validictory, where every
/// listed property is required): an array of objects, each with `modules`, an array of objects
/// with `module` (string), `unit` (string) and `params`, an array of `{param: string, value: any}`.
/// Extra keys (`topic`, `frequency`, `driver` …) are allowed. The error names the JSON pointer.
pub fn validate_zones(zones: &Value) -> Result<(), Error> {
    let zones = expect_array(zones, "")?;
    for (z, zone) in zones.iter().enumerate() {
        let zone_path = format!("/{z}");
        let zone = expect_object(zone, &zone_path)?;
        let modules_path = format!("{zone_path}/modules");
        let modules = expect_array(required(zone, "modules", &zone_path)?, &modules_path)?;
        for (m, module) in modules.iter().enumerate() {
            let module_path = format!("{modules_path}/{m}");
            let module = expect_object(module, &module_path)?;
            expect_string(required(module, "module", &module_path)?, &format!("{module_path}/module"))?;
            expect_string(required(module, "unit", &module_path)?, &format!("{module_path}/unit"))?;
            let params_path = format!("{module_path}/params");
            let params = expect_array(required(module, "params", &module_path)?, &params_path)?;
            for (p, param) in params.iter().enumerate() {
                let param_path = format!("{params_path}/{p}");
                let param = expect_object(param, &param_path)?;
                expect_string(required(param, "param", &param_path)?, &format!("{param_path}/param"))?;
                required(param, "value", &param_path)?;
            }
        }
    }
    Ok(())
}

fn required<'a>(map: &'a Map<String, Value>, key: &'static str, path: &str) -> Result<&'a Value, Error> {
    map.get(key).ok_or_else(|| Error::InvalidConfig {
        path: format!("{path}/{key}"),
        reason: "required key is missing",
    })
}

fn expect_array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, Error> {
    v.as_array().ok_or_else(|| Error::InvalidConfig { path: path.into(), reason: "must be an array" })
}

fn expect_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Error> {
    v.as_object().ok_or_else(|| Error::InvalidConfig { path: path.into(), reason: "must be an object" })
}

fn expect_string(v: &Value, path: &str) -> Result<(), Error> {
    if v.is_string() {
        Ok(())
    } else {
        Err(Error::InvalidConfig { path: path.into(), reason: "must be a string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use serde_json::json;

    fn campusfab() -> Value {
        json!([{"topic": "u4/campusfab", "modules": [
            {"module": "airquality", "driver": "pm_serial", "unit": "pm_sds011", "frequency": 120,
             "params": [{"param": "type", "value": 32}, {"param": "link_speed", "value": 9600}]},
            {"module": "digital", "unit": "gpio",
             "params": [{"param": "subID", "value": "IRsensor"}, {"param": "input", "value": 4},
                        {"param": "type", "value": 1}, {"param": "cooldown", "value": 60},
                        {"param": "front", "value": 1}]}]}])
    }

    #[test]
    fn exact_bytes_of_the_spec_examples() {
        let empty = ConfigResponse { topics: vec!["irit2/366".into()], zones: json!([]) };
        assert_eq!(empty.to_legacy_json(), r#"{"topics": ["irit2/366"], "zones": []}"#);

        let aug20 = ConfigResponse {
            topics: vec!["irit2/366".into()],
            zones: json!([{"topic": "irit2/366", "modules": [{"module": "airquality", "unit": "lcc_sensor", "frequency": 60, "params": [{"param": "subIDs", "value": "NO2"}, {"param": "inputs", "value": [16, 17, 5, 18, 35]}, {"param": "outputs", "value": -1}]}]}]),
        };
        assert_eq!(
            aug20.to_legacy_json(),
            r#"{"topics": ["irit2/366"], "zones": [{"topic": "irit2/366", "modules": [{"module": "airquality", "unit": "lcc_sensor", "frequency": 60, "params": [{"param": "subIDs", "value": "NO2"}, {"param": "inputs", "value": [16, 17, 5, 18, 35]}, {"param": "outputs", "value": -1}]}]}]}"#
        );

        // The full example of §4: 474 bytes with Python separators (427 compact).
        let full = ConfigResponse { topics: vec!["u4/campusfab".into()], zones: campusfab() };
        assert_eq!(full.to_legacy_json().len(), 474);
        let compact =
            serde_json::to_string(&json!({"topics": ["u4/campusfab"], "zones": campusfab()})).unwrap();
        assert_eq!(compact.len(), 427);
        assert_eq!(full.to_legacy_body().unwrap().len(), 474);
    }

    #[test]
    fn body_over_the_firmware_buffer_is_refused_with_the_excess() {
        let params: Vec<Value> = (0..40).map(|i| json!({"param": "p", "value": i})).collect();
        let zones = json!([{"modules": [{"module": "digital", "unit": "gpio", "params": params}]}]);
        let cfg = ConfigResponse { topics: vec!["u4/302".into()], zones };
        let size = cfg.to_legacy_json().len();
        assert!(size > MAX_HTTP_BODY);
        let err = cfg.to_legacy_body().unwrap_err();
        assert_eq!(err, Error::TooLarge { what: "config body", size, limit: MAX_HTTP_BODY });
        assert!(alloc::string::ToString::to_string(&err).contains(&format!("{} over", size - MAX_HTTP_BODY)));
        let no_topic = ConfigResponse { topics: vec![], zones: json!([]) };
        assert!(no_topic.to_legacy_body().is_err());
    }

    #[test]
    fn parse_and_module_lookup_like_the_firmware() {
        let full =
            ConfigResponse { topics: vec!["u4/campusfab".into(), "u4/302".into()], zones: campusfab() };
        let parsed = ConfigResponse::parse(full.to_legacy_json().as_bytes()).unwrap();
        assert_eq!(parsed, full);
        assert_eq!(parsed.base_topic(), Some("u4/campusfab"));
        assert_eq!(parsed.modules("digital").count(), 1);
        assert_eq!(parsed.modules("airquality").next().unwrap()["unit"], "pm_sds011");
        assert_eq!(parsed.modules("Digital").count(), 0);
        assert_eq!(parsed.modules("temperature").count(), 0);
        let bare = ConfigResponse::parse(br#"{"topics": []}"#).unwrap();
        assert_eq!(bare.base_topic(), None);
        assert_eq!(bare.modules("digital").count(), 0);
        for bad in
            [&b""[..], b"{", b"[]", br#"{"zones": []}"#, br#"{"topics": "u4/302"}"#, br#"{"topics": [1]}"#]
        {
            assert!(ConfigResponse::parse(bad).is_err(), "input {:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn zones_shape_errors_name_the_path() {
        assert_eq!(validate_zones(&campusfab()), Ok(()));
        assert_eq!(validate_zones(&json!([])), Ok(()));
        let cases = [
            (json!({}), "", "must be an array"),
            (json!([1]), "/0", "must be an object"),
            (json!([{}]), "/0/modules", "required key is missing"),
            (json!([{"modules": {}}]), "/0/modules", "must be an array"),
            (
                json!([{"modules": [{"unit": "u", "params": []}]}]),
                "/0/modules/0/module",
                "required key is missing",
            ),
            (
                json!([{"modules": [{"module": 1, "unit": "u", "params": []}]}]),
                "/0/modules/0/module",
                "must be a string",
            ),
            (
                json!([{"modules": [{"module": "m", "params": []}]}]),
                "/0/modules/0/unit",
                "required key is missing",
            ),
            (
                json!([{"modules": [{"module": "m", "unit": "u"}]}]),
                "/0/modules/0/params",
                "required key is missing",
            ),
            (
                json!([{"modules": [{"module": "m", "unit": "u", "params": [{"param": "p"}]}]}]),
                "/0/modules/0/params/0/value",
                "required key is missing",
            ),
            (
                json!([{"modules": [{"module": "m", "unit": "u", "params": [{"param": null, "value": 1}]}]}]),
                "/0/modules/0/params/0/param",
                "must be a string",
            ),
            (
                json!([{"modules": []}, {"modules": [{"module": "m", "unit": "u", "params": [7]}]}]),
                "/1/modules/0/params/0",
                "must be an object",
            ),
        ];
        for (zones, path, reason) in cases {
            assert_eq!(
                validate_zones(&zones),
                Err(Error::InvalidConfig { path: path.into(), reason }),
                "zones {zones}"
            );
        }
    }
}
