//! Bulk operations: one action on many devices (a filter or a list), confirmed once, recorded
//! once with each device's outcome.
//!
//! Registry actions (move, type, enable/disable, credential reset) land in one transaction.
//! Orders go out **paced**, [`ORDERS_PER_SECOND`] for all operations together: a building of
//! boards told to reboot at once would reconnect at once, and the broker and the provisioning
//! path would take the storm. Outcomes are stored as they come (every second while sending) and
//! the last [`crate::store::KEPT_BULK_OPERATIONS`] operations are kept.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use neosens_protocol::ids::DeviceId;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::audit;
use crate::model::{AuditEntry, BulkAction, BulkOperation, BulkOutcome, Scope, Timestamp};
use crate::registry::{OrderSpec, Registry, RegistryError};
use crate::store::{KEPT_BULK_OPERATIONS, Store, StoreError};

/// The pace of bulk orders, all operations together.
pub const ORDERS_PER_SECOND: u32 = 20;

/// Devices in one operation at most.
pub const MAX_BULK_DEVICES: usize = 100_000;

/// An order to send: its operation, the device's index, and the scope of who started it (checked
/// again at its turn: a device may have moved to another site meanwhile).
type Queued = (Arc<Mutex<BulkOperation>>, usize, Arc<Scope>);

/// Operations, newest last, and the orders waiting to go out.
#[derive(Clone)]
pub struct BulkOps {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    operations: Mutex<VecDeque<Arc<Mutex<BulkOperation>>>>,
    next_id: AtomicU64,
    /// (operation, index in its devices) of the orders to send, oldest first.
    queue: Mutex<VecDeque<Queued>>,
    wake: tokio::sync::Notify,
}

/// The kept operations; with `fail_unfinished`, the orders of unfinished ones that had not gone
/// out fail (stored so).
fn load(store: &dyn Store, fail_unfinished: bool) -> Result<Vec<BulkOperation>, StoreError> {
    let mut loaded = store.bulk_operations()?;
    for op in loaded.iter_mut().filter(|op| fail_unfinished && op.finished_at.is_none()) {
        for o in &mut op.outcomes {
            if *o == BulkOutcome::Pending {
                *o = BulkOutcome::Failed("not sent: central stopped before its turn".into());
            }
        }
        op.finished_at = Some(Timestamp::now());
        store.put_bulk_operation(op)?;
    }
    Ok(loaded)
}

/// The name of an action, as the audit trail and the API say it.
pub fn action_name(action: &BulkAction) -> &'static str {
    match action {
        BulkAction::Move { .. } => "move",
        BulkAction::SetType { .. } => "set_type",
        BulkAction::SetEnabled { enabled: true } => "enable",
        BulkAction::SetEnabled { enabled: false } => "disable",
        BulkAction::ResetCredentials => "reset_credentials",
        BulkAction::Order { .. } => "order",
    }
}

impl BulkOps {
    /// Loads the kept operations. Orders that had not gone out when central stopped are not sent
    /// late: they fail with a reason the operator sees — except on a store other replicas share,
    /// where the leader may be sending them ([`BulkOps::reload`] fails them when this replica
    /// takes the lead).
    pub fn open(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let fail_unfinished = !store.shared();
        let loaded = load(store.as_ref(), fail_unfinished)?;
        let next = loaded.iter().map(|o| o.id).max().unwrap_or(0) + 1;
        Ok(BulkOps {
            inner: Arc::new(Inner {
                store,
                operations: Mutex::new(loaded.into_iter().map(|o| Arc::new(Mutex::new(o))).collect()),
                next_id: AtomicU64::new(next),
                queue: Mutex::new(VecDeque::new()),
                wake: tokio::sync::Notify::new(),
            }),
        })
    }

    /// Reads the operations again (this replica takes the lead: the operations are the previous
    /// leader's); orders it had not sent fail with a reason. Blocking.
    pub fn reload(&self) -> Result<(), StoreError> {
        let loaded = load(self.inner.store.as_ref(), true)?;
        self.inner.next_id.store(loaded.iter().map(|o| o.id).max().unwrap_or(0) + 1, Ordering::Relaxed);
        self.inner.queue.lock().clear();
        *self.inner.operations.lock() = loaded.into_iter().map(|o| Arc::new(Mutex::new(o))).collect();
        Ok(())
    }

