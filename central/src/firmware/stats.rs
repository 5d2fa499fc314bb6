//! What `/metrics` shows of firmware: images, campaigns by state (a fixed set of five),
//! devices by stage, orders waiting.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::{Firmware, StageCounts};
use crate::metrics::gauge;

/// What `/metrics` shows of firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareStats {
    /// Images stored.
    pub images: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Campaigns per state.
    pub campaigns: [(&'static str, usize); 5],
    /// Devices in the started waves of running campaigns.
    pub reached: usize,
    /// Devices of open campaigns' started waves, by stage.
    pub stages: StageCounts,
    /// `upgrade` orders waiting to be sent.
    pub queued_orders: usize,
}

impl Firmware {
    /// Counts for `/metrics`.
    pub fn stats(&self) -> FirmwareStats {
        use crate::model::CampaignState as S;
        let state = self.inner.state.read();
        let mut campaigns = [("running", 0), ("paused", 0), ("halted", 0), ("cancelled", 0), ("finished", 0)];
        let mut reached = 0;
        let mut stages = StageCounts::default();
        for c in state.campaigns.values().map(|c| &c.campaign) {
            let slot = match c.state {
                S::Running => 0,
                S::Paused => 1,
                S::Halted => 2,
                S::Cancelled => 3,
                S::Finished => 4,
            };
            campaigns[slot].1 += 1;
            if c.state == S::Running {
                reached += c.reached();
            }
            if c.state.is_open() {
                let progress = state.progress.get(&c.id);
                for d in c.devices.iter().take(c.reached()) {
                    stages.add(
                        progress.and_then(|p| p.get(d)).map_or(crate::model::Stage::Pending, |p| p.stage),
                    );
                }
            }
        }
        FirmwareStats {
            images: state.images.len(),
            bytes: state.images.values().map(|i| i.size).sum(),
            campaigns,
            reached,
            stages,
            queued_orders: self.inner.orders.len(),
        }
    }

    /// The series of firmware images and campaigns (states: a fixed set of five).
    pub fn encode_metrics(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.stats();
        gauge(encoder, "neosens_firmware_images", "Firmware images stored", stats.images as i64)?;
        gauge(
            encoder,
            "neosens_firmware_image_bytes",
            "Bytes the stored firmware images take",
            stats.bytes as i64,
        )?;
        let mut m = encoder.encode_descriptor(
            "neosens_firmware_campaigns",
            "Firmware campaigns, by state",
            None,
            MetricType::Gauge,
        )?;
        for (state, count) in stats.campaigns {
            ConstGauge::new(count as i64).encode(m.encode_family(&[("state", state)])?)?;
        }
        gauge(
            encoder,
            "neosens_firmware_devices_reached",
            "Devices in the started waves of running campaigns",
            stats.reached as i64,
        )?;
        let mut m = encoder.encode_descriptor(
            "neosens_firmware_campaign_devices",
            "Devices of open campaigns' started waves, by stage",
            None,
            MetricType::Gauge,
        )?;
        let s = stats.stages;
        for (stage, count) in
            [("pending", s.pending), ("downloading", s.downloading), ("done", s.done), ("failed", s.failed)]
        {
            ConstGauge::new(count as i64).encode(m.encode_family(&[("stage", stage)])?)?;
        }
        let (transfers, bytes) = self.gateway_transfers();
        ConstCounter::new(transfers).encode(encoder.encode_descriptor(
            "neosens_firmware_gateway_downloads",
            "Firmware image transfers to gateways (whole or resumed)",
            None,
            MetricType::Counter,
        )?)?;
        ConstCounter::new(bytes).encode(encoder.encode_descriptor(
            "neosens_firmware_gateway_bytes",
            "Firmware image bytes sent to gateways",
            None,
            MetricType::Counter,
        )?)?;
        gauge(
            encoder,
            "neosens_firmware_upgrade_orders_queued",
            "Upgrade orders waiting to be sent",
            stats.queued_orders as i64,
        )
    }
}
