//! The state of every device over time, and the outage alerts it gives rise to. Pure: it is
//! told the time and what happened, and says what changed — the driver does the I/O.
//!
//! - A device becomes **outdated** at `last_seen + threshold` (its type's, or its own).
//! - Its outage raises an **alert** only after a grace period (hysteresis: `max(60 s, 10 %` of the
//!   threshold`)`), so a device that reports a little late does not flap.
//! - Outages of one building are **grouped**: the first one opens the building's alert, later ones
//!   join it; a building that loses its network gives one alert, not 200.
//! - A device seen again leaves the alert; the alert is **resolved** when its last device is back.
//! - A building whose devices report through a gateway's local broker, while that gateway is
//!   out of reach, is **disconnected**: its devices' statuses wait in the gateway's queue, so
//!   their outages raise no alert. Once it is back, a device whose queued statuses do not bring
//!   it back within [`RECONNECT_GRACE_MS`] is alerted as usual.

use std::collections::{BTreeSet, HashMap, HashSet};

use neosens_protocol::ids::{BuildingId, DeviceId};
use serde::Serialize;

use super::deadlines::DeadlineIndex;

/// Least grace before an outage raises an alert.
pub const MIN_GRACE_MS: i64 = 60_000;
/// After a disconnected building is back, time for the gateway's queue to drain before its
/// devices still outdated are alerted.
pub const RECONNECT_GRACE_MS: i64 = 120_000;

/// What the tracker knows of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// Building of its main room (alerts are grouped by it).
    pub building: Option<BuildingId>,
    /// Outdated threshold, milliseconds.
    pub threshold_ms: i64,
    /// Last status, milliseconds since the epoch.
    pub last_seen: Option<i64>,
}

/// Grace after the threshold before an alert.
pub fn grace_ms(threshold_ms: i64) -> i64 {
    (threshold_ms / 10).max(MIN_GRACE_MS)
}

/// An outage alert of a building (or of devices without a building).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OutageAlert {
    /// Id, increasing.
    pub id: u64,
    /// The building.
    #[schema(value_type = Option<String>)]
    pub building: Option<BuildingId>,
    /// Devices outdated now.
    #[schema(value_type = Vec<String>)]
    pub devices: BTreeSet<DeviceId>,
    /// Every device that was part of it.
    pub total_devices: usize,
    /// When it opened (ms since the epoch).
    pub opened_at: i64,
    /// When its last device came back.
    pub resolved_at: Option<i64>,
}

/// An alert without its device list: what changes carry and notifications say (a building of
/// thousands of devices must not cost a copy of its list per device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AlertSummary {
    /// Id.
    pub id: u64,
    /// The building.
    #[schema(value_type = Option<String>)]
    pub building: Option<BuildingId>,
    /// Devices outdated now.
    pub outdated: usize,
    /// Every device that was part of it.
    pub total_devices: usize,
    /// When it opened (ms since the epoch).
    pub opened_at: i64,
    /// When its last device came back.
    pub resolved_at: Option<i64>,
}

impl OutageAlert {
    /// Its summary.
    pub fn summary(&self) -> AlertSummary {
        AlertSummary {
            id: self.id,
            building: self.building,
            outdated: self.devices.len(),
            total_devices: self.total_devices,
            opened_at: self.opened_at,
            resolved_at: self.resolved_at,
        }
    }
}

/// A change the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The device passed its threshold.
    Outdated(DeviceId),
    /// The device reported again after being outdated.
    Back(DeviceId),
    /// A new alert.
    Opened(AlertSummary),
    /// Devices joined an open alert (one change per alert and tick, however many joined).
    Updated(AlertSummary),
    /// Every device of the alert is back.
    Resolved(AlertSummary),
}

/// The tracker.
#[derive(Debug, Default)]
pub struct Tracker {
    devices: HashMap<DeviceId, Watched>,
    stale: DeadlineIndex<DeviceId>,
    alarm: DeadlineIndex<DeviceId>,
    outdated: BTreeSet<DeviceId>,
    open: HashMap<Option<BuildingId>, OutageAlert>,
    in_alert: HashMap<DeviceId, Option<BuildingId>>,
    /// Alerts open when central stopped: a building's outage continues under its old id.
    restored: HashMap<Option<BuildingId>, (u64, i64)>,
    next_alert: u64,
    /// Disconnected buildings (their gateway in local-broker mode out of reach).
    disconnected: HashSet<BuildingId>,
    /// Devices whose alarm came while their building was disconnected.
    held: HashSet<DeviceId>,
    /// Buildings back from a disconnection: no alarm before this time (their queue drains).
    draining: HashMap<BuildingId, i64>,
}

