//! Local-broker mode (docs/edge.md, "Remote sites"): a gateway serves its scope's devices through
//! a Mosquitto of its own, bridged to central's broker.
//!
//! - Central gives those devices the gateway's broker as `server`/`port` in
//!   `/device/credentials` ([`State::local_broker_of`]), unless a device has a broker of its own.
//! - Central hands the gateway one password-file line per device, in Mosquitto's own PBKDF2
//!   format ([`mosquitto_hash`]): the local broker checks device passwords without central's
//!   keys, or the devices' secrets, ever being on the gateway.

use base64::Engine as _;
use neosens_protocol::sync::BrokerAccount;
use neosens_runtime::keys::Keys;

use neosens_protocol::ids::DeviceId;

use super::Registry;
use super::gateways::building_in_scope;
use super::state::State;
use crate::model::{Device, LocalBroker, Timestamp};

/// A status sent this long before it arrived was queued on the way (a gateway's local broker
/// while the WAN was down); under it, the arrival time is as good and immune to device clocks.
const QUEUED_AFTER_MS: i64 = 60_000;
/// A gateway silent this long was out of reach (it reports every 30 s).
const OUT_OF_REACH_MS: i64 = crate::gateway_health::UP_WINDOW_MS;
/// After an outage, how long its queue may take to drain: statuses arriving later are live.
const DRAIN_WINDOW_MS: i64 = 15 * 60_000;

/// What a gateway in local-broker mode last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SiteLink {
    /// Its broker while it runs: the address its devices are given.
    serving: Option<(String, u16)>,
    /// Its last report.
    last_report_ms: i64,
    /// Its last outage: the report before it, and the one that ended it.
    outage: Option<(i64, i64)>,
}

/// PBKDF2 iterations of the hashes, Mosquitto's own default (`mosquitto_passwd`). More would
/// protect nothing: a device secret is a random UUIDv4 (122 bits), out of reach of any guessing
/// however cheap each guess, while every device connection (hundreds after a broker restart, on
/// a Pi) pays the iterations.
pub(super) const ITERATIONS: u32 = 101;
/// Salt length, as `mosquitto_passwd` makes it.
const SALT_BYTES: usize = 12;

/// Mosquitto's `$7$` password-file hash (PBKDF2-HMAC-SHA512, 64 bytes, standard base64) of
/// `secret` with `salt`.
pub(super) fn mosquitto_hash(secret: &[u8], salt: &[u8], iterations: u32) -> String {
    let mut hash = [0u8; 64];
    let rounds = std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA512, rounds, salt, secret, &mut hash);
    let b64 = base64::engine::general_purpose::STANDARD;
    format!("$7${iterations}${}${}", b64.encode(salt), b64.encode(hash))
}

/// A device's account on gateway `gw`'s local broker. The salt is derived from the gateway's
/// hash key and the device id: the same line at every sync (the gateway rewrites its password
/// file only when something changed), and a line of one gateway tells nothing of another's.
pub(super) fn broker_account(gw: &Keys, device: &Device, secret: &[u8]) -> BrokerAccount {
    let mut label = b"neosens local broker salt/".to_vec();
    label.extend_from_slice(&device.id.to_bytes());
    let salt = gw.hash(&label);
    BrokerAccount { password_hash: mosquitto_hash(secret, &salt[..SALT_BYTES], ITERATIONS) }
}

/// The firmware's `time` (`2023-10-27 10:15:02 +0200`, spec: client-sequence step 20) in ms.
pub(crate) fn firmware_time_ms(text: &str) -> Option<i64> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    let t = time::OffsetDateTime::parse(text.trim(), &format).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

impl Registry {
    /// A gateway's health report: what its local broker does, and when it was heard (an outage
    /// is a silence longer than [`OUT_OF_REACH_MS`]).
    pub fn site_report(
        &self,
        id: neosens_protocol::ids::GatewayId,
        report: Option<&neosens_protocol::edge::LocalBrokerReport>,
        now: i64,
    ) {
        let serving = report
            .filter(|r| r.running)
            .and_then(|r| Some(LocalBroker { host: r.host.clone()?, port: r.port? }))
            .and_then(|b| super::gateways::check_local_broker(Some(b)).ok().flatten())
            .map(|b| (b.host, b.port));
        let mut links = self.site_links.lock();
        if serving.is_none() && !links.contains_key(&id) {
            return;
        }
        let link = links.entry(id).or_default();
        if link.last_report_ms > 0 && now - link.last_report_ms > OUT_OF_REACH_MS {
            link.outage = Some((link.last_report_ms, now));
        }
        link.last_report_ms = now;
        link.serving = serving;
    }

