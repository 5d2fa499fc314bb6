//! Alerts for LoRaWAN packet forwarders fallen silent: a gateway in touch with central that has
//! not heard one of its forwarders for 5 min (`FORWARDER_SILENT_MS`) gets one alert per
//! forwarder, resolved when the gateway hears it again. Without it a dead concentrator only
//! shows, much later, as many outdated nodes.
//!
//! While the gateway itself is out of touch nothing opens or resolves (it cannot tell; its own
//! absence is the gateway's `up` series). An alert also resolves when its gateway is deleted,
//! or when its forwarder has been forgotten (unheard for a week).

use std::collections::HashMap;

use neosens_protocol::ids::GatewayId;

use super::alerts::{Event, Monitor};
use crate::gateway_health::{FORWARDER_FORGET_MS, FORWARDER_SILENT_MS};
use crate::model::{AlertKind, AlertRecord, Timestamp};

/// How often the monitor looks at the forwarders (their figures arrive with each gateway's
/// report, every minute).
pub const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// A registered gateway and what central knows of its forwarders.
#[derive(Debug, Clone)]
pub struct GatewayForwarders {
    /// The gateway.
    pub gateway: GatewayId,
    /// Its name (for the alert's text).
    pub name: String,
    /// Whether it is in touch with central.
    pub up: bool,
    /// Its forwarders: (gateway EUI, last heard, ms since the epoch).
    pub forwarders: Vec<(String, i64)>,
}

/// The stored key of a forwarder's alert (its `rule`): `<gateway id>/<EUI>`.
pub fn key(gateway: GatewayId, eui: &str) -> String {
    format!("{gateway}/{eui}")
}

/// The gateway and EUI of a stored key.
pub fn parse_key(key: &str) -> Option<(GatewayId, String)> {
    let (gateway, eui) = key.split_once('/')?;
    Some((gateway.parse().ok()?, eui.to_owned()))
}

