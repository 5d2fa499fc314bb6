//! The monitor's handle: the state tracker, the alert records it gives rise to (outages and
//! failure states), their acknowledgements, and their persistence — open alerts survive a
//! restart under their ids, with the operators' acknowledgements.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use neosens_protocol::ids::{BuildingId, DeviceId};
use parking_lot::Mutex;
use serde::Serialize;

use super::tracker::{AlertSummary, Change, Tracker};
use crate::model::{Ack, AlertKind, AlertRecord};
use crate::store::{AlertStore, StoreError};

/// Resolved alerts kept (in memory and in the store).
pub const HISTORY: usize = 1_000;

/// An alert as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    /// The alert.
    #[serde(flatten)]
    pub alert: super::wire::AlertJson,
    /// The devices outdated now (open outages).
    #[schema(value_type = Vec<String>)]
    pub devices: Vec<DeviceId>,
    /// `open` or `resolved`.
    pub state: &'static str,
}

/// A rule that holds for a device's last status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The rule's name.
    pub rule: String,
    /// What it found.
    pub detail: String,
    /// The device's building.
    pub building: Option<BuildingId>,
}

/// A status the monitor is told about: when, and which failure rules hold for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The device.
    pub device: DeviceId,
    /// Status time, ms since the epoch.
    pub at: i64,
    /// Failure rules that hold (empty: none, and any open failure alert of the device resolves).
    pub failing: Vec<Failing>,
}

/// Something a request handler saw that an operator must hear of: its own alert, open until
/// acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Notice {
    /// What kind of alert.
    pub kind: AlertKind,
    /// The device concerned.
    pub device: Option<DeviceId>,
    /// Its building.
    pub building: Option<BuildingId>,
    /// What happened, for the operator.
    pub detail: String,
}

/// Notices waiting for the monitor at most (one per first password delivered: a burst beyond
/// this is logged by the sender and dropped).
pub const NOTICE_QUEUE: usize = 256;

/// An alert event to notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new alert.
    Opened,
    /// Devices joined an outage (logged, not notified).
    Updated,
    /// Resolved.
    Resolved,
}

impl Event {
    /// Its name in notifications.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Opened => "opened",
            Event::Updated => "updated",
            Event::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) tracker: Tracker,
    pub(super) records: BTreeMap<u64, AlertRecord>,
    /// Open failure alerts: device → rule → alert id.
    failures: HashMap<DeviceId, BTreeMap<String, u64>>,
    /// Open silent-forwarder alerts: (gateway, EUI) → alert id.
    pub(super) forwarders: HashMap<(neosens_protocol::ids::GatewayId, String), u64>,
    /// Boot times and open reboot-loop alerts.
    pub(super) reboots: super::reboots::Reboots,
    /// Local-broker gateways out of touch, and their open alerts.
    pub(super) sites: super::sites::Sites,
    pub(super) dirty: BTreeSet<u64>,
    forget: Vec<u64>,
}

impl Shared {
    fn on_outage(&mut self, event: Event, s: &AlertSummary) -> AlertRecord {
        let record = self.records.entry(s.id).or_insert_with(|| AlertRecord {
            id: s.id,
            kind: AlertKind::Outage,
            building: s.building,
            device: None,
            rule: None,
            detail: None,
            outdated: 0,
            total_devices: 0,
            opened_at: s.opened_at,
            resolved_at: None,
            ack: None,
        });
        record.outdated = s.outdated as u64;
        // A restored outage counts again from zero: keep the larger figure.
        record.total_devices = record.total_devices.max(s.total_devices as u64);
        if event == Event::Resolved {
            record.resolved_at = s.resolved_at;
        }
        let record = record.clone();
        self.dirty.insert(s.id);
        record
    }

    pub(super) fn resolve_failure(&mut self, id: u64, now: i64, out: &mut Vec<(Event, AlertRecord)>) {
        if let Some(r) = self.records.get_mut(&id) {
            r.resolved_at = Some(now);
            r.outdated = 0;
            out.push((Event::Resolved, r.clone()));
            self.dirty.insert(id);
        }
    }

