//! Firmware updates for the fleet: images, campaigns, and the decisions of the legacy update
//! path (`/images/<hardware>/<board>/…`, spec §3.4).
//!
//! Everything the update path reads is in memory ([`State`]): a device's boot-time check and
//! its download decision touch no disk but the image file itself. Changes are persisted first
//! (records in the store, content in [`blobs`]) and then swapped in, one writer at a time, so
//! readers never wait for a disk sync.

mod agent_builds;
mod blobs;
mod campaigns;
mod census;
mod gateways;
mod orders;
mod progress;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use neosens_protocol::agent_build::AGENT_HARDWARE_PREFIX;
use neosens_protocol::hex;
use neosens_protocol::ids::Mac;
use neosens_protocol::legacy::ota;
use parking_lot::{Mutex, RwLock};

use crate::model::{Campaign, DeviceProgress, ESP_HARDWARE, ESP_IMAGE_MAGIC, FirmwareImage, Timestamp};
use crate::store::{Store, StoreError};

pub use blobs::ReceiveError;
pub use campaigns::{CampaignAction, CampaignInput, CampaignTarget, MAX_CAMPAIGN_DEVICES, WaveInput};
pub use census::{CENSUS_KEPT_MS, CENSUS_PERIOD_MS, MAX_CENSUS_ROWS};
pub use orders::{MAX_GATEWAY_WAIT, MAX_QUEUED_ORDERS, ORDERS_PER_SECOND, send_upgrade_orders};
pub use progress::{FETCH_GRACE_MS, FollowReport, MAX_NOTED_FETCHES, StageCounts};
pub use stats::FirmwareStats;

/// How often the schedule looks for waves whose soak time is over.
pub const SCHEDULE_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// `[firmware]` limits and addresses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FirmwareConfig {
    /// Largest image accepted, in bytes (an ESP32 app partition is at most a few MB; gateway
    /// builds and Raspberry Pi files are larger).
    pub max_image_bytes: u64,
    /// Most bytes all images together may take on central's disk.
    pub max_total_bytes: u64,
    /// Base URL put in `default.json` answers (`http://neocampus.univ-tlse3.fr`); unset, the
    /// `Host` the device asked is used, which is right behind the usual DNS or proxy setup.
    pub public_url: Option<String>,
}

impl Default for FirmwareConfig {
    fn default() -> Self {
        FirmwareConfig { max_image_bytes: 64 << 20, max_total_bytes: 4 << 30, public_url: None }
    }
}

