//! What central knows of each gateway's health: its last contact (every authenticated request,
//! sync long-polls included), the registry revision it has applied, and the figures it reports
//! about itself (outbox depth and age), and the LoRaWAN packet forwarders it hears. Exposed per
//! gateway in `/metrics` and the API, so a Prometheus outside the gateways' firewalls only has
//! to scrape central; the monitor opens an alert when a forwarder falls silent.

use std::collections::HashMap;
use std::sync::Arc;

use neosens_protocol::ids::GatewayId;
use parking_lot::Mutex;
use serde::Serialize;

/// A gateway is up while its last contact is more recent than this (a sync long-poll lasts at
/// most a minute; two missed polls mean it is down).
pub const UP_WINDOW_MS: i64 = 150_000;

/// Figures a gateway reports about itself: defined with the other gateway contracts.
pub use neosens_protocol::edge::HealthReport;
use neosens_protocol::edge::{ForwarderFigures, ForwarderReport, MAX_FORWARDERS};

/// A forwarder not heard for this long is forgotten (removed for good): as long as its gateway
/// keeps it.
pub const FORWARDER_FORGET_MS: i64 = 7 * 24 * 3600 * 1000;

/// A packet forwarder is silent when the gateway has heard nothing from it for this long. A
/// forwarder sends a keep-alive every 10 s and a `stat` every 30 s by default; the gateway
/// reports every minute: five minutes leave room for both, and for a forwarder restarting.
pub const FORWARDER_SILENT_MS: i64 = 300_000;

/// One gateway's health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Contact {
    /// Last authenticated request, ms since the epoch.
    pub last_contact_ms: i64,
    /// Registry revision it has applied.
    pub revision: u64,
    /// Its last report (its forwarders are under `forwarders`).
    pub report: Option<HealthReport>,
    /// The LoRaWAN packet forwarders it heard, as of its last report, by EUI.
    pub forwarders: Vec<ForwarderHealth>,
}

/// A packet forwarder, as its gateway last reported it, on central's clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ForwarderHealth {
    /// Gateway EUI (16 lowercase hex digits).
    pub eui: String,
    /// Its last datagram, ms since the epoch.
    pub last_seen_ms: i64,
    /// Its last `PULL_DATA` keep-alive (its downlink path), if any.
    pub last_pull_ms: Option<i64>,
    /// Its last `stat`, if any.
    pub last_stat_ms: Option<i64>,
    /// Whether it has been silent for 5 min or more (as of this answer).
    pub silent: bool,
    /// What it sent and said, as its gateway counts it (since the agent started).
    #[serde(flatten)]
    #[schema(inline)]
    pub figures: ForwarderFigures,
}

impl ForwarderHealth {
    /// The forwarder of a report received at `now` (ages become times on central's clock).
    fn from_report(f: ForwarderReport, now: i64) -> Self {
        let at =
            |age_s: u64| now.saturating_sub(i64::try_from(age_s.saturating_mul(1000)).unwrap_or(i64::MAX));
        ForwarderHealth {
            last_seen_ms: at(f.silent_s),
            last_pull_ms: f.pull_age_s.map(at),
            last_stat_ms: f.stat_age_s.map(at),
            silent: false,
            figures: f.figures,
            eui: f.eui,
        }
    }

    /// Whether it is silent at `now`.
    pub fn is_silent(&self, now: i64) -> bool {
        now - self.last_seen_ms >= FORWARDER_SILENT_MS
    }
}

impl Contact {
    /// Whether it is up at `now`.
    pub fn is_up(&self, now: i64) -> bool {
        now - self.last_contact_ms < UP_WINDOW_MS
    }

    /// This contact with each forwarder's `silent` as of `now`.
    pub fn as_of(mut self, now: i64) -> Self {
        for f in &mut self.forwarders {
            f.silent = f.is_silent(now);
        }
        self
    }
}

/// The health of every gateway that has been in touch since central started.
#[derive(Debug, Clone, Default)]
pub struct GatewayHealth {
    inner: Arc<Mutex<HashMap<GatewayId, Contact>>>,
}

impl GatewayHealth {
    /// The gateway made a request; `revision` is the one it says it has applied, if it said.
    pub fn contact(&self, id: GatewayId, revision: Option<u64>, now: i64) {
        let mut map = self.inner.lock();
        let c = map.entry(id).or_default();
        c.last_contact_ms = c.last_contact_ms.max(now);
        if let Some(r) = revision {
            c.revision = r;
        }
    }

    /// The gateway reported its own figures (checked by the caller: at most `MAX_FORWARDERS`).
    /// Forwarders it no longer lists (its agent restarted and has not heard them since) are
    /// kept until [`FORWARDER_FORGET_MS`] after they were last heard, so a dead forwarder stays
    /// silent — and alerted — across agent restarts: `2 × MAX_FORWARDERS` per gateway at most.
    pub fn report(&self, id: GatewayId, mut report: HealthReport, now: i64) {
        self.contact(id, None, now);
        let reported = std::mem::take(&mut report.forwarders);
        let mut map = self.inner.lock();
        let c = map.entry(id).or_default();
        let mut forwarders: Vec<ForwarderHealth> =
            reported.into_iter().map(|f| ForwarderHealth::from_report(f, now)).collect();
        let mut kept: Vec<ForwarderHealth> = std::mem::take(&mut c.forwarders)
            .into_iter()
            .filter(|old| now - old.last_seen_ms < FORWARDER_FORGET_MS)
            .filter(|old| !forwarders.iter().any(|f| f.eui == old.eui))
            .collect();
        kept.sort_by_key(|f| std::cmp::Reverse(f.last_seen_ms));
        kept.truncate((2 * MAX_FORWARDERS).saturating_sub(forwarders.len()));
        forwarders.extend(kept);
        forwarders.sort_by(|a, b| a.eui.cmp(&b.eui));
        c.forwarders = forwarders;
        c.report = Some(report);
    }

