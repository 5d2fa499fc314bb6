//! Orders sent to devices, as recorded (who, when, what, and whether it went out).

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// One order, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// When it was requested.
    pub at: Timestamp,
    /// Who asked (token or user name).
    pub by: String,
    /// The order (`reboot`, `frequency`, `reinstall` …).
    pub order: String,
    /// Its value, as JSON text.
    pub value: Option<String>,
    /// The module addressed (`device` for device orders).
    pub module: String,
    /// The `dest` sent.
    pub dest: String,
    /// The topic it was published on.
    pub topic: String,
    /// The exact payload.
    pub payload: String,
    /// `sent`, or why it was not.
    pub outcome: String,
}