/// Why a firmware operation failed (mapped to API errors by the handlers).
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// A field is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// Which.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No such image or campaign.
    #[error("{0} not found")]
    NotFound(String),
    /// In the way of another record.
    #[error("{0}")]
    Conflict(String),
    /// The upload failed.
    #[error(transparent)]
    Receive(#[from] ReceiveError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The image directory failed.
    #[error("image files: {0}")]
    Disk(#[from] std::io::Error),
}

fn invalid(field: &'static str, message: impl Into<String>) -> FirmwareError {
    FirmwareError::Invalid { field, message: message.into() }
}

/// What describes an upload (the content is the request body).
#[derive(Debug, Clone)]
pub struct ImageInput {
    /// `esp32`, `esp8266`, or another name.
    pub hardware: String,
    /// Board name.
    pub board: String,
    /// Revision.
    pub revision: u64,
    /// Free text.
    pub notes: String,
    /// The detached ed25519 signature of a gateway build (hardware `neosens-edge-*`, which
    /// needs one; other images take none).
    pub signature: Option<[u8; 64]>,
}

/// A campaign and the index the update path looks devices up in.
#[derive(Debug)]
struct CampaignEntry {
    /// Shared with readers (its device list can hold 100,000 ids: never copied to be read).
    campaign: Arc<Campaign>,
    /// Device id → its place in the wave order.
    positions: HashMap<[u8; 16], usize>,
}

impl CampaignEntry {
    fn new(campaign: Campaign) -> Self {
        let positions = campaign.devices.iter().enumerate().map(|(i, d)| (*d, i)).collect();
        CampaignEntry { campaign: Arc::new(campaign), positions }
    }
}

#[derive(Debug, Default)]
struct State {
    images: BTreeMap<[u8; 32], FirmwareImage>,
    campaigns: BTreeMap<u64, Arc<CampaignEntry>>,
    /// Devices' progress by campaign (devices of started waves without one are pending).
    progress: HashMap<u64, HashMap<[u8; 16], DeviceProgress>>,
    /// Signatures of the gateway builds among `images`.
    signatures: HashMap<[u8; 32], [u8; 64]>,
}

/// What the image path answers a device's updater.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Download {
    /// `200` with the file, its length and `x-MD5`.
    Serve {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// Its MD5, lowercase hex.
        md5: String,
    },
    /// `304`: the updater reports "no update" and the device boots on.
    NoUpdate(&'static str),
    /// `403`: not a device's updater (no MAC header).
    Forbidden,
    /// `404`: no such image here.
    NotFound,
}

/// The firmware service: cheap to clone.
#[derive(Clone)]
pub struct Firmware {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firmware").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

struct Inner {
    blobs: blobs::Blobs,
    store: Arc<dyn Store>,
    config: FirmwareConfig,
    state: RwLock<State>,
    /// One change at a time (held across the store write, not by readers).
    writer: Mutex<()>,
    /// Image fetches since the last pass, by (campaign, device); at most [`MAX_NOTED_FETCHES`].
    fetches: Mutex<HashMap<(u64, [u8; 16]), Timestamp>>,
    /// `upgrade` orders to send, by (campaign, device); see [`orders`].
    orders: orders::OrderQueue,
    /// Image transfers to gateways.
    transfers: gateways::GatewayTransfers,
    /// When each gateway last fetched its manifest (one entry per gateway).
    manifests_seen: Mutex<HashMap<neosens_protocol::ids::GatewayId, Timestamp>>,
    /// The fleet's revisions, hourly (see [`census`]).
    census: Mutex<census::History>,
}

/// Images, campaigns and their progress from the store.
fn read_state(store: &dyn Store, blobs: &blobs::Blobs) -> Result<State, FirmwareError> {
    let mut state = State::default();
    for image in store.firmware_images()? {
        if !blobs.path(&image.sha256).exists() {
            tracing::warn!(sha256 = %hex::encode(&image.sha256), "a firmware image's file is missing: it cannot be served until uploaded again");
        }
        if image.hardware.starts_with(AGENT_HARDWARE_PREFIX) {
            match blobs.signature(&image.sha256)? {
                Some(signature) => {
                    state.signatures.insert(image.sha256, signature);
                }
                None => {
                    tracing::warn!(sha256 = %hex::encode(&image.sha256), "a gateway build's signature file is missing: gateways will refuse it until it is uploaded again")
                }
            }
        }
        state.images.insert(image.sha256, image);
    }
    for campaign in store.campaigns()? {
        state.campaigns.insert(campaign.id, Arc::new(CampaignEntry::new(campaign)));
    }
    for (campaign, device, progress) in store.campaign_progress()? {
        state.progress.entry(campaign).or_default().insert(device, progress);
    }
    Ok(state)
}

impl Firmware {
    /// Loads images and campaigns; `dir` holds the image files. Blocking (at start).
    pub fn open(
        dir: &std::path::Path,
        store: Arc<dyn Store>,
        config: FirmwareConfig,
    ) -> Result<Self, FirmwareError> {
        let blobs = blobs::Blobs::open(dir)?;
        let state = read_state(store.as_ref(), &blobs)?;
        let census = store.firmware_census()?.into_iter().collect();
        let inner = Inner {
            blobs,
            store,
            config,
            state: RwLock::new(state),
            writer: Mutex::new(()),
            fetches: Mutex::default(),
            orders: orders::OrderQueue::default(),
            transfers: gateways::GatewayTransfers::default(),
            manifests_seen: Mutex::default(),
            census: Mutex::new(census),
        };
        Ok(Firmware { inner: Arc::new(inner) })
    }

    /// Reads images, campaigns and their progress again (this replica takes the lead: they are
    /// the previous leader's). Blocking.
    pub fn reload(&self) -> Result<(), FirmwareError> {
        let _writing = self.inner.writer.lock();
        let state = read_state(self.inner.store.as_ref(), &self.inner.blobs)?;
        let census = self.inner.store.firmware_census()?.into_iter().collect();
        *self.inner.state.write() = state;
        *self.inner.census.lock() = census;
        self.inner.fetches.lock().clear();
        Ok(())
    }

    /// Every image, newest first.
    pub fn images(&self) -> Vec<FirmwareImage> {
        let mut all: Vec<_> = self.inner.state.read().images.values().cloned().collect();
        all.sort_by_key(|i| std::cmp::Reverse(i.uploaded_at));
        all
    }

    /// One image by SHA-256 (hex).
    pub fn image(&self, sha256: &str) -> Result<FirmwareImage, FirmwareError> {
        let key = image_key(sha256)?;
        self.inner
            .state
            .read()
            .images
            .get(&key)
            .cloned()
            .ok_or_else(|| FirmwareError::NotFound(format!("image {sha256}")))
    }

    /// The file of an image, for the authenticated download.
    pub fn image_file(&self, image: &FirmwareImage) -> PathBuf {
        self.inner.blobs.path(&image.sha256)
    }

    /// Stores an upload: streamed to disk, hashed, checked, recorded.
    pub async fn upload(
        &self,
        input: ImageInput,
        body: axum::body::Body,
        by: &str,
    ) -> Result<FirmwareImage, FirmwareError> {
        check_names(&input)?;
        let signature = input.signature;
        let got = self.inner.blobs.receive(body, self.inner.config.max_image_bytes).await?;
        let image = FirmwareImage {
            sha256: got.sha256,
            md5: got.md5,
            size: got.size,
            hardware: input.hardware,
            board: input.board,
            revision: input.revision,
            notes: input.notes,
            uploaded_at: Timestamp::now(),
            uploaded_by: by.to_owned(),
        };
        let this = self.clone();
        neosens_runtime::blocking::run(move || this.record_upload(image, got.first_byte, signature)).await
    }

    fn record_upload(
        &self,
        image: FirmwareImage,
        first_byte: u8,
        signature: Option<[u8; 64]>,
    ) -> Result<FirmwareImage, FirmwareError> {
        let _writing = self.inner.writer.lock();
        let refusal = {
            let state = self.inner.state.read();
            let used: u64 = state.images.values().map(|i| i.size).sum();
            if let Some(same) = state.images.get(&image.sha256) {
                Some(FirmwareError::Conflict(format!(
                    "this content is already image {} ({}/{} revision {})",
                    hex::encode(&same.sha256),
                    same.hardware,
                    same.board,
                    same.revision
                )))
            } else if let Some(other) = state.images.values().find(|i| {
                i.hardware == image.hardware && i.board == image.board && i.revision == image.revision
            }) {
                Some(FirmwareError::Conflict(format!(
                    "{}/{} revision {} is already image {}",
                    image.hardware,
                    image.board,
                    image.revision,
                    hex::encode(&other.sha256)
                )))
            } else if ESP_HARDWARE.contains(&image.hardware.as_str()) && first_byte != ESP_IMAGE_MAGIC {
                Some(invalid(
                    "content",
                    format!(
                        "an {} image starts with 0xE9 (the ESP updater refuses others); this one starts with {first_byte:#04x}",
                        image.hardware
                    ),
                ))
            } else if used + image.size > self.inner.config.max_total_bytes {
                Some(invalid(
                    "content",
                    format!(
                        "images would take {} bytes, more than [firmware] max_total_bytes = {}: delete unused ones",
                        used + image.size,
                        self.inner.config.max_total_bytes
                    ),
                ))
            } else {
                None
            }
        };
        if let Some(refusal) = refusal {
            // Same content already stored: its file is that image's, keep it.
            if !matches!(&refusal, FirmwareError::Conflict(m) if m.starts_with("this content")) {
                self.inner.blobs.remove(&image.sha256)?;
            }
            return Err(refusal);
        }
        // The signature first: a record is never without it.
        if let Some(signature) = &signature {
            self.inner.blobs.put_signature(&image.sha256, signature)?;
        }
        self.inner.store.put_firmware_image(&image)?;
        {
            let mut state = self.inner.state.write();
            state.images.insert(image.sha256, image.clone());
            if let Some(signature) = signature {
                state.signatures.insert(image.sha256, signature);
            }
        }
        tracing::info!(sha256 = %hex::encode(&image.sha256), hardware = %image.hardware, board = %image.board, revision = image.revision, size = image.size, by = %image.uploaded_by, "firmware image uploaded");
        Ok(image)
    }

    /// Deletes an image no open campaign uses (blocking).
    pub fn delete_image(&self, sha256: &str, by: &str) -> Result<(), FirmwareError> {
        let key = image_key(sha256)?;
        let _writing = self.inner.writer.lock();
        {
            let state = self.inner.state.read();
            if !state.images.contains_key(&key) {
                return Err(FirmwareError::NotFound(format!("image {sha256}")));
            }
            if let Some(c) =
                state.campaigns.values().find(|c| c.campaign.image == key && c.campaign.state.is_open())
            {
                return Err(FirmwareError::Conflict(format!(
                    "campaign {} ({}) uses this image: cancel it first",
                    c.campaign.id, c.campaign.name
                )));
            }
        }
        self.inner.store.delete_firmware_image(key)?;
        {
            let mut state = self.inner.state.write();
            state.images.remove(&key);
            state.signatures.remove(&key);
        }
        self.inner.blobs.remove(&key)?;
        tracing::info!(sha256, by, "firmware image deleted");
        Ok(())
    }

    /// The body of `/images/<hardware>/<board>/default.json`, when a running campaign targets
    /// that hardware and board: `{"revision": N, "image": "<url>"}` (at most 511 bytes).
    /// `host` is the `Host` the device asked (used without `[firmware] public_url`).
    pub fn check(&self, hardware: &str, board: &str, host: Option<&str>) -> Option<String> {
        let state = self.inner.state.read();
        let image = state
            .campaigns
            .values()
            .filter(|c| c.campaign.state == crate::model::CampaignState::Running)
            .filter_map(|c| state.images.get(&c.campaign.image))
            .find(|i| i.hardware == hardware && i.board == board)?;
        let base = match (&self.inner.config.public_url, host) {
            (Some(url), _) => url.trim_end_matches('/').to_owned(),
            (None, Some(host)) if ota::valid_host(host) => format!("http://{host}"),
            (None, _) => return None,
        };
        let url = format!("{base}{}", ota::image_path(hardware, board, &hex::encode(&image.sha256)));
        let body = ota::check_body(image.revision, &url);
        if body.is_none() {
            tracing::warn!(
                url,
                "a default.json answer would pass the firmware's 511-byte limit: shorten [firmware] public_url"
            );
        }
        body
    }

    /// What the image path answers an updater: the image for a device of a started wave of a
    /// running campaign, "no update" for the others (so unmodified firmware follows the waves).
    /// `device` is the registered device of the MAC the updater sent, if any.
    pub fn download(
        &self,
        hardware: &str,
        board: &str,
        file: &str,
        mac: Option<Mac>,
        device: Option<[u8; 16]>,
        running_md5: Option<&str>,
    ) -> Download {
        let Some(key) = file.strip_suffix(".bin").and_then(|h| image_key(h).ok()) else {
            return Download::NotFound;
        };
        let state = self.inner.state.read();
        let Some(image) = state.images.get(&key).filter(|i| i.hardware == hardware && i.board == board)
        else {
            return Download::NotFound;
        };
        if mac.is_none() {
            return Download::Forbidden;
        }
        let md5 = hex::encode(&image.md5);
        if running_md5.is_some_and(|m| m.eq_ignore_ascii_case(&md5)) {
            return Download::NoUpdate("already running this image");
        }
        let Some(device) = device else { return Download::NoUpdate("not a registered device") };
        let in_wave = state.campaigns.values().find(|c| {
            c.campaign.image == key
                && c.campaign.state == crate::model::CampaignState::Running
                && c.positions.get(&device).is_some_and(|&p| p < c.campaign.reached())
        });
        let Some(campaign) = in_wave else {
            return Download::NoUpdate("not in a started wave of a running campaign");
        };
        // A board whose update failed (a rolled-back image asks again at each boot) is not
        // sent into the same failure again; an operator's resume gives it another try.
        let progress = state.progress.get(&campaign.campaign.id).and_then(|p| p.get(&device));
        if progress
            .is_some_and(|p| p.stage.failed() && campaign.campaign.resumed_at.is_none_or(|r| p.since > r))
        {
            return Download::NoUpdate("its update failed in this campaign");
        }
        self.note_fetch(campaign.campaign.id, device, Timestamp::now());
        Download::Serve { path: self.inner.blobs.path(&key), size: image.size, md5 }
    }
}

fn image_key(sha256: &str) -> Result<[u8; 32], FirmwareError> {
    hex::decode_array::<32>(sha256, "sha256").map_err(|_| FirmwareError::NotFound(format!("image {sha256}")))
}

/// Hardware and board names go into URL paths: letters, digits, `-`, `_`, `.`, 1–32 bytes.
fn check_names(input: &ImageInput) -> Result<(), FirmwareError> {
    for (field, value) in [("hardware", &input.hardware), ("board", &input.board)] {
        let ok = (1..=32).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !value.starts_with('.');
        if !ok {
            return Err(invalid(field, "1-32 letters, digits, '-', '_' or '.', not starting with '.'"));
        }
    }
    if input.notes.len() > 4096 {
        return Err(invalid("notes", "at most 4096 bytes"));
    }
    match (input.hardware.starts_with(AGENT_HARDWARE_PREFIX), input.signature.is_some()) {
        (true, false) => Err(invalid(
            "signature",
            "a gateway build (hardware neosens-edge-*) needs its ed25519 signature: neosens-central agent-key sign",
        )),
        (false, true) => {
            Err(invalid("signature", "only gateway builds (hardware neosens-edge-*) are signed"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "firmware_tests.rs"]
mod tests;