    /// The enrolled gateways in local-broker mode, each with the buildings of its scope: while
    /// one is out of reach, its buildings are "disconnected" (their statuses wait on the
    /// gateway; the monitor raises no outage alert for them).
    pub fn local_broker_scopes(
        &self,
    ) -> Vec<(neosens_protocol::ids::GatewayId, Vec<neosens_protocol::ids::BuildingId>)> {
        let state = self.state.read();
        state
            .gateways
            .values()
            .filter(|g| g.credentials.is_some() && g.settings.local_broker.is_some())
            .map(|g| {
                let buildings = state
                    .buildings
                    .keys()
                    .filter(|b| building_in_scope(&state, &g.scope, **b))
                    .copied()
                    .collect();
                (g.id, buildings)
            })
            .collect()
    }

    /// Whether a device is served by a gateway in local-broker mode.
    pub fn behind_local_broker(&self, id: DeviceId) -> bool {
        self.local_broker_gateway(id).is_some()
    }

    /// The broker a device's credentials name: its own, else the local broker of its gateway
    /// in local-broker mode while the gateway reports it running (at the address it reports:
    /// its `[local_broker] advertise` wins), else none (central's broker).
    pub(crate) fn credentials_broker(&self, state: &State, device: &Device) -> Option<(String, u16)> {
        if let Some(m) = &device.mqtt {
            return Some((m.server.clone(), m.port));
        }
        let gateway = state.local_broker_gateway_of(device)?;
        self.site_links.lock().get(&gateway).and_then(|l| l.serving.clone())
    }

    /// When a status was sent, for `last_seen`: its arrival, except for a status that waited
    /// in the queue of a gateway's local broker during an outage — its own `time` then, when it
    /// says it was sent more than a minute before it arrived, after the gateway was last heard
    /// before the outage (a device clock far behind is not believed), and while the outage lasts
    /// or its queue drains. Never before the device's previous `last_seen`.
    pub fn status_sent_at(&self, id: DeviceId, time: Option<&str>, arrived: Timestamp) -> Timestamp {
        let Some(sent) = time.and_then(firmware_time_ms) else { return arrived };
        if sent >= arrived.millis() - QUEUED_AFTER_MS {
            return arrived;
        }
        let Some(gateway) = self.local_broker_gateway(id) else { return arrived };
        let now = arrived.millis();
        let since = {
            let links = self.site_links.lock();
            let Some(link) = links.get(&gateway) else { return arrived };
            match link.outage {
                _ if now - link.last_report_ms > OUT_OF_REACH_MS => link.last_report_ms,
                Some((from, back)) if now - back <= DRAIN_WINDOW_MS => from,
                _ => return arrived,
            }
        };
        if sent < since - QUEUED_AFTER_MS {
            return arrived;
        }
        let previous =
            self.state.read().statuses.get(&id).and_then(|s| s.last_seen).map_or(i64::MIN, Timestamp::millis);
        Timestamp(sent.max(previous))
    }

    /// The gateway in local-broker mode serving a device, if any.
    fn local_broker_gateway(&self, id: DeviceId) -> Option<neosens_protocol::ids::GatewayId> {
        let state = self.state.read();
        state.devices.get(&id).and_then(|d| state.local_broker_gateway_of(&d.record))
    }
}