impl Tracker {
    /// A tracker whose alert ids continue after `last_alert_id`.
    pub fn new(last_alert_id: u64) -> Self {
        Tracker { next_alert: last_alert_id + 1, ..Tracker::default() }
    }

    /// Allocates an alert id (failure alerts share the outages' sequence).
    pub fn next_id(&mut self) -> u64 {
        self.next_alert += 1;
        self.next_alert - 1
    }

    /// Takes back an alert that was open when central stopped: if the building's devices are
    /// still down, their outage goes on under this id (an update, not a new alert).
    pub fn restore(&mut self, building: Option<BuildingId>, id: u64, opened_at: i64) {
        self.restored.insert(building, (id, opened_at));
        self.next_alert = self.next_alert.max(id + 1);
    }

    /// Resolves the restored alerts no outage took back (their devices came back meanwhile).
    pub fn drop_restored(&mut self, now: i64, changes: &mut Vec<Change>) {
        for (building, (id, opened_at)) in self.restored.drain() {
            changes.push(Change::Resolved(AlertSummary {
                id,
                building,
                outdated: 0,
                total_devices: 0,
                opened_at,
                resolved_at: Some(now),
            }));
        }
    }

    /// Starts or updates watching a device (registration, move, new threshold, enabled).
    pub fn watch(&mut self, id: DeviceId, watched: Watched, now: i64, changes: &mut Vec<Change>) {
        self.devices.insert(id, watched);
        self.schedule(id, now, changes);
    }

    /// Which buildings are disconnected now. A building back has its held devices alerted after
    /// [`RECONNECT_GRACE_MS`], unless their queued statuses come first.
    pub fn set_disconnected(&mut self, buildings: HashSet<BuildingId>, now: i64, changes: &mut Vec<Change>) {
        let back: HashSet<BuildingId> = self.disconnected.difference(&buildings).copied().collect();
        self.disconnected = buildings;
        self.draining.retain(|_, until| *until > now);
        if back.is_empty() {
            return;
        }
        for b in &back {
            self.draining.insert(*b, now + RECONNECT_GRACE_MS);
        }
        let devices = &self.devices;
        let released: Vec<DeviceId> = self
            .held
            .iter()
            .filter(|id| devices.get(id).and_then(|w| w.building).is_some_and(|b| back.contains(&b)))
            .copied()
            .collect();
        for id in released {
            self.held.remove(&id);
            self.alarm.set(id, now + RECONNECT_GRACE_MS);
        }
        self.tick(now, changes);
    }

    /// The disconnected buildings.
    pub fn disconnected(&self) -> &HashSet<BuildingId> {
        &self.disconnected
    }

    /// Stops watching a device (deleted or disabled): it leaves any alert.
    pub fn forget(&mut self, id: DeviceId, now: i64, changes: &mut Vec<Change>) {
        self.devices.remove(&id);
        self.held.remove(&id);
        self.stale.remove(id);
        self.alarm.remove(id);
        self.outdated.remove(&id);
        self.leave_alert(id, now, changes);
    }

    /// A status arrived.
    pub fn seen(&mut self, id: DeviceId, at: i64, now: i64, changes: &mut Vec<Change>) {
        let Some(w) = self.devices.get_mut(&id) else { return };
        if w.last_seen.is_some_and(|last| last >= at) {
            return;
        }
        w.last_seen = Some(at);
        if self.outdated.remove(&id) {
            changes.push(Change::Back(id));
        }
        self.leave_alert(id, now, changes);
        self.schedule(id, now, changes);
    }