    /// Runs `action` on `devices` as the current actor (blocking: registry and store work).
    /// Registry actions are done when this returns; orders are queued for the sender.
    pub fn start(
        &self,
        registry: &Registry,
        action: BulkAction,
        target: String,
        devices: Vec<[u8; 16]>,
    ) -> Result<BulkOperation, RegistryError> {
        if devices.len() > MAX_BULK_DEVICES {
            return Err(RegistryError::invalid("target", format!("at most {MAX_BULK_DEVICES} devices")));
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let ordering = matches!(action, BulkAction::Order { .. });
        let outcomes = if ordering {
            vec![BulkOutcome::Pending; devices.len()]
        } else {
            registry.apply_bulk(&action, &devices)?
        };
        let op = BulkOperation {
            id,
            at: Timestamp::now(),
            by: audit::current_actor(),
            finished_at: (!ordering || devices.is_empty()).then(Timestamp::now),
            action,
            target,
            devices,
            outcomes,
        };
        self.inner.store.put_bulk_operation(&op)?;
        let detail = format!("{} devices ({})", op.devices.len(), op.target);
        let entry = audit::event(
            &format!("bulk.{}", action_name(&op.action)),
            "bulk",
            id.to_string(),
            op.target.clone(),
            detail,
        );
        registry.record_audit(&[AuditEntry { actor: op.by.clone(), ..entry }])?;
        let shared = Arc::new(Mutex::new(op.clone()));
        {
            let mut ops = self.inner.operations.lock();
            ops.push_back(Arc::clone(&shared));
            while ops.len() > KEPT_BULK_OPERATIONS as usize {
                ops.pop_front();
            }
        }
        if ordering && !op.devices.is_empty() {
            let scope = Arc::new(crate::registry::current_scope());
            let queued = (0..op.devices.len()).map(|i| (Arc::clone(&shared), i, Arc::clone(&scope)));
            self.inner.queue.lock().extend(queued);
            self.inner.wake.notify_one();
        }
        tracing::info!(
            operation = id,
            action = action_name(&op.action),
            devices = op.devices.len(),
            "bulk operation started"
        );
        Ok(op)
    }

    /// The kept operations seen through `view`, newest first (no operation is copied whole:
    /// one can list 100,000 devices).
    pub fn list<T>(&self, view: impl Fn(&BulkOperation) -> T) -> Vec<T> {
        let ops: Vec<_> = self.inner.operations.lock().iter().rev().cloned().collect();
        ops.iter().map(|o| view(&o.lock())).collect()
    }

    /// One operation, seen through `view`.
    pub fn get<T>(&self, id: u64, view: impl FnOnce(&BulkOperation) -> T) -> Option<T> {
        let op = self.inner.operations.lock().iter().find(|o| o.lock().id == id).cloned()?;
        let out = view(&op.lock());
        Some(out)
    }

    /// Orders queued and not sent yet (`/metrics`).
    pub fn queued(&self) -> usize {
        self.inner.queue.lock().len()
    }

    /// Sends the queued orders at [`ORDERS_PER_SECOND`] until `shutdown`.
    pub async fn run_sender(
        self,
        registry: Arc<Registry>,
        mqtt: neosens_runtime::mqtt::MqttHandle,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / ORDERS_PER_SECOND);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_saved = Instant::now();
        // The operation with outcomes not stored yet: stored at the latest when stopping, so an
        // order sent just before is not reported "not sent" after the restart.
        let mut unsaved: Option<Arc<Mutex<BulkOperation>>> = None;
        loop {
            let next = self.inner.queue.lock().pop_front();
            let Some((op, index, scope)) = next else {
                tokio::select! {
                    () = shutdown.cancelled() => return self.save(unsaved).await,
                    () = self.inner.wake.notified() => continue,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return self.save(unsaved.or(Some(op))).await,
                _ = tick.tick() => {}
            }
            let outcome = send_order(&registry, &mqtt, &op, index, &scope).await;
            let finished = {
                let mut o = op.lock();
                o.outcomes[index] = outcome;
                let finished = index + 1 == o.devices.len();
                if finished {
                    o.finished_at = Some(Timestamp::now());
                }
                finished
            };
            if unsaved.as_ref().is_some_and(|u| !Arc::ptr_eq(u, &op)) {
                self.save(unsaved.take()).await;
            }
            unsaved = Some(Arc::clone(&op));
            if finished || last_saved.elapsed() >= Duration::from_secs(1) {
                last_saved = Instant::now();
                self.save(unsaved.take()).await;
                if finished {
                    tracing::info!(operation = op.lock().id, "bulk orders sent");
                }
            }
        }
    }

    /// Stores an operation's outcomes so far.
    async fn save(&self, op: Option<Arc<Mutex<BulkOperation>>>) {
        let Some(op) = op else { return };
        let snapshot = op.lock().clone();
        let store = Arc::clone(&self.inner.store);
        if let Err(e) = neosens_runtime::blocking::run(move || store.put_bulk_operation(&snapshot)).await {
            tracing::warn!(error = %e, "storing a bulk operation's progress failed");
        }
    }
}

/// Sends one device's order of an operation; its outcome.
async fn send_order(
    registry: &Arc<Registry>,
    mqtt: &neosens_runtime::mqtt::MqttHandle,
    op: &Arc<Mutex<BulkOperation>>,
    index: usize,
    scope: &Scope,
) -> BulkOutcome {
    let (device, spec, by, id) = {
        let o = op.lock();
        let BulkAction::Order { order, value } = &o.action else {
            return BulkOutcome::Failed("not an order".into());
        };
        let value = value.as_deref().and_then(|v| serde_json::from_str(v).ok());
        let spec = OrderSpec { order: order.clone(), value, module: None, dest: None };
        (o.devices[index], spec, o.by.clone(), o.id)
    };
    let key = DeviceId::from_bytes(device).to_string();
    if let Err(e) = registry.changeable_device(&key, scope) {
        return BulkOutcome::Failed(format!("not sent: {e}"));
    }
    let order = match registry.prepare_order(&key, &spec, &format!("bulk {id} by {}", by.name())) {
        Ok(order) => Arc::new(order),
        Err(e) => return BulkOutcome::Failed(e.to_string()),
    };
    if !mqtt.stats().connected() {
        return BulkOutcome::Failed("not sent: the broker link is down".into());
    }
    // A node order (downlink) waits at the gateways: at least once, as a single order is.
    let qos = if order.at_least_once {
        neosens_runtime::mqtt::Qos::AtLeastOnce
    } else {
        neosens_runtime::mqtt::Qos::AtMostOnce
    };
    let outcome = match mqtt.publish(&order.record.topic, order.record.payload.clone(), qos, false).await {
        Ok(()) => BulkOutcome::Done,
        Err(e) => BulkOutcome::Failed(format!("not sent: {e}")),
    };
    let text = match &outcome {
        BulkOutcome::Done if order.at_least_once => "published: waits for the node's next uplink".to_owned(),
        BulkOutcome::Done => "sent".to_owned(),
        BulkOutcome::Failed(why) => why.clone(),
        BulkOutcome::Pending => String::new(),
    };
    let recorded = Arc::clone(&order);
    if let Err(e) = registry.acting(by, move |r| r.record_order(&recorded, &text)).await {
        tracing::warn!(device = %key, error = %e, "recording a bulk order failed");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Actor;
    use crate::registry::test_registry;

    #[test]
    fn registry_actions_are_done_at_once_and_orders_left_unsent_by_a_stop_fail_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, _, ids) = test_registry(dir.path(), 3);
        let devices: Vec<[u8; 16]> = ids.iter().map(|d| d.to_bytes()).collect();
        let bulk = BulkOps::open(registry.shared_store()).unwrap();
        let op = bulk
            .start(&registry, BulkAction::SetEnabled { enabled: false }, "room 302".into(), devices.clone())
            .unwrap();
        assert_eq!(
            (op.id, op.outcomes.clone(), op.finished_at.is_some()),
            (1, vec![BulkOutcome::Done; 3], true)
        );
        assert!(!registry.device(&ids[0].to_string()).unwrap().enabled);
        let order = BulkAction::Order { order: "reboot".into(), value: None };
        let queued = bulk.start(&registry, order, "room 302".into(), devices).unwrap();
        assert_eq!((queued.id, bulk.queued(), queued.finished_at), (2, 3, None));
        assert_eq!(bulk.list(|o| o.id), [2, 1]);

        // Central stops before sending: at the next start the orders are failed, not sent late.
        drop(bulk);
        let reopened = BulkOps::open(registry.shared_store()).unwrap();
        let op = reopened.get(2, Clone::clone).unwrap();
        assert!(op.finished_at.is_some());
        assert!(
            op.outcomes.iter().all(|o| matches!(o, BulkOutcome::Failed(m) if m.contains("central stopped")))
        );
        assert_eq!(
            reopened.start(&registry, BulkAction::ResetCredentials, "x".into(), Vec::new()).unwrap().id,
            3
        );
        let trail = registry.audit_page(None, 10, &|e| e.action.starts_with("bulk.")).unwrap();
        assert_eq!(trail.entries.len(), 3);
        assert_eq!(trail.entries[2].actor, Actor::System { component: "central".into() });
    }

    #[test]
    fn an_operation_beyond_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, _, _) = test_registry(dir.path(), 0);
        let bulk = BulkOps::open(registry.shared_store()).unwrap();
        let devices = vec![[0; 16]; MAX_BULK_DEVICES + 1];
        assert!(bulk.start(&registry, BulkAction::ResetCredentials, "x".into(), devices).is_err());
    }
}
