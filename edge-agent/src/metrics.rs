//! The agent's `/metrics` (OpenMetrics text; the classic format for scrapers that do not ask
//! for OpenMetrics is central's business, the agent is scraped by Prometheus itself): sync,
//! cache, outbox, uplink and local provisioning, read at scrape time from their counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::cache::Cache;
use crate::outbox::Outbox;
use crate::proxy::Proxy;
use crate::sync::SyncStats;
use crate::uplink::UplinkStats;

/// What `/metrics` reads.
#[derive(Clone, Debug)]
pub struct Sources {
    /// Cache.
    pub cache: Cache,
    /// Outbox.
    pub outbox: Outbox,
    /// Sync counters.
    pub sync: Arc<SyncStats>,
    /// Uplink counters.
    pub uplink: Arc<UplinkStats>,
    /// Provisioning counters.
    pub proxy: Proxy,
    /// LoRaWAN counters.
    pub lorawan: Arc<crate::lorawan::LoraStats>,
    /// The supervisor's view of the tasks.
    pub tasks: Arc<neosens_runtime::supervisor::TaskHealth>,
    /// The firmware cache.
    pub firmware: crate::firmware::FirmwareCache,
    /// The local broker (local-broker mode).
    pub local_broker: Arc<crate::local_broker::LocalBroker>,
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstGauge::new(v as i64).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: &AtomicU64) -> std::fmt::Result {
    ConstCounter::new(v.load(Ordering::Relaxed)).encode(e.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

impl Sources {
    fn encode_local_broker(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let b = &self.local_broker;
        let up = u64::from(b.running.load(Ordering::Relaxed));
        gauge(e, "neosens_edge_local_broker_up", "1 while the local broker (local-broker mode) runs", up)?;
        gauge(
            e,
            "neosens_edge_local_broker_accounts",
            "Device accounts in the local broker's password file",
            b.accounts.load(Ordering::Relaxed),
        )?;
        counter(e, "neosens_edge_local_broker_starts", "Times the local broker was started", &b.starts)
    }

    fn encode_firmware(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let (images, bytes, devices) = self.firmware.cached();
        gauge(e, "neosens_edge_firmware_images", "Firmware images cached and served here", images as u64)?;
        gauge(
            e,
            "neosens_edge_firmware_devices",
            "Devices of the scope in started waves of the cached images",
            devices as u64,
        )?;
        gauge(e, "neosens_edge_firmware_cache_bytes", "Bytes of the cached firmware images", bytes)?;
        let (downloads, served, no_update, corrupt) = self.firmware.counters();
        for (name, help, v) in [
            ("neosens_edge_firmware_downloads", "Firmware images downloaded from central", downloads),
            ("neosens_edge_firmware_served", "Firmware images served to devices", served),
            (
                "neosens_edge_firmware_no_update",
                "Devices told \"no update\" (not in a started wave)",
                no_update,
            ),
            ("neosens_edge_firmware_corrupt", "Downloads dropped: content not matching its SHA-256", corrupt),
        ] {
            ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        Ok(())
    }
}

impl Collector for Sources {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        self.encode_sync(&mut e)?;
        self.encode_outbox(&mut e)?;
        self.encode_uplink(&mut e)?;
        self.encode_provisioning(&mut e)?;
        self.encode_lorawan(&mut e)?;
        self.encode_firmware(&mut e)?;
        self.encode_local_broker(&mut e)?;
        Ok(())
    }
}

impl Sources {
    /// The series of the sync and the cache.
    fn encode_sync(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        gauge(
            e,
            "neosens_edge_sync_revision",
            "Registry revision the cache holds",
            self.sync.revision.load(Ordering::Relaxed),
        )?;
        gauge(
            e,
            "neosens_edge_sync_last_success_timestamp_seconds",
            "Last successful exchange with central",
            self.sync.last_success_s.load(Ordering::Relaxed),
        )?;
        counter(e, "neosens_edge_sync_batches", "Sync batches applied", &self.sync.batches)?;
        counter(e, "neosens_edge_sync_failures", "Failed sync requests", &self.sync.failures)?;
        gauge(
            e,
            "neosens_edge_devices_cached",
            "Devices in the local cache",
            self.cache.device_count().unwrap_or_default(),
        )?;
        Ok(())
    }

    /// The series of the outbox.
    fn encode_outbox(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let (depth, oldest) = self.outbox.depth(now_ms).unwrap_or_default();
        gauge(e, "neosens_edge_outbox_depth", "Messages waiting in the outbox", depth)?;
        gauge(e, "neosens_edge_outbox_oldest_seconds", "Age of the oldest message in the outbox", oldest)?;
        let s = &self.outbox.stats;
        counter(e, "neosens_edge_outbox_appended", "Messages appended to the outbox", &s.appended)?;
        counter(e, "neosens_edge_outbox_acknowledged", "Messages the broker acknowledged", &s.acknowledged)?;
        counter(
            e,
            "neosens_edge_outbox_journal_replayed",
            "Messages stored again at start from the outbox journal (their commit was lost in a crash)",
            &s.journal_replayed,
        )?;
        counter(
            e,
            "neosens_edge_outbox_journal_checkpoints",
            "Durable commits that let the outbox journal start over",
            &s.journal_checkpoints,
        )?;
        let mut m = e.encode_descriptor(
            "neosens_edge_outbox_dropped",
            "Messages dropped, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in [("full", &s.dropped_full), ("expired", &s.dropped_expired)] {
            ConstCounter::new(n.load(Ordering::Relaxed)).encode(m.encode_family(&[("reason", reason)])?)?;
        }
        Ok(())
    }

    /// The series of the upstream broker link.
    fn encode_uplink(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        gauge(
            e,
            "neosens_edge_uplink_connected",
            "Whether the upstream broker connection is up",
            u64::from(self.uplink.connected.load(Ordering::Relaxed)),
        )?;
        counter(
            e,
            "neosens_edge_uplink_connects",
            "Upstream connections established",
            &self.uplink.connects,
        )?;
        counter(e, "neosens_edge_uplink_published", "Messages published upstream", &self.uplink.published)?;
        let mut m = e.encode_descriptor(
            "neosens_edge_uplink_subscriptions",
            "Subscriptions (the gateway's and its nodes' command topics) the broker granted or refused, since start",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in
            [("granted", &self.uplink.subscriptions_granted), ("refused", &self.uplink.subscriptions_refused)]
        {
            ConstCounter::new(n.load(Ordering::Relaxed)).encode(m.encode_family(&[("outcome", outcome)])?)?;
        }
        Ok(())
    }

    /// The series of the legacy provisioning paths.
    fn encode_provisioning(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut m = e.encode_descriptor(
            "neosens_edge_provisioning_requests",
            "Legacy provisioning requests by path, source (central or cache) and outcome",
            None,
            MetricType::Counter,
        )?;
        for ((path, source, outcome), n) in self.proxy.counts.lock().iter() {
            ConstCounter::new(*n).encode(m.encode_family(&[
                ("path", *path),
                ("source", *source),
                ("outcome", *outcome),
            ])?)?;
        }
        Ok(())
    }

    /// The series of the LoRaWAN pipeline.
    fn encode_lorawan(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let mut m = e.encode_descriptor(
            "neosens_edge_lorawan_frames",
            "LoRaWAN frames by outcome (decoded, duplicate, or why rejected)",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in self.lorawan.frames.lock().iter() {
            ConstCounter::new(*n).encode(m.encode_family(&[("outcome", *outcome)])?)?;
        }
        let mut m = e.encode_descriptor(
            "neosens_edge_lorawan_datagrams",
            "Packet-forwarder datagrams: received, or dropped by reason",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in self.lorawan.datagrams.lock().iter() {
            ConstCounter::new(*n).encode(m.encode_family(&[("outcome", *outcome)])?)?;
        }
        let mut m = e.encode_descriptor(
            "neosens_edge_lorawan_downlinks",
            "Class A downlinks by outcome: ack_scheduled, order_scheduled, no_downlink_path, tx_ok, rx2_fallback, tx_too_late, order_received, order_malformed, order_not_ours …",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in self.lorawan.downlinks.lock().iter() {
            ConstCounter::new(*n).encode(m.encode_family(&[("outcome", *outcome)])?)?;
        }
        counter(
            e,
            "neosens_edge_lorawan_mac_command_bytes",
            "MAC command bytes received (FOpts and port 0)",
            &self.lorawan.mac_command_bytes,
        )?;
        gauge(
            e,
            "neosens_edge_lorawan_open_addresses",
            "Device addresses of the scope with sessions open in memory (bounded)",
            self.lorawan.open_addresses.load(Ordering::Relaxed) as u64,
        )?;
        gauge(
            e,
            "neosens_edge_lorawan_dedupe_frames",
            "Frames remembered by the duplicate window (bounded)",
            self.lorawan.recent_frames.load(Ordering::Relaxed) as u64,
        )?;
        gauge(
            e,
            "neosens_edge_lorawan_orders_queued",
            "Node orders waiting for their node's next uplink (bounded: 1024)",
            self.lorawan.orders.queued() as u64,
        )?;
        ConstCounter::new(self.lorawan.orders.outcomes_dropped()).encode(e.encode_descriptor(
            "neosens_edge_lorawan_order_outcomes_dropped",
            "Node order outcomes dropped before a health report could carry them (more than 256 kept)",
            None,
            MetricType::Counter,
        )?)?;
        self.encode_forwarders(e)
    }

    /// One series per packet forwarder heard (bounded: `MAX_FORWARDERS`).
    fn encode_forwarders(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let forwarders = &self.lorawan.forwarders;
        gauge(
            e,
            "neosens_edge_lorawan_forwarders",
            "Packet forwarders heard (bounded)",
            forwarders.len() as u64,
        )?;
        ConstCounter::new(forwarders.refused()).encode(e.encode_descriptor(
            "neosens_edge_lorawan_forwarders_refused",
            "New gateway EUIs not tracked because the forwarder table was full (their frames are still decoded)",
            None,
            MetricType::Counter,
        )?)?;
        let report = forwarders.report(std::time::Instant::now());
        let mut m = e.encode_descriptor(
            "neosens_edge_lorawan_forwarder_silent_seconds",
            "Seconds since a packet forwarder's last datagram",
            None,
            MetricType::Gauge,
        )?;
        for f in &report {
            ConstGauge::new(f.silent_s as i64).encode(m.encode_family(&[("eui", f.eui.as_str())])?)?;
        }
        let mut m = e.encode_descriptor(
            "neosens_edge_lorawan_forwarder_uplinks",
            "Radio packets a packet forwarder pushed",
            None,
            MetricType::Counter,
        )?;
        for f in &report {
            ConstCounter::new(f.figures.uplinks).encode(m.encode_family(&[("eui", f.eui.as_str())])?)?;
        }
        Ok(())
    }
}

/// The exposition text.
pub fn render(sources: &Sources) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources.clone()));
    registry.register_collector(Box::new(neosens_runtime::supervisor::TaskMetrics {
        prefix: "neosens_edge",
        health: Arc::clone(&sources.tasks),
    }));
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}