    /// Drops the oldest resolved alerts beyond [`HISTORY`].
    pub(super) fn prune(&mut self) {
        let resolved: Vec<u64> = self.records.values().filter(|r| !r.is_open()).map(|r| r.id).collect();
        if resolved.len() > HISTORY {
            for id in &resolved[..resolved.len() - HISTORY] {
                self.records.remove(id);
                self.dirty.remove(id);
                self.forget.push(*id);
            }
        }
    }
}

/// The monitor's handle: read states and alerts, acknowledge them.
#[derive(Clone)]
pub struct Monitor {
    pub(super) shared: Arc<Mutex<Shared>>,
    store: Option<Arc<dyn AlertStore>>,
    /// Serialises writes so that an older copy of an alert never lands after a newer one.
    writing: Arc<Mutex<()>>,
    /// Whether this replica leads the monitor ([`crate::leader`]): one that does not writes
    /// acknowledgements only, and its alerts are the leader's, read back from the store.
    leading: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Monitor { .. }")
    }
}

impl Default for Monitor {
    /// A monitor that keeps its alerts in memory only (tests, benchmarks).
    fn default() -> Self {
        Monitor { shared: Arc::default(), store: None, writing: Arc::default(), leading: leading() }
    }
}

impl Monitor {
    /// A monitor that stores its alerts, with those stored before: open outages are taken back
    /// by the tracker, open failure alerts wait for the device's next status.
    pub fn open(store: Arc<dyn AlertStore>) -> Result<Self, StoreError> {
        let shared = read_shared(store.as_ref())?;
        Ok(Monitor {
            shared: Arc::new(Mutex::new(shared)),
            store: Some(store),
            writing: Arc::default(),
            leading: leading(),
        })
    }

