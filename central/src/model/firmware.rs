//! Firmware images and the campaigns that roll them out, as stored.
//!
//! An image is content-addressed: its SHA-256 names its file on disk and keys its record; its
//! MD5 is kept for the `x-MD5` header the ESP updaters check. A campaign fixes, when it is
//! created, the devices it targets and their order: a device's place in that order (a hash of
//! the campaign and the device, so waves are a random sample of the fleet, not the first MACs)
//! decides its wave, and waves are cumulative shares of the list (1 %, 10 %, 100 %).

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// The ESP boot loader's first byte: `HTTPUpdate`/`ESP8266httpUpdate` refuse an image that does
/// not start with it, so an upload for `esp32`/`esp8266` that does not is refused at once.
pub const ESP_IMAGE_MAGIC: u8 = 0xE9;

/// Hardware names whose images are flashed by the ESP updaters.
pub const ESP_HARDWARE: [&str; 2] = ["esp32", "esp8266"];

/// Most waves a campaign has.
pub const MAX_WAVES: usize = 10;

/// Most events kept per campaign (the oldest go first).
pub const MAX_CAMPAIGN_EVENTS: usize = 200;

/// An uploaded firmware image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareImage {
    /// SHA-256 of the content: its identity and file name.
    pub sha256: [u8; 32],
    /// MD5 of the content, for `x-MD5`.
    pub md5: [u8; 16],
    /// Bytes.
    pub size: u64,
    /// `esp32`, `esp8266`, or any other name (`rpi`, `gateway-aarch64` …).
    pub hardware: String,
    /// `neOSensor`, `AirQuality` … (the firmware's `BOARD_NAME`).
    pub board: String,
    /// The revision devices compare with theirs (`BOARD_FWREV`, e.g. 231027).
    pub revision: u64,
    /// Free text.
    pub notes: String,
    /// When it was uploaded.
    pub uploaded_at: Timestamp,
    /// Who uploaded it (user or token name).
    pub uploaded_by: String,
}

/// One wave: devices up to this share of the campaign's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// Cumulative share of the targeted devices, 1–100; the last wave is 100.
    pub until_percent: u8,
    /// Seconds after its start at which the next wave starts by itself; `None`: by hand.
    pub soak_s: Option<u32>,
}

/// Where a campaign is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CampaignState {
    /// Its started waves are served.
    Running,
    /// Stopped by an operator; resumable.
    Paused,
    /// Stopped by itself (too many failures); resumable by an operator.
    Halted,
    /// Stopped for good.
    Cancelled,
    /// Every device is done, or an operator closed it once every wave had started.
    Finished,
}

impl CampaignState {
    /// Whether it may still change (and holds its image).
    pub fn is_open(self) -> bool {
        matches!(self, CampaignState::Running | CampaignState::Paused | CampaignState::Halted)
    }
}

/// Something that happened to a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignEvent {
    /// When.
    pub at: Timestamp,
    /// Who (user or token name, or `schedule`).
    pub by: String,
    /// What (`created`, `wave 2 started`, `paused` …).
    pub what: String,
}

/// How many devices report one firmware revision of one hardware and board.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevisionCount {
    /// `hardware` of their statuses (at most 32 characters kept).
    pub hardware: String,
    /// `board`.
    pub board: String,
    /// `firmware`.
    pub revision: u64,
    /// Devices.
    pub devices: u64,
}

/// Where one device of a campaign is. A device of a started wave without a record is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Not fetched yet (offline devices stay here until their next boot).
    Pending,
    /// It fetched the image; its new revision is awaited.
    Downloading,
    /// It reports the image's revision (or a later one).
    Done,
    /// It fetched the image and reported nothing newer by the campaign's deadline.
    FailedDeadline,
    /// It fetched the image and went silent past its outdated threshold.
    FailedOutdated,
    /// It fetched the image, then reported its old revision: the update failed or the image
    /// did not boot and the boot loader rolled back. (The firmware updates at boot, before it
    /// connects to MQTT, so a status after the fetch comes from the image it booted.) A gateway
    /// says so itself when it put its previous build back.
    FailedOldRevision,
    /// A gateway refused the build: its signature, hash or target did not check.
    FailedRefused,
}

impl Stage {
    /// Whether it counts as a failure of its wave.
    pub fn failed(self) -> bool {
        matches!(
            self,
            Stage::FailedDeadline | Stage::FailedOutdated | Stage::FailedOldRevision | Stage::FailedRefused
        )
    }
}

/// One device's progress in a campaign, stored apart from the campaign (a campaign of 100,000
/// devices is not rewritten when one of them moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceProgress {
    /// Its stage.
    pub stage: Stage,
    /// Since when.
    pub since: Timestamp,
    /// When it last fetched the image.
    pub fetched_at: Option<Timestamp>,
    /// The revision it last reported.
    pub reported: Option<u64>,
    /// The `last_seen` of the last status read (statuses are parsed once each).
    pub checked_seen: Option<Timestamp>,
}

