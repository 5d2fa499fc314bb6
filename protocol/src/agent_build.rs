//! Agent updates: the contract between central, the admins who sign gateway builds and the
//! agents that install them (DESIGN.md §4), defined once like those of [`crate::edge`].
//!
//! A gateway build is a firmware image of hardware `neosens-edge-<target>` and board
//! [`AGENT_BOARD`], rolled out by a firmware campaign over the gateways' own devices. Its
//! detached ed25519 signature covers [`signed_message`] — the hardware, the revision and the
//! content's SHA-256 — so a signed build cannot be offered for another target or under another
//! revision. The agent checks it with the public key pinned in its configuration; central only
//! keeps and passes it on, so a central that is broken into cannot push a build of its own.
//! What became of an offered build, the agent says with [`AgentUpdateReport`]
//! (`POST /api/v1/edge/agent-update`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ids::Mac;

/// The board name of gateway builds.
pub const AGENT_BOARD: &str = "neosens-edge";

/// What the hardware names of gateway builds start with.
pub const AGENT_HARDWARE_PREFIX: &str = "neosens-edge-";

/// Most characters of a report's reason.
pub const MAX_REASON_CHARS: usize = 200;

/// The hardware name of gateway builds for a CPU architecture as Rust names it
/// (`std::env::consts::ARCH`): `neosens-edge-aarch64`, `neosens-edge-armv7` (`arm`),
/// `neosens-edge-x86_64`.
pub fn agent_hardware(arch: &str) -> String {
    let target = if arch == "arm" { "armv7" } else { arch };
    format!("{AGENT_HARDWARE_PREFIX}{target}")
}

/// The revision a version `major.minor.patch` compares as (`0.1.0` → 1000, `1.2.3` →
/// 1002003): what the gateway's status reports in `firmware`, as devices report theirs. `None`
/// for anything else.
pub fn version_revision(version: &str) -> Option<u64> {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok().filter(|n| *n < 1000));
    let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() {
        return None;
    }
    Some(major * 1_000_000 + minor * 1_000 + patch)
}

/// The bytes a build's signature covers: a fixed label, the hardware, the revision and the
/// content's SHA-256 in lowercase hex, one per line.
pub fn signed_message(hardware: &str, revision: u64, sha256_hex: &str) -> Vec<u8> {
    format!("neosens-edge build v1\n{hardware}\n{revision}\n{}\n", sha256_hex.to_ascii_lowercase())
        .into_bytes()
}

/// What became of an offered build at a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentUpdateOutcome {
    /// Checked, installed, and healthy (synced and connected) within the deadline.
    Installed,
    /// Not installed: its signature, hash or target did not check.
    Refused,
    /// Installed, then put back: it did not become healthy within the deadline (or exited).
    RolledBack,
}

/// The body of `POST /api/v1/edge/agent-update` (the agent writes it, central reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentUpdateReport {
    /// The campaign that offered the build.
    pub campaign: u64,
    /// SHA-256 of the build, lowercase hex.
    pub sha256: String,
    /// The gateway's own device (its MAC).
    #[cfg_attr(feature = "utoipa", schema(value_type = String))]
    pub device: Mac,
    /// What became of it.
    pub outcome: AgentUpdateOutcome,
    /// Why, in words (at most [`MAX_REASON_CHARS`] characters are kept).
    pub reason: String,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_revisions_and_the_signed_bytes_are_pinned() {
        assert_eq!(agent_hardware("aarch64"), "neosens-edge-aarch64");
        assert_eq!(agent_hardware("arm"), "neosens-edge-armv7");
        assert_eq!(version_revision("0.1.0"), Some(1000));
        assert_eq!(version_revision("1.2.3"), Some(1_002_003));
        for bad in ["", "1", "1.2", "1.2.3.4", "1.x.3", "1.2.1000", "-1.2.3", "1..3"] {
            assert_eq!(version_revision(bad), None, "{bad:?}");
        }
        assert_eq!(
            signed_message("neosens-edge-aarch64", 1001, "ABcd"),
            b"neosens-edge build v1\nneosens-edge-aarch64\n1001\nabcd\n".to_vec()
        );
    }

    #[test]
    fn the_report_reads_strictly() {
        let text = r#"{"campaign":3,"sha256":"ab","device":"b8:27:eb:00:00:01","outcome":"rolled_back","reason":"exited","at_ms":5}"#;
        let report: AgentUpdateReport = serde_json::from_str(text).unwrap();
        assert_eq!(report.outcome, AgentUpdateOutcome::RolledBack);
        assert_eq!(
            serde_json::to_string(&report).unwrap(),
            text.replace("b8:27:eb:00:00:01", "B8:27:EB:00:00:01")
        );
        for bad in [
            r#"{"campaign":3,"sha256":"ab","device":"b8:27:eb:00:00:01","outcome":"maybe","reason":"","at_ms":5}"#,
            r#"{"campaign":3,"sha256":"ab","device":"zz","outcome":"refused","reason":"","at_ms":5}"#,
            r#"{"campaign":3,"sha256":"ab","device":"b8:27:eb:00:00:01","outcome":"refused","reason":"","at_ms":5,"x":1}"#,
        ] {
            assert!(serde_json::from_str::<AgentUpdateReport>(bad).is_err(), "{bad}");
        }
    }
}
