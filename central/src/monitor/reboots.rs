//! Reboot loops: a device that boots `boots` times within `window_min` minutes (per its type,
//! `[alerts] reboot_loop_*`) gets an alert, resolved once it has gone a whole window without
//! booting. A board crashing at start (a bad configuration, a failing sensor, a brown-out)
//! otherwise looks healthy: it answers, publishes a status, and is gone again.
//!
//! A boot is a `/device/config` answered at central: the firmware asks for its configuration
//! once at every boot, after its credentials (spec client-sequence §C), and asks again only
//! after a failure, which ends in a reboot. Devices provisioned through a gateway boot there,
//! out of central's sight.
//!
//! Bounded: at most `boots` boot times per device, and only for registered devices (the
//! configuration is answered to those only); a device's times go once a window passes without a
//! boot.

use std::collections::{BTreeMap, VecDeque};

use neosens_protocol::ids::DeviceId;
use serde::{Deserialize, Serialize};

use super::alerts::{Event, Monitor};
use crate::model::{AlertKind, AlertRecord};

/// Boots waiting for the monitor at most; past it a boot is not counted (a flood of
/// configuration requests must not grow a queue).
pub const BOOT_QUEUE: usize = 1024;

/// A reboot-loop rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootLoopRule {
    /// Boots that make a loop (at least 2).
    pub boots: u32,
    /// Within this many minutes.
    pub window_min: u32,
}

impl Default for RebootLoopRule {
    /// Five boots in 30 minutes: a board rebooting on every failed attempt reboots every 2–3 min.
    fn default() -> Self {
        RebootLoopRule { boots: 5, window_min: 30 }
    }
}

impl RebootLoopRule {
    fn window_ms(self) -> i64 {
        i64::from(self.window_min.max(1)) * 60_000
    }

    fn boots(self) -> usize {
        self.boots.max(2) as usize
    }
}

/// `[alerts.reboot_loop]`: the rule, and per device type by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RebootLoopConfig {
    /// Boots that make a loop, for types not listed.
    pub boots: Option<u32>,
    /// Within this many minutes, for types not listed.
    pub window_min: Option<u32>,
    /// Per device type (`[alerts.reboot_loop.types.esp32]`).
    pub types: BTreeMap<String, RebootLoopRule>,
}

impl RebootLoopConfig {
    /// The rule of a device type.
    pub fn rule(&self, device_type: Option<&str>) -> RebootLoopRule {
        if let Some(rule) = device_type.and_then(|t| self.types.get(t)) {
            return *rule;
        }
        let d = RebootLoopRule::default();
        RebootLoopRule {
            boots: self.boots.unwrap_or(d.boots),
            window_min: self.window_min.unwrap_or(d.window_min),
        }
    }
}

/// Boot times per device, and the open reboot-loop alerts.
#[derive(Debug, Default)]
pub(super) struct Reboots {
    boots: std::collections::HashMap<DeviceId, (RebootLoopRule, VecDeque<i64>)>,
    pub(super) open: std::collections::HashMap<DeviceId, u64>,
}

impl Monitor {
    /// A device booted at `now` under `rule`: opens its reboot-loop alert when it makes a loop.
    pub(super) fn boot(&self, device: DeviceId, rule: RebootLoopRule, now: i64) -> Vec<(Event, AlertRecord)> {
        let mut s = self.shared.lock();
        let (kept_rule, times) = s.reboots.boots.entry(device).or_insert_with(|| (rule, VecDeque::new()));
        // The type (or its rule) may have changed since the last boot.
        *kept_rule = rule;
        while times.front().is_some_and(|t| now - t >= rule.window_ms()) {
            times.pop_front();
        }
        times.push_back(now);
        while times.len() > rule.boots() {
            times.pop_front();
        }
        let looping = times.len() >= rule.boots();
        let count = times.len();
        if !looping || s.reboots.open.contains_key(&device) {
            return Vec::new();
        }
        let id = s.tracker.next_id();
        let record = AlertRecord {
            id,
            kind: AlertKind::RebootLoop,
            building: None,
            device: Some(device),
            rule: None,
            detail: Some(format!("{count} boots within {} min", rule.window_min)),
            outdated: 0,
            total_devices: 1,
            opened_at: now,
            resolved_at: None,
            ack: None,
        };
        s.reboots.open.insert(device, id);
        s.records.insert(id, record.clone());
        s.dirty.insert(id);
        s.prune();
        vec![(Event::Opened, record)]
    }