    fn schedule(&mut self, id: DeviceId, now: i64, changes: &mut Vec<Change>) {
        let Some(w) = self.devices.get(&id).copied() else { return };
        self.stale.remove(id);
        self.alarm.remove(id);
        self.held.remove(&id);
        if let Some(last) = w.last_seen {
            self.stale.set(id, last + w.threshold_ms);
            if !self.in_alert.contains_key(&id) {
                // A building back from a disconnection: its devices' queued statuses arrive with
                // their own (old) times; none is alerted before the queue has had time to drain.
                let draining = w.building.and_then(|b| self.draining.get(&b)).copied().unwrap_or(i64::MIN);
                self.alarm.set(id, (last + w.threshold_ms + grace_ms(w.threshold_ms)).max(draining));
            }
        }
        self.tick(now, changes);
    }

    /// The next time something is due.
    pub fn next_deadline(&self) -> Option<i64> {
        match (self.stale.next(), self.alarm.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies everything due at `now`.
    pub fn tick(&mut self, now: i64, changes: &mut Vec<Change>) {
        for id in self.stale.expire(now) {
            if self.outdated.insert(id) {
                changes.push(Change::Outdated(id));
            }
        }
        // Group what is due by building: one change per alert, whatever the number of devices.
        let mut joining: HashMap<Option<BuildingId>, Vec<DeviceId>> = HashMap::new();
        for id in self.alarm.expire(now) {
            let building = self.devices.get(&id).and_then(|w| w.building);
            if building.is_some_and(|b| self.disconnected.contains(&b)) {
                self.held.insert(id);
                continue;
            }
            self.in_alert.insert(id, building);
            joining.entry(building).or_default().push(id);
        }
        for (building, ids) in joining {
            match self.open.get_mut(&building) {
                Some(alert) => {
                    alert.total_devices += ids.len();
                    alert.devices.extend(ids);
                    changes.push(Change::Updated(alert.summary()));
                }
                None => {
                    let restored = self.restored.remove(&building);
                    let (id, opened_at) = restored.unwrap_or((self.next_alert, now));
                    let alert = OutageAlert {
                        id,
                        building,
                        total_devices: ids.len(),
                        devices: ids.into_iter().collect(),
                        opened_at,
                        resolved_at: None,
                    };
                    if restored.is_some() {
                        changes.push(Change::Updated(alert.summary()));
                    } else {
                        self.next_alert += 1;
                        changes.push(Change::Opened(alert.summary()));
                    }
                    self.open.insert(building, alert);
                }
            }
        }
    }

    fn leave_alert(&mut self, id: DeviceId, now: i64, changes: &mut Vec<Change>) {
        let Some(building) = self.in_alert.remove(&id) else { return };
        let Some(alert) = self.open.get_mut(&building) else { return };
        alert.devices.remove(&id);
        // Devices coming back are not announced one by one: the alert is, once resolved.
        if alert.devices.is_empty() {
            let mut resolved = self.open.remove(&building).expect("present");
            resolved.resolved_at = Some(now);
            changes.push(Change::Resolved(resolved.summary()));
        }
    }

    /// Whether the device is outdated now.
    pub fn is_outdated(&self, id: DeviceId) -> bool {
        self.outdated.contains(&id)
    }

    /// Number of outdated devices.
    pub fn outdated_count(&self) -> usize {
        self.outdated.len()
    }

    /// Open alerts.
    pub fn open_alerts(&self) -> Vec<OutageAlert> {
        let mut v: Vec<OutageAlert> = self.open.values().cloned().collect();
        v.sort_by_key(|a| a.id);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const THRESHOLD: i64 = 30 * MIN;

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_bytes([n; 16])
    }

    fn building(n: u8) -> Option<BuildingId> {
        Some(BuildingId::from_bytes([n; 16]))
    }

    /// Drives the tracker minute by minute from `from` to `to` and collects the changes.
    fn run(t: &mut Tracker, from: i64, to: i64) -> Vec<(i64, Change)> {
        let mut out = Vec::new();
        let mut now = from;
        while now <= to {
            let mut c = Vec::new();
            t.tick(now, &mut c);
            out.extend(c.into_iter().map(|c| (now, c)));
            now += 1_000;
        }
        out
    }

    #[test]
    fn outdated_at_the_threshold_alert_after_the_grace() {
        let mut t = Tracker::new(0);
        let mut c = Vec::new();
        t.watch(
            dev(1),
            Watched { building: building(1), threshold_ms: THRESHOLD, last_seen: Some(0) },
            0,
            &mut c,
        );
        assert!(c.is_empty());
        let changes = run(&mut t, 0, THRESHOLD + 4 * MIN);
        assert_eq!(changes[0], (THRESHOLD, Change::Outdated(dev(1))));
        // Grace: 10 % of 30 min = 3 min.
        let (at, opened) = &changes[1];
        assert_eq!(*at, THRESHOLD + 3 * MIN);
        assert!(matches!(opened, Change::Opened(a) if a.outdated == 1 && a.id == 1));
        assert_eq!(changes.len(), 2, "one alert per outage: {changes:?}");
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn a_disconnected_building_waits_for_its_queue() {
        let mut t = Tracker::new(0);
        let mut c = Vec::new();
        let b = BuildingId::from_bytes([1; 16]);
        for n in [1, 2] {
            let w = Watched { building: building(1), threshold_ms: THRESHOLD, last_seen: Some(0) };
            t.watch(dev(n), w, 0, &mut c);
        }
        t.set_disconnected(HashSet::from([b]), MIN, &mut c);
        let changes = run(&mut t, MIN, THRESHOLD + 10 * MIN);
        assert!(
            changes.iter().all(|(_, c)| matches!(c, Change::Outdated(_))),
            "outdated, not alerted: {changes:?}"
        );
        // Back: device 1's queued statuses arrive within the grace, device 2 has none.
        let back = THRESHOLD + 10 * MIN;
        t.set_disconnected(HashSet::new(), back, &mut c);
        assert!(c.is_empty(), "{c:?}");
        // A queued status of device 2 with its old time: still no alert before the grace ends.
        t.seen(dev(2), 5 * MIN, back + 10_000, &mut c);
        assert!(c.iter().all(|c| matches!(c, Change::Back(_) | Change::Outdated(_))), "{c:?}");
        c.clear();
        t.seen(dev(1), back - MIN, back + MIN, &mut c);
        assert_eq!(c, [Change::Back(dev(1))]);
        let changes = run(&mut t, back + MIN, back + 5 * MIN);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].0, back + RECONNECT_GRACE_MS);
        assert!(matches!(&changes[0].1, Change::Opened(a) if a.outdated == 1));
    }

    #[test]
    fn a_little_late_does_not_flap() {
        let mut t = Tracker::new(0);
        let mut c = Vec::new();
        t.watch(
            dev(1),
            Watched { building: building(1), threshold_ms: THRESHOLD, last_seen: Some(0) },
            0,
            &mut c,
        );
        let changes = run(&mut t, 0, THRESHOLD + 2 * MIN);
        assert_eq!(changes, vec![(THRESHOLD, Change::Outdated(dev(1)))]);
        let mut c = Vec::new();
        t.seen(dev(1), THRESHOLD + 2 * MIN, THRESHOLD + 2 * MIN, &mut c);
        assert_eq!(c, vec![Change::Back(dev(1))], "back before the grace: no alert at all");
        assert!(run(&mut t, THRESHOLD + 2 * MIN, THRESHOLD + 10 * MIN).is_empty());
    }

    #[test]
    fn a_building_that_goes_dark_gives_one_alert_resolved_when_all_are_back() {
        let mut t = Tracker::new(41);
        let mut c = Vec::new();
        for n in 1..=200u8 {
            t.watch(
                dev(n),
                Watched {
                    building: building(7),
                    threshold_ms: THRESHOLD,
                    last_seen: Some(i64::from(n) * 1_000),
                },
                0,
                &mut c,
            );
        }
        t.watch(
            dev(201),
            Watched { building: building(8), threshold_ms: THRESHOLD, last_seen: Some(0) },
            0,
            &mut c,
        );
        let changes = run(&mut t, 0, THRESHOLD + 10 * MIN);
        let opened: Vec<&AlertSummary> = changes
            .iter()
            .filter_map(|(_, c)| if let Change::Opened(a) = c { Some(a) } else { None })
            .collect();
        assert_eq!(opened.len(), 2, "one alert per building");
        assert_eq!(opened[0].id, 42, "ids continue after the stored ones");
        let open = t.open_alerts();
        let b7 = open.iter().find(|a| a.building == building(7)).unwrap();
        assert_eq!((b7.devices.len(), b7.total_devices), (200, 200));
        assert_eq!(t.outdated_count(), 201);

        let now = THRESHOLD + 11 * MIN;
        let mut c = Vec::new();
        for n in 1..=199u8 {
            t.seen(dev(n), now, now, &mut c);
        }
        assert!(c.iter().all(|c| !matches!(c, Change::Resolved(_))), "still one device down");
        assert!(
            c.iter().all(|c| !matches!(c, Change::Updated(_))),
            "devices coming back are not announced one by one"
        );
        let mut c = Vec::new();
        t.seen(dev(200), now, now, &mut c);
        let resolved =
            c.iter().find_map(|c| if let Change::Resolved(a) = c { Some(a) } else { None }).unwrap();
        assert_eq!(
            (resolved.building, resolved.resolved_at, resolved.total_devices),
            (building(7), Some(now), 200)
        );
        assert_eq!(t.open_alerts().len(), 1);
    }

    #[test]
    fn everything_due_at_once_is_one_change_per_building() {
        // Central restarting after a long stop: 100k devices are already past their deadlines.
        let mut t = Tracker::new(0);
        let mut c = Vec::new();
        for n in 0..100_000u32 {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&n.to_be_bytes());
            let w =
                Watched { building: building((n % 20) as u8), threshold_ms: THRESHOLD, last_seen: Some(0) };
            t.watch(DeviceId::from_bytes(b), w, 0, &mut c);
        }
        let mut c = Vec::new();
        t.tick(10 * THRESHOLD, &mut c);
        let opened = c.iter().filter(|c| matches!(c, Change::Opened(_))).count();
        let updated = c.iter().filter(|c| matches!(c, Change::Updated(_))).count();
        assert_eq!((opened, updated), (20, 0));
        assert_eq!(t.outdated_count(), 100_000);
    }

