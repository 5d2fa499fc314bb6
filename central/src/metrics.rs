//! `/metrics`: Prometheus (OpenMetrics text) with bounded labels — no per-device label.
//!
//! Counters incremented where things happen (broker-auth decisions, provisioning outcomes) and
//! values read at scrape time from the components that own them (MQTT link, status ingestion,
//! registry size).

use std::sync::Arc;

use neosens_runtime::mqtt::MqttHandle;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry as PromRegistry;

use crate::gateway_health::{Contact, ForwarderHealth};
use crate::ingest::IngestStats;
use crate::registry::{Registry, StatusDrop};

/// Labels of broker-auth decisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// `goauth` or `legacy`.
    pub contract: &'static str,
    /// `auth`, `superuser` or `acl`.
    pub check: &'static str,
    /// `allow`, a deny reason, or `malformed`.
    pub outcome: &'static str,
}

/// Labels of legacy provisioning requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProvisioningLabels {
    /// `credentials`, `config` or `logger`.
    pub path: &'static str,
    /// `served`, `delivered` (password sent), or why it was refused.
    pub outcome: &'static str,
}

/// Labels of HTTP request durations: the route pattern, never the raw path.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Route pattern (`/api/v1/devices/{id}`), or `unmatched`.
    pub route: String,
    /// Method: one of the standard ones, or `other` ([`method_label`]).
    pub method: &'static str,
    /// Status class (`2xx` …).
    pub status: &'static str,
}

/// The `method` label of a request: the nine methods of RFC 9110 by name, `other` for the rest.
/// HTTP lets a client invent methods (`XMETHOD1abc`); as a label each would be a new series,
/// kept forever, so the label set is fixed at ten values.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Central's metrics.
pub struct Metrics {
    registry: PromRegistry,
    /// HTTP request durations, seconds.
    pub http: Family<HttpLabels, Histogram>,
    /// Broker-auth decisions.
    pub broker_auth: Family<AuthLabels, Counter>,
    /// Legacy provisioning requests.
    pub provisioning: Family<ProvisioningLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

/// The components whose live values `/metrics` reads at scrape time.
#[derive(Debug)]
pub struct Sources {
    /// The MQTT link.
    pub link: MqttHandle,
    /// Status ingestion.
    pub ingest: Arc<IngestStats>,
    /// The registry (and its store).
    pub registry: Arc<Registry>,
    /// Device states and alerts.
    pub monitor: crate::monitor::Monitor,
    /// The alert webhook, when configured.
    pub webhook: Option<Arc<crate::monitor::webhook::WebhookStats>>,
    /// Gateways' health.
    pub gateways: crate::gateway_health::GatewayHealth,
    /// The adoption inbox.
    pub unclaimed: crate::unclaimed::Unclaimed,
    /// The main HTTP listener's connections.
    pub connections: Arc<neosens_runtime::http::ConnectionStats>,
    /// Firmware images and campaigns.
    pub firmware: crate::firmware::Firmware,
}

/// `neosens_store_write_duration_seconds`: the store's commit durations, read from its own
/// counters at each scrape (the store does not depend on a metrics library).
#[derive(Debug)]
struct CommitTimesMetric(Arc<Registry>);

impl Collector for CommitTimesMetric {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(times) = self.0.store_commit_times() else { return Ok(()) };
        let metric = encoder.encode_descriptor(
            "neosens_store_write_duration_seconds",
            "Store write commit durations",
            None,
            MetricType::Histogram,
        )?;
        let mut metric = metric;
        metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            times.sum_s,
            times.count,
            &times.buckets,
            None,
        )
    }
}

/// Per-gateway gauges: (name, help, value of a gateway).
type GatewayGauge = (&'static str, &'static str, fn(&Contact, i64, u64) -> i64);

const GATEWAY_GAUGES: [GatewayGauge; 5] = [
    ("neosens_gateway_up", "Whether the gateway has been in touch in the last 150 s", |c, now, _| {
        i64::from(c.is_up(now))
    }),
    (
        "neosens_gateway_last_contact_timestamp_seconds",
        "Last authenticated request of the gateway (0: none since central started)",
        |c, _, _| c.last_contact_ms / 1000,
    ),
    (
        "neosens_gateway_sync_lag_revisions",
        "Registry revisions the gateway has not applied yet",
        |c, _, rev| rev.saturating_sub(c.revision) as i64,
    ),
    ("neosens_gateway_outbox_depth", "Messages waiting in the gateway's outbox", |c, _, _| {
        c.report.as_ref().map_or(0, |r| r.outbox_depth as i64)
    }),
    (
        "neosens_gateway_outbox_oldest_seconds",
        "Age of the oldest message in the gateway's outbox",
        |c, _, _| c.report.as_ref().map_or(0, |r| r.outbox_oldest_s as i64),
    ),
];

