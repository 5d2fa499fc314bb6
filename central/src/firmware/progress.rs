//! Following a campaign's devices: pending → downloading (it fetched the image) → done (its
//! statuses report the image's revision) or failed (still the old revision after the deadline,
//! or silent past its outdated threshold); a wave whose failures pass the threshold halts the
//! campaign by itself, and a campaign whose devices are all done finishes.
//!
//! The update path only notes fetches in memory ([`Firmware::note_fetch`]); the schedule's pass
//! ([`Firmware::follow`]) reads statuses from the registry, writes what changed in one
//! transaction, then decides halts.

use std::collections::HashMap;
use std::sync::Arc;

use neosens_protocol::ids::DeviceId;

use super::{CampaignEntry, Firmware, FirmwareError};
use crate::model::{Campaign, CampaignState, DeviceProgress, Stage, Timestamp};
use crate::registry::{FirmwareReport, Registry};

/// How much later than a fetch a status must come to show the image the device booted (clock
/// differences between a gateway and central, a status already in flight).
pub const FETCH_GRACE_MS: i64 = 10_000;

/// Fetches noted between two passes, at most (one per device and campaign; more are dropped
/// with a warning and seen at the next boot).
pub const MAX_NOTED_FETCHES: usize = 100_000;

/// What one pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FollowReport {
    /// Waves started after their soak time.
    pub waves_started: usize,
    /// Device records written.
    pub progress_written: usize,
    /// Campaigns halted.
    pub halted: Vec<u64>,
    /// Campaigns finished.
    pub finished: Vec<u64>,
}

/// Devices per stage, for the API and `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StageCounts {
    /// Not fetched yet.
    pub pending: usize,
    /// Fetched, new revision awaited.
    pub downloading: usize,
    /// Reporting the new revision.
    pub done: usize,
    /// Failed (deadline or outdated).
    pub failed: usize,
}

impl StageCounts {
    pub(super) fn add(&mut self, stage: Stage) {
        match stage {
            Stage::Pending => self.pending += 1,
            Stage::Downloading => self.downloading += 1,
            Stage::Done => self.done += 1,
            Stage::FailedDeadline
            | Stage::FailedOutdated
            | Stage::FailedOldRevision
            | Stage::FailedRefused => self.failed += 1,
        }
    }
}

/// The next progress of a device from what happened since: a fetch, a status. `None` when
/// nothing changed.
pub(super) fn next(
    current: Option<DeviceProgress>,
    fetched: Option<Timestamp>,
    report: Option<FirmwareReport>,
    revision: u64,
    deadline_s: u32,
    now: Timestamp,
) -> Option<DeviceProgress> {
    let before = current;
    let mut p = current.unwrap_or(DeviceProgress {
        stage: Stage::Pending,
        since: now,
        fetched_at: None,
        reported: None,
        checked_seen: None,
    });
    let set = |p: &mut DeviceProgress, stage: Stage| {
        if p.stage != stage {
            p.stage = stage;
            p.since = now;
        }
    };
    if let Some(at) = fetched {
        match p.stage {
            Stage::Done => {}
            // Back for the image after the grace without reporting it: the update did not take
            // (the old firmware booted again and asks again — a rollback's loop).
            Stage::Downloading
                if p.fetched_at.is_some_and(|first| at.millis() > first.millis() + FETCH_GRACE_MS) =>
            {
                set(&mut p, Stage::FailedOldRevision);
            }
            // The first fetch is what the deadline counts from.
            Stage::Downloading => {}
            _ => {
                p.fetched_at = Some(at);
                set(&mut p, Stage::Downloading);
            }
        }
    }
    if let Some(report) = report {
        if report.last_seen.is_some() {
            p.checked_seen = report.last_seen;
        }
        if let Some(fw) = report.firmware {
            p.reported = Some(fw);
            let after_fetch = match (p.fetched_at, report.last_seen) {
                (Some(at), Some(seen)) => seen.millis() > at.millis() + FETCH_GRACE_MS,
                _ => false,
            };
            if fw >= revision {
                set(&mut p, Stage::Done);
            } else if p.stage == Stage::Downloading && after_fetch {
                set(&mut p, Stage::FailedOldRevision);
            }
        }
        if p.stage == Stage::Downloading {
            let since_fetch = p.fetched_at.map_or(0, |at| now.millis() - at.millis());
            let seen_since = matches!((p.fetched_at, report.last_seen), (Some(at), Some(seen)) if seen > at);
            // Silent since the fetch for longer than its threshold (a board that was offline and
            // fetched at boot is not judged by its old silence).
            if !seen_since && since_fetch > report.outdated_after_ms {
                set(&mut p, Stage::FailedOutdated);
            } else if since_fetch > i64::from(deadline_s) * 1000 {
                set(&mut p, Stage::FailedDeadline);
            }
        }
    }
    (Some(p) != before).then_some(p)
}

