//! Monitoring: device states over time and outage alerts.
//!
//! [`tracker`] is the pure state machine (deadline index, hysteresis, grouping by building); this
//! module drives it: statuses from ingestion, registry changes, a timer set to the next deadline
//! (no scan of every device every second), and the alerts it raises, published on MQTT and kept
//! for the API (`/api/v1/alerts`), where operators acknowledge or silence them.

pub mod alerts;
pub mod deadlines;
pub mod forwarders;
pub mod reboots;
pub mod replicas;
pub mod sites;
pub mod tracker;
pub mod webhook;
pub mod wire;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use neosens_protocol::ids::DeviceId;
use neosens_runtime::mqtt::{MqttHandle, Qos};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use alerts::{AlertView, Event, Failing, Monitor, NOTICE_QUEUE, Notice, Seen};
pub use reboots::{BOOT_QUEUE, RebootLoopConfig, RebootLoopRule};

use crate::model::{AlertRecord, EntityKind, Timestamp};
use crate::registry::{ChangeFollower, Registry};

/// Changes that can move every device's threshold or watch: re-watch all.
const STRUCTURAL: [EntityKind; 4] =
    [EntityKind::Room, EntityKind::Building, EntityKind::DeviceType, EntityKind::Site];

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

/// Stores alert changes, then publishes them (JSON) on the alert topic (QoS 1, not retained)
/// and to the webhook, unless an operator silenced the alert; logs them.
async fn deliver(monitor: &Monitor, to: &Delivery, events: Vec<(Event, AlertRecord)>, now: i64) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = monitor.persist().await {
        tracing::error!(error = %e, "cannot store alerts (kept in memory, retried with the next change)");
    }
    for (event, alert) in events {
        let silenced = alert.silenced(now);
        tracing::info!(alert = alert.id, kind = ?alert.kind, event = event.as_str(), devices = alert.outdated,
            building = ?alert.building, rule = ?alert.rule, silenced, "alert");
        // Joins are logged; notifications say when an alert opens and when it is resolved.
        if silenced || event == Event::Updated {
            continue;
        }
        let body = serde_json::json!({"event": event.as_str(), "alert": wire::AlertJson::from(&alert)});
        if let Some(hook) = &to.webhook {
            hook.send(body.clone());
        }
        if let Err(e) = to.link.publish(&to.topic, body.to_string(), Qos::AtLeastOnce, false).await {
            tracing::warn!(error = %e, "cannot publish an alert");
        }
    }
}

/// What the monitor watches besides the registry.
#[derive(Debug)]
pub struct Inputs {
    /// Batches of statuses seen (device, status time in ms, failing rules).
    pub seen: mpsc::Receiver<Vec<Seen>>,
    /// What request handlers saw (each its own alert).
    pub notices: mpsc::Receiver<Notice>,
    /// The gateways' reports (their packet forwarders), looked at every
    /// [`forwarders::CHECK_EVERY`].
    pub gateways: crate::gateway_health::GatewayHealth,
    /// Devices booting (their `/device/config` answered at central).
    pub boots: mpsc::Receiver<DeviceId>,
    /// What makes a reboot loop, per device type.
    pub reboot_loop: RebootLoopConfig,
    /// How long a local-broker gateway may be out of touch before its site is alerted, ms.
    pub site_disconnected_after_ms: i64,
}

/// The registered gateways and what they last reported of their forwarders.
fn gateway_forwarders(
    registry: &Registry,
    health: &crate::gateway_health::GatewayHealth,
    now: i64,
) -> Vec<forwarders::GatewayForwarders> {
    let reports = health.all();
    registry
        .gateways()
        .into_iter()
        .map(|g| {
            let contact = reports.get(&g.id);
            forwarders::GatewayForwarders {
                gateway: g.id,
                up: contact.is_some_and(|c| c.is_up(now)),
                forwarders: contact
                    .map(|c| c.forwarders.iter().map(|f| (f.eui.clone(), f.last_seen_ms)).collect())
                    .unwrap_or_default(),
                name: g.name,
            }
        })
        .collect()
}