pub(crate) fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // With replicas, device states, alerts and gateways' health are the leader's: the
        // others leave those series out (summed over replicas, they would count twice).
        let leading = self.monitor.is_leading();
        self.encode_link(&mut encoder)?;
        self.encode_statuses(&mut encoder)?;
        if leading {
            self.encode_devices(&mut encoder)?;
        }
        self.encode_alerts(&mut encoder, leading)?;
        self.encode_gateways(&mut encoder, leading)?;
        self.firmware.encode_metrics(&mut encoder)?;
        Ok(())
    }
}

impl Sources {
    /// The series of central's MQTT link.
    fn encode_link(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.link.stats();
        gauge(
            encoder,
            "neosens_mqtt_connected",
            "Whether central's MQTT link is up",
            i64::from(stats.connected()),
        )?;
        counter(
            encoder,
            "neosens_mqtt_connects",
            "MQTT connections established (ConnAck)",
            stats.connects(),
        )?;
        counter(
            encoder,
            "neosens_mqtt_disconnects",
            "MQTT connections lost or refused",
            stats.disconnects(),
        )?;
        counter(encoder, "neosens_mqtt_messages_received", "MQTT messages received", stats.received())?;
        Ok(())
    }

    /// The series of status ingestion and the HTTP listener.
    fn encode_statuses(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counter(
            encoder,
            "neosens_status_stored",
            "Device statuses stored (latest per device and batch)",
            self.ingest.stored(),
        )?;
        counter(encoder, "neosens_status_batches", "Batches of statuses written", self.ingest.batches())?;
        counter(
            encoder,
            "neosens_status_processed",
            "Device status messages processed",
            self.ingest.processed(),
        )?;
        let m = encoder.encode_descriptor(
            "neosens_status_dropped",
            "Device status messages dropped, by reason",
            None,
            MetricType::Counter,
        )?;
        let mut m = m;
        for reason in [
            StatusDrop::Garbage,
            StatusDrop::TooLarge,
            StatusDrop::UnknownDevice,
            StatusDrop::Disabled,
            StatusDrop::WrongTopic,
            StatusDrop::Duplicate,
            StatusDrop::Retained,
        ] {
            let labels = [("reason", reason.as_str())];
            ConstCounter::new(self.ingest.dropped(reason)).encode(m.encode_family(&labels)?)?;
        }
        gauge(
            encoder,
            "neosens_http_open_connections",
            "Connections open on the main HTTP listener",
            self.connections.open() as i64,
        )?;
        counter(
            encoder,
            "neosens_http_connections_refused",
            "Connections closed at once because their client address held too many",
            self.connections.refused(),
        )?;
        counter(
            encoder,
            "neosens_status_retained_cleared",
            "Retained or oversized messages central removed from device status topics",
            self.ingest.cleared(),
        )?;
        counter(
            encoder,
            "neosens_status_untrusted_msg_id",
            "Statuses with a msg_id but no valid relay stamp of a gateway of the device (kept; the id ignored)",
            self.ingest.untrusted(),
        )?;
        Ok(())
    }

    /// The series of devices by state.
    fn encode_devices(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(encoder, "neosens_devices", "Devices registered", self.registry.device_count() as i64)?;
        let mut by = encoder.encode_descriptor(
            "neosens_devices_by_state",
            "Devices by state, type and site (never_seen, ok, outdated, disabled)",
            None,
            MetricType::Gauge,
        )?;
        for ((state, device_type, site), n) in self.registry.state_counts(|id| self.monitor.is_outdated(id)) {
            let labels = [("state", state), ("type", device_type.as_str()), ("site", site.as_str())];
            ConstGauge::new(n as i64).encode(by.encode_family(&labels)?)?;
        }
        let (outdated, _, _) = self.monitor.counts();
        gauge(
            encoder,
            "neosens_devices_outdated",
            "Devices not seen for longer than their threshold",
            outdated as i64,
        )?;
        Ok(())
    }