    /// Resolves the loops of devices that went a whole window without booting, and forgets
    /// their boot times (checked every [`super::forwarders::CHECK_EVERY`]).
    pub(super) fn reboots_settled(&self, now: i64) -> Vec<(Event, AlertRecord)> {
        let mut out = Vec::new();
        let mut s = self.shared.lock();
        let quiet: Vec<DeviceId> = s
            .reboots
            .boots
            .iter()
            .filter(|(_, (rule, times))| times.back().is_none_or(|t| now - t >= rule.window_ms()))
            .map(|(d, _)| *d)
            .collect();
        for device in &quiet {
            s.reboots.boots.remove(device);
            if let Some(id) = s.reboots.open.remove(device) {
                s.resolve_failure(id, now, &mut out);
            }
        }
        // An alert taken back at start has no boot times: it settles a default window after it
        // opened, unless the device boots again meanwhile (then its times decide).
        let restored: Vec<(DeviceId, u64)> = s
            .reboots
            .open
            .iter()
            .filter(|(d, id)| {
                !s.reboots.boots.contains_key(d)
                    && s.records
                        .get(id)
                        .is_none_or(|r| now - r.opened_at >= RebootLoopRule::default().window_ms())
            })
            .map(|(d, id)| (*d, *id))
            .collect();
        for (device, id) in restored {
            s.reboots.open.remove(&device);
            s.resolve_failure(id, now, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: DeviceId = DeviceId::from_bytes([9; 16]);
    const T0: i64 = 1_700_000_000_000;
    const RULE: RebootLoopRule = RebootLoopRule { boots: 3, window_min: 10 };

    #[test]
    fn three_boots_in_ten_minutes_open_one_alert_and_a_quiet_window_resolves_it() {
        let m = Monitor::default();
        assert!(m.boot(DEV, RULE, T0).is_empty());
        assert!(m.boot(DEV, RULE, T0 + 60_000).is_empty());
        let opened = m.boot(DEV, RULE, T0 + 120_000);
        assert_eq!(opened.len(), 1);
        assert_eq!(
            (opened[0].0, opened[0].1.kind, opened[0].1.device),
            (Event::Opened, AlertKind::RebootLoop, Some(DEV))
        );
        assert_eq!(opened[0].1.detail.as_deref(), Some("3 boots within 10 min"));
        assert!(m.boot(DEV, RULE, T0 + 180_000).is_empty(), "one alert per loop");
        assert!(m.reboots_settled(T0 + 180_000 + 599_999).is_empty(), "not a whole window yet");
        let resolved = m.reboots_settled(T0 + 180_000 + 600_000);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].0, Event::Resolved);
        assert!(m.shared.lock().reboots.boots.is_empty(), "a quiet device's boot times go");
    }

    #[test]
    fn boots_spread_wider_than_the_window_never_make_a_loop() {
        let m = Monitor::default();
        for i in 0..20 {
            assert!(m.boot(DEV, RULE, T0 + i * 300_001).is_empty(), "boot {i}");
        }
        assert!(m.shared.lock().reboots.boots[&DEV].1.len() <= 3, "at most `boots` times kept");
    }

    #[test]
    fn the_rule_of_a_type_wins_over_the_default() {
        let config = RebootLoopConfig {
            boots: Some(4),
            window_min: None,
            types: BTreeMap::from([("rpi".into(), RebootLoopRule { boots: 2, window_min: 60 })]),
        };
        assert_eq!(config.rule(Some("rpi")), RebootLoopRule { boots: 2, window_min: 60 });
        assert_eq!(config.rule(Some("esp32")), RebootLoopRule { boots: 4, window_min: 30 });
        assert_eq!(config.rule(None), RebootLoopRule { boots: 4, window_min: 30 });
    }
}
