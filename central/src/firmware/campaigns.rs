//! Campaigns: an image rolled out to a fixed list of devices in waves, each started by hand or
//! after the previous one's soak time; paused, resumed or cancelled by an operator.

use std::sync::Arc;

use neosens_protocol::hex;
use serde::Deserialize;

use super::{CampaignEntry, Firmware, FirmwareError, invalid};
use crate::model::{Campaign, CampaignState, MAX_WAVES, Timestamp, Wave, wave_order};
use crate::registry::DeviceQuery;

/// Most devices one campaign targets.
pub const MAX_CAMPAIGN_DEVICES: usize = 100_000;

/// Which devices a campaign targets: a filter of the device listing, or a list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignTarget {
    /// Device type, by name or id.
    #[serde(rename = "type")]
    pub device_type: Option<String>,
    /// Site id or slug (of the main room).
    pub site: Option<String>,
    /// Building id (of the main room).
    #[schema(value_type = Option<String>)]
    pub building: Option<neosens_protocol::ids::BuildingId>,
    /// Room id.
    #[schema(value_type = Option<String>)]
    pub room: Option<neosens_protocol::ids::RoomId>,
    /// Text searched in uid, login and description (as the device listing's `q`).
    pub q: Option<String>,
    /// Explicit devices (uids or ids); with a filter, the devices must match it too.
    pub devices: Option<Vec<String>>,
}

impl CampaignTarget {
    /// The device-listing filter it amounts to (enabled devices only).
    pub fn query(&self) -> DeviceQuery {
        DeviceQuery {
            site: self.site.clone(),
            building: self.building,
            room: self.room,
            device_type: self.device_type.clone(),
            enabled: Some(true),
            q: self.q.clone(),
            ..DeviceQuery::default()
        }
    }
}

/// One wave of a new campaign.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveInput {
    /// Cumulative share of the targeted devices this wave reaches, 1–100, increasing; the
    /// last is 100.
    pub until_percent: u8,
    /// Seconds after this wave starts at which the next starts by itself (absent: by hand).
    pub soak_s: Option<u32>,
}

/// A new campaign.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignInput {
    /// A name for people.
    pub name: String,
    /// The image's SHA-256 (hex).
    pub image: String,
    /// Which devices.
    pub target: CampaignTarget,
    /// The waves (default: one wave of 100 %).
    #[serde(default)]
    pub waves: Vec<WaveInput>,
    /// Failed devices in a wave, in percent of it, beyond which the campaign halts (default 10).
    pub failure_threshold_percent: Option<u8>,
    /// Seconds a device has, from fetching the image, to report the new revision before it
    /// counts as failed (default 600, 60–86400).
    pub deadline_s: Option<u32>,
}

/// What an operator does to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignAction {
    /// Starts the next wave now.
    Advance,
    /// Stops serving the campaign (devices already updated stay so).
    Pause,
    /// Serves it again after a pause or a halt.
    Resume,
    /// Stops it for good.
    Cancel,
    /// Closes it as done once every wave has started (boards gone or dead need not hold it
    /// open, nor block the next campaign of its hardware and board).
    Finish,
}

fn check_waves(waves: &[WaveInput]) -> Result<Vec<Wave>, FirmwareError> {
    if waves.is_empty() {
        return Ok(vec![Wave { until_percent: 100, soak_s: None }]);
    }
    if waves.len() > MAX_WAVES {
        return Err(invalid("waves", format!("at most {MAX_WAVES}")));
    }
    let mut previous = 0;
    for w in waves {
        if w.until_percent <= previous || w.until_percent > 100 {
            return Err(invalid("waves", "until_percent must increase, between 1 and 100"));
        }
        previous = w.until_percent;
    }
    if previous != 100 {
        return Err(invalid("waves", "the last wave must reach 100 %"));
    }
    Ok(waves.iter().map(|w| Wave { until_percent: w.until_percent, soak_s: w.soak_s }).collect())
}

