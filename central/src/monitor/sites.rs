//! Alerts for remote sites gone quiet for long. A gateway in local-broker mode that is out of
//! touch makes its buildings *disconnected*: their devices' outage alerts are held, since their
//! statuses queue at the site (docs/edge.md, "Remote sites"). That is right for a WAN outage of
//! minutes or hours, and would hide a site that is gone for good (a dead gateway, a power cut
//! at the field station). So one alert per such gateway opens once it has been out of touch
//! for `[alerts] site_disconnected_after_min` (60 by default), and resolves when it is back in
//! touch, leaves local-broker mode, or is deleted.

use std::collections::{HashMap, HashSet};

use neosens_protocol::ids::GatewayId;

use super::alerts::{Event, Monitor};
use crate::model::{AlertKind, AlertRecord, Timestamp};

/// A gateway in local-broker mode, as the monitor sees it.
#[derive(Debug, Clone)]
pub struct SiteLink {
    /// The gateway.
    pub gateway: GatewayId,
    /// Its name (for the alert's text).
    pub name: String,
    /// Its last contact with central, ms since the epoch (`None`: none since central started).
    pub last_contact_ms: Option<i64>,
    /// Whether it is in touch now.
    pub up: bool,
}

impl Monitor {
    /// Opens an alert for each local-broker gateway out of touch for `after_ms` or more, and
    /// resolves those back in touch or no longer in the list (mode off, deleted). `links`: every
    /// gateway in local-broker mode.
    pub(super) fn sites(&self, links: &[SiteLink], after_ms: i64, now: i64) -> Vec<(Event, AlertRecord)> {
        let mut out = Vec::new();
        let mut s = self.shared.lock();
        let away: HashMap<GatewayId, &SiteLink> =
            links.iter().filter(|l| !l.up).map(|l| (l.gateway, l)).collect();
        // Since when each is away, as this monitor knows it (its last contact, or the first time
        // this monitor saw it away after a restart).
        s.sites.away_since.retain(|g, _| away.contains_key(g));
        for l in away.values() {
            s.sites.away_since.entry(l.gateway).or_insert(l.last_contact_ms.unwrap_or(now));
        }
        let open: Vec<(GatewayId, u64)> = s.sites.open.iter().map(|(g, id)| (*g, *id)).collect();
        for (gateway, id) in open {
            if !away.contains_key(&gateway) {
                s.sites.open.remove(&gateway);
                s.resolve_failure(id, now, &mut out);
            }
        }
        let due: HashSet<GatewayId> = s
            .sites
            .away_since
            .iter()
            .filter(|(g, since)| now - **since >= after_ms && !s.sites.open.contains_key(g))
            .map(|(g, _)| *g)
            .collect();
        for gateway in &due {
            let (l, since) = (away[gateway], s.sites.away_since[gateway]);
            let id = s.tracker.next_id();
            let record = AlertRecord {
                id,
                kind: AlertKind::SiteDisconnected,
                building: None,
                device: None,
                rule: Some(gateway.to_string()),
                detail: Some(format!(
                    "gateway {} (local broker) out of touch since {}: its devices' statuses wait at the site, their outages are not alerted",
                    l.name,
                    Timestamp(since).to_rfc3339()
                )),
                outdated: 0,
                total_devices: 0,
                opened_at: now,
                resolved_at: None,
                ack: None,
            };
            s.sites.open.insert(*gateway, id);
            s.records.insert(id, record.clone());
            s.dirty.insert(id);
            out.push((Event::Opened, record));
        }
        if !due.is_empty() {
            s.prune();
        }
        out
    }
}

/// What the monitor keeps of disconnected sites: at most one entry per gateway in each map.
#[derive(Debug, Default)]
pub(super) struct Sites {
    /// Gateways out of touch → since when.
    pub(super) away_since: HashMap<GatewayId, i64>,
    /// Open alerts: gateway → alert id.
    pub(super) open: HashMap<GatewayId, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: GatewayId = GatewayId::from_bytes([7; 16]);
    const T0: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn link(up: bool, last_contact_ms: Option<i64>) -> Vec<SiteLink> {
        vec![SiteLink { gateway: GW, name: "gw-carca".into(), last_contact_ms, up }]
    }

    fn kinds(events: &[(Event, AlertRecord)]) -> Vec<(Event, AlertKind)> {
        events.iter().map(|(e, r)| (*e, r.kind)).collect()
    }

    #[test]
    fn a_site_away_for_long_is_alerted_once_and_resolved_when_back() {
        let m = Monitor::default();
        assert!(m.sites(&link(true, Some(T0)), HOUR, T0).is_empty());
        assert!(m.sites(&link(false, Some(T0)), HOUR, T0 + HOUR - 1).is_empty(), "an outage of minutes");
        let opened = m.sites(&link(false, Some(T0)), HOUR, T0 + HOUR);
        assert_eq!(kinds(&opened), [(Event::Opened, AlertKind::SiteDisconnected)]);
        let record = &opened[0].1;
        assert_eq!(record.rule.as_deref(), Some(GW.to_string().as_str()));
        assert!(record.detail.as_deref().unwrap().contains("gw-carca"), "{record:?}");
        assert!(m.sites(&link(false, Some(T0)), HOUR, T0 + 2 * HOUR).is_empty(), "once");
        let resolved = m.sites(&link(true, Some(T0 + 3 * HOUR)), HOUR, T0 + 3 * HOUR);
        assert_eq!(kinds(&resolved), [(Event::Resolved, AlertKind::SiteDisconnected)]);
        // Away again, unknown since when (central restarted): counted from now.
        assert!(m.sites(&link(false, None), HOUR, T0 + 4 * HOUR).is_empty());
        assert_eq!(m.sites(&link(false, None), HOUR, T0 + 5 * HOUR).len(), 1);
        // Mode off (or the gateway deleted): resolved, nothing kept.
        assert_eq!(
            kinds(&m.sites(&[], HOUR, T0 + 6 * HOUR)),
            [(Event::Resolved, AlertKind::SiteDisconnected)]
        );
        let s = m.shared.lock();
        assert!(s.sites.away_since.is_empty() && s.sites.open.is_empty());
    }
}
