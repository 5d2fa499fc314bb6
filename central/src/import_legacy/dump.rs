//! Reading a Django 1.9 `manage.py dumpdata` export of the 2016 sensOCampus app.
//!
//! Spec: `legacy-sensocampus.md` §7 and §7.1. A JSON array of `{"model", "pk", "fields"}`; only
//! the `devices.*` models matter, every other app's rows are counted and skipped (never
//! confusing `auth.permission` with `devices.permission`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One row of the export.
#[derive(Debug, Deserialize)]
struct Row {
    model: String,
    #[serde(default)]
    pk: Value,
    #[serde(default)]
    fields: serde_json::Map<String, Value>,
}

/// `devices.type`
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyType {
    /// Primary key.
    pub pk: i64,
    /// Unique name.
    pub name: String,
    /// Description (may be null in the export).
    pub description: String,
}

/// `devices.building`
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyBuilding {
    /// Primary key.
    pub pk: i64,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Stored topic.
    pub topic: String,
}

/// `devices.location`: a room.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyLocation {
    /// Primary key.
    pub pk: i64,
    /// Building pk.
    pub building: i64,
    /// Room name.
    pub room: String,
    /// Stored topic: kept exactly, even where the naming rule would now give another.
    pub topic: String,
}

/// `devices.device`
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyDevice {
    /// Primary key.
    pub pk: i64,
    /// MAC as stored (uppercase with colons, normally).
    pub mac: String,
    /// Type pk.
    pub device_type: Option<i64>,
    /// Description.
    pub description: String,
    /// Location pks in database order: the first one was the device's base topic.
    pub locations: Vec<i64>,
    /// `last_update`.
    pub last_update: Option<String>,
    /// `last_status`.
    pub last_status: Option<String>,
    /// `enabled`.
    pub enabled: bool,
    /// MQTT login as stored (not always derivable from the MAC).
    pub login: String,
    /// MQTT password, in clear in the old database.
    pub password: String,
    /// `modules`: JSON text inside the JSON.
    pub modules: String,
    /// `credentials_delivered`.
    pub credentials_delivered: bool,
    /// `mqtt_defaults`.
    pub mqtt_defaults: bool,
    /// `mqtt_server`.
    pub mqtt_server: Option<String>,
    /// `mqtt_port`.
    pub mqtt_port: Option<i64>,
}

/// `devices.permission`
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyPermission {
    /// Primary key.
    pub pk: i64,
    /// Device pk.
    pub device: i64,
    /// Topic filter.
    pub topic: String,
    /// `PUB`, `SUB` or `ALL`.
    pub permission_type: String,
}

/// The `devices` app of an export.
#[derive(Debug, Default)]
pub struct LegacyExport {
    /// Types by pk.
    pub types: BTreeMap<i64, LegacyType>,
    /// Buildings by pk.
    pub buildings: BTreeMap<i64, LegacyBuilding>,
    /// Locations by pk.
    pub locations: BTreeMap<i64, LegacyLocation>,
    /// Devices, in file order.
    pub devices: Vec<LegacyDevice>,
    /// Permissions.
    pub permissions: Vec<LegacyPermission>,
    /// Rows of the `devices` app that do not parse, with the reason.
    pub bad_rows: Vec<(String, String)>,
    /// `devices.logmessage` rows (not imported).
    pub log_messages: usize,
    /// Rows of other apps, skipped.
    pub other_rows: usize,
}

/// Why an export could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("the file is not a dumpdata export (a JSON array of {{\"model\", \"pk\", \"fields\"}}): {0}")]
pub struct DumpError(String);

fn text(f: &serde_json::Map<String, Value>, key: &str) -> Result<String, String> {
    match f.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Ok(String::new()),
        Some(other) => Err(format!("'{key}' is not text: {other}")),
    }
}

fn opt_text(f: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    f.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn int(v: &Value, what: &str) -> Result<i64, String> {
    v.as_i64().ok_or_else(|| format!("{what} is not an integer: {v}"))
}

fn flag(f: &serde_json::Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match f.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("'{key}' is not a boolean: {other}")),
    }
}

