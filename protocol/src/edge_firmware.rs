//! The firmware contracts between central and its gateways (DESIGN.md §4), defined once like
//! those of [`crate::edge`]: the manifest of what a gateway serves on its LAN
//! (`GET /api/v1/edge/firmware?cached=<sha256>,…`, naming the images it has, so central knows
//! when the gateway serves the current waves), the image download (`GET /api/v1/edge/firmware/{sha256}`,
//! resumable with `Range: bytes=N-`), and the fetches it saw (`POST /api/v1/edge/firmware/fetches`).
//!
//! A gateway serves `/images/<hardware>/<board>/default.json` and the image to the devices of
//! its scope from its own cache, with the same answers as central, also while central is out of
//! reach: the manifest carries, for each running campaign, the image and which devices of the
//! gateway's scope are in its started waves.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ids::Mac;

/// Most images in one manifest (one running campaign per hardware and board).
pub const MAX_MANIFEST_IMAGES: usize = 32;

/// Most fetches in one `POST /api/v1/edge/firmware/fetches`.
pub const MAX_REPORTED_FETCHES: usize = 1000;

/// What a gateway serves of the running campaigns (central writes it, the agent reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FirmwareManifest {
    /// One entry per running campaign that targets devices of the gateway's scope.
    pub images: Vec<ManifestImage>,
}

/// A running campaign that targets devices of the gateway's scope: its image (cached ahead of
/// the waves) and the devices of the scope in its started waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ManifestImage {
    /// The campaign.
    pub campaign: u64,
    /// SHA-256 of the image, lowercase hex: its name, and what the gateway checks.
    pub sha256: String,
    /// MD5, lowercase hex, for `x-MD5`.
    pub md5: String,
    /// Bytes.
    pub size: u64,
    /// `esp32`, `esp8266` …
    pub hardware: String,
    /// Board name.
    pub board: String,
    /// Revision offered in `default.json`.
    pub revision: u64,
    /// Devices of the gateway's scope in the started waves (the others are told "no update").
    #[cfg_attr(feature = "utoipa", schema(value_type = Vec<String>))]
    pub devices: Vec<Mac>,
    /// For a gateway build ([`crate::agent_build`]): its detached ed25519 signature, 128 hex
    /// digits, which the agent checks with its pinned key before installing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A device fetched an image from a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FirmwareFetch {
    /// The campaign.
    pub campaign: u64,
    /// The device.
    #[cfg_attr(feature = "utoipa", schema(value_type = String))]
    pub device: Mac,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// The body of `POST /api/v1/edge/firmware/fetches` (the agent writes it, central reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FirmwareFetches {
    /// At most [`MAX_REPORTED_FETCHES`].
    pub fetches: Vec<FirmwareFetch>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_shapes_are_pinned() {
        let manifest = FirmwareManifest {
            images: alloc::vec![ManifestImage {
                campaign: 3,
                sha256: "ab".into(),
                md5: "cd".into(),
                size: 10,
                hardware: "esp32".into(),
                board: "neOSensor".into(),
                revision: 240101,
                devices: alloc::vec!["24:0a:c4:12:34:56".parse().unwrap()],
                signature: None,
            }],
        };
        let text = serde_json::to_string(&manifest).unwrap();
        assert_eq!(
            text,
            r#"{"images":[{"campaign":3,"sha256":"ab","md5":"cd","size":10,"hardware":"esp32","board":"neOSensor","revision":240101,"devices":["24:0A:C4:12:34:56"]}]}"#
        );
        assert_eq!(serde_json::from_str::<FirmwareManifest>(&text).unwrap(), manifest);
        // A newer central may add fields: the agent reads on.
        let newer = r#"{"images":[],"schedule":"later"}"#;
        assert_eq!(serde_json::from_str::<FirmwareManifest>(newer).unwrap(), FirmwareManifest::default());
        let fetches = r#"{"fetches":[{"campaign":3,"device":"24:0a:c4:12:34:56","at_ms":5}]}"#;
        let parsed: FirmwareFetches = serde_json::from_str(fetches).unwrap();
        assert_eq!(parsed.fetches[0].device.to_string(), "24:0A:C4:12:34:56");
        assert!(serde_json::from_str::<FirmwareFetches>(r#"{"fetches":[],"x":1}"#).is_err());
        assert!(
            serde_json::from_str::<FirmwareFetches>(
                r#"{"fetches":[{"campaign":3,"device":"zz","at_ms":5}]}"#
            )
            .is_err()
        );
    }
}
