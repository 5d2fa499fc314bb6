//! Several central processes on one database: each keeps the registry in memory and catches
//! up with the others' changes — when the database notifies a new revision, when a write of
//! its own finds the database moved on ([`Registry::mutate`]'s retry), and as a safety net at
//! a fixed period.

use neosens_protocol::ids::DeviceId;

use crate::model::{DeviceStatusRecord, EntityKind, Record};
use crate::store::Write;

use super::{Registry, RegistryError};

/// Kinds in the order their records refer to each other: parents first (puts), children
/// first when deleting.
const ORDER: [EntityKind; 8] = EntityKind::ALL;

fn rank(kind: EntityKind) -> usize {
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

/// The writes that bring the memory to the store's state: deletions first (children before
/// parents, so a MAC or login freed by one record is free before another takes it), then the
/// current records (parents before children).
fn writes_for(changed: Vec<(EntityKind, [u8; 16], Option<Record>)>) -> Vec<Write> {
    let (mut puts, mut deletes): (Vec<_>, Vec<_>) = changed.into_iter().partition(|(_, _, r)| r.is_some());
    deletes.sort_by_key(|(kind, _, _)| std::cmp::Reverse(rank(*kind)));
    puts.sort_by_key(|(kind, _, _)| rank(*kind));
    let deletes = deletes.into_iter().map(|(kind, key, _)| Write::Delete(kind, key));
    deletes.chain(puts.into_iter().filter_map(|(_, _, r)| r.map(Write::Put))).collect()
}

impl Registry {
    /// Reads what other processes changed in the store since the revision in memory and
    /// applies it; returns the revision now in memory. Blocking (the store is read).
    ///
    /// The store is read without the writer lock (this process's writes go on meanwhile); the
    /// view is applied only if it is newer than the memory then — a view at revision R holds
    /// every record changed up to R as it is at R, this process's own changes included, so it
    /// never takes the memory back.
    pub fn catch_up(&self) -> Result<u64, RegistryError> {
        let caught = self.store.changed_since(self.revision())?;
        let _writer = self.writer.lock();
        Ok(self.apply_caught(caught))
    }

    /// [`Registry::catch_up`] with the writer lock already held.
    pub(super) fn catch_up_locked(&self) -> Result<u64, RegistryError> {
        let caught = self.store.changed_since(self.revision())?;
        Ok(self.apply_caught(caught))
    }

    fn apply_caught(&self, caught: crate::store::CaughtUp) -> u64 {
        let mut state = self.state.write();
        let from = state.revision;
        if caught.revision <= from {
            return from;
        }
        let records = caught.changed.len();
        state.apply(writes_for(caught.changed), caught.revision);
        drop(state);
        self.revisions.send_replace(caught.revision);
        tracing::debug!(from, to = caught.revision, records, "caught up with other replicas");
        caught.revision
    }
}

/// One wait for a notification at most (shutdown is noticed within it).
const LISTEN_SLICE: std::time::Duration = std::time::Duration::from_secs(1);

/// A catch-up at least this often, notified or not: a notification sent while the listening
/// connection was being re-opened is not lost for longer.
const CATCH_UP_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps the registry in step with the other processes sharing its store, until `shutdown`
/// (a supervised task: it returns on a lost database link and is restarted). With a store only
/// this process writes (redb), it only waits for the shutdown.
pub async fn follow_other_replicas(
    registry: std::sync::Arc<Registry>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let listener = match registry.blocking(|r| r.store.listen()).await {
        Ok(Some(listener)) => listener,
        Ok(None) => return shutdown.cancelled().await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for other replicas' changes (retrying)");
            return;
        }
    };
    let mut listener = Some(listener);
    // The first round catches up with what changed between loading and listening.
    let mut last_catch_up: Option<std::time::Instant> = None;
    while !shutdown.is_cancelled() {
        let Some(mut l) = listener.take() else { break };
        let (l, waited) = neosens_runtime::blocking::run(move || {
            let waited = l.wait(LISTEN_SLICE);
            (l, waited)
        })
        .await;
        listener = Some(l);
        match waited {
            Err(e) => {
                tracing::warn!(error = %e, "listening for other replicas' changes failed (reconnecting)");
                break;
            }
            // Its own commits are notified too: only a revision past the memory's is news.
            Ok(notified)
                if notified.is_some_and(|r| r == 0 || r > registry.revision())
                    || last_catch_up.is_none_or(|t| t.elapsed() >= CATCH_UP_PERIOD) =>
            {
                last_catch_up = Some(std::time::Instant::now());
                if let Err(e) = registry.blocking(|r| r.catch_up()).await {
                    tracing::warn!(error = %e, "catching up with other replicas failed (retrying)");
                }
            }
            Ok(_) => {}
        }
    }
    // (Dropping the listener closes its connection on a thread of its own.)
    drop(listener);
}

/// How often a replica reads the statuses the others ingested (each status reaches one
/// replica only: MQTT shared subscriptions).
const STATUS_FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Registry {
    /// Reads the statuses stored after `cursor` (by any process) and keeps those newer than
    /// the memory's; returns the new cursor and the statuses taken (`None`: the store is not
    /// shared, the memory has every status). Blocking (the store is read).
    ///
    /// A recent status of a device this process has not loaded yet (created on another replica
    /// a moment ago) holds the cursor back, so that the next read takes it once the registry
    /// has caught up; an old one (a device since deleted) does not.
    #[allow(clippy::type_complexity)]
    pub fn follow_statuses(
        &self,
        cursor: u64,
    ) -> Result<Option<(u64, Vec<(DeviceId, DeviceStatusRecord)>)>, RegistryError> {
        let Some(changes) = self.store.statuses_since(cursor)? else { return Ok(None) };
        let recent = crate::model::Timestamp::now().millis() - HOLD_BACK_MS;
        let mut next = changes.cursor;
        let mut state = self.state.write();
        let mut taken = Vec::new();
        for (seq, key, status) in changes.statuses {
            let id = DeviceId::from_bytes(key);
            let newer = match state.statuses.get(&id) {
                Some(known) => status.last_seen > known.last_seen,
                None => true,
            };
            if !newer {
                continue;
            }
            if state.devices.contains_key(&id) {
                state.statuses.insert(id, status.clone());
                taken.push((id, status));
            } else if status.last_seen.is_some_and(|t| t.millis() >= recent) {
                next = next.min(seq.saturating_sub(1)).max(cursor);
            }
        }
        Ok(Some((next, taken)))
    }
}

/// How recent a status of a device not loaded yet must be to hold the cursor back.
const HOLD_BACK_MS: i64 = 60_000;

/// Keeps the memory's statuses in step with those the other replicas ingest, and tells the
/// monitor of them (the leader's tracks every device), until `shutdown`. With a store only this
/// process writes, it only waits for the shutdown.
pub async fn follow_statuses(
    registry: std::sync::Arc<Registry>,
    seen: tokio::sync::mpsc::Sender<Vec<crate::monitor::Seen>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut cursor = 0;
    let mut every = tokio::time::interval(STATUS_FOLLOW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let (next, taken) = match registry.blocking(move |r| r.follow_statuses(cursor)).await {
            Ok(Some(found)) => found,
            Ok(None) => return shutdown.cancelled().await,
            Err(e) => {
                tracing::warn!(error = %e, "reading the statuses other replicas ingested failed (retrying)");
                continue;
            }
        };
        cursor = next;
        if taken.is_empty() {
            continue;
        }
        let batch = taken.iter().map(|(id, s)| registry.seen(*id, s)).collect();
        if seen.send(batch).await.is_err() {
            return;
        }
    }
}