impl Firmware {
    /// Notes that a device fetched a campaign's image at `at` (the update path, or a gateway's
    /// report: memory only). A reported time is kept within the last day and not in the future.
    pub(super) fn note_fetch(&self, campaign: u64, device: [u8; 16], at: Timestamp) {
        let now = Timestamp::now();
        let at = Timestamp(at.millis().clamp(now.millis() - 86_400_000, now.millis()));
        let mut fetches = self.inner.fetches.lock();
        if fetches.len() >= MAX_NOTED_FETCHES && !fetches.contains_key(&(campaign, device)) {
            tracing::warn!(
                campaign,
                "too many image fetches between two passes: one is left for the device's next boot"
            );
            return;
        }
        // The first fetch between two passes counts (a retry is judged at the next pass).
        fetches.entry((campaign, device)).or_insert(at);
    }

    /// Devices per stage in each started wave of a campaign.
    pub fn stage_counts(&self, campaign: &Campaign) -> Vec<StageCounts> {
        let state = self.inner.state.read();
        let progress = state.progress.get(&campaign.id);
        let mut waves = vec![StageCounts::default(); campaign.wave_started_at.len()];
        for (i, device) in campaign.devices.iter().take(campaign.reached()).enumerate() {
            let stage = progress.and_then(|p| p.get(device)).map_or(Stage::Pending, |p| p.stage);
            if let Some(w) = waves.get_mut(campaign.wave_of(i)) {
                w.add(stage);
            }
        }
        waves
    }

    /// The campaigns that target a device, newest first: the campaign, the device's wave
    /// (0-based), whether that wave started, and its progress.
    pub fn device_campaigns(
        &self,
        device: [u8; 16],
    ) -> Vec<(Arc<Campaign>, usize, bool, Option<DeviceProgress>)> {
        let state = self.inner.state.read();
        state
            .campaigns
            .values()
            .rev()
            .filter_map(|entry| {
                let &position = entry.positions.get(&device)?;
                let c = &entry.campaign;
                let progress = state.progress.get(&c.id).and_then(|p| p.get(&device)).copied();
                Some((Arc::clone(c), c.wave_of(position), position < c.reached(), progress))
            })
            .take(50)
            .collect()
    }

    /// (failed since the last resume, devices) in each started wave of a campaign.
    fn failures_since(&self, campaign: &Campaign) -> Vec<(usize, usize)> {
        let state = self.inner.state.read();
        let progress = state.progress.get(&campaign.id);
        let after = campaign.resumed_at.unwrap_or(Timestamp(i64::MIN));
        let mut waves = vec![(0, 0); campaign.wave_started_at.len()];
        for (i, device) in campaign.devices.iter().take(campaign.reached()).enumerate() {
            let Some(w) = waves.get_mut(campaign.wave_of(i)) else { continue };
            w.1 += 1;
            if progress.and_then(|p| p.get(device)).is_some_and(|p| p.stage.failed() && p.since > after) {
                w.0 += 1;
            }
        }
        waves
    }

