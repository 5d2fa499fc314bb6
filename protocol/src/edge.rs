//! Edge → central reports, the JSON bodies a gateway sends to `/api/v1/edge/*` (DESIGN.md §4).
//! Defined here, once, for central (which reads them) and the agent (which writes them).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ids::DeviceId;

/// Most log lines in one `POST /api/v1/edge/logs`.
pub const MAX_RELAYED_LOGS: usize = 100;

/// A device log line (`POST /device/logger`) a gateway accepted while central was out of reach.
/// The gateway checked the device's Basic credentials against the synced hash and keeps only
/// this — never the credentials — so it relays the line in its own name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayedLog {
    /// The device.
    pub device: DeviceId,
    /// When the gateway received it, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The device's address on the gateway's network.
    pub device_addr: String,
    /// The form-encoded Python `LogRecord`, as the device sent it.
    pub body: String,
}

/// The body of `POST /api/v1/edge/logs`: at most [`MAX_RELAYED_LOGS`] lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayedLogs {
    /// The lines, oldest first.
    pub logs: Vec<RelayedLog>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_logs_read_as_json_and_refuse_unknown_fields() {
        let text = r#"{"logs":[{"device":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","received_at_ms":1700000000000,"device_addr":"10.0.0.7","body":"msg=boom&levelno=40"}]}"#;
        let logs: RelayedLogs = serde_json::from_str(text).unwrap();
        assert_eq!(logs.logs[0].device_addr, "10.0.0.7");
        assert_eq!(serde_json::to_string(&logs).unwrap(), text, "written as read");
        for bad in [
            r#"{"logs":[{"device":"x","received_at_ms":1,"device_addr":"a","body":""}]}"#,
            r#"{"logs":[{"device":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","received_at_ms":1,"device_addr":"a","body":"","authorization":"Basic eA=="}]}"#,
            r#"{"logs":{}}"#,
        ] {
            assert!(serde_json::from_str::<RelayedLogs>(bad).is_err(), "{bad}");
        }
    }
}
