//! The gateway's long-lived credentials, from `neosens-edge enroll`: `<data_dir>/gateway.json`,
//! mode 0600, written atomically (a crash never leaves half a file).

use std::path::{Path, PathBuf};

use neosens_runtime::keys::Keys;
use serde::{Deserialize, Serialize};

use neosens_protocol::edge::EnrolmentGrant;

/// File name in the data directory.
pub const FILE: &str = "gateway.json";

/// What the agent keeps of its enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayCredentials {
    /// Central's base URL it enrolled with.
    pub central_url: String,
    /// Its id.
    pub gateway_id: String,
    /// Its name.
    pub name: String,
    /// Its API secret (bearer token on central's `/api/v1/edge/*`; its MQTT password is derived
    /// from `keys`: `neosens_runtime::gateway_secrets`).
    pub secret: String,
    /// Its MQTT username.
    pub mqtt_username: String,
    /// Its key pair, hex (hash key, sealing key).
    pub keys: String,
}

/// Problems with the credentials file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Not enrolled yet.
    #[error("{0} not found: enrol this gateway first (neosens-edge enroll --central URL --token TOKEN)")]
    Missing(PathBuf),
    /// Unreadable or damaged.
    #[error("{path}: {reason} (enrol again to rewrite it)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl GatewayCredentials {
    /// From central's grant.
    pub fn from_grant(central_url: &str, grant: EnrolmentGrant) -> Self {
        GatewayCredentials {
            central_url: central_url.trim_end_matches('/').to_owned(),
            gateway_id: grant.gateway_id,
            name: grant.name,
            secret: grant.secret,
            mqtt_username: grant.mqtt_username,
            keys: grant.keys,
        }
    }

    /// Reads `<dir>/gateway.json`.
    pub fn load(dir: &Path) -> Result<Self, CredentialsError> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CredentialsError::Missing(path));
            }
            Err(e) => return Err(CredentialsError::Damaged { path, reason: e.to_string() }),
        };
        let creds: GatewayCredentials = serde_json::from_str(&text)
            .map_err(|e| CredentialsError::Damaged { path: path.clone(), reason: e.to_string() })?;
        creds.keys().map_err(|reason| CredentialsError::Damaged { path, reason })?;
        Ok(creds)
    }

    /// Writes `<dir>/gateway.json` (0600), whole and durable (synced with its directory).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        neosens_runtime::durable::write_private(&dir.join(FILE), text.as_bytes())
    }

    /// The gateway's key pair.
    pub fn keys(&self) -> Result<Keys, String> {
        let bytes: [u8; 64] = neosens_protocol::hex::decode_array(self.keys.trim(), "keys")
            .map_err(|_| String::from("keys: expected 128 hex digits"))?;
        let mut hash = [0u8; 32];
        let mut seal = [0u8; 32];
        hash.copy_from_slice(&bytes[..32]);
        seal.copy_from_slice(&bytes[32..]);
        Ok(Keys::from_bytes(&hash, &seal, ring::rand::SystemRandom::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saved_private_and_loaded_back_or_named_when_wrong() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(GatewayCredentials::load(dir.path()), Err(CredentialsError::Missing(_))));
        let creds = GatewayCredentials {
            central_url: "http://central:8080".into(),
            gateway_id: "g".into(),
            name: "gw-u4".into(),
            secret: "nsg_x".into(),
            mqtt_username: "gw-g".into(),
            keys: "ab".repeat(64),
        };
        creds.save(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(GatewayCredentials::load(dir.path()).unwrap(), creds);
        std::fs::write(dir.path().join(FILE), "{\"central_url\": 1}").unwrap();
        let err = GatewayCredentials::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("gateway.json") && err.contains("enrol again"), "{err}");
        let bad = GatewayCredentials { keys: "zz".into(), ..creds };
        bad.save(dir.path()).unwrap();
        assert!(GatewayCredentials::load(dir.path()).unwrap_err().to_string().contains("128 hex"));
    }
}
