//! `POST /device/logger` body (§3.5): a Python `logging.LogRecord.__dict__`, form-encoded.

use alloc::string::String;

use serde::{Deserialize, Deserializer, Serialize};

/// A log record sent by a Raspberry Pi client's `HTTPHandler`. Every field is optional text, as
/// forms carry it; the string `None` (Python's `str(None)`) reads as absent, as the 2016 server
/// stored it (NULL).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs)] // the field names are Python's LogRecord attributes
pub struct LogRecord {
    #[serde(deserialize_with = "none_text")]
    pub levelno: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub levelname: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub name: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub module: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub filename: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub pathname: Option<String>,
    #[serde(rename = "funcName", deserialize_with = "none_text")]
    pub func_name: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub lineno: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub msg: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub exc_info: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub exc_text: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub args: Option<String>,
    #[serde(rename = "threadName", deserialize_with = "none_text")]
    pub thread_name: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub thread: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub created: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub process: Option<String>,
    #[serde(rename = "relativeCreated", deserialize_with = "none_text")]
    pub relative_created: Option<String>,
    #[serde(deserialize_with = "none_text")]
    pub msecs: Option<String>,
}

fn none_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    Ok(s.filter(|s| s != "None"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_reads_as_absent() {
        let r: LogRecord = serde_json::from_str(
            r#"{"levelname":"ERROR","msg":"boom","exc_info":"None","funcName":"run","unknown":"x"}"#,
        )
        .unwrap();
        assert_eq!(r.levelname.as_deref(), Some("ERROR"));
        assert_eq!(r.msg.as_deref(), Some("boom"));
        assert_eq!(r.exc_info, None);
        assert_eq!(r.func_name.as_deref(), Some("run"));
        assert_eq!(r.lineno, None);
    }
}