    /// Forgets a gateway (deleted from the registry).
    pub fn forget(&self, id: GatewayId) {
        self.inner.lock().remove(&id);
    }

    /// One gateway's health, if it has been in touch.
    pub fn get(&self, id: GatewayId) -> Option<Contact> {
        self.inner.lock().get(&id).cloned()
    }

    /// Every gateway's health.
    pub fn all(&self) -> HashMap<GatewayId, Contact> {
        self.inner.lock().clone()
    }
}

/// The buildings served by a gateway in local-broker mode that is out of reach at `now`
/// (no contact for [`UP_WINDOW_MS`], or none since central started): "disconnected", their
/// devices' statuses queued on the gateway.
pub fn disconnected_buildings(
    registry: &crate::registry::Registry,
    health: &GatewayHealth,
    now: i64,
) -> std::collections::HashSet<neosens_protocol::ids::BuildingId> {
    let contacts = health.all();
    registry
        .local_broker_scopes()
        .into_iter()
        .filter(|(g, _)| !contacts.get(g).is_some_and(|c| c.is_up(now)))
        .flat_map(|(_, buildings)| buildings)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_while_in_touch() {
        let h = GatewayHealth::default();
        let id = GatewayId::from_bytes([1; 16]);
        assert!(h.get(id).is_none());
        h.contact(id, Some(42), 1_000);
        h.contact(id, None, 500);
        let c = h.get(id).unwrap();
        assert_eq!((c.last_contact_ms, c.revision), (1_000, 42), "an older contact does not go back");
        assert!(c.is_up(1_000 + UP_WINDOW_MS - 1));
        assert!(!c.is_up(1_000 + UP_WINDOW_MS));
        h.report(id, HealthReport { outbox_depth: 3, ..Default::default() }, 2_000);
        assert_eq!(h.get(id).unwrap().report.unwrap().outbox_depth, 3);
    }

    /// Ages in the report become times on central's clock; silence is judged when asked.
    #[test]
    fn forwarders_are_placed_on_centrals_clock() {
        let h = GatewayHealth::default();
        let id = GatewayId::from_bytes([1; 16]);
        let heard = ForwarderReport {
            eui: "aa555a0000000101".into(),
            silent_s: 4,
            pull_age_s: Some(9),
            figures: ForwarderFigures { uplinks: 80, ..Default::default() },
            ..Default::default()
        };
        let report = HealthReport { forwarders: vec![heard], ..Default::default() };
        h.report(id, report, 1_000_000);
        let c = h.get(id).unwrap();
        assert!(c.report.as_ref().unwrap().forwarders.is_empty(), "kept once, under `forwarders`");
        let f = &c.forwarders[0];
        assert_eq!(
            (f.last_seen_ms, f.last_pull_ms, f.last_stat_ms, f.figures.uplinks),
            (996_000, Some(991_000), None, 80)
        );
        assert!(!c.clone().as_of(996_000 + FORWARDER_SILENT_MS - 1).forwarders[0].silent);
        assert!(c.as_of(996_000 + FORWARDER_SILENT_MS).forwarders[0].silent);
        let absurd =
            ForwarderReport { eui: "aa555a0000000102".into(), silent_s: u64::MAX, ..Default::default() };
        h.report(id, HealthReport { forwarders: vec![absurd], ..Default::default() }, 5);
        let c = h.get(id).unwrap();
        let absurd = c.forwarders.iter().find(|f| f.eui == "aa555a0000000102").unwrap();
        assert!(absurd.is_silent(5), "an age past the epoch saturates");
        h.forget(id);
        assert!(h.get(id).is_none());
    }

    /// A forwarder the agent no longer lists (it restarted) stays, silent, for a week.
    #[test]
    fn forwarders_outlive_an_agent_restart_for_a_week_and_stay_bounded() {
        let h = GatewayHealth::default();
        let id = GatewayId::from_bytes([1; 16]);
        let one = |eui: &str| ForwarderReport { eui: eui.into(), ..Default::default() };
        h.report(id, HealthReport { forwarders: vec![one("0000000000000001")], ..Default::default() }, 1_000);
        h.report(
            id,
            HealthReport { forwarders: vec![one("0000000000000002")], ..Default::default() },
            61_000,
        );
        let euis = |h: &GatewayHealth| {
            h.get(id).unwrap().forwarders.iter().map(|f| f.eui.clone()).collect::<Vec<_>>()
        };
        assert_eq!(euis(&h), ["0000000000000001", "0000000000000002"]);
        assert_eq!(h.get(id).unwrap().forwarders[0].last_seen_ms, 1_000, "its last report's figure");
        h.report(id, HealthReport::default(), 1_000 + FORWARDER_FORGET_MS);
        assert_eq!(euis(&h), ["0000000000000002"], "forgotten a week after it was last heard");
        // Reports with ever new EUIs: at most 2 × MAX_FORWARDERS kept.
        for round in 0..10 {
            let forwarders =
                (0..MAX_FORWARDERS).map(|n| one(&format!("{:016x}", 1000 + round * 100 + n))).collect();
            h.report(id, HealthReport { forwarders, ..Default::default() }, 2_000_000 + round as i64);
        }
        assert_eq!(h.get(id).unwrap().forwarders.len(), 2 * MAX_FORWARDERS);
    }
}