/// The gateways in local-broker mode and their last contact.
fn site_links(
    registry: &Registry,
    health: &crate::gateway_health::GatewayHealth,
    now: i64,
) -> Vec<sites::SiteLink> {
    let contacts = health.all();
    let scopes: std::collections::HashSet<_> =
        registry.local_broker_scopes().into_iter().map(|(g, _)| g).collect();
    registry
        .gateways()
        .into_iter()
        .filter(|g| scopes.contains(&g.id))
        .map(|g| {
            let contact = contacts.get(&g.id);
            sites::SiteLink {
                gateway: g.id,
                last_contact_ms: contact.map(|c| c.last_contact_ms),
                up: contact.is_some_and(|c| c.is_up(now)),
                name: g.name,
            }
        })
        .collect()
}

/// Watches the registry's devices (`only` those, when given) and resolves failure alerts whose
/// device or rule is gone.
fn watch(
    registry: &Registry,
    monitor: &Monitor,
    now: i64,
    only: Option<&HashSet<DeviceId>>,
) -> Vec<(Event, AlertRecord)> {
    let list = registry.watch_list(only);
    let mut events = monitor.apply(|t, c| {
        for (id, watched) in list {
            match watched {
                Some(w) => t.watch(id, w, now, c),
                None => t.forget(id, now, c),
            }
        }
    });
    events.extend(monitor.reconcile_failures(|d, rule| registry.has_status_rule(d, rule), now));
    events
}

/// Runs the monitor until `shutdown`: leading (see [`crate::leader`]) — tracking devices,
/// opening and notifying alerts — or following the leader ([`replicas`]).
pub async fn run(
    registry: Arc<Registry>,
    monitor: Monitor,
    mut inputs: Inputs,
    delivery: Delivery,
    mut leadership: crate::leader::Leadership,
    shutdown: CancellationToken,
) {
    loop {
        monitor.set_leading(leadership.is_leading());
        if !leadership.is_leading()
            && !replicas::follow(&monitor, &mut inputs, &mut leadership, &shutdown).await
        {
            return;
        }
        // Taking the lead: the alerts as the previous leader left them (open ones keep their
        // ids; none is notified again).
        monitor.set_leading(true);
        tracing::info!("monitor: leading");
        while let Err(e) = monitor.reload().await {
            tracing::error!(error = %e, "monitor: cannot read the stored alerts; retrying before leading");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(replicas::FOLLOW_EVERY) => {}
            }
        }
        if !lead(&registry, &monitor, &mut inputs, &delivery, &mut leadership, &shutdown).await {
            return;
        }
        tracing::info!("monitor: another replica leads now");
    }
}

/// What taking the lead changes: disconnected sites first (their overdue devices are held, not
/// alerted, by what follows), every device watched, and outages open when central stopped and
/// over since resolved.
fn take_lead(
    registry: &Arc<Registry>,
    monitor: &Monitor,
    gateways: &crate::gateway_health::GatewayHealth,
    now: i64,
) -> Vec<(Event, AlertRecord)> {
    let disconnected = crate::gateway_health::disconnected_buildings(registry, gateways, now);
    let mut events = monitor.apply(|t, c| t.set_disconnected(disconnected, now, c));
    events.extend(watch(registry, monitor, now, None));
    events.extend(monitor.apply(|t, c| t.drop_restored(now, c)));
    events
}