impl LegacyExport {
    /// Parses an export; `progress` is called every 1000 rows with (rows done, rows in all).
    pub fn parse(bytes: &[u8], mut progress: impl FnMut(usize, usize)) -> Result<Self, DumpError> {
        let rows: Vec<Row> = serde_json::from_slice(bytes).map_err(|e| DumpError(e.to_string()))?;
        let mut out = LegacyExport::default();
        let total = rows.len();
        for (n, row) in rows.into_iter().enumerate() {
            if n % 1000 == 0 && n > 0 {
                progress(n, total);
            }
            let label = format!("{} pk={}", row.model, row.pk);
            if let Err(reason) = out.add(row) {
                out.bad_rows.push((label, reason));
            }
        }
        progress(total, total);
        Ok(out)
    }

    fn add(&mut self, row: Row) -> Result<(), String> {
        let f = &row.fields;
        match row.model.as_str() {
            "devices.type" => {
                let pk = int(&row.pk, "pk")?;
                self.types.insert(
                    pk,
                    LegacyType { pk, name: text(f, "name")?, description: text(f, "description")? },
                );
            }
            "devices.building" => {
                let pk = int(&row.pk, "pk")?;
                self.buildings.insert(
                    pk,
                    LegacyBuilding {
                        pk,
                        name: text(f, "name")?,
                        description: text(f, "description")?,
                        topic: text(f, "topic")?,
                    },
                );
            }
            "devices.location" => {
                let pk = int(&row.pk, "pk")?;
                let building = int(f.get("building").unwrap_or(&Value::Null), "building")?;
                self.locations.insert(
                    pk,
                    LegacyLocation { pk, building, room: text(f, "room")?, topic: text(f, "topic")? },
                );
            }
            "devices.device" => {
                let locations = match f.get("locations") {
                    Some(Value::Array(items)) => {
                        items.iter().map(|v| int(v, "location")).collect::<Result<_, _>>()?
                    }
                    None | Some(Value::Null) => Vec::new(),
                    Some(other) => return Err(format!("'locations' is not a list: {other}")),
                };
                self.devices.push(LegacyDevice {
                    pk: int(&row.pk, "pk")?,
                    mac: text(f, "mac")?,
                    device_type: f.get("type").and_then(Value::as_i64),
                    description: text(f, "description")?,
                    locations,
                    last_update: opt_text(f, "last_update"),
                    last_status: opt_text(f, "last_status"),
                    enabled: flag(f, "enabled", true)?,
                    login: text(f, "login")?,
                    password: text(f, "password")?,
                    modules: match f.get("modules") {
                        Some(Value::String(s)) => s.clone(),
                        None | Some(Value::Null) => "[]".into(),
                        Some(other) => return Err(format!("'modules' is not text: {other}")),
                    },
                    credentials_delivered: flag(f, "credentials_delivered", false)?,
                    mqtt_defaults: flag(f, "mqtt_defaults", true)?,
                    mqtt_server: opt_text(f, "mqtt_server"),
                    mqtt_port: f.get("mqtt_port").and_then(Value::as_i64),
                });
            }
            "devices.permission" => self.permissions.push(LegacyPermission {
                pk: int(&row.pk, "pk")?,
                device: int(f.get("device").unwrap_or(&Value::Null), "device")?,
                topic: text(f, "topic")?,
                permission_type: text(f, "permission_type")?,
            }),
            "devices.logmessage" => self.log_messages += 1,
            _ => self.other_rows += 1,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_an_export() {
        for bad in [&b""[..], b"{}", b"[1]", b"[{\"pk\": 1}]", b"not json"] {
            assert!(LegacyExport::parse(bad, |_, _| {}).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn bad_rows_are_reported_not_fatal() {
        let export = LegacyExport::parse(
            br#"[{"model": "devices.type", "pk": "x", "fields": {"name": "a"}},
                 {"model": "devices.device", "pk": 3, "fields": {"mac": 12}},
                 {"model": "devices.type", "pk": 2, "fields": {"name": "esp32", "description": null}},
                 {"model": "auth.permission", "pk": 1, "fields": {"name": "Can add"}}]"#,
            |_, _| {},
        )
        .unwrap();
        assert_eq!(export.types.len(), 1);
        assert_eq!(export.other_rows, 1);
        assert_eq!(export.bad_rows.len(), 2, "{:?}", export.bad_rows);
        assert!(export.bad_rows[1].1.contains("mac"), "{:?}", export.bad_rows);
    }
}
