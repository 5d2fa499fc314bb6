//! Shared helpers for lenient JSON parsing of device payloads.

use alloc::format;
use alloc::string::String;

use serde_json::{Map, Value};

use crate::Error;

/// Parses `payload` as a JSON object (the top level of every legacy payload).
pub(crate) fn parse_object(payload: &[u8]) -> Result<Map<String, Value>, Error> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::InvalidJson(format!("expected an object, got {}", kind(&other)))),
        Err(e) => Err(Error::InvalidJson(format!("{e}"))),
    }
}

/// The name of a JSON value's type, for error messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first key equal to `name` ignoring ASCII case (devices disagree on `unitID`'s case).
pub(crate) fn key_ignore_case<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name))
}

/// The string under `name` (key matched ignoring ASCII case). Numbers are accepted where a string
/// is meant (`"subID": 24` from some consumers) and printed as JSON prints them.
pub(crate) fn get_string(
    map: &Map<String, Value>,
    name: &'static str,
    required: bool,
) -> Result<Option<String>, Error> {
    let value = key_ignore_case(map, name).and_then(|k| map.get(k));
    match value {
        None if required => Err(Error::InvalidJson(format!("missing '{name}'"))),
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(format!("{n}"))),
        Some(other) => Err(Error::InvalidJson(format!("'{name}' must be a string, got {}", kind(other)))),
    }
}

/// The string under exactly `name`, refusing any other type (`null` included): for answers
/// neosens itself produces, where a wrong type is a bug to report, not a device quirk.
pub(crate) fn get_str_strict(map: &Map<String, Value>, name: &'static str) -> Result<Option<String>, Error> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::InvalidJson(format!("'{name}' must be a string, got {}", kind(other)))),
    }
}