    /// The devices of a campaign's started waves with their progress (pending ones without).
    pub fn device_progress(&self, campaign: &Campaign) -> Vec<([u8; 16], usize, Option<DeviceProgress>)> {
        let state = self.inner.state.read();
        let progress = state.progress.get(&campaign.id);
        (0..campaign.reached())
            .map(|i| {
                let d = campaign.devices[i];
                (d, campaign.wave_of(i), progress.and_then(|p| p.get(&d)).copied())
            })
            .collect()
    }

    /// One pass of the schedule (blocking): waves whose soak time is over start, devices'
    /// progress follows their fetches and statuses, over-failing campaigns halt, complete
    /// ones finish.
    pub fn follow(&self, registry: &Registry, now: Timestamp) -> Result<FollowReport, FirmwareError> {
        let _writing = self.inner.writer.lock();
        let mut report =
            FollowReport { waves_started: self.start_soaked_waves_locked(now)?, ..FollowReport::default() };
        let fetches = std::mem::take(&mut *self.inner.fetches.lock());
        let open: Vec<Arc<CampaignEntry>> = self
            .inner
            .state
            .read()
            .campaigns
            .values()
            .filter(|c| c.campaign.state.is_open())
            .cloned()
            .collect();
        let mut written = Vec::new();
        let mut unpersisted = Vec::new();
        for entry in &open {
            let c = &entry.campaign;
            let Some(revision) = self.inner.state.read().images.get(&c.image).map(|i| i.revision) else {
                continue;
            };
            let known: HashMap<[u8; 16], DeviceProgress> =
                self.inner.state.read().progress.get(&c.id).cloned().unwrap_or_default();
            for device in c.devices.iter().take(c.reached()) {
                let current = known.get(device).copied();
                if current.is_some_and(|p| p.stage == Stage::Done) {
                    continue;
                }
                let seen_after = current.and_then(|p| p.checked_seen);
                let status = registry.firmware_report(DeviceId::from_bytes(*device), seen_after);
                let fetched = fetches.get(&(c.id, *device)).copied();
                if let Some(p) = next(current, fetched, status, revision, c.deadline_s, now) {
                    // Only a new stage, fetch or revision is worth a disk write; the rest (when
                    // a status was last read) is kept in memory.
                    let worth = current.is_none_or(|old| {
                        (old.stage, old.fetched_at, old.reported) != (p.stage, p.fetched_at, p.reported)
                    }) && (p.stage != Stage::Pending || p.reported.is_some());
                    if worth {
                        written.push((c.id, *device, p))
                    } else {
                        unpersisted.push((c.id, *device, p))
                    }
                }
            }
        }
        if !written.is_empty() {
            self.inner.store.put_campaign_progress(&written)?;
        }
        report.progress_written = written.len();
        {
            let mut state = self.inner.state.write();
            for (c, d, p) in written.into_iter().chain(unpersisted) {
                state.progress.entry(c).or_default().insert(d, p);
            }
        }
        for entry in open.iter().filter(|e| e.campaign.state == CampaignState::Running) {
            let campaign = self.campaign(entry.campaign.id)?;
            if let Some(changed) = self.judge(campaign, &mut report) {
                self.save(changed)?;
            }
        }
        Ok(report)
    }