    /// The series of open alerts and webhook deliveries.
    fn encode_alerts(&self, encoder: &mut DescriptorEncoder, leading: bool) -> Result<(), std::fmt::Error> {
        gauge(
            encoder,
            "neosens_leader",
            "1 while this replica leads (monitor, alert notifications, dynamic security, campaigns, bulk orders, gateways; always 1 on an embedded store); only the leader exposes device states, open alerts and gateways' health",
            i64::from(leading),
        )?;
        if leading {
            let (_, outages, failures) = self.monitor.counts();
            let mut m = encoder.encode_descriptor(
                "neosens_alerts_open",
                "Alerts open, by kind (outage, failure)",
                None,
                MetricType::Gauge,
            )?;
            for (kind, n) in [("outage", outages), ("failure", failures)] {
                ConstGauge::new(n as i64).encode(m.encode_family(&[("kind", kind)])?)?;
            }
        }
        // Always exposed (zeros without a webhook) so that alerting rules find the series.
        let mut m = encoder.encode_descriptor(
            "neosens_webhook_deliveries",
            "Alert webhook deliveries by outcome",
            None,
            MetricType::Counter,
        )?;
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        for (outcome, n) in [
            ("delivered", self.webhook.as_ref().map_or(0, |w| load(&w.delivered))),
            ("retried", self.webhook.as_ref().map_or(0, |w| load(&w.retried))),
            ("failed", self.webhook.as_ref().map_or(0, |w| load(&w.failed))),
            ("dropped", self.webhook.as_ref().map_or(0, |w| load(&w.dropped))),
        ] {
            ConstCounter::new(n).encode(m.encode_family(&[("outcome", outcome)])?)?;
        }
        Ok(())
    }

    /// The series of the store, the gateways' health and the revision.
    fn encode_gateways(&self, encoder: &mut DescriptorEncoder, leading: bool) -> Result<(), std::fmt::Error> {
        gauge(
            encoder,
            "neosens_store_size_bytes",
            "Bytes the registry's store takes on disk",
            self.registry.store_size_bytes() as i64,
        )?;
        // Every registered gateway, in touch or not: a gateway that never called is down.
        let health = self.gateways.all();
        let revision = self.registry.revision();
        let now = crate::model::Timestamp::now().millis();
        let gateways = if leading { self.registry.gateways() } else { Vec::new() };
        for (name, help, value) in GATEWAY_GAUGES {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for g in &gateways {
                let c = health.get(&g.id).cloned().unwrap_or_default();
                ConstGauge::new(value(&c, now, revision))
                    .encode(m.encode_family(&[("gateway", g.name.as_str())])?)?;
            }
        }
        gauge(
            encoder,
            "neosens_registry_revision",
            "Revision of the registry's change log",
            self.registry.revision() as i64,
        )?;
        gauge(
            encoder,
            "neosens_unclaimed_devices",
            "Unregistered MACs that asked for their credentials in the last 24 h (the adoption inbox, at most 1000)",
            self.unclaimed.len() as i64,
        )?;
        encode_forwarders(encoder, &gateways, &health, now)
    }
}

/// Per packet forwarder (gateway, EUI): bounded by the registered gateways × `MAX_FORWARDERS`,
/// since central refuses a report with more.
type ForwarderSeries = (&'static str, &'static str, MetricType, fn(&ForwarderHealth, i64) -> i64);

const FORWARDER_SERIES: [ForwarderSeries; 4] = [
    (
        "neosens_forwarder_up",
        "Whether the LoRaWAN packet forwarder has been heard by its gateway in the last 5 min",
        MetricType::Gauge,
        |f, now| i64::from(!f.is_silent(now)),
    ),
    (
        "neosens_forwarder_last_seen_timestamp_seconds",
        "Last datagram of the packet forwarder, as its gateway last reported",
        MetricType::Gauge,
        |f, _| f.last_seen_ms / 1000,
    ),
    (
        "neosens_forwarder_uplinks",
        "Radio packets the packet forwarder pushed to its gateway (since the agent started)",
        MetricType::Counter,
        |f, _| f.figures.uplinks as i64,
    ),
    (
        "neosens_forwarder_tx_emitted",
        "Downlinks the packet forwarder says it emitted (sum of its stat txnb)",
        MetricType::Counter,
        |f, _| f.figures.tx_emitted as i64,
    ),
];

fn encode_forwarders(
    encoder: &mut DescriptorEncoder,
    gateways: &[crate::registry::GatewayInfo],
    health: &std::collections::HashMap<neosens_protocol::ids::GatewayId, Contact>,
    now: i64,
) -> Result<(), std::fmt::Error> {
    for (name, help, kind, value) in FORWARDER_SERIES {
        let mut m = encoder.encode_descriptor(name, help, None, kind)?;
        for g in gateways {
            for f in health.get(&g.id).map(|c| c.forwarders.as_slice()).unwrap_or_default() {
                let labels = [("gateway", g.name.as_str()), ("eui", f.eui.as_str())];
                let v = value(f, now);
                match kind {
                    MetricType::Counter => {
                        ConstCounter::new(v.max(0) as u64).encode(m.encode_family(&labels)?)?
                    }
                    _ => ConstGauge::new(v).encode(m.encode_family(&labels)?)?,
                }
            }
        }
    }
    Ok(())
}