impl State {
    /// The enrolled gateway in local-broker mode whose scope holds the device's main room (the
    /// first by id, should scopes overlap).
    pub(crate) fn local_broker_gateway_of(
        &self,
        device: &Device,
    ) -> Option<neosens_protocol::ids::GatewayId> {
        let building = self.rooms.get(device.rooms.first()?)?.building;
        self.gateways
            .values()
            .filter(|g| g.credentials.is_some() && g.settings.local_broker.is_some())
            .filter(|g| building_in_scope(self, &g.scope, building))
            .map(|g| g.id)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use neosens_protocol::sync::{BatchKind, Change};

    use super::*;
    use crate::registry::{GatewayChanges, NewGateway, ScopeSpec};

    /// 2023-10-27 08:15:02 UTC: a status's `time`, and the gateway's last report before its
    /// outage a little before.
    const SENT: i64 = 1_698_394_502_000;
    const T0: i64 = SENT - 30_000;

    /// A gateway in local-broker mode: its devices are given its broker (once it is enrolled),
    /// its snapshot carries its settings and one account per device whose hash checks the
    /// device's secret, and statuses that waited in its queue keep the time they were sent.
    #[test]
    fn a_local_broker_gateway_serves_its_devices() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, building, devices) = crate::registry::test_registry(dir.path(), 2);
        let mac = neosens_protocol::Mac::parse_lenient("24:0a:c4:00:00:00").unwrap();
        let broker = LocalBroker { host: "gw.site".into(), port: 1884 };
        let gw = registry
            .create_gateway(NewGateway {
                local_broker: Some(broker.clone()),
                config: Default::default(),
                name: "gw".into(),
                scope: ScopeSpec::Buildings(vec![*building.as_uuid()]),
            })
            .unwrap();
        assert_eq!(gw.local_broker, Some(broker));
        let first = registry.legacy_credentials(mac).unwrap().unwrap();
        assert_eq!(first.server, None, "not enrolled yet: central's broker");
        let secret = first.password.clone().unwrap();
        let token = registry.start_enrolment(gw.id).unwrap();
        registry.enroll_gateway(&token.token).unwrap().unwrap();
        assert_eq!(registry.legacy_credentials(mac).unwrap().unwrap().server, None, "no report yet");
        // The gateway reports its broker running, at the address it advertises.
        let report = |running: bool| neosens_protocol::edge::LocalBrokerReport {
            running,
            accounts: 2,
            host: Some("10.0.0.2".into()),
            port: Some(1884),
        };
        registry.site_report(gw.id, Some(&report(true)), T0);
        let again = registry.legacy_credentials(mac).unwrap().unwrap();
        assert_eq!((again.server.as_deref(), again.port), (Some("10.0.0.2"), Some(1884)));
        registry.site_report(gw.id, Some(&report(false)), T0 + 30_000);
        assert_eq!(registry.legacy_credentials(mac).unwrap().unwrap().server, None, "not running: central's");
        registry.site_report(gw.id, Some(&report(true)), T0 + 60_000);

        let batch = registry.edge_sync(gw.id, 0, None, 2).unwrap().unwrap();
        assert_eq!(batch.kind, BatchKind::Snapshot);
        let Change::SetGatewaySettings(settings) = &batch.changes[0] else {
            panic!("{:?}", batch.changes[0])
        };
        assert_eq!(
            settings.local_broker.as_ref().map(|e| (e.server.as_str(), e.port)),
            Some(("gw.site", 1884))
        );
        let accounts: Vec<_> = batch
            .changes
            .iter()
            .filter_map(|c| if let Change::SetBrokerAccount(id, Some(a)) = c { Some((*id, a)) } else { None })
            .collect();
        assert_eq!(accounts.len(), devices.len());
        let (_, account) = accounts.iter().find(|(id, _)| *id == devices[0]).unwrap();
        let parts: Vec<&str> = account.password_hash.split('$').collect();
        let salt = base64::engine::general_purpose::STANDARD.decode(parts[3]).unwrap();
        assert_eq!(mosquitto_hash(secret.as_bytes(), &salt, ITERATIONS), account.password_hash);
        let older = registry.edge_sync(gw.id, 0, None, 1).unwrap().unwrap();
        assert!(
            !older
                .changes
                .iter()
                .any(|c| matches!(c, Change::SetGatewaySettings(_) | Change::SetBrokerAccount(..)))
        );
        // A device whose login was reserved since (no account at central's broker): none here.
        let login = registry.state.read().devices[&devices[1]].record.login.clone();
        registry.reserve_logins(&[login]);
        let batch = registry.edge_sync(gw.id, 0, None, 2).unwrap().unwrap();
        assert!(batch.changes.contains(&Change::SetBrokerAccount(devices[1], None)));
        assert!(
            batch
                .changes
                .iter()
                .any(|c| matches!(c, Change::SetBrokerAccount(id, Some(_)) if *id == devices[0]))
        );

