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

impl Firmware {
    /// The running campaigns as `gateway` serves them: each image with the devices of its
    /// scope in the started waves (campaigns without any are left out).
    pub fn manifest(&self, gateway: GatewayId, registry: &Registry) -> FirmwareManifest {
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
                let devices = registry.scope_macs(gateway, &c.devices[..c.reached()]);
                (!devices.is_empty()).then(|| ManifestImage {
                    campaign: c.id,
                    sha256: hex::encode(&image.sha256),
                    md5: hex::encode(&image.md5),
                    size: image.size,
                    hardware: image.hardware,
                    board: image.board,
                    revision: image.revision,
                    devices,
                })
            })
            .take(MAX_MANIFEST_IMAGES)
            .collect();
        FirmwareManifest { images }
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
                self.note_fetch(fetch.campaign, device.to_bytes());
                taken += 1;
            }
        }
        taken
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
