//! The gateway's firmware cache: the images of the running campaigns that target devices of
//! its scope, fetched once from central and served to the devices of its LAN on the legacy
//! update path (`/images/<hardware>/<board>/…`, spec §3.4) — also while central or the WAN is
//! down. Central's bandwidth for a site is one copy per image, whatever its number of devices.
//!
//! - [`fetch`]: the task that follows central's manifest, downloads missing images (resuming a
//!   broken download, checking the SHA-256), evicts the others, keeps the cache within
//!   `[firmware] cache_bytes`, and reports the fetches devices made;
//! - [`serve`]: the LAN routes, the same answers as central's.
//!
//! The manifest is kept on disk (`firmware/manifest.json`), so a restarted gateway without its
//! uplink still serves what it had.

mod fetch;
mod serve;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use neosens_protocol::edge_firmware::{FirmwareFetch, FirmwareManifest, MAX_REPORTED_FETCHES, ManifestImage};
use neosens_protocol::ids::Mac;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

pub use fetch::{check_now, run};
pub use serve::routes;

/// Fetches kept for central at most while it is out of reach (the oldest go first).
pub const MAX_PENDING_FETCHES: usize = 4 * MAX_REPORTED_FETCHES;

const MANIFEST_FILE: &str = "manifest.json";

/// `[firmware]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FirmwareConfig {
    /// Most bytes the cached images take; an image that does not fit is not cached (its devices
    /// then update from central directly, if they can reach it).
    pub cache_bytes: u64,
    /// Seconds between two looks at central's manifest.
    pub poll_s: u64,
}

impl Default for FirmwareConfig {
    fn default() -> Self {
        FirmwareConfig { cache_bytes: 256 << 20, poll_s: 60 }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct FirmwareStats {
    /// Images downloaded from central (whole or resumed).
    pub downloads: AtomicU64,
    /// Images served to devices.
    pub served: AtomicU64,
    /// "No update" answers.
    pub no_update: AtomicU64,
    /// Downloads refused because the content did not match its SHA-256.
    pub corrupt: AtomicU64,
}

/// The cache: cheap to clone.
#[derive(Clone, Debug)]
pub struct FirmwareCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    config: FirmwareConfig,
    /// The images cached and complete, as the manifest describes them.
    served: RwLock<Arc<FirmwareManifest>>,
    /// Fetches to report to central, oldest first.
    fetches: Mutex<VecDeque<FirmwareFetch>>,
    stats: FirmwareStats,
}

impl FirmwareCache {
    /// Opens the cache directory and the manifest it last served (blocking: at start).
    pub fn open(dir: &Path, config: FirmwareConfig) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let manifest = match std::fs::read(dir.join(MANIFEST_FILE)) {
            Ok(bytes) => serde_json::from_slice::<FirmwareManifest>(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the cached firmware manifest does not read: starting empty");
                FirmwareManifest::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FirmwareManifest::default(),
            Err(e) => return Err(e),
        };
        let cache = FirmwareCache {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                config,
                served: RwLock::new(Arc::new(FirmwareManifest::default())),
                fetches: Mutex::default(),
                stats: FirmwareStats::default(),
            }),
        };
        let complete = cache.complete(manifest);
        *cache.inner.served.write() = Arc::new(complete);
        Ok(cache)
    }

    /// The counters.
    pub fn stats(&self) -> &FirmwareStats {
        &self.inner.stats
    }

    /// Images served now, their bytes, and the devices in their started waves.
    pub fn cached(&self) -> (usize, u64, usize) {
        let served = self.inner.served.read();
        let devices = served.images.iter().map(|i| i.devices.len()).sum();
        (served.images.len(), served.images.iter().map(|i| i.size).sum(), devices)
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.inner.dir.join(format!("{sha256}.bin"))
    }

    /// The entries of `manifest` whose file is here with its full size (blocking).
    fn complete(&self, mut manifest: FirmwareManifest) -> FirmwareManifest {
        manifest.images.retain(|i| {
            valid_sha(&i.sha256) && std::fs::metadata(self.path(&i.sha256)).is_ok_and(|m| m.len() == i.size)
        });
        manifest
    }

    /// What the update path answers `default.json` for this hardware and board.
    fn offer(&self, hardware: &str, board: &str) -> Option<ManifestImage> {
        let served = self.inner.served.read();
        served.images.iter().find(|i| i.hardware == hardware && i.board == board).cloned()
    }

    /// The image named `file` (`<sha256>.bin`) for this hardware and board, and whether `mac`
    /// is in its started waves.
    fn lookup(
        &self,
        hardware: &str,
        board: &str,
        file: &str,
        mac: Option<Mac>,
    ) -> Option<(ManifestImage, bool)> {
        let sha = file.strip_suffix(".bin")?;
        let served = self.inner.served.read();
        let image =
            served.images.iter().find(|i| i.sha256 == sha && i.hardware == hardware && i.board == board)?;
        let in_wave = mac.is_some_and(|m| image.devices.contains(&m));
        Some((image.clone(), in_wave))
    }

    /// Notes a fetch for central (the oldest dropped beyond [`MAX_PENDING_FETCHES`]).
    fn note_fetch(&self, campaign: u64, device: Mac) {
        let mut fetches = self.inner.fetches.lock();
        if fetches.len() >= MAX_PENDING_FETCHES {
            fetches.pop_front();
        }
        let at_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        fetches.push_back(FirmwareFetch { campaign, device, at_ms });
    }

    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A SHA-256 in lowercase hex: the only file names the cache (and the agent's installed builds,
/// `update::state`) writes or reads.
pub(crate) fn valid_sha(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
