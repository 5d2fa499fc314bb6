//! Monitoring: device states over time and outage alerts.
//!
//! [`tracker`] is the pure state machine (deadline index, hysteresis, grouping by building); this
//! module drives it: statuses from ingestion, registry changes, a timer set to the next deadline
//! (no scan of every device every second), and the alerts it raises, published on MQTT and kept
//! for the API (`/api/v1/alerts`), where operators acknowledge or silence them.

pub mod deadlines;
pub mod tracker;
pub mod webhook;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use neosens_protocol::ids::DeviceId;
use neosens_runtime::mqtt::{MqttHandle, Qos};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::model::{EntityKind, Timestamp};
use crate::registry::Registry;
use tracker::{AlertSummary, Change, OutageAlert, Tracker};

/// Resolved alerts kept for the API.
const HISTORY: usize = 1_000;

/// Wall-clock milliseconds that follow tokio's clock, so tests with paused time see deadlines
/// pass exactly when they advance it.
#[derive(Debug, Clone, Copy)]
struct Clock {
    wall: i64,
    instant: Instant,
}

impl Clock {
    fn start() -> Self {
        Clock { wall: Timestamp::now().millis(), instant: Instant::now() }
    }
    fn now(&self) -> i64 {
        self.wall + self.instant.elapsed().as_millis() as i64
    }
    fn instant_of(&self, ms: i64) -> Instant {
        self.instant + Duration::from_millis(u64::try_from(ms - self.wall).unwrap_or(0))
    }
}

/// An operator's acknowledgement of an alert.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ack {
    /// Who.
    pub by: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// Notifications are muted until then (ms since the epoch).
    pub silenced_until: Option<i64>,
}

/// An alert as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    /// The outage.
    #[serde(flatten)]
    pub alert: AlertSummary,
    /// The devices outdated now (open alerts).
    #[schema(value_type = Vec<String>)]
    pub devices: Vec<DeviceId>,
    /// `open` or `resolved`.
    pub state: &'static str,
    /// The operator's acknowledgement.
    pub ack: Option<Ack>,
}

#[derive(Debug, Default)]
struct Shared {
    tracker: Tracker,
    acks: HashMap<u64, Ack>,
    resolved: VecDeque<AlertSummary>,
}

/// The monitor's handle: read states and alerts, acknowledge them.
#[derive(Debug, Clone, Default)]
pub struct Monitor {
    shared: Arc<Mutex<Shared>>,
}

impl Monitor {
    /// Open alerts, then recent resolved ones if `all`.
    pub fn alerts(&self, all: bool) -> Vec<AlertView> {
        let s = self.shared.lock();
        let open = s
            .tracker
            .open_alerts()
            .into_iter()
            .map(|a: OutageAlert| (a.summary(), a.devices.into_iter().collect::<Vec<_>>(), "open"));
        let resolved = s.resolved.iter().rev().cloned().map(|a| (a, Vec::new(), "resolved")).filter(|_| all);
        open.chain(resolved)
            .map(|(alert, devices, state)| AlertView {
                ack: s.acks.get(&alert.id).cloned(),
                alert,
                devices,
                state,
            })
            .collect()
    }

    /// Acknowledges an alert, optionally muting it for `silence_minutes`. `false` if unknown.
    pub fn acknowledge(&self, id: u64, by: &str, silence_minutes: Option<u32>, now: i64) -> bool {
        let mut s = self.shared.lock();
        let known =
            s.tracker.open_alerts().iter().any(|a| a.id == id) || s.resolved.iter().any(|a| a.id == id);
        if known {
            let silenced_until = silence_minutes.map(|m| now + i64::from(m) * 60_000);
            s.acks.insert(id, Ack { by: by.to_owned(), at: now, silenced_until });
        }
        known
    }

    /// Whether a device is outdated now.
    pub fn is_outdated(&self, id: DeviceId) -> bool {
        self.shared.lock().tracker.is_outdated(id)
    }