/// Leads the monitor until `shutdown` or an input closes (`false`), or the lead is lost
/// (`true`).
async fn lead(
    registry: &Arc<Registry>,
    monitor: &Monitor,
    inputs: &mut Inputs,
    delivery: &Delivery,
    leadership: &mut crate::leader::Leadership,
    shutdown: &CancellationToken,
) -> bool {
    let mut forwarder_check = tokio::time::interval(forwarders::CHECK_EVERY);
    forwarder_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut relayed = tokio::time::interval(replicas::FOLLOW_EVERY);
    relayed.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shared = leadership.is_shared();
    let clock = Clock::start();
    let mut follower = ChangeFollower::new(Arc::clone(registry), 100_000);
    let watch_all =
        |monitor: &Monitor, now: i64, only: Option<&HashSet<DeviceId>>| watch(registry, monitor, now, only);
    let now = clock.now();
    deliver(monitor, delivery, take_lead(registry, monitor, &inputs.gateways, now), now).await;
    loop {
        let wake = monitor.next_deadline().map(|d| clock.instant_of(d));
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = leadership.until(false) => return true,
            () = async { match wake { Some(w) => tokio::time::sleep_until(w).await, None => std::future::pending().await } } => {
                let now = clock.now();
                let changes = monitor.apply(|t, c| t.tick(now, c));
                deliver(monitor, delivery, changes, now).await;
            }
            _ = forwarder_check.tick() => {
                let now = clock.now();
                let disconnected = crate::gateway_health::disconnected_buildings(registry, &inputs.gateways, now);
                let mut events = monitor.apply(|t, c| t.set_disconnected(disconnected, now, c));
                events.extend(monitor.forwarders(&gateway_forwarders(registry, &inputs.gateways, now), now));
                let links = site_links(registry, &inputs.gateways, now);
                events.extend(monitor.sites(&links, inputs.site_disconnected_after_ms, now));
                events.extend(monitor.reboots_settled(now));
                deliver(monitor, delivery, events, now).await;
            }
            _ = relayed.tick(), if shared => {
                handle_relayed(registry, monitor, &inputs.reboot_loop, delivery, &clock).await;
            }
            Some(device) = inputs.boots.recv() => {
                let now = clock.now();
                let events = boot(registry, monitor, &inputs.reboot_loop, device, now);
                deliver(monitor, delivery, events, now).await;
            }
            Some(notice) = inputs.notices.recv() => {
                let now = clock.now();
                let events = monitor.notice(notice, now);
                deliver(monitor, delivery, events, now).await;
            }
            event = inputs.seen.recv() => {
                let Some(batch) = event else { return false };
                let now = clock.now();
                let events = monitor.seen(batch, now);
                deliver(monitor, delivery, events, now).await;
            }
            changed = follower.changed() => {
                if !changed { return false }
                let now = clock.now();
                let changes = match follower.next().await {
                    Ok(log) if !log.touches(&STRUCTURAL) => {
                        let devices: HashSet<DeviceId> =
                            log.keys_of(&[EntityKind::Device]).into_iter().map(DeviceId::from_bytes).collect();
                        watch_all(monitor, now, Some(&devices))
                    }
                    Ok(_) => watch_all(monitor, now, None),
                    Err(e) => {
                        // Whatever the unread entries were, watching everything again covers them.
                        tracing::error!(error = %e, "monitor: cannot read the change log; watching every device again");
                        follower.skip_to_now();
                        watch_all(monitor, now, None)
                    }
                };
                deliver(monitor, delivery, changes, now).await;
            }
        }
    }
}

/// What other replicas relayed (and the acknowledgements made through them), each item at
/// the time the other replica saw it.
async fn handle_relayed(
    registry: &Registry,
    monitor: &Monitor,
    reboot_loop: &RebootLoopConfig,
    delivery: &Delivery,
    clock: &Clock,
) {
    for item in replicas::take_relayed(monitor).await {
        let events = match item {
            replicas::Relayed::Notice { notice, at } => monitor.notice(notice, at),
            replicas::Relayed::Boot { device, at } => boot(registry, monitor, reboot_loop, device, at),
        };
        deliver(monitor, delivery, events, clock.now()).await;
    }
}