/// A rollout of one image to a fixed list of devices, in waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// Its number.
    pub id: u64,
    /// A name for people.
    pub name: String,
    /// The image (SHA-256).
    pub image: [u8; 32],
    /// The devices, in wave order.
    pub devices: Vec<[u8; 16]>,
    /// The waves.
    pub waves: Vec<Wave>,
    /// Failed devices of a wave, in percent of that wave, beyond which the campaign halts.
    pub failure_threshold_percent: u8,
    /// Its state.
    pub state: CampaignState,
    /// Start time of each started wave (the current wave is the last).
    pub wave_started_at: Vec<Timestamp>,
    /// What happened, oldest first, at most [`MAX_CAMPAIGN_EVENTS`].
    pub events: Vec<CampaignEvent>,
    /// Seconds a device has, from fetching the image, to report the new revision.
    pub deadline_s: u32,
    /// When an operator last resumed it: failures before count no more against its threshold,
    /// and soak times run from then.
    pub resumed_at: Option<Timestamp>,
}

impl Campaign {
    /// How many of its devices wave `wave` (0-based) reaches, counting the earlier waves.
    pub fn cut(&self, wave: usize) -> usize {
        let Some(w) = self.waves.get(wave) else { return self.devices.len() };
        let n = self.devices.len();
        // Rounded up, so a 1 % canary of 30 devices is one device, not none.
        (n * usize::from(w.until_percent)).div_ceil(100).min(n)
    }

    /// How many devices the started waves reach.
    pub fn reached(&self) -> usize {
        match self.wave_started_at.len() {
            0 => 0,
            started => self.cut(started - 1),
        }
    }

    /// The wave (0-based) of the device at `position` in the list.
    pub fn wave_of(&self, position: usize) -> usize {
        (0..self.waves.len()).find(|&w| position < self.cut(w)).unwrap_or(self.waves.len().saturating_sub(1))
    }

    /// Records an event, dropping the oldest beyond [`MAX_CAMPAIGN_EVENTS`].
    pub fn record(&mut self, by: &str, what: impl Into<String>) {
        if self.events.len() >= MAX_CAMPAIGN_EVENTS {
            self.events.remove(0);
        }
        self.events.push(CampaignEvent { at: Timestamp::now(), by: by.to_owned(), what: what.into() });
    }
}

/// The order of a campaign's devices: by SHA-256 of the campaign number and the device id, so
/// each campaign samples the fleet anew and the order does not depend on registration order.
pub fn wave_order(campaign: u64, mut devices: Vec<[u8; 16]>) -> Vec<[u8; 16]> {
    devices.sort_by_cached_key(|d| {
        let mut input = [0u8; 24];
        input[..8].copy_from_slice(&campaign.to_be_bytes());
        input[8..].copy_from_slice(d);
        let digest = ring::digest::digest(&ring::digest::SHA256, &input);
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest.as_ref()[..8]);
        (u64::from_be_bytes(key), *d)
    });
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(n: usize, waves: &[u8]) -> Campaign {
        Campaign {
            id: 1,
            name: "c".into(),
            image: [0; 32],
            devices: (0..n).map(|i| [i as u8; 16]).collect(),
            waves: waves.iter().map(|&p| Wave { until_percent: p, soak_s: None }).collect(),
            failure_threshold_percent: 10,
            state: CampaignState::Running,
            wave_started_at: vec![],
            events: vec![],
            deadline_s: 600,
            resumed_at: None,
        }
    }

    #[test]
    fn waves_are_cumulative_and_round_up() {
        let c = campaign(30, &[1, 10, 100]);
        assert_eq!((c.cut(0), c.cut(1), c.cut(2)), (1, 3, 30));
        assert_eq!((c.wave_of(0), c.wave_of(1), c.wave_of(2), c.wave_of(3), c.wave_of(29)), (0, 1, 1, 2, 2));
        assert_eq!(c.reached(), 0);
        let empty = campaign(0, &[50, 100]);
        assert_eq!((empty.cut(0), empty.cut(1), empty.wave_of(0)), (0, 0, 1));
    }

    #[test]
    fn wave_order_is_a_permutation_that_depends_on_the_campaign() {
        let devices: Vec<[u8; 16]> = (0..200u8).map(|i| [i; 16]).collect();
        let a = wave_order(1, devices.clone());
        let b = wave_order(2, devices.clone());
        assert_ne!(a, b);
        assert_eq!(a, wave_order(1, devices.iter().rev().copied().collect()));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, devices);
    }

    #[test]
    fn events_are_bounded() {
        let mut c = campaign(1, &[100]);
        for i in 0..MAX_CAMPAIGN_EVENTS + 5 {
            c.record("t", format!("e{i}"));
        }
        assert_eq!(c.events.len(), MAX_CAMPAIGN_EVENTS);
        assert_eq!(c.events[0].what, "e5");
    }
}