impl Monitor {
    /// Opens an alert for each forwarder silent now at a gateway in touch, and resolves those
    /// heard again (or whose gateway is gone, or which were forgotten). `gateways`: every
    /// registered gateway.
    pub(super) fn forwarders(&self, gateways: &[GatewayForwarders], now: i64) -> Vec<(Event, AlertRecord)> {
        let by_id: HashMap<GatewayId, &GatewayForwarders> = gateways.iter().map(|g| (g.gateway, g)).collect();
        let mut out = Vec::new();
        let mut s = self.shared.lock();
        let open: Vec<((GatewayId, String), u64)> =
            s.forwarders.iter().map(|(k, id)| (k.clone(), *id)).collect();
        for ((gateway, eui), id) in open {
            let over = match by_id.get(&gateway) {
                None => true,
                Some(g) if !g.up => false,
                Some(g) => match g.forwarders.iter().find(|(e, _)| *e == eui) {
                    Some((_, last_seen)) => now - last_seen < FORWARDER_SILENT_MS,
                    // Not known here (forgotten, or central restarted since): over once it
                    // would have been forgotten.
                    None => s.records.get(&id).is_none_or(|r| now - r.opened_at >= FORWARDER_FORGET_MS),
                },
            };
            if over {
                s.forwarders.remove(&(gateway, eui));
                s.resolve_failure(id, now, &mut out);
            }
        }
        let mut opened = false;
        for g in gateways.iter().filter(|g| g.up) {
            for (eui, last_seen) in &g.forwarders {
                let k = (g.gateway, eui.clone());
                if now - last_seen < FORWARDER_SILENT_MS || s.forwarders.contains_key(&k) {
                    continue;
                }
                let id = s.tracker.next_id();
                let record = AlertRecord {
                    id,
                    kind: AlertKind::ForwarderSilent,
                    building: None,
                    device: None,
                    rule: Some(key(g.gateway, eui)),
                    detail: Some(format!(
                        "packet forwarder {eui} of gateway {}: not heard since {}",
                        g.name,
                        Timestamp(*last_seen).to_rfc3339()
                    )),
                    outdated: 0,
                    total_devices: 0,
                    opened_at: now,
                    resolved_at: None,
                    ack: None,
                };
                s.forwarders.insert(k, id);
                s.records.insert(id, record.clone());
                s.dirty.insert(id);
                out.push((Event::Opened, record));
                opened = true;
            }
        }
        if opened {
            s.prune();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: GatewayId = GatewayId::from_bytes([7; 16]);
    const EUI: &str = "aa555a0000000101";
    const T0: i64 = 1_700_000_000_000;

    fn gateway(up: bool, last_seen: Option<i64>) -> Vec<GatewayForwarders> {
        vec![GatewayForwarders {
            gateway: GW,
            name: "carcassonne".into(),
            up,
            forwarders: last_seen.map(|t| (EUI.to_owned(), t)).into_iter().collect(),
        }]
    }

    fn kinds(events: &[(Event, AlertRecord)]) -> Vec<(Event, AlertKind)> {
        events.iter().map(|(e, r)| (*e, r.kind)).collect()
    }

    #[test]
    fn a_silent_forwarder_opens_one_alert_resolved_when_heard_again() {
        let m = Monitor::default();
        assert!(m.forwarders(&gateway(true, Some(T0)), T0 + FORWARDER_SILENT_MS - 1).is_empty());
        let opened = m.forwarders(&gateway(true, Some(T0)), T0 + FORWARDER_SILENT_MS);
        assert_eq!(kinds(&opened), [(Event::Opened, AlertKind::ForwarderSilent)]);
        let r = &opened[0].1;
        assert_eq!(r.rule.as_deref().and_then(parse_key), Some((GW, EUI.to_owned())));
        assert!(r.detail.as_deref().unwrap().contains("carcassonne"), "{:?}", r.detail);
        let view = &m.alerts(false)[0];
        assert_eq!(
            (view.alert.gateway.clone(), view.alert.forwarder.as_deref()),
            (Some(GW.to_string()), Some(EUI))
        );
        assert_eq!(view.alert.rule, None, "the key is not shown as a rule");
        // Still silent: nothing more. Its gateway out of touch: nothing either.
        assert!(m.forwarders(&gateway(true, Some(T0)), T0 + 2 * FORWARDER_SILENT_MS).is_empty());
        assert!(m.forwarders(&gateway(false, Some(T0 + 1)), T0 + 3 * FORWARDER_SILENT_MS).is_empty());
        let back = T0 + 4 * FORWARDER_SILENT_MS;
        let resolved = m.forwarders(&gateway(true, Some(back - 1_000)), back);
        assert_eq!(kinds(&resolved), [(Event::Resolved, AlertKind::ForwarderSilent)]);
        assert!(m.alerts(false).is_empty());
        assert!(m.forwarders(&gateway(true, Some(back - 1_000)), back + 1).is_empty());
    }

    #[test]
    fn a_deleted_gateway_or_a_forgotten_forwarder_resolves_its_alert() {
        let m = Monitor::default();
        let at = T0 + FORWARDER_SILENT_MS;
        assert_eq!(m.forwarders(&gateway(true, Some(T0)), at).len(), 1);
        assert_eq!(kinds(&m.forwarders(&[], at + 1)), [(Event::Resolved, AlertKind::ForwarderSilent)]);
        assert_eq!(m.forwarders(&gateway(true, Some(T0)), at + 2).len(), 1, "a new alert");
        assert!(m.forwarders(&gateway(true, None), at + 3).is_empty(), "unknown since: kept for a week");
        let resolved = m.forwarders(&gateway(true, None), at + 2 + FORWARDER_FORGET_MS);
        assert_eq!(kinds(&resolved), [(Event::Resolved, AlertKind::ForwarderSilent)]);
    }

    /// An open forwarder alert survives a restart of central under its id, and is resolved
    /// when the forwarder is heard again after it.
    #[tokio::test]
    async fn an_open_forwarder_alert_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let (registry, _, _) =
            neosens_runtime::blocking::run(move || crate::registry::test_registry(&path, 1)).await;
        let open = |r: &std::sync::Arc<crate::registry::Registry>| {
            let store = r.alert_store();
            neosens_runtime::blocking::run(move || Monitor::open(store))
        };
        let m = open(&registry).await.unwrap();
        let opened = m.forwarders(&gateway(true, Some(T0)), T0 + FORWARDER_SILENT_MS);
        let id = opened[0].1.id;
        m.persist().await.unwrap();
        drop(m);
        let m = open(&registry).await.unwrap();
        let view = &m.alerts(false)[0];
        assert_eq!((view.alert.id, view.alert.forwarder.as_deref(), view.state), (id, Some(EUI), "open"));
        assert!(
            m.forwarders(&gateway(true, Some(T0)), T0 + 2 * FORWARDER_SILENT_MS).is_empty(),
            "not opened twice"
        );
        let back = T0 + 3 * FORWARDER_SILENT_MS;
        let resolved = m.forwarders(&gateway(true, Some(back)), back);
        assert_eq!((resolved[0].0, resolved[0].1.id), (Event::Resolved, id));
    }

    #[test]
    fn keys_round_trip_and_bad_ones_are_none() {
        assert_eq!(parse_key(&key(GW, EUI)), Some((GW, EUI.to_owned())));
        for bad in ["", "nope", "nope/aa", "/aa555a0000000101"] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }
}