        // The gateway silent from T0 + 60 s: a status sent during the outage and arriving 10
        // minutes later keeps its time; a recent one, or one older than the outage (a clock far
        // behind), its arrival; once the queue has had time to drain, arrivals again.
        let sent_at = "2023-10-27 10:15:02 +0200";
        let arrived = Timestamp(T0 + 600_000);
        assert_eq!(registry.status_sent_at(devices[0], Some(sent_at), arrived), Timestamp(SENT));
        let recent = Timestamp(SENT + 30_000);
        assert_eq!(registry.status_sent_at(devices[0], Some(sent_at), recent), recent);
        assert_eq!(registry.status_sent_at(devices[0], Some("2023-10-27 09:00:00 +0200"), arrived), arrived);
        registry.site_report(gw.id, Some(&report(true)), T0 + 700_000);
        assert_eq!(
            registry.status_sent_at(devices[0], Some(sent_at), Timestamp(T0 + 710_000)),
            Timestamp(SENT)
        );
        let late = Timestamp(T0 + 700_000 + DRAIN_WINDOW_MS + 1);
        assert_eq!(registry.status_sent_at(devices[0], Some(sent_at), late), late);
        assert_eq!(registry.local_broker_scopes(), vec![(gw.id, vec![building])]);

        // Off again: central's broker, no accounts, and the same catch-up no longer applies.
        let patch = GatewayChanges { local_broker: Some(None), ..GatewayChanges::default() };
        registry.update_gateway(gw.id, patch).unwrap();
        assert_eq!(registry.legacy_credentials(mac).unwrap().unwrap().server, None);
        let arrived = Timestamp(T0 + 710_000);
        let batch = registry.edge_sync(gw.id, registry.revision() - 1, None, 2).unwrap().unwrap();
        assert_eq!(batch.kind, BatchKind::Snapshot, "its own settings changed: a snapshot");
        assert!(matches!(&batch.changes[0], Change::SetGatewaySettings(s) if s.local_broker.is_none()));
        assert!(!batch.changes.iter().any(|c| matches!(c, Change::SetBrokerAccount(..))));
        assert_eq!(registry.status_sent_at(devices[0], Some(sent_at), arrived), arrived);
        assert!(registry.local_broker_scopes().is_empty());
    }

    #[test]
    fn bad_local_broker_addresses_are_refused() {
        for (host, port) in [("", 1883), ("a b", 1883), ("h/x", 1883), (&"h".repeat(64)[..], 1883), ("h", 0)]
        {
            let e =
                crate::registry::gateways::check_local_broker(Some(LocalBroker { host: host.into(), port }))
                    .unwrap_err();
            assert!(e.to_string().contains("local_broker"), "{host}:{port}: {e}");
        }
    }

    #[test]
    fn firmware_times_read_with_their_offset() {
        assert_eq!(firmware_time_ms("2023-10-27 10:15:02 +0200"), Some(1_698_394_502_000));
        assert_eq!(firmware_time_ms("2023-10-27 08:15:02 +0000"), Some(1_698_394_502_000));
        for bad in
            ["", "2023-10-27T10:15:02Z", "2023-13-27 10:15:02 +0200", "yesterday", "2023-10-27 10:15:02"]
        {
            assert_eq!(firmware_time_ms(bad), None, "{bad}");
        }
    }

    /// A line written by Mosquitto 2.0.11's own `mosquitto_passwd -b` (random salt), read
    /// back: the same hash from the same salt.
    #[test]
    fn hashes_match_mosquitto_passwd() {
        let line = "$7$101$O+sn+vmP80lJFuc4$jCqSRT0HUCmizTZtRpRFYZzEfDzozWUJtDTSjowWmfTrOIHt/bOPCQBlF5BuYb5kKKha99W5N4Rck9bKhRXJ7A==";
        let salt = base64::engine::general_purpose::STANDARD.decode("O+sn+vmP80lJFuc4").unwrap();
        assert_eq!(mosquitto_hash(b"5f1c7a52-9b1e-4c1e-8d36-0c7f1e2a3b4c", &salt, 101), line);
        assert_ne!(mosquitto_hash(b"5f1c7a52-9b1e-4c1e-8d36-0c7f1e2a3b4d", &salt, 101), line);
    }
}
