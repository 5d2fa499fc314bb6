//! The file formats of bulk import and export: CSV (a header row naming the columns, in any
//! order) and JSON (an array of objects). Both read into [`DeviceRow`]s, a bad row becoming an
//! error of its own without stopping the others.
//!
//! Columns: `uid` (required), `type`, `rooms` (base topics or ids separated by `;`, main room
//! first), `description`, `enabled` (`true`/`false`), `config` (the zones as JSON),
//! `outdated_after_s` (seconds, or `default` for the type's). An empty cell leaves the field as
//! it is (a new device gets the default).

use serde::Deserialize;
use serde_json::Value;

use crate::registry::{DeviceRow, MAX_IMPORT_ROWS};

/// The columns, in the order exports write them.
pub(crate) const COLUMNS: [&str; 7] =
    ["uid", "type", "rooms", "description", "enabled", "config", "outdated_after_s"];

/// A row that does not read: its number (1 = first data row), its uid as far as read, the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowProblem {
    pub(crate) row: usize,
    pub(crate) uid: String,
    pub(crate) field: String,
    pub(crate) message: String,
}

/// A file that does not read at all (no header, unknown column, not an array).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FileProblem(pub(crate) String);

/// Rows read, each with its number in the file, and the rows that did not read.
pub(crate) type Parsed = (Vec<(usize, DeviceRow)>, Vec<RowProblem>);

fn problem(row: usize, uid: &str, field: &str, message: impl Into<String>) -> RowProblem {
    RowProblem { row, uid: uid.to_owned(), field: field.to_owned(), message: message.into() }
}

fn cell(record: &csv::StringRecord, index: Option<usize>) -> Option<&str> {
    index.and_then(|i| record.get(i)).map(str::trim).filter(|v| !v.is_empty())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn parse_threshold(v: &str) -> Result<Option<u32>, String> {
    if v.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    v.parse::<u32>().map(Some).map_err(|_| format!("{v:?}: seconds, or `default` for the type's"))
}

/// Reads a CSV file.
pub(crate) fn read_csv(text: &str) -> Result<Parsed, FileProblem> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let header =
        reader.headers().map_err(|e| FileProblem(format!("the header row does not read: {e}")))?.clone();
    let mut index = [None; COLUMNS.len()];
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().trim_start_matches('\u{feff}');
        let Some(c) = COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) else {
            return Err(FileProblem(format!(
                "unknown column {name:?}: the columns are {}",
                COLUMNS.join(", ")
            )));
        };
        if index[c].replace(i).is_some() {
            return Err(FileProblem(format!("column {name:?} appears twice")));
        }
    }
    if index[0].is_none() {
        return Err(FileProblem("no `uid` column: the header row must name the columns".into()));
    }
    let (mut rows, mut problems) = (Vec::new(), Vec::new());
    for (i, record) in reader.records().enumerate() {
        let n = i + 1;
        if n > MAX_IMPORT_ROWS {
            return Err(too_many_rows());
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(problem(n, "", "row", format!("does not read as CSV: {e}")));
                continue;
            }
        };
        match csv_row(&record, &index) {
            Ok(row) => rows.push((n, row)),
            Err((field, message)) => {
                problems.push(problem(n, cell(&record, index[0]).unwrap_or(""), field, message));
            }
        }
    }
    Ok((rows, problems))
}

fn csv_row(
    record: &csv::StringRecord,
    index: &[Option<usize>; 7],
) -> Result<DeviceRow, (&'static str, String)> {
    let get = |c: usize| cell(record, index[c]);
    let uid = get(0).ok_or(("uid", "empty".to_owned()))?.to_owned();
    let enabled =
        get(4).map(|v| parse_bool(v).ok_or(("enabled", format!("{v:?}: true or false")))).transpose()?;
    let config = get(5)
        .map(|v| serde_json::from_str::<Value>(v).map_err(|e| ("config", format!("not JSON: {e}"))))
        .transpose()?;
    let outdated_after_s =
        get(6).map(|v| parse_threshold(v).map_err(|m| ("outdated_after_s", m))).transpose()?;
    Ok(DeviceRow {
        uid,
        device_type: get(1).map(str::to_owned),
        rooms: get(2)
            .map(|v| v.split(';').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect()),
        description: get(3).map(str::to_owned),
        enabled,
        config,
        outdated_after_s,
    })
}

