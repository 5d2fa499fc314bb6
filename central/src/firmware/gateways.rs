//! What gateways get of the campaigns: the manifest of their scope's share, the image (counted,
//! so "one copy per site" can be checked), and the fetches their devices made.

use std::sync::atomic::{AtomicU64, Ordering};

use neosens_protocol::edge_firmware::{FirmwareFetch, FirmwareManifest, MAX_MANIFEST_IMAGES, ManifestImage};
use neosens_protocol::hex;
use neosens_protocol::ids::GatewayId;

use super::Firmware;
use crate::model::CampaignState;
use crate::registry::Registry;

/// Image transfers to gateways.
#[derive(Debug, Default)]
pub(super) struct GatewayTransfers {
    /// Answers with content (whole or resumed).
    pub(super) downloads: AtomicU64,
    /// Bytes sent.
    pub(super) bytes: AtomicU64,
}

/// A gateway build's signature, hex.
fn state_signature(firmware: &Firmware, sha256: &[u8; 32]) -> Option<String> {
    firmware.inner.state.read().signatures.get(sha256).map(|s| hex::encode(s))
}

impl Firmware {
    /// The running campaigns as `gateway` serves them: the image of each campaign that targets
    /// devices of its scope, with those in the started waves (campaigns outside the scope are
    /// left out). `cached` are the images
    /// the gateway has: when they cover the answer, the gateway serves the current waves from
    /// now on.
    pub fn manifest(&self, gateway: GatewayId, registry: &Registry, cached: &[&str]) -> FirmwareManifest {
        let asked = crate::model::Timestamp::now();
        let running: Vec<_> = {
            let state = self.inner.state.read();
            state
                .campaigns
                .values()
                .filter(|c| c.campaign.state == CampaignState::Running)
                .filter_map(|c| state.images.get(&c.campaign.image).map(|i| (c.clone(), i.clone())))
                .collect()
        };
        let images = running
            .into_iter()
            .filter_map(|(entry, image)| {
                let c = &entry.campaign;
                // Listed as soon as the campaign targets the scope, so the image is on site
                // before the waves reach it; `devices` are those of the started waves.
                let reached = c.reached();
                let targets_scope = !registry.scope_macs(gateway, &c.devices[reached..]).is_empty();
                // Boards whose update failed are told "no update" at the gateway too.
                let retry = self.retryable(c, &c.devices[..reached]);
                let devices = registry.scope_macs(gateway, &retry);
                (targets_scope || !devices.is_empty()).then(|| ManifestImage {
                    campaign: c.id,
                    sha256: hex::encode(&image.sha256),
                    md5: hex::encode(&image.md5),
                    size: image.size,
                    hardware: image.hardware,
                    board: image.board,
                    revision: image.revision,
                    devices,
                    signature: state_signature(self, &image.sha256),
                })
            })
            .take(MAX_MANIFEST_IMAGES)
            .collect();
        let images: Vec<ManifestImage> = images;
        if images.iter().all(|i| cached.contains(&i.sha256.as_str())) {
            // Only gateways of the registry get here: one entry each.
            self.inner.manifests_seen.lock().insert(gateway, asked);
        }
        FirmwareManifest { images }
    }

    /// Those of `devices` whose update did not fail in `campaign` (since its last resume).
    fn retryable(&self, campaign: &crate::model::Campaign, devices: &[[u8; 16]]) -> Vec<[u8; 16]> {
        let state = self.inner.state.read();
        let progress = state.progress.get(&campaign.id);
        devices
            .iter()
            .filter(|d| {
                !progress
                    .and_then(|p| p.get(*d))
                    .is_some_and(|p| p.stage.failed() && campaign.resumed_at.is_none_or(|r| p.since > r))
            })
            .copied()
            .collect()
    }

    /// Notes the fetches a gateway's devices made; only devices of its scope in the campaign's
    /// started waves count. Returns how many were taken.
    pub fn gateway_fetches(
        &self,
        gateway: GatewayId,
        fetches: &[FirmwareFetch],
        registry: &Registry,
    ) -> usize {
        let mut taken = 0;
        for fetch in fetches {
            let Some(device) = registry.device_id(&fetch.device.to_string()) else { continue };
            if !registry.gateway_covers(gateway, device) {
                continue;
            }
            let in_wave = self.inner.state.read().campaigns.get(&fetch.campaign).is_some_and(|c| {
                c.positions.get(&device.to_bytes()).is_some_and(|&p| p < c.campaign.reached())
            });
            if in_wave {
                self.note_fetch(fetch.campaign, device.to_bytes(), crate::model::Timestamp(fetch.at_ms));
                taken += 1;
            }
        }
        taken
    }

    /// Whether every gateway of `device`'s site has seen the manifest since `since` (its wave's
    /// start): until then an `upgrade` order would send the device to a gateway that does not
    /// know it is in the wave yet. Gateways that never asked (older agents) are not waited for.
    pub(super) fn gateways_know(
        &self,
        device: [u8; 16],
        since: crate::model::Timestamp,
        registry: &Registry,
    ) -> bool {
        let gateways = registry.gateways_covering(neosens_protocol::ids::DeviceId::from_bytes(device));
        let seen = self.inner.manifests_seen.lock();
        gateways.iter().all(|g| seen.get(g).is_none_or(|at| *at >= since))
    }

    /// Counts an image transfer to a gateway.
    pub fn count_gateway_transfer(&self, bytes: u64) {
        self.inner.transfers.downloads.fetch_add(1, Ordering::Relaxed);
        self.inner.transfers.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// (transfers, bytes) to gateways since start.
    pub fn gateway_transfers(&self) -> (u64, u64) {
        let t = &self.inner.transfers;
        (t.downloads.load(Ordering::Relaxed), t.bytes.load(Ordering::Relaxed))
    }
}