impl Firmware {
    /// Every campaign, newest first.
    pub fn campaigns(&self) -> Vec<Arc<Campaign>> {
        self.inner.state.read().campaigns.values().rev().map(|c| Arc::clone(&c.campaign)).collect()
    }

    /// One campaign, shared (to read).
    pub fn campaign_shared(&self, id: u64) -> Result<Arc<Campaign>, FirmwareError> {
        self.inner
            .state
            .read()
            .campaigns
            .get(&id)
            .map(|c| Arc::clone(&c.campaign))
            .ok_or_else(|| FirmwareError::NotFound(format!("campaign {id}")))
    }

    /// One campaign, a copy to change.
    pub fn campaign(&self, id: u64) -> Result<Campaign, FirmwareError> {
        self.campaign_shared(id).map(|c| Campaign::clone(&c))
    }

    /// Creates a campaign over `devices` (resolved from its target) and starts its first wave
    /// (blocking).
    pub fn create_campaign(
        &self,
        input: CampaignInput,
        devices: Vec<[u8; 16]>,
        by: &str,
    ) -> Result<Campaign, FirmwareError> {
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.len() > 100 {
            return Err(invalid("name", "1-100 bytes"));
        }
        let waves = check_waves(&input.waves)?;
        let threshold = input.failure_threshold_percent.unwrap_or(10);
        if threshold > 100 {
            return Err(invalid("failure_threshold_percent", "0-100"));
        }
        if devices.is_empty() {
            return Err(invalid("target", "no enabled device matches"));
        }
        let deadline_s = input.deadline_s.unwrap_or(600);
        if !(60..=86_400).contains(&deadline_s) {
            return Err(invalid("deadline_s", "60-86400 seconds"));
        }
        let image_key = super::image_key(&input.image).map_err(|_| invalid("image", "no such image"))?;
        let _writing = self.inner.writer.lock();
        let id = {
            let state = self.inner.state.read();
            let image = state.images.get(&image_key).ok_or_else(|| invalid("image", "no such image"))?;
            if let Some(open) = state.campaigns.values().find(|c| {
                c.campaign.state.is_open()
                    && state
                        .images
                        .get(&c.campaign.image)
                        .is_some_and(|i| i.hardware == image.hardware && i.board == image.board)
            }) {
                return Err(FirmwareError::Conflict(format!(
                    "campaign {} ({}) is open for {}/{}: finish or cancel it first",
                    open.campaign.id, open.campaign.name, image.hardware, image.board
                )));
            }
            state.campaigns.keys().next_back().map_or(1, |last| last + 1)
        };
        let count = devices.len();
        let mut campaign = Campaign {
            id,
            name,
            image: image_key,
            devices: wave_order(id, devices),
            waves,
            failure_threshold_percent: threshold,
            state: CampaignState::Running,
            wave_started_at: vec![Timestamp::now()],
            events: Vec::new(),
            deadline_s,
            resumed_at: None,
        };
        campaign.record(by, format!("created for {count} devices, image {}", hex::encode(&image_key)));
        campaign.record(by, format!("wave 1 started ({} devices)", campaign.cut(0)));
        let campaign = self.save(campaign)?;
        self.inner.orders.enqueue_wave(&campaign);
        Ok(campaign)
    }