    /// (outdated devices, open alerts), for metrics.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.shared.lock();
        (s.tracker.outdated_count(), s.tracker.open_alerts().len())
    }

    fn apply(&self, f: impl FnOnce(&mut Tracker, &mut Vec<Change>)) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut s = self.shared.lock();
        f(&mut s.tracker, &mut changes);
        for c in &changes {
            if let Change::Resolved(a) = c {
                s.resolved.push_back(a.clone());
                if s.resolved.len() > HISTORY {
                    if let Some(old) = s.resolved.pop_front() {
                        s.acks.remove(&old.id);
                    }
                }
            }
        }
        changes
    }

    fn next_deadline(&self) -> Option<i64> {
        self.shared.lock().tracker.next_deadline()
    }
}

/// Where alert changes go.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The MQTT link.
    pub link: MqttHandle,
    /// The MQTT alert topic.
    pub topic: String,
    /// The webhook, when configured.
    pub webhook: Option<webhook::Webhook>,
}

/// Publishes alert changes (JSON) on the alert topic (QoS 1, not retained) and to the webhook,
/// unless an operator silenced the alert; logs them.
async fn deliver(monitor: &Monitor, to: &Delivery, changes: Vec<Change>, now: i64) {
    for change in changes {
        let (event, alert) = match change {
            Change::Opened(a) => ("opened", a),
            Change::Updated(a) => ("updated", a),
            Change::Resolved(a) => ("resolved", a),
            Change::Outdated(id) => {
                tracing::debug!(device = %id, "device outdated");
                continue;
            }
            Change::Back(id) => {
                tracing::debug!(device = %id, "device back");
                continue;
            }
        };
        let silenced =
            monitor.shared.lock().acks.get(&alert.id).and_then(|a| a.silenced_until).is_some_and(|u| u > now);
        tracing::info!(alert = alert.id, event, devices = alert.outdated, building = ?alert.building, silenced, "outage alert");
        // Joins are logged; notifications say when an alert opens and when it is resolved.
        if silenced || event == "updated" {
            continue;
        }
        let body = serde_json::json!({"event": event, "alert": alert});
        if let Some(hook) = &to.webhook {
            hook.send(body.clone());
        }
        if let Err(e) = to.link.publish(&to.topic, body.to_string(), Qos::AtLeastOnce, false).await {
            tracing::warn!(error = %e, "cannot publish an alert");
        }
    }
}

