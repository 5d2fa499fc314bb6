//! Which statuses were already seen: a gateway numbers what it relays (`msg_id`, its outbox
//! sequence) and sends again what the broker acknowledged just before a crash; central drops
//! those. It trusts a `msg_id` only with a valid relay stamp of a gateway whose scope holds the
//! device ([`neosens_runtime::relay`]): a device publishing a forged `unitID`/`msg_id` in its
//! room cannot make central drop another device's statuses, and a reinstalled gateway (a new
//! outbox epoch, numbering from 1 again) is recognised, not silenced.

use std::collections::HashMap;
use std::sync::Arc;

use neosens_protocol::ids::{DeviceId, GatewayId};
use neosens_runtime::relay::{self, RelayKey};

use super::ReadStatus;
use crate::registry::{Registry, StatusDrop};

/// The last stamped message accepted for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sequence {
    gateway: GatewayId,
    epoch: u64,
    msg_id: u64,
}

/// What a status's `msg_id` is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trust {
    /// No `msg_id` (a device talking directly).
    Unnumbered,
    /// A `msg_id` without a valid stamp of a gateway of the device: ignored.
    Untrusted,
    /// Stamped by a gateway of the device: deduplicated.
    Stamped,
}

/// Statuses a bridge may send again after a reconnection: Mosquitto's `max_inflight_messages`
/// (20 by default) are in flight at most.
pub(super) const REPEAT_WINDOW: usize = 20;

/// The deduplication state of the ingestion task.
///
/// Bounds: one [`Sequence`] per registered device that had a stamped status (deleted devices
/// are pruned by [`Dedupe::prune`]); forwarding keys of enrolled gateways only (an unknown or
/// forged gateway id is never cached), dropped when the registry changes.
#[derive(Default)]
pub(super) struct Dedupe {
    last: HashMap<DeviceId, Sequence>,
    /// Per device behind a gateway's local broker, hashes of its last [`REPEAT_WINDOW`]
    /// statuses: the bridge forwards at QoS 1 and sends again, byte for byte, what was in
    /// flight when its link dropped (pruned with `last`).
    repeats: HashMap<DeviceId, std::collections::VecDeque<u64>>,
    keys: HashMap<GatewayId, Arc<RelayKey>>,
    keys_revision: u64,
}

impl Dedupe {
    /// `Err(Duplicate)` when the status was seen before; otherwise the status and what its
    /// `msg_id` was worth.
    pub(super) fn check(
        &mut self,
        registry: &Registry,
        topic: &str,
        r: ReadStatus,
        payload: &[u8],
    ) -> Result<(ReadStatus, Trust), StatusDrop> {
        let Some(msg_id) = r.msg_id else { return self.unnumbered(r, payload) };
        let Some((gateway, epoch)) = self.verified(registry, topic, &r, msg_id) else {
            return Ok((r, Trust::Untrusted));
        };
        match self.last.get(&r.device) {
            Some(s) if s.gateway == gateway && s.epoch == epoch && s.msg_id >= msg_id => {
                Err(StatusDrop::Duplicate)
            }
            _ => {
                self.last.insert(r.device, Sequence { gateway, epoch, msg_id });
                Ok((r, Trust::Stamped))
            }
        }
    }

    /// The stamp's gateway and epoch, when it is valid and that gateway covers the device.
    fn verified(
        &mut self,
        registry: &Registry,
        topic: &str,
        r: &ReadStatus,
        msg_id: u64,
    ) -> Option<(GatewayId, u64)> {
        let stamp = relay::parse(r.relay.as_deref()?)?;
        let gateway: GatewayId = stamp.gateway.parse().ok()?;
        if !registry.gateway_covers(gateway, r.device) {
            return None;
        }
        let revision = registry.revision();
        if revision != self.keys_revision {
            self.keys.clear();
            self.keys_revision = revision;
        }
        let key = match self.keys.get(&gateway) {
            Some(k) => Arc::clone(k),
            None => {
                let k = Arc::new(registry.relay_key(gateway)?);
                self.keys.insert(gateway, Arc::clone(&k));
                k
            }
        };
        key.verify(&stamp, msg_id, topic).then_some((gateway, stamp.epoch))
    }

    /// A status without `msg_id`: a duplicate when it came through a local broker's bridge and
    /// is byte for byte one of the device's last [`REPEAT_WINDOW`]. A firmware never sends the
    /// same status twice (its `time` and `heap` move), so only the bridge's redeliveries are
    /// dropped; other devices (a Raspberry Pi's status has no `time`) are never compared.
    fn unnumbered(&mut self, r: ReadStatus, payload: &[u8]) -> Result<(ReadStatus, Trust), StatusDrop> {
        if !r.bridged {
            return Ok((r, Trust::Unnumbered));
        }
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::hash::DefaultHasher::new();
        payload.hash(&mut hasher);
        let hash = hasher.finish();
        let seen = self.repeats.entry(r.device).or_default();
        if seen.contains(&hash) {
            return Err(StatusDrop::Duplicate);
        }
        if seen.len() == REPEAT_WINDOW {
            seen.pop_front();
        }
        seen.push_back(hash);
        Ok((r, Trust::Unnumbered))
    }

    /// Forgets the devices that are no longer registered.
    pub(super) fn prune(&mut self, registry: &Registry) {
        self.last.retain(|id, _| registry.has_device(*id));
        self.repeats.retain(|id, _| registry.has_device(*id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceStatusRecord;

    fn status(device: u8, bridged: bool) -> ReadStatus {
        ReadStatus {
            device: DeviceId::from_bytes([device; 16]),
            record: DeviceStatusRecord::default(),
            msg_id: None,
            relay: None,
            bridged,
        }
    }

    /// A bridge's repeat (byte for byte the device's previous status) is dropped; a device
    /// talking to central's broker, or one whose status has no `time`, is never compared.
    #[test]
    fn only_a_bridged_repeat_is_a_duplicate() {
        let mut d = Dedupe::default();
        let a = br#"{"time":"2026-12-06 10:00:00 +0100","heap":1,"status":"running","unitID":"x"}"#;
        let b = br#"{"time":"2026-12-06 10:00:01 +0100","heap":1,"status":"running","unitID":"x"}"#;
        assert!(d.unnumbered(status(1, true), a).is_ok());
        assert_eq!(d.unnumbered(status(1, true), a).unwrap_err(), StatusDrop::Duplicate);
        assert!(d.unnumbered(status(2, true), a).is_ok(), "per device");
        assert!(d.unnumbered(status(1, true), b).is_ok());
        assert_eq!(
            d.unnumbered(status(1, true), a).unwrap_err(),
            StatusDrop::Duplicate,
            "in flight together"
        );
        for n in 0..REPEAT_WINDOW {
            let other = format!(
                r#"{{"time":"2026-12-06 11:00:00 +0100","heap":{n},"status":"running","unitID":"x"}}"#
            );
            assert!(d.unnumbered(status(1, true), other.as_bytes()).is_ok());
        }
        assert!(d.unnumbered(status(1, true), a).is_ok(), "out of the window: bounded per device");
        for _ in 0..3 {
            assert!(d.unnumbered(status(3, false), a).is_ok());
        }
    }
}