    /// Halts a campaign whose started wave fails beyond its threshold, finishes one whose
    /// devices are all done; `None` when neither.
    fn judge(&self, mut campaign: Campaign, report: &mut FollowReport) -> Option<Campaign> {
        let waves = self.stage_counts(&campaign);
        let threshold = campaign.failure_threshold_percent as usize;
        // Failures before the last resume were judged already.
        let failing = self
            .failures_since(&campaign)
            .into_iter()
            .enumerate()
            .find(|&(_, (failed, size))| failed > 0 && failed * 100 > threshold * size);
        if let Some((wave, (failed, size))) = failing {
            campaign.state = CampaignState::Halted;
            campaign.record(
                "schedule",
                format!(
                    "halted: {failed} of {size} devices of wave {} failed (threshold {} %)",
                    wave + 1,
                    campaign.failure_threshold_percent
                ),
            );
            report.halted.push(campaign.id);
            return Some(campaign);
        }
        let all_started = campaign.wave_started_at.len() == campaign.waves.len();
        let done: usize = waves.iter().map(|w| w.done).sum();
        if all_started && done == campaign.devices.len() {
            campaign.state = CampaignState::Finished;
            campaign.record("schedule", format!("finished: all {done} devices run the image"));
            report.finished.push(campaign.id);
            return Some(campaign);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::DeviceState;

    const REV: u64 = 240101;

    fn report(firmware: Option<u64>, state: DeviceState, seen: i64) -> Option<FirmwareReport> {
        Some(FirmwareReport {
            last_seen: Some(Timestamp(seen)),
            state,
            firmware,
            outdated_after_ms: 1_800_000,
        })
    }

    #[test]
    fn a_device_goes_through_its_stages() {
        let now = Timestamp(1_000_000);
        // Seen with the old revision: still pending, the revision noted.
        let p = next(None, None, report(Some(231027), DeviceState::Ok, 10), REV, 600, now).unwrap();
        assert_eq!(
            (p.stage, p.reported, p.checked_seen),
            (Stage::Pending, Some(231027), Some(Timestamp(10)))
        );
        // Nothing new: no change.
        assert_eq!(next(Some(p), None, report(None, DeviceState::Ok, 10), REV, 600, now), None);
        let p = next(Some(p), Some(now), None, REV, 600, now).unwrap();
        assert_eq!((p.stage, p.fetched_at), (Stage::Downloading, Some(now)));
        // A status from before the fetch (or within the grace) tells nothing; a later one with
        // the old revision is a failed update.
        let early =
            next(Some(p), None, report(Some(231027), DeviceState::Ok, now.millis() + 5_000), REV, 600, now);
        assert_eq!(early.map(|p| p.stage), Some(Stage::Downloading));
        let rolled_back =
            next(Some(p), None, report(Some(231027), DeviceState::Ok, now.millis() + 11_000), REV, 600, now)
                .unwrap();
        assert_eq!(rolled_back.stage, Stage::FailedOldRevision);
        // Nothing new by the deadline.
        let later = Timestamp(now.millis() + 601_000);
        let failed = next(Some(p), None, report(None, DeviceState::Ok, 20), REV, 600, later).unwrap();
        assert_eq!(failed.stage, Stage::FailedDeadline);
        // An offline board fetches at boot: its old silence is not held against it…
        assert_eq!(next(Some(p), None, report(None, DeviceState::Outdated, 10), REV, 3600, now), None);
        // …but silence for its threshold after the fetch is.
        let silent_for = Timestamp(now.millis() + 1_800_001);
        let silent =
            next(Some(p), None, report(None, DeviceState::Outdated, 10), REV, 3600, silent_for).unwrap();
        assert_eq!(silent.stage, Stage::FailedOutdated);
        // Fetching again after the grace without reporting the image: the update did not take.
        let again = next(Some(p), Some(Timestamp(now.millis() + 30_000)), None, REV, 600, now).unwrap();
        assert_eq!((again.stage, again.fetched_at), (Stage::FailedOldRevision, Some(now)));
        assert_eq!(
            next(Some(p), Some(Timestamp(now.millis() + 2_000)), None, REV, 600, now),
            None,
            "a retry within the grace"
        );
        // A failed device that comes back with the new revision is done.
        let done = next(Some(failed), None, report(Some(REV), DeviceState::Ok, 30), REV, 600, later).unwrap();
        assert_eq!((done.stage, done.since), (Stage::Done, later));
        // Already on a newer revision without fetching: done.
        let newer = next(None, None, report(Some(REV + 1), DeviceState::Ok, 5), REV, 600, now).unwrap();
        assert_eq!(newer.stage, Stage::Done);
    }
}
