//! What central knows of each gateway's health: its last contact (every authenticated request,
//! sync long-polls included), the registry revision it has applied, and the figures it reports
//! about itself (outbox depth and age). Exposed per gateway in `/metrics` and the API, so a
//! Prometheus outside the gateways' firewalls only has to scrape central.

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

/// One gateway's health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Contact {
    /// Last authenticated request, ms since the epoch.
    pub last_contact_ms: i64,
    /// Registry revision it has applied.
    pub revision: u64,
    /// Its last report.
    pub report: Option<HealthReport>,
}

impl Contact {
    /// Whether it is up at `now`.
    pub fn is_up(&self, now: i64) -> bool {
        now - self.last_contact_ms < UP_WINDOW_MS
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

    /// The gateway reported its own figures.
    pub fn report(&self, id: GatewayId, report: HealthReport, now: i64) {
        self.contact(id, None, now);
        self.inner.lock().entry(id).or_default().report = Some(report);
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
}