/// One object of a JSON import.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    uid: String,
    #[serde(rename = "type")]
    device_type: Option<String>,
    rooms: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
    config: Option<Value>,
    #[serde(default, deserialize_with = "threshold")]
    outdated_after_s: Option<Option<u32>>,
}

/// `outdated_after_s`: absent leaves it, `null` or `"default"` is the type's, a number sets it.
fn threshold<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Some(None)),
        Value::String(s) => parse_threshold(&s).map(Some).map_err(serde::de::Error::custom),
        v => serde_json::from_value::<u32>(v).map(|n| Some(Some(n))).map_err(serde::de::Error::custom),
    }
}

fn too_many_rows() -> FileProblem {
    FileProblem(format!("more than {MAX_IMPORT_ROWS} rows: split the file"))
}

/// A JSON array read item by item, refused past [`MAX_IMPORT_ROWS`] items (so a file of
/// millions of `{}` never becomes millions of values).
struct CappedArray(Vec<Value>);

impl<'de> Deserialize<'de> for CappedArray {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> serde::de::Visitor<'de> for Items {
            type Value = CappedArray;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "an array of at most {MAX_IMPORT_ROWS} objects")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<CappedArray, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    if items.len() == MAX_IMPORT_ROWS {
                        return Err(serde::de::Error::custom(too_many_rows().0));
                    }
                    items.push(item);
                }
                Ok(CappedArray(items))
            }
        }
        d.deserialize_seq(Items)
    }
}

/// Reads a JSON file: an array of objects.
pub(crate) fn read_json(text: &str) -> Result<Parsed, FileProblem> {
    let CappedArray(items) =
        serde_json::from_str(text).map_err(|e| FileProblem(format!("not a JSON array of objects: {e}")))?;
    let (mut rows, mut problems) = (Vec::new(), Vec::new());
    for (i, item) in items.into_iter().enumerate() {
        let uid = item.get("uid").and_then(Value::as_str).unwrap_or("").to_owned();
        match serde_json::from_value::<JsonRow>(item) {
            Ok(r) => rows.push((
                i + 1,
                DeviceRow {
                    uid: r.uid,
                    device_type: r.device_type,
                    rooms: r.rooms,
                    description: r.description,
                    enabled: r.enabled,
                    config: r.config,
                    outdated_after_s: r.outdated_after_s,
                },
            )),
            Err(e) => problems.push(problem(i + 1, &uid, "row", e.to_string())),
        }
    }
    Ok((rows, problems))
}

/// Writes rows as CSV with a header row.
pub(crate) fn write_csv(rows: &[DeviceRow]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for r in rows {
        w.write_record([
            r.uid.clone(),
            r.device_type.clone().unwrap_or_default(),
            r.rooms.as_deref().unwrap_or_default().join(";"),
            r.description.clone().unwrap_or_default(),
            r.enabled.map(|e| e.to_string()).unwrap_or_default(),
            r.config.as_ref().map(Value::to_string).unwrap_or_default(),
            r.outdated_after_s.flatten().map(|s| s.to_string()).unwrap_or_default(),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Rows as a JSON array (what [`read_json`] reads).
pub(crate) fn to_json(rows: &[DeviceRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "uid": r.uid, "type": r.device_type, "rooms": r.rooms, "description": r.description,
                    "enabled": r.enabled, "config": r.config, "outdated_after_s": r.outdated_after_s.flatten(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
#[path = "bulk_format_tests.rs"]
mod tests;