    /// Reads the alerts again from the store (a replica taking the lead, or following the
    /// leader's alerts for its API), on the blocking pool.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let Some(store) = self.store.clone() else { return Ok(()) };
        let shared = neosens_runtime::blocking::run(move || read_shared(store.as_ref())).await?;
        *self.shared.lock() = shared;
        Ok(())
    }

    /// Takes the acknowledgements other replicas stored since (the leader, every few seconds):
    /// a silenced alert stops notifying, an acknowledged notice is resolved.
    pub(super) async fn merge_acks(&self) -> Result<(), StoreError> {
        let Some(store) = self.store.clone() else { return Ok(()) };
        let stored = neosens_runtime::blocking::run(move || store.alerts()).await?;
        let mut s = self.shared.lock();
        for theirs in stored {
            if let Some(ours) = s.records.get_mut(&theirs.id)
                && ours.adopt_newer_ack(&theirs)
            {
                tracing::info!(alert = theirs.id, "alert acknowledged through another replica");
            }
        }
        Ok(())
    }

    /// Sets whether this replica leads the monitor.
    pub(super) fn set_leading(&self, leading: bool) {
        self.leading.store(leading, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether this replica leads the monitor (the default: yes).
    pub fn is_leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn store(&self) -> Option<&Arc<dyn AlertStore>> {
        self.store.as_ref()
    }

    /// Open alerts, then recent resolved ones (newest first) if `all`.
    pub fn alerts(&self, all: bool) -> Vec<AlertView> {
        let s = self.shared.lock();
        let devices: HashMap<u64, Vec<DeviceId>> =
            s.tracker.open_alerts().into_iter().map(|a| (a.id, a.devices.into_iter().collect())).collect();
        let open = s.records.values().filter(|r| r.is_open());
        let resolved = s.records.values().rev().filter(|r| all && !r.is_open());
        open.chain(resolved)
            .map(|r| AlertView {
                devices: match r.kind {
                    AlertKind::Outage => devices.get(&r.id).cloned().unwrap_or_default(),
                    AlertKind::Failure
                    | AlertKind::ForeignDelivery
                    | AlertKind::ForwarderSilent
                    | AlertKind::RebootLoop
                    | AlertKind::SiteDisconnected => r.device.into_iter().collect(),
                },
                state: if r.is_open() { "open" } else { "resolved" },
                alert: r.into(),
            })
            .collect()
    }

    /// Acknowledges an alert, optionally muting it for `silence_minutes`. `None` if unknown.
    pub async fn acknowledge(
        &self,
        id: u64,
        by: &str,
        silence_minutes: Option<u32>,
        now: i64,
    ) -> Result<Option<AlertRecord>, StoreError> {
        let silenced_until = silence_minutes.map(|m| now + i64::from(m) * 60_000);
        let ack = Ack { by: by.to_owned(), at: now, silenced_until };
        if let Some(store) = self.store.clone().filter(|_| !self.is_leading()) {
            // The leader owns the rest of the alert: only the acknowledgement is written, the
            // leader takes it from the store.
            let stored = neosens_runtime::blocking::run(move || store.acknowledge(id, &ack)).await?;
            if let Some(r) = &stored {
                self.shared.lock().records.insert(id, r.clone());
            }
            return Ok(stored);
        }
        let record = {
            let mut s = self.shared.lock();
            let Some(r) = s.records.get_mut(&id) else { return Ok(None) };
            r.acknowledge(ack);
            let r = r.clone();
            s.dirty.insert(id);
            r
        };
        self.persist().await?;
        Ok(Some(record))
    }

    /// Whether a device is outdated now.
    pub fn is_outdated(&self, id: DeviceId) -> bool {
        self.shared.lock().tracker.is_outdated(id)
    }

    /// (outdated devices, open outage alerts, open failure alerts), for metrics.
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.shared.lock();
        let failures = s.failures.values().map(BTreeMap::len).sum();
        (s.tracker.outdated_count(), s.tracker.open_alerts().len(), failures)
    }

    /// Writes the alerts changed since the last call, on the blocking pool. Errors are the
    /// caller's to log: the in-memory state stays right, and the next write carries the change.
    pub async fn persist(&self) -> Result<(), StoreError> {
        let monitor = self.clone();
        neosens_runtime::blocking::run(move || monitor.write_changed()).await
    }

    fn write_changed(&self) -> Result<(), StoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        let _writing = self.writing.lock();
        let (records, forget) = {
            let mut s = self.shared.lock();
            let dirty = std::mem::take(&mut s.dirty);
            let records: Vec<AlertRecord> =
                dirty.iter().filter_map(|id| s.records.get(id).cloned()).collect();
            (records, std::mem::take(&mut s.forget))
        };
        if records.is_empty() && forget.is_empty() {
            return Ok(());
        }
        let result = store.put_alerts(&records, &forget);
        if result.is_err() {
            let mut s = self.shared.lock();
            s.dirty.extend(records.iter().map(|r| r.id));
            s.forget.extend(forget);
        }
        result
    }

    /// Runs `f` on the tracker and turns its changes into alert records; returns the alert
    /// events (devices going outdated or back are logged at debug level).
    pub(super) fn apply(&self, f: impl FnOnce(&mut Tracker, &mut Vec<Change>)) -> Vec<(Event, AlertRecord)> {
        let mut changes = Vec::new();
        let mut s = self.shared.lock();
        f(&mut s.tracker, &mut changes);
        let mut events = Vec::new();
        for c in changes {
            let (event, summary) = match c {
                Change::Opened(a) => (Event::Opened, a),
                Change::Updated(a) => (Event::Updated, a),
                Change::Resolved(a) => (Event::Resolved, a),
                Change::Outdated(id) => {
                    tracing::debug!(device = %id, "device outdated");
                    continue;
                }
                Change::Back(id) => {
                    tracing::debug!(device = %id, "device back");
                    continue;
                }
            };
            events.push((event, s.on_outage(event, &summary)));
        }
        s.prune();
        events
    }

    /// Statuses: the tracker learns when each device was seen, and failure alerts open or
    /// resolve as their rules hold or stop holding.
    pub(super) fn seen(&self, batch: Vec<Seen>, now: i64) -> Vec<(Event, AlertRecord)> {
        let mut failures = Vec::new();
        let mut events = self.apply(|t, c| {
            for seen in &batch {
                t.seen(seen.device, seen.at.min(now), now, c);
            }
        });
        let mut s = self.shared.lock();
        for seen in batch {
            let open = s.failures.remove(&seen.device).unwrap_or_default();
            let mut still = BTreeMap::new();
            for f in seen.failing {
                match open.get(&f.rule) {
                    Some(id) => {
                        still.insert(f.rule, *id);
                    }
                    None => {
                        let id = s.tracker.next_id();
                        let record = AlertRecord {
                            id,
                            kind: AlertKind::Failure,
                            building: f.building,
                            device: Some(seen.device),
                            rule: Some(f.rule.clone()),
                            detail: Some(f.detail),
                            outdated: 1,
                            total_devices: 1,
                            opened_at: now,
                            resolved_at: None,
                            ack: None,
                        };
                        s.records.insert(id, record.clone());
                        s.dirty.insert(id);
                        failures.push((Event::Opened, record));
                        still.insert(f.rule, id);
                    }
                }
            }
            for (rule, id) in open {
                if !still.contains_key(&rule) {
                    s.resolve_failure(id, now, &mut failures);
                }
            }
            if !still.is_empty() {
                s.failures.insert(seen.device, still);
            }
        }
        s.prune();
        events.extend(failures);
        events
    }

    /// Opens the alert of a notice.
    pub(super) fn notice(&self, notice: Notice, now: i64) -> Vec<(Event, AlertRecord)> {
        let mut s = self.shared.lock();
        let id = s.tracker.next_id();
        let record = AlertRecord {
            id,
            kind: notice.kind,
            building: notice.building,
            device: notice.device,
            rule: None,
            detail: Some(notice.detail),
            outdated: 0,
            total_devices: u64::from(notice.device.is_some()),
            opened_at: now,
            resolved_at: None,
            ack: None,
        };
        s.records.insert(id, record.clone());
        s.dirty.insert(id);
        s.prune();
        vec![(Event::Opened, record)]
    }

    /// Resolves the failure alerts whose device or rule is gone (`keep` says which still exist).
    pub(super) fn reconcile_failures(
        &self,
        keep: impl Fn(DeviceId, &str) -> bool,
        now: i64,
    ) -> Vec<(Event, AlertRecord)> {
        let mut out = Vec::new();
        let mut s = self.shared.lock();
        let mut gone = Vec::new();
        for (device, rules) in &s.failures {
            for (rule, id) in rules {
                if !keep(*device, rule) {
                    gone.push((*device, rule.clone(), *id));
                }
            }
        }
        for (device, rule, id) in gone {
            if let Some(rules) = s.failures.get_mut(&device) {
                rules.remove(&rule);
                if rules.is_empty() {
                    s.failures.remove(&device);
                }
            }
            s.resolve_failure(id, now, &mut out);
        }
        out
    }

    pub(super) fn next_deadline(&self) -> Option<i64> {
        self.shared.lock().tracker.next_deadline()
    }
}

