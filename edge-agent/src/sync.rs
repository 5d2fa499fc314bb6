//! Keeping the cache in step with central: the sync long-poll, and the reports that flow the
//! other way (credentials delivered offline, device logs kept offline, the gateway's health).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use neosens_protocol::edge::HealthReport;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::central::{Central, CentralError};
use crate::outbox::Outbox;

/// How often reports go to central (and the outbox is checked for expired messages).
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Sync counters, for metrics and the gateway's status.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Revision applied.
    pub revision: AtomicU64,
    /// Last successful exchange with central, seconds since the epoch (0: none yet).
    pub last_success_s: AtomicU64,
    /// Batches applied.
    pub batches: AtomicU64,
    /// Failed sync requests.
    pub failures: AtomicU64,
    /// Woken after each batch applied (the gateway's status waits for its first sync).
    pub synced: Notify,
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs the sync loop until `shutdown`. `resync` (the `update` order) cuts a wait short.
pub async fn run(
    central: Central,
    cache: Cache,
    stats: Arc<SyncStats>,
    wait: Duration,
    resync: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = neosens_runtime::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    // A snapshot coming in pages: (the revision it stands for, the last device id received).
    let mut paging: Paging = None;
    loop {
        let since = match cache.revision() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading the cache revision");
                0
            }
        };
        stats.revision.store(since, Ordering::Relaxed);
        let after = paging.map(|(_, last)| last);
        let wait = if after.is_some() { Duration::ZERO } else { wait };
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            () = resync.notified() => continue,
            outcome = central.sync(since, after, wait) => outcome,
        };
        match outcome {
            Ok(Some(batch)) => {
                let cache = cache.clone();
                let (kind, n, more) = (batch.kind, batch.changes.len(), batch.more);
                let revision;
                (revision, paging) = page_revision(&batch, paging);
                match neosens_runtime::blocking::run(move || cache.apply(&batch, revision)).await {
                    Ok(()) => {
                        stats.revision.store(revision, Ordering::Relaxed);
                        stats.batches.fetch_add(1, Ordering::Relaxed);
                        stats.last_success_s.store(now_s(), Ordering::Relaxed);
                        tracing::info!(revision, ?kind, changes = n, more, "registry synced");
                        stats.synced.notify_waiters();
                        backoff.reset();
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "applying a sync batch");
                        paging = None;
                        sleep_or_stop(&shutdown, backoff.next_delay()).await;
                    }
                }
            }
            Ok(None) => {
                stats.last_success_s.store(now_s(), Ordering::Relaxed);
                backoff.reset();
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                // A snapshot cut short starts again (its pages stored revision 0).
                paging = None;
                match &e {
                    CentralError::Unauthorized => tracing::error!(error = %e, "sync refused"),
                    _ => {
                        tracing::warn!(error = %e, retry_in_s = backoff.current().as_secs(), "sync failed; serving from the cache")
                    }
                }
                if sleep_or_stop(&shutdown, backoff.next_delay()).await {
                    return;
                }
            }
        }
    }
}

/// A snapshot arriving in pages: the revision it stands for, and the last device received (the
/// next page starts after it).
type Paging = Option<(u64, neosens_protocol::ids::DeviceId)>;

/// The revision to store with `batch`, and the paging state after it. Pages of a snapshot store
/// revision 0 until the last one, so that a crash before the last page starts the snapshot again
/// rather than leaving half of it as the current state.
fn page_revision(batch: &neosens_protocol::sync::SyncBatch, paging: Paging) -> (u64, Paging) {
    let snapshot_revision = match (batch.kind, paging) {
        (neosens_protocol::sync::BatchKind::Snapshot, _) => Some(batch.revision),
        (_, Some((r, _))) => Some(r),
        _ => None,
    };
    let revision = match snapshot_revision {
        Some(r) if !batch.more => r,
        Some(_) => 0,
        None => batch.revision,
    };
    let last_device = batch.changes.iter().rev().find_map(|c| match c {
        neosens_protocol::sync::Change::UpsertDevice(d) => Some(d.id),
        _ => None,
    });
    let next = match (snapshot_revision, batch.more, last_device) {
        (Some(r), true, Some(last)) => Some((r, last)),
        _ => None,
    };
    (revision, next)
}

/// Sleeps; `true` if the agent is stopping.
async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

/// Runs the reports until `shutdown`: deliveries made offline, device logs kept offline, health;
/// and drops outbox messages past their age. Every [`REPORT_EVERY`]; after a failure (central
/// away) sooner, from 1 s doubling up to it, so what was kept offline reaches central soon after
/// it is back.
pub async fn report(central: Central, cache: Cache, outbox: Outbox, shutdown: CancellationToken) {
    let mut wait = Duration::ZERO;
    let mut retry = neosens_runtime::backoff::Backoff::new(Duration::from_secs(1), REPORT_EVERY);
    loop {
        if sleep_or_stop(&shutdown, wait).await {
            return;
        }
        wait = match report_once(&central, &cache, &outbox).await {
            Ok(()) => {
                retry.reset();
                REPORT_EVERY
            }
            Err(e) => {
                tracing::debug!(error = %e, retry_in_s = retry.current().as_secs(), "reports to central postponed");
                retry.next_delay()
            }
        };
    }
}

