//! Gateway builds (hardware `neosens-edge-*`): firmware images whose detached signature central
//! keeps and passes on, rolled out by campaigns over the gateways' own devices, and what the
//! gateways say became of them ([`neosens_protocol::agent_build`]).

use neosens_protocol::agent_build::{
    AGENT_BOARD, AGENT_HARDWARE_PREFIX, AgentUpdateOutcome, AgentUpdateReport, MAX_REASON_CHARS,
};
use neosens_protocol::ids::GatewayId;

use super::{Firmware, FirmwareError};
use crate::model::{DeviceProgress, Stage, Timestamp};
use crate::registry::Registry;

impl Firmware {
    /// A gateway build's signature, when the image is one.
    pub fn signature(&self, sha256: &[u8; 32]) -> Option<[u8; 64]> {
        self.inner.state.read().signatures.get(sha256).copied()
    }

    /// Records what `gateway` says became of a build it was offered: a campaign event, and for
    /// a refusal or a rollback its device's stage (an installed build is "done" once the
    /// gateway's status reports its revision, like any device's). Only campaigns of gateway
    /// builds (hardware `neosens-edge-*`, board `neosens-edge`) and devices of the gateway's
    /// scope in their started waves count — a gateway cannot mark the boards of its LAN failed
    /// in a campaign of theirs; a report heard again changes nothing. Blocking (it writes the
    /// store). Returns whether it was taken.
    pub fn agent_outcome(
        &self,
        gateway: GatewayId,
        report: &AgentUpdateReport,
        registry: &Registry,
    ) -> Result<bool, FirmwareError> {
        let Some(device) = registry.device_id(&report.device.to_string()) else { return Ok(false) };
        if !registry.gateway_covers(gateway, device) {
            return Ok(false);
        }
        let _writing = self.inner.writer.lock();
        let (entry, image_sha) = {
            let state = self.inner.state.read();
            let Some(entry) = state.campaigns.get(&report.campaign).cloned() else { return Ok(false) };
            let gateway_build = state
                .images
                .get(&entry.campaign.image)
                .is_some_and(|i| i.hardware.starts_with(AGENT_HARDWARE_PREFIX) && i.board == AGENT_BOARD);
            if !gateway_build {
                return Ok(false);
            }
            (entry.clone(), entry.campaign.image)
        };
        let in_wave = entry.positions.get(&device.to_bytes()).is_some_and(|&p| p < entry.campaign.reached());
        if !in_wave || neosens_protocol::hex::encode(&image_sha) != report.sha256 {
            return Ok(false);
        }
        let reason: String = report.reason.chars().take(MAX_REASON_CHARS).collect();
        let (what, stage) = match report.outcome {
            AgentUpdateOutcome::Installed => (format!("{} installed the build", report.device), None),
            AgentUpdateOutcome::Refused => {
                (format!("{} refused the build: {reason}", report.device), Some(Stage::FailedRefused))
            }
            AgentUpdateOutcome::RolledBack => {
                (format!("{} rolled the build back: {reason}", report.device), Some(Stage::FailedOldRevision))
            }
        };
        let mut campaign = entry.campaign.as_ref().clone();
        if campaign.events.iter().any(|e| e.what == what) {
            return Ok(true);
        }
        if let Some(stage) = stage {
            let at = Timestamp(report.at_ms);
            let current = self
                .inner
                .state
                .read()
                .progress
                .get(&campaign.id)
                .and_then(|p| p.get(&device.to_bytes()))
                .copied();
            let progress = DeviceProgress {
                stage,
                since: Timestamp::now(),
                fetched_at: current.and_then(|p| p.fetched_at).or(Some(at)),
                reported: current.and_then(|p| p.reported),
                checked_seen: current.and_then(|p| p.checked_seen),
            };
            self.inner.store.put_campaign_progress(&[(campaign.id, device.to_bytes(), progress)])?;
            self.inner
                .state
                .write()
                .progress
                .entry(campaign.id)
                .or_default()
                .insert(device.to_bytes(), progress);
        }
        tracing::info!(campaign = campaign.id, %gateway, outcome = ?report.outcome, reason = %reason, "a gateway's build outcome");
        campaign.record(&format!("gateway {gateway}"), what);
        self.save(campaign)?;
        Ok(true)
    }
}