fn leading() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(true))
}

/// The monitor's state from the stored alerts: open outages are taken back by the tracker,
/// open failure alerts wait for the device's next status.
fn read_shared(store: &dyn AlertStore) -> Result<Shared, StoreError> {
    let mut shared = Shared::default();
    let stored = store.alerts()?;
    let last = stored.iter().map(|r| r.id).max().unwrap_or(0);
    shared.tracker = Tracker::new(last);
    for r in stored {
        if r.is_open() {
            match (r.kind, r.device, &r.rule) {
                (AlertKind::Outage, _, _) => shared.tracker.restore(r.building, r.id, r.opened_at),
                (AlertKind::Failure, Some(d), Some(rule)) => {
                    shared.failures.entry(d).or_default().insert(rule.clone(), r.id);
                }
                (AlertKind::ForwarderSilent, _, Some(key)) => {
                    if let Some(key) = super::forwarders::parse_key(key) {
                        shared.forwarders.insert(key, r.id);
                    }
                }
                (AlertKind::RebootLoop, Some(d), _) => {
                    shared.reboots.open.insert(d, r.id);
                }
                (AlertKind::SiteDisconnected, _, Some(gateway)) => {
                    if let Ok(gateway) = gateway.parse() {
                        shared.sites.open.insert(gateway, r.id);
                    }
                }
                _ => {}
            }
        }
        shared.records.insert(r.id, r);
    }
    Ok(shared)
}