/// One round of reports.
pub async fn report_once(central: &Central, cache: &Cache, outbox: &Outbox) -> Result<(), CentralError> {
    let now_ms = now_s() * 1000;
    let expiring = outbox.clone();
    if let Err(e) = neosens_runtime::blocking::run(move || expiring.expire(now_ms)).await {
        tracing::error!(error = %e, "expiring old outbox messages");
    }
    let delivered = cache.unreported_deliveries().unwrap_or_default();
    if !delivered.is_empty() {
        central.report_deliveries(&delivered).await?;
        tracing::info!(devices = delivered.len(), "offline deliveries reported to central");
    }
    let pending = cache.pending_logs(neosens_protocol::edge::MAX_RELAYED_LOGS).unwrap_or_else(|e| {
        tracing::error!(error = %e, "reading the queued device log lines");
        Vec::new()
    });
    if !pending.is_empty() {
        let (keys, logs): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .map(|(key, log)| {
                let relayed = neosens_protocol::edge::RelayedLog {
                    device: log.device,
                    received_at_ms: log.received_at_ms,
                    device_addr: log.device_addr,
                    body: String::from_utf8_lossy(&log.body).into_owned(),
                };
                (key, relayed)
            })
            .unzip();
        let n = logs.len();
        central.relay_logs(&neosens_protocol::edge::RelayedLogs { logs }).await?;
        tracing::info!(lines = n, "device log lines kept offline relayed to central");
        let relayed = cache.clone();
        if let Err(e) = neosens_runtime::blocking::run(move || relayed.drop_logs(&keys)).await {
            tracing::error!(error = %e, "removing relayed device logs");
        }
    }
    let (depth, oldest) = outbox.depth(now_ms).unwrap_or_default();
    let s = &outbox.stats;
    let report = HealthReport {
        outbox_depth: depth,
        outbox_oldest_s: oldest,
        outbox_dropped: s.dropped_full.load(Ordering::Relaxed) + s.dropped_expired.load(Ordering::Relaxed),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    central.report_health(&report).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use neosens_protocol::ids::{DeviceId, DeviceTypeId};
    use neosens_protocol::sync::{BatchKind, Change, DeviceRecord, SyncBatch, WireUid};

    fn device(n: u8) -> Change {
        Change::UpsertDevice(Box::new(DeviceRecord {
            id: DeviceId::from_bytes([n; 16]),
            uid: WireUid::Ethernet(format!("24:0a:c4:00:00:{n:02x}").parse().unwrap()),
            device_type: DeviceTypeId::from_bytes([4; 16]),
            rooms: Vec::new(),
            enabled: true,
            config_body: "{}".into(),
            mqtt: None,
            login: format!("senso_240ac40000{n:02x}"),
            secret_hash: [0; 32],
            credentials_delivered: true,
            staged_secret: None,
            lorawan: None,
        }))
    }

    fn batch(kind: BatchKind, revision: u64, more: bool, changes: Vec<Change>) -> SyncBatch {
        SyncBatch { revision, kind, more, changes }
    }

    #[test]
    fn a_paged_snapshot_stores_its_revision_with_its_last_page_only() {
        let first = batch(BatchKind::Snapshot, 40, true, vec![device(1), device(2)]);
        let (revision, paging) = page_revision(&first, None);
        assert_eq!((revision, paging), (0, Some((40, DeviceId::from_bytes([2; 16])))));
        // The next pages come as deltas of the same snapshot; revision 40 lands with the last.
        let middle = batch(BatchKind::Delta, 40, true, vec![device(3)]);
        let (revision, paging) = page_revision(&middle, paging);
        assert_eq!((revision, paging), (0, Some((40, DeviceId::from_bytes([3; 16])))));
        let last = batch(BatchKind::Delta, 40, false, vec![device(4)]);
        assert_eq!(page_revision(&last, paging), (40, None));
    }

    #[test]
    fn a_delta_or_a_whole_snapshot_stores_its_own_revision() {
        assert_eq!(page_revision(&batch(BatchKind::Delta, 7, false, vec![device(1)]), None), (7, None));
        assert_eq!(page_revision(&batch(BatchKind::Snapshot, 9, false, vec![]), None), (9, None));
        // A page without a device cannot say where the next starts: the snapshot starts again.
        assert_eq!(page_revision(&batch(BatchKind::Snapshot, 9, true, vec![]), None), (0, None));
    }
}
