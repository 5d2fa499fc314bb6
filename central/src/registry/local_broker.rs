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
        let state = self.state.read();
        state.devices.get(&id).is_some_and(|d| state.local_broker_of(&d.record).is_some())
    }

    /// When a status was sent, for `last_seen`: its arrival, except for a device of a gateway in
    /// local-broker mode whose status says (its `time`) it was sent more than a minute earlier —
    /// it waited in the bridge's queue during a WAN outage, and its own time is when the device
    /// was last alive. Never before the device's previous `last_seen`, never in the future.
    pub fn status_sent_at(&self, id: DeviceId, time: Option<&str>, arrived: Timestamp) -> Timestamp {
        let Some(sent) = time.and_then(firmware_time_ms) else { return arrived };
        if sent >= arrived.millis() - QUEUED_AFTER_MS {
            return arrived;
        }
        if !self.behind_local_broker(id) {
            return arrived;
        }
        let state = self.state.read();
        let previous = state.statuses.get(&id).and_then(|s| s.last_seen).map_or(i64::MIN, Timestamp::millis);
        if sent <= previous {
            return arrived;
        }
        Timestamp(sent)
    }
}

impl State {
    /// The local broker a device is given: that of a gateway in local-broker mode whose scope
    /// holds the device's main room. `None`: central's broker (or the device's own).
    pub(crate) fn local_broker_of(&self, device: &Device) -> Option<&LocalBroker> {
        let building = self.rooms.get(device.rooms.first()?)?.building;
        self.gateways
            .values()
            .filter(|g| g.credentials.is_some())
            .filter_map(|g| g.settings.local_broker.as_ref().map(|b| (g, b)))
            .find(|(g, _)| building_in_scope(self, &g.scope, building))
            .map(|(_, b)| b)
    }

    /// The broker a device's credentials name: its own, else its gateway's local broker.
    pub(crate) fn credentials_broker(&self, device: &Device) -> Option<(String, u16)> {
        match &device.mqtt {
            Some(m) => Some((m.server.clone(), m.port)),
            None => self.local_broker_of(device).map(|b| (b.host.clone(), b.port)),
        }
    }
}

#[cfg(test)]
mod tests {
    use neosens_protocol::sync::{BatchKind, Change};

    use super::*;
    use crate::registry::{GatewayChanges, NewGateway, ScopeSpec};

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
        let again = registry.legacy_credentials(mac).unwrap().unwrap();
        assert_eq!((again.server.as_deref(), again.port), (Some("gw.site"), Some(1884)));

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

        // A status sent 10 minutes before it arrived keeps its time; a recent one, its arrival.
        let arrived = Timestamp(1_698_394_502_000 + 600_000);
        let sent = registry.status_sent_at(devices[0], Some("2023-10-27 10:15:02 +0200"), arrived);
        assert_eq!(sent, Timestamp(1_698_394_502_000));
        let recent = Timestamp(1_698_394_502_000 + 30_000);
        assert_eq!(registry.status_sent_at(devices[0], Some("2023-10-27 10:15:02 +0200"), recent), recent);
        assert_eq!(registry.local_broker_scopes(), vec![(gw.id, vec![building])]);

        // Off again: central's broker, no accounts, and the same catch-up no longer applies.
        let patch = GatewayChanges { local_broker: Some(None), ..GatewayChanges::default() };
        registry.update_gateway(gw.id, patch).unwrap();
        assert_eq!(registry.legacy_credentials(mac).unwrap().unwrap().server, None);
        let batch = registry.edge_sync(gw.id, registry.revision() - 1, None, 2).unwrap().unwrap();
        assert_eq!(batch.kind, BatchKind::Snapshot, "its own settings changed: a snapshot");
        assert!(matches!(&batch.changes[0], Change::SetGatewaySettings(s) if s.local_broker.is_none()));
        assert!(!batch.changes.iter().any(|c| matches!(c, Change::SetBrokerAccount(..))));
        assert_eq!(registry.status_sent_at(devices[0], Some("2023-10-27 10:15:02 +0200"), arrived), arrived);
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