    /// Applies an operator's action (blocking).
    pub fn act(&self, id: u64, action: CampaignAction, by: &str) -> Result<Campaign, FirmwareError> {
        let _writing = self.inner.writer.lock();
        let mut campaign = self.campaign(id)?;
        let refuse =
            |why: &str| Err(FirmwareError::Conflict(format!("campaign {id} is {:?}: {why}", campaign.state)));
        match (action, campaign.state) {
            (CampaignAction::Advance, CampaignState::Running) => {
                if campaign.wave_started_at.len() >= campaign.waves.len() {
                    return refuse("its last wave has started");
                }
                start_next_wave(&mut campaign, by);
            }
            (CampaignAction::Pause, CampaignState::Running) => {
                campaign.state = CampaignState::Paused;
                campaign.record(by, "paused");
            }
            (CampaignAction::Resume, CampaignState::Paused | CampaignState::Halted) => {
                campaign.state = CampaignState::Running;
                campaign.resumed_at = Some(Timestamp::now());
                campaign.record(by, "resumed");
            }
            (CampaignAction::Finish, state) if state.is_open() => {
                if campaign.wave_started_at.len() < campaign.waves.len() {
                    return refuse("start its last wave first, or cancel it");
                }
                campaign.state = CampaignState::Finished;
                campaign.record(by, "finished by hand");
            }
            (CampaignAction::Cancel, state) if state.is_open() => {
                campaign.state = CampaignState::Cancelled;
                campaign.record(by, "cancelled");
            }
            (CampaignAction::Advance, _) => return refuse("only a running campaign advances"),
            (CampaignAction::Pause, _) => return refuse("only a running campaign pauses"),
            (CampaignAction::Resume, _) => return refuse("only a paused or halted campaign resumes"),
            (CampaignAction::Cancel | CampaignAction::Finish, _) => return refuse("it is over already"),
        }
        let campaign = self.save(campaign)?;
        if action == CampaignAction::Advance {
            self.inner.orders.enqueue_wave(&campaign);
        }
        Ok(campaign)
    }

    /// Starts the next wave of every running campaign whose current wave's soak time is over
    /// (blocking; the scheduler calls it every few seconds). Returns how many started.
    pub fn start_soaked_waves(&self, now: Timestamp) -> Result<usize, FirmwareError> {
        let _writing = self.inner.writer.lock();
        self.start_soaked_waves_locked(now)
    }

    /// [`Self::start_soaked_waves`] for a caller holding the writer lock.
    pub(super) fn start_soaked_waves_locked(&self, now: Timestamp) -> Result<usize, FirmwareError> {
        let due: Vec<Campaign> = self
            .inner
            .state
            .read()
            .campaigns
            .values()
            .map(|c| c.campaign.as_ref())
            .filter(|c| c.state == CampaignState::Running && c.wave_started_at.len() < c.waves.len())
            .filter(|c| {
                let current = c.wave_started_at.len() - 1;
                // A pause or a halt stops the clock: soak runs from the resume.
                let from = c.wave_started_at[current].max(c.resumed_at.unwrap_or(Timestamp(0)));
                c.waves[current]
                    .soak_s
                    .is_some_and(|soak| now.millis() >= from.millis() + i64::from(soak) * 1000)
            })
            .cloned()
            .collect();
        let started = due.len();
        for mut campaign in due {
            start_next_wave(&mut campaign, "schedule");
            let campaign = self.save(campaign)?;
            self.inner.orders.enqueue_wave(&campaign);
        }
        Ok(started)
    }

    /// Persists a changed campaign, then shows it to readers. The caller holds the writer lock.
    /// The index is built, and the old one dropped, outside the readers' lock.
    pub(super) fn save(&self, campaign: Campaign) -> Result<Campaign, FirmwareError> {
        self.inner.store.put_campaign(&campaign)?;
        let entry = Arc::new(CampaignEntry::new(campaign.clone()));
        tracing::info!(campaign = campaign.id, state = ?campaign.state, waves_started = campaign.wave_started_at.len(), event = campaign.events.last().map_or("", |e| e.what.as_str()), "firmware campaign changed");
        let old = self.inner.state.write().campaigns.insert(campaign.id, entry);
        drop(old);
        Ok(campaign)
    }
}

fn start_next_wave(campaign: &mut Campaign, by: &str) {
    campaign.wave_started_at.push(Timestamp::now());
    let wave = campaign.wave_started_at.len();
    let reached = campaign.cut(wave - 1);
    campaign.record(by, format!("wave {wave} started ({reached} devices in all)"));
}
