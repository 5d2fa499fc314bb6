//! Steps 9–12 of the firmware's boot: credentials, then configuration. What a device keeps in
//! its flash (login, password, broker) is kept in a JSON state file, so a simulated fleet that is
//! restarted still knows the passwords central handed out only once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use base64::Engine;
use neosens_protocol::ids::Mac;
use neosens_protocol::legacy::{ConfigResponse, Credentials};
use serde::{Deserialize, Serialize};

/// What one device keeps across reboots (the firmware's NVS).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// MQTT login.
    pub login: String,
    /// MQTT password (as last delivered).
    pub password: String,
    /// Broker host, when central moved the device.
    pub server: Option<String>,
    /// Broker port.
    pub port: Option<u16>,
    /// The firmware revision it runs, once updated (the factory one before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<u64>,
}

/// Every device's stored credentials, in one file (written atomically at each change).
#[derive(Debug)]
pub struct StateFile {
    path: Option<PathBuf>,
    devices: Mutex<BTreeMap<String, Stored>>,
}

impl StateFile {
    /// Loads `path` (a missing file is an empty state); `None` keeps state in memory only.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let devices = match path {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not a sim-device state file", p.display()))?
            }
            _ => BTreeMap::new(),
        };
        Ok(StateFile { path: path.map(Path::to_path_buf), devices: Mutex::new(devices) })
    }

    /// What `mac` stored.
    pub fn get(&self, mac: Mac) -> Option<Stored> {
        self.devices.lock().ok()?.get(&format!("{mac:x}")).cloned()
    }

    /// Records the revision `mac` runs after an update, and saves the file.
    pub fn set_firmware(&self, mac: Mac, revision: u64) -> anyhow::Result<()> {
        let stored = Stored { firmware: Some(revision), ..self.get(mac).unwrap_or_default() };
        self.put(mac, stored)
    }

    /// Stores `mac`'s credentials and saves the file.
    pub fn put(&self, mac: Mac, stored: Stored) -> anyhow::Result<()> {
        let text = {
            let mut map = self.devices.lock().map_err(|_| anyhow::anyhow!("state lock poisoned"))?;
            map.insert(format!("{mac:x}"), stored);
            serde_json::to_string_pretty(&*map)?
        };
        if let Some(path) = &self.path {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        }
        Ok(())
    }
}

/// A provisioned device: its credentials and configuration.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// Login and password to use.
    pub stored: Stored,
    /// The configuration (topics, zones).
    pub config: ConfigResponse,
}

/// A GET as the ESP32 firmware's HTTP client sends it; the body of a 2xx answer.
async fn firmware_get(
    http: &reqwest::Client,
    url: &str,
    basic: Option<&str>,
) -> anyhow::Result<bytes::Bytes> {
    let mut request = http
        .get(url)
        .header("User-Agent", "ESP32HTTPClient")
        .header("Accept-Encoding", "identity;q=1,chunked;q=0.1,*;q=0");
    if let Some(b) = basic {
        request = request.header("Authorization", format!("Basic {b}"));
    }
    let response = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!("GET {url} answered {status}");
    }
    Ok(body)
}

/// `GET /device/credentials?mac=…` then `GET /device/config` with Basic auth, as the ESP32
/// firmware sends them. A credentials answer without password keeps the stored one (the login
/// must match, as the firmware checks).
pub async fn provision(
    http: &reqwest::Client,
    central: &str,
    mac: Mac,
    state: &StateFile,
) -> anyhow::Result<Provisioned> {
    let base = central.trim_end_matches('/');
    let body = firmware_get(http, &format!("{base}/device/credentials?mac={mac:x}"), None)
        .await
        .with_context(|| format!("is {mac:x} registered and enabled?"))?;
    let creds = Credentials::parse(&body).map_err(|e| anyhow::anyhow!("/device/credentials: {e}"))?;
    let previous = state.get(mac);
    let stored = match (creds.password, previous) {
        (Some(password), previous) => {
            let prev = previous.unwrap_or_default();
            let stored = Stored {
                login: creds.login,
                password,
                server: creds.server.or(prev.server),
                port: creds.port.or(prev.port),
                firmware: prev.firmware,
            };
            state.put(mac, stored.clone())?;
            stored
        }
        (None, Some(prev)) if prev.login == creds.login => prev,
        (None, _) => bail!(
            "central no longer hands out {mac:x}'s password and none is stored (reset its credentials in central, or keep the --state file)"
        ),
    };
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", stored.login, stored.password));
    let body = firmware_get(http, &format!("{base}/device/config"), Some(&basic)).await?;
    // The firmware reads at most 1023 bytes.
    if body.len() > 1023 {
        bail!("/device/config answer is {} bytes; the firmware stops at 1023", body.len());
    }
    let config = ConfigResponse::parse(&body).map_err(|e| anyhow::anyhow!("/device/config: {e}"))?;
    Ok(Provisioned { stored, config })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_in_its_file_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mac: Mac = Mac::parse_lenient("24:0a:c4:12:34:56").unwrap();
        let s = StateFile::open(Some(&path)).unwrap();
        assert_eq!(s.get(mac), None);
        let stored = Stored {
            login: "senso_240ac4123456".into(),
            password: "p".into(),
            server: None,
            port: None,
            firmware: None,
        };
        s.put(mac, stored.clone()).unwrap();
        assert_eq!(StateFile::open(Some(&path)).unwrap().get(mac), Some(stored));
        std::fs::write(&path, "{not json").unwrap();
        let err = StateFile::open(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("not a sim-device state file"), "{err}");
    }
}