/// Runs the monitor until `shutdown`: `seen` receives batches of (device, status time in ms).
pub async fn run(
    registry: Arc<Registry>,
    monitor: Monitor,
    mut seen: mpsc::Receiver<Vec<(DeviceId, i64)>>,
    delivery: Delivery,
    shutdown: CancellationToken,
) {
    let clock = Clock::start();
    let mut revisions = registry.watch_revision();
    let mut revision = *revisions.borrow_and_update();
    let watch_all = |monitor: &Monitor, now: i64, only: Option<&HashSet<DeviceId>>| {
        let list = registry.watch_list(only);
        monitor.apply(|t, c| {
            for (id, watched) in list {
                match watched {
                    Some(w) => t.watch(id, w, now, c),
                    None => t.forget(id, now, c),
                }
            }
        })
    };
    let changes = watch_all(&monitor, clock.now(), None);
    deliver(&monitor, &delivery, changes, clock.now()).await;
    loop {
        let wake = monitor.next_deadline().map(|d| clock.instant_of(d));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = async { match wake { Some(w) => tokio::time::sleep_until(w).await, None => std::future::pending().await } } => {
                let now = clock.now();
                let changes = monitor.apply(|t, c| t.tick(now, c));
                deliver(&monitor, &delivery, changes, now).await;
            }
            event = seen.recv() => {
                let Some(batch) = event else { return };
                let now = clock.now();
                let changes = monitor.apply(|t, c| {
                    for (id, at) in batch {
                        t.seen(id, at.min(now), now, c);
                    }
                });
                deliver(&monitor, &delivery, changes, now).await;
            }
            changed = revisions.changed() => {
                if changed.is_err() { return }
                let now = clock.now();
                let latest = *revisions.borrow_and_update();
                let log = registry.store().changes_since(revision, 100_000).unwrap_or_default();
                revision = latest;
                let structural = log.iter().any(|c| matches!(c.kind, EntityKind::Room | EntityKind::Building | EntityKind::DeviceType | EntityKind::Site));
                let devices: HashSet<DeviceId> = log.iter().filter(|c| c.kind == EntityKind::Device).map(|c| DeviceId::from_bytes(c.key)).collect();
                let changes = if structural { watch_all(&monitor, now, None) } else { watch_all(&monitor, now, Some(&devices)) };
                deliver(&monitor, &delivery, changes, now).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceStatusRecord;
    use crate::registry::{BuildingInput, DeviceInput, DeviceTypeInput, RoomInput};
    use crate::secrets::ServerKeys;
    use crate::store::RedbStore;
    use neosens_runtime::mqtt::{self, LinkConfig};

    const MIN: Duration = Duration::from_secs(60);

    fn registry(dir: &std::path::Path) -> (Arc<Registry>, DeviceId) {
        let keys = Arc::new(ServerKeys::load_or_create(dir).unwrap());
        let registry = Registry::open(Arc::new(RedbStore::open(dir).unwrap()), keys).unwrap();
        let b = registry
            .create_building(BuildingInput { site: None, name: "U4".into(), description: String::new() })
            .unwrap();
        let r = registry
            .create_room(RoomInput {
                building: b.id,
                name: "302".into(),
                description: String::new(),
                topic: None,
            })
            .unwrap();
        registry
            .create_device_type(DeviceTypeInput {
                name: "esp32".into(),
                description: String::new(),
                config_schema: None,
                status_period_s: None,
                outdated_after_s: None,
                orders: None,
            })
            .unwrap();
        let d = registry
            .create_device(DeviceInput {
                uid: "24:0a:c4:12:34:56".into(),
                uid_kind: None,
                device_type: "esp32".into(),
                description: String::new(),
                rooms: vec![r.id],
                enabled: None,
                config: None,
                mqtt: None,
                login: None,
                outdated_after_s: None,
            })
            .unwrap();
        (Arc::new(registry), d.id)
    }

    #[tokio::test(start_paused = true)]
    async fn outdated_at_the_threshold_alerted_after_the_grace_resolved_when_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, id) = registry(dir.path());
        let status = DeviceStatusRecord {
            last_seen: Some(Timestamp::now()),
            last_status: Some("running".into()),
            last_payload: None,
        };
        registry.put_statuses(vec![(id, status)]).unwrap();
        let shutdown = CancellationToken::new();
        let (link, _inbound) =
            mqtt::start(LinkConfig::new("mqtt://127.0.0.1:1".parse().unwrap(), "test"), shutdown.clone());
        let monitor = Monitor::default();
        let (seen, seen_rx) = mpsc::channel(10);
        let delivery = Delivery { link, topic: "neosens/alerts".into(), webhook: None };
        tokio::spawn(run(Arc::clone(&registry), monitor.clone(), seen_rx, delivery, shutdown.clone()));

        tokio::time::sleep(29 * MIN).await;
        assert_eq!(monitor.counts(), (0, 0), "fine before its 30 minutes");
        tokio::time::sleep(2 * MIN).await;
        assert_eq!(monitor.counts(), (1, 0), "outdated after 30 minutes, no alert yet (grace)");
        assert!(monitor.is_outdated(id));
        tokio::time::sleep(3 * MIN).await;
        assert_eq!(monitor.counts(), (1, 1), "alerted after the 3-minute grace");
        let alert = &monitor.alerts(false)[0];
        assert!(alert.devices.contains(&id) && alert.state == "open");
        assert!(monitor.acknowledge(alert.alert.id, "operator", Some(60), 0));

        // A status: back to fine, the alert resolved and kept in the history.
        let wall = Timestamp::now().millis() + (34 * MIN).as_millis() as i64;
        seen.send(vec![(id, wall)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(monitor.counts(), (0, 0));
        let history = monitor.alerts(true);
        assert_eq!((history.len(), history[0].state), (1, "resolved"));
        assert_eq!(history[0].ack.as_ref().map(|a| a.by.as_str()), Some("operator"));

        // Disabled: no longer watched.
        registry
            .update_device(
                &id.to_string(),
                crate::registry::DevicePatch { enabled: Some(false), ..Default::default() },
            )
            .unwrap();
        tokio::time::sleep(40 * MIN).await;
        assert_eq!(monitor.counts(), (0, 0), "a disabled device is not outdated");
        shutdown.cancel();
    }
}