    #[test]
    fn an_outage_open_at_restart_goes_on_under_its_id() {
        let mut t = Tracker::new(7);
        t.restore(building(1), 5, 100);
        t.restore(building(2), 6, 200);
        let mut c = Vec::new();
        let down = Watched { building: building(1), threshold_ms: THRESHOLD, last_seen: Some(0) };
        t.watch(dev(1), down, 10 * THRESHOLD, &mut c);
        assert!(
            matches!(c.as_slice(), [Change::Outdated(_), Change::Updated(a)] if a.id == 5 && a.opened_at == 100),
            "{c:?}"
        );
        let mut c = Vec::new();
        t.drop_restored(10 * THRESHOLD, &mut c);
        assert!(matches!(c.as_slice(), [Change::Resolved(a)] if a.id == 6), "building 2 came back: {c:?}");
        let mut c = Vec::new();
        let other = Watched { building: building(3), threshold_ms: THRESHOLD, last_seen: Some(0) };
        t.watch(dev(3), other, 10 * THRESHOLD, &mut c);
        assert!(
            matches!(c.last(), Some(Change::Opened(a)) if a.id == 8),
            "new ids follow the stored ones: {c:?}"
        );
    }

    #[test]
    fn never_seen_and_forgotten_devices_raise_nothing() {
        let mut t = Tracker::new(0);
        let mut c = Vec::new();
        t.watch(dev(1), Watched { building: None, threshold_ms: THRESHOLD, last_seen: None }, 0, &mut c);
        t.watch(dev(2), Watched { building: None, threshold_ms: THRESHOLD, last_seen: Some(0) }, 0, &mut c);
        let changes = run(&mut t, 0, THRESHOLD + 5 * MIN);
        assert!(changes.iter().all(|(_, c)| !matches!(c, Change::Outdated(d) if *d == dev(1))));
        let mut c = Vec::new();
        t.forget(dev(2), THRESHOLD + 5 * MIN, &mut c);
        assert!(matches!(c.as_slice(), [Change::Resolved(a)] if a.building.is_none()), "{c:?}");
        assert_eq!(t.outdated_count(), 0);
        // A stale status (older than the last one) changes nothing.
        t.watch(
            dev(3),
            Watched { building: None, threshold_ms: THRESHOLD, last_seen: Some(10 * MIN) },
            0,
            &mut c,
        );
        let mut c = Vec::new();
        t.seen(dev(3), 5 * MIN, 11 * MIN, &mut c);
        assert!(c.is_empty());
    }
}