/// A device booted: counted against its type's reboot-loop rule.
fn boot(
    registry: &Registry,
    monitor: &Monitor,
    reboot_loop: &RebootLoopConfig,
    device: DeviceId,
    now: i64,
) -> Vec<(Event, AlertRecord)> {
    let rule = reboot_loop.rule(registry.device_type_name(device).as_deref());
    monitor.boot(device, rule, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceStatusRecord;
    use neosens_runtime::mqtt::{self, LinkConfig};

    const MIN: Duration = Duration::from_secs(60);

    /// Opens the monitor the way `run` does: its store read on the blocking pool.
    async fn open_monitor(registry: &Arc<Registry>) -> Monitor {
        registry.blocking(|r| Monitor::open(r.alert_store())).await.unwrap()
    }

    /// The fixture registry, built on the blocking pool as `run` would.
    async fn registry(dir: &std::path::Path) -> (Arc<Registry>, DeviceId) {
        let dir = dir.to_owned();
        let (registry, _, devices) =
            neosens_runtime::blocking::run(move || crate::registry::test_registry(&dir, 1)).await;
        (registry, devices[0])
    }

    fn start(
        registry: &Arc<Registry>,
        monitor: &Monitor,
    ) -> (mpsc::Sender<Vec<Seen>>, CancellationToken, tokio::task::JoinHandle<()>) {
        let shutdown = CancellationToken::new();
        let (link, _inbound) =
            mqtt::start(LinkConfig::new("mqtt://127.0.0.1:1".parse().unwrap(), "test"), shutdown.clone());
        let (seen, seen_rx) = mpsc::channel(10);
        let (_notices, notices_rx) = mpsc::channel(1);
        let delivery = Delivery { link, topic: "neosens/alerts".into(), webhook: None };
        let inputs = Inputs {
            seen: seen_rx,
            notices: notices_rx,
            gateways: Default::default(),
            boots: mpsc::channel(1).1,
            reboot_loop: RebootLoopConfig::default(),
            site_disconnected_after_ms: 3_600_000,
        };
        let always = crate::leader::Leadership::always();
        let task = tokio::spawn(run(
            Arc::clone(registry),
            monitor.clone(),
            inputs,
            delivery,
            always,
            shutdown.clone(),
        ));
        (seen, shutdown, task)
    }

    fn seen(id: DeviceId, at: i64) -> Seen {
        Seen { device: id, at, failing: Vec::new() }
    }

    fn wall_in(d: Duration) -> i64 {
        Timestamp::now().millis() + d.as_millis() as i64
    }

    #[tokio::test(start_paused = true)]
    async fn outdated_at_the_threshold_alerted_after_the_grace_resolved_when_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, id) = registry(dir.path()).await;
        let status = DeviceStatusRecord {
            last_seen: Some(Timestamp::now()),
            last_status: Some("running".into()),
            last_payload: None,
        };
        registry.blocking(move |r| r.put_statuses(vec![(id, status)])).await.unwrap();
        let monitor = open_monitor(&registry).await;
        let (seen_tx, shutdown, _task) = start(&registry, &monitor);

        tokio::time::sleep(29 * MIN).await;
        assert_eq!(monitor.counts(), (0, 0, 0), "fine before its 30 minutes");
        tokio::time::sleep(2 * MIN).await;
        assert_eq!(monitor.counts(), (1, 0, 0), "outdated after 30 minutes, no alert yet (grace)");
        assert!(monitor.is_outdated(id));
        tokio::time::sleep(3 * MIN).await;
        assert_eq!(monitor.counts(), (1, 1, 0), "alerted after the 3-minute grace");
        let alert = &monitor.alerts(false)[0];
        assert!(alert.devices.contains(&id) && alert.state == "open");
        assert!(monitor.acknowledge(alert.alert.id, "operator", Some(60), 0).await.unwrap().is_some());
        assert!(monitor.acknowledge(999, "operator", None, 0).await.unwrap().is_none());

        // A status: back to fine, the alert resolved and kept in the history.
        seen_tx.send(vec![seen(id, wall_in(34 * MIN))]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(monitor.counts(), (0, 0, 0));
        let history = monitor.alerts(true);
        assert_eq!((history.len(), history[0].state), (1, "resolved"));
        assert_eq!(history[0].alert.ack.as_ref().map(|a| a.by.as_str()), Some("operator"));

        // Disabled: no longer watched.
        let patch = crate::registry::DeviceChanges { enabled: Some(false), ..Default::default() };
        registry.blocking(move |r| r.update_device(&id.to_string(), patch)).await.unwrap();
        tokio::time::sleep(40 * MIN).await;
        assert_eq!(monitor.counts(), (0, 0, 0), "a disabled device is not outdated");
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_outage_and_its_ack_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, id) = registry(dir.path()).await;
        // Last seen 40 minutes ago (the wall clock does not follow tokio's paused time across
        // the restart, so the outage is in the past from the start).
        let long_ago = Timestamp(Timestamp::now().millis() - (40 * MIN).as_millis() as i64);
        let status = DeviceStatusRecord { last_seen: Some(long_ago), last_status: None, last_payload: None };
        registry.blocking(move |r| r.put_statuses(vec![(id, status)])).await.unwrap();
        let monitor = open_monitor(&registry).await;
        let (_seen, shutdown, task) = start(&registry, &monitor);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let first = monitor.alerts(false)[0].alert.clone();
        monitor.acknowledge(first.id, "operator", None, 1).await.unwrap();
        shutdown.cancel();
        task.await.unwrap();

        // Central restarts: the same outage, same id, same opening time, still acknowledged.
        let monitor = open_monitor(&registry).await;
        let (seen_tx, shutdown, _task) = start(&registry, &monitor);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let again = monitor.alerts(false);
        assert_eq!(again.len(), 1, "{again:?}");
        assert_eq!((again[0].alert.id, again[0].alert.opened_at), (first.id, first.opened_at));
        assert_eq!(again[0].alert.ack.as_ref().map(|a| a.by.as_str()), Some("operator"));
        assert_eq!(again[0].devices, vec![id]);

        // Seen again: resolved, and stored resolved.
        seen_tx.send(vec![seen(id, wall_in(MIN))]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        shutdown.cancel();
        let stored = registry.blocking(|r| r.alert_store().alerts()).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert!(stored[0].resolved_at.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rules_open_and_resolve_alerts_per_device_and_rule() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, id) = registry(dir.path()).await;
        let rules: Vec<crate::model::StatusRuleSpec> = serde_json::from_value(serde_json::json!([
            {"name": "not_running", "field": "status", "op": "ne", "value": "running"},
            {"name": "low_heap", "field": "heap", "op": "lt", "value": 20000}
        ]))
        .unwrap();
        let patch = crate::registry::DeviceTypeChanges { status_rules: Some(rules), ..Default::default() };
        registry.blocking(move |r| r.update_device_type("esp32", patch)).await.unwrap();
        let monitor = open_monitor(&registry).await;
        let (seen_tx, shutdown, _task) = start(&registry, &monitor);
        let status = |payload: &str| {
            let failing = registry.failing_rules(id, payload);
            Seen { device: id, at: wall_in(Duration::ZERO), failing }
        };

        seen_tx.send(vec![status(r#"{"status":"running","heap":150000}"#)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(monitor.counts(), (0, 0, 0));
        seen_tx.send(vec![status(r#"{"status":"error","heap":12000}"#)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(monitor.counts(), (0, 0, 2), "one alert per rule that holds");
        let open = monitor.alerts(false);
        let heap = open.iter().find(|a| a.alert.rule.as_deref() == Some("low_heap")).unwrap();
        assert_eq!(heap.alert.detail.as_deref(), Some("heap = 12000 (< 20000)"));
        assert_eq!(heap.devices, vec![id]);
        seen_tx.send(vec![status(r#"{"status":"error","heap":150000}"#)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(monitor.counts(), (0, 0, 1), "the heap alert resolved, the status one still open");
        let still = monitor.alerts(false)[0].alert.id;
        seen_tx.send(vec![status(r#"{"status":"error","heap":150000}"#)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(monitor.alerts(false)[0].alert.id, still, "the same failure is the same alert");

        // The rule removed from the type: its alert resolves.
        let patch =
            crate::registry::DeviceTypeChanges { status_rules: Some(Vec::new()), ..Default::default() };
        registry.blocking(move |r| r.update_device_type("esp32", patch)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(monitor.counts(), (0, 0, 0));
        assert_eq!(monitor.alerts(true).len(), 2);
        shutdown.cancel();
    }
}