impl Metrics {
    /// Metrics reading live values from these components.
    pub fn new(sources: Sources, tasks: Arc<neosens_runtime::supervisor::TaskHealth>) -> Self {
        let mut prom = PromRegistry::default();
        prom.register_collector(Box::new(neosens_runtime::supervisor::TaskMetrics {
            prefix: "neosens",
            health: tasks,
        }));
        let broker_auth = Family::<AuthLabels, Counter>::default();
        prom.register(
            "neosens_broker_auth_decisions",
            "Broker authentication/ACL decisions",
            broker_auth.clone(),
        );
        // The main series exist from the start (at zero), so that rules and dashboards find
        // them before the first request.
        for contract in ["goauth", "legacy"] {
            for check in ["auth", "superuser", "acl"] {
                drop(broker_auth.get_or_create(&AuthLabels { contract, check, outcome: "allow" }));
            }
        }
        let provisioning = Family::<ProvisioningLabels, Counter>::default();
        for (path, outcome) in [
            ("credentials", "delivered"),
            ("credentials", "served"),
            ("credentials", "unknown_mac"),
            ("credentials", "throttled"),
            ("config", "served"),
            ("logger", "served"),
        ] {
            drop(provisioning.get_or_create(&ProvisioningLabels { path, outcome }));
        }
        prom.register(
            "neosens_provisioning_requests",
            "Legacy provisioning requests by outcome",
            provisioning.clone(),
        );
        prom.register_collector(Box::new(CommitTimesMetric(Arc::clone(&sources.registry))));
        prom.register_collector(Box::new(sources));
        let info =
            Family::<[(&'static str, &'static str); 1], prometheus_client::metrics::gauge::Gauge>::default();
        info.get_or_create(&[("version", env!("CARGO_PKG_VERSION"))]).set(1);
        prom.register("neosens_build_info", "Build information", info);
        let http = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0])
        });
        prom.register(
            "neosens_http_request_duration_seconds",
            "HTTP request durations by route pattern",
            http.clone(),
        );
        Metrics { registry: prom, http, broker_auth, provisioning }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Rewrites OpenMetrics text in the classic Prometheus text format (0.0.4): counter families are
/// named after their `_total` samples, info families become gauges named `_info`, `# UNIT` and
/// `# EOF` go, `unknown` reads `untyped`.
pub fn to_classic_text(openmetrics: &str) -> String {
    // Family name → classic name, from the TYPE lines (HELP comes first in OpenMetrics).
    let mut renamed = std::collections::HashMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            match rest.split_once(' ') {
                Some((name, "counter")) => renamed.insert(name, (format!("{name}_total"), "counter")),
                Some((name, "info")) => renamed.insert(name, (format!("{name}_info"), "gauge")),
                Some((name, "unknown")) => renamed.insert(name, (name.to_owned(), "untyped")),
                _ => None,
            };
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = line
            .strip_prefix("# HELP ")
            .map(|r| ("HELP", r))
            .or(line.strip_prefix("# TYPE ").map(|r| ("TYPE", r)));
        match header {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                match (renamed.get(name), kind) {
                    (Some((classic, t)), "TYPE") => out.push_str(&format!("# TYPE {classic} {t}")),
                    (Some((classic, _)), _) => out.push_str(&format!("# HELP {classic} {tail}")),
                    (None, _) => out.push_str(line),
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_a_fixed_set() {
        use axum::http::Method;
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for invented in ["XMETHOD1abc", "get", "PROPFIND", "BREW"] {
            assert_eq!(
                method_label(&Method::from_bytes(invented.as_bytes()).unwrap()),
                "other",
                "{invented}"
            );
        }
    }

    #[test]
    fn classic_text_names_families_after_their_samples() {
        let om = "# HELP a_connects MQTT connections.\n# TYPE a_connects counter\na_connects_total 3\n\
                  # HELP a_build Build.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n\
                  # HELP a_up Up.\n# TYPE a_up gauge\n# UNIT a_up none\na_up 1\n# EOF\n";
        assert_eq!(
            to_classic_text(om),
            "# HELP a_connects_total MQTT connections.\n# TYPE a_connects_total counter\na_connects_total 3\n\
             # HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n\
             # HELP a_up Up.\n# TYPE a_up gauge\na_up 1\n"
        );
    }
}
