//! Keeping the cache in step with central: the sync long-poll, and the reports that flow the
//! other way (credentials delivered offline, device logs kept offline, the gateway's health).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use neosens_protocol::edge::HealthReport;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use neosens_protocol::sync::{BatchKind, SyncBatch};

use crate::cache::{ApplyTiming, Cache, CacheError, Step};
use crate::central::{Central, CentralError, Fetched};
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
    // The next page of a snapshot, fetched while the current one was written.
    let mut ahead: Option<Result<Option<Fetched>, CentralError>> = None;
    loop {
        let since = match cache.sync_from() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading the cache revision");
                0
            }
        };
        let outcome = match ahead.take() {
            Some(outcome) => outcome,
            None => {
                let after = paging.map(|(_, last)| last);
                let wait = if after.is_some() { Duration::ZERO } else { wait };
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = resync.notified() => continue,
                    outcome = central.sync(since, after, wait) => outcome,
                }
            }
        };
        let failure = match outcome {
            Ok(Some(fetched)) => {
                let applying = apply(&central, &cache, fetched, paging, since);
                let (applied, next) = tokio::select! {
                    () = shutdown.cancelled() => return,
                    done = applying => done,
                };
                ahead = next;
                match applied {
                    Ok(a) => {
                        paging = a.paging;
                        a.record(&stats, since);
                        backoff.reset();
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "applying a sync batch");
                        None
                    }
                }
            }
            Ok(None) => {
                stats.revision.store(since, Ordering::Relaxed);
                stats.last_success_s.store(now_s(), Ordering::Relaxed);
                backoff.reset();
                continue;
            }
            Err(e) => Some(e),
        };
        // A snapshot cut short starts again (what was written of it was never committed).
        (paging, ahead) = (None, None);
        if let Some(e) = failure {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            match &e {
                CentralError::Unauthorized => tracing::error!(error = %e, "sync refused"),
                _ => {
                    tracing::warn!(error = %e, retry_in_s = backoff.current().as_secs(), "sync failed; serving from the cache")
                }
            }
        }
        if sleep_or_stop(&shutdown, backoff.next_delay()).await {
            return;
        }
    }
}

/// Decodes and applies a batch on the blocking pool; while a snapshot page is written, fetches
/// the next one (central builds it meanwhile), which comes back as the second value.
async fn apply(
    central: &Central,
    cache: &Cache,
    fetched: Fetched,
    paging: Paging,
    since: u64,
) -> (Result<Applied, ApplyError>, Option<Result<Option<Fetched>, CentralError>>) {
    let fetch = fetched.took;
    let decoding = neosens_runtime::blocking::run(move || {
        let started = std::time::Instant::now();
        SyncBatch::decode(&fetched.body).map(|b| (b, started.elapsed()))
    });
    let (batch, decode) = match decoding.await {
        Ok(decoded) => decoded,
        Err(e) => return (Err(ApplyError::Decode(e)), None),
    };
    let (step, paging) = plan(&batch, paging);
    let cache = cache.clone();
    let applying = neosens_runtime::blocking::run(move || {
        let timing = cache.apply_step(&batch, step)?;
        Ok(Applied {
            revision: match step {
                Step::Delta { revision } | Step::SnapshotPage { complete: Some(revision), .. } => {
                    Some(revision)
                }
                Step::SnapshotPage { complete: None, .. } => None,
            },
            kind: if let Step::Delta { .. } = step { "delta" } else { "snapshot" },
            changes: batch.changes.len(),
            more: batch.more,
            cached: cache.device_count().unwrap_or(0),
            paging,
            fetch,
            decode,
            timing,
        })
    });
    match paging {
        Some((_, last)) => {
            let (applied, next) = tokio::join!(applying, central.sync(since, Some(last), Duration::ZERO));
            (applied, Some(next))
        }
        None => (applying.await, None),
    }
}

/// A snapshot arriving in pages: the revision it stands for, and the last device received (the
/// next page starts after it).
type Paging = Option<(u64, neosens_protocol::ids::DeviceId)>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A batch applied.
struct Applied {
    /// The revision the cache now stands at (`None`: a snapshot page before the last).
    revision: Option<u64>,
    /// "delta" or "snapshot" (every page of one).
    kind: &'static str,
    changes: usize,
    more: bool,
    /// Devices cached now.
    cached: u64,
    paging: Paging,
    fetch: Duration,
    decode: Duration,
    timing: ApplyTiming,
}

impl Applied {
    /// Counts the batch and logs it, with where its time went (the sync benchmark reads it).
    fn record(&self, stats: &SyncStats, since: u64) {
        stats.revision.store(self.revision.unwrap_or(since), Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.last_success_s.store(now_s(), Ordering::Relaxed);
        tracing::info!(
            revision = self.revision,
            kind = self.kind,
            changes = self.changes,
            more = self.more,
            cached = self.cached,
            fetch_ms = ms(self.fetch),
            decode_ms = ms(self.decode),
            write_ms = ms(self.timing.write),
            commit_ms = ms(self.timing.commit),
            "registry synced"
        );
        stats.synced.notify_waiters();
    }
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("sync body: {0}")]
    Decode(neosens_protocol::Error),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// How to apply `batch`, and the paging state after it. The pages of a snapshot go into one
/// transaction that its last page commits with the snapshot's revision: a crash before that
/// leaves the previous state, and the snapshot starts again.
fn plan(batch: &SyncBatch, paging: Paging) -> (Step, Paging) {
    let snapshot_revision = match (batch.kind, paging) {
        (BatchKind::Snapshot, _) => Some(batch.revision),
        (_, Some((r, _))) => Some(r),
        _ => None,
    };
    let step = match snapshot_revision {
        Some(r) => Step::SnapshotPage {
            first: batch.kind == BatchKind::Snapshot,
            complete: (!batch.more).then_some(r),
        },
        None => Step::Delta { revision: batch.revision },
    };
    let last_device = batch.changes.iter().rev().find_map(|c| match c {
        neosens_protocol::sync::Change::UpsertDevice(d) => Some(d.id),
        _ => None,
    });
    let next = match (snapshot_revision, batch.more, last_device) {
        (Some(r), true, Some(last)) => Some((r, last)),
        _ => None,
    };
    (step, next)
}

/// Sleeps; `true` if the agent is stopping.
async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

/// How long a report waits after a node order's step, for the steps that follow it.
const ORDER_NEWS_LINGER: Duration = Duration::from_secs(1);

/// Runs the reports until `shutdown`: deliveries made offline, device logs kept offline, health
/// (with node order steps); and drops outbox messages past their age. Every [`REPORT_EVERY`],
/// when a new packet forwarder is heard, and a second after a node order's step; after a failure (central
/// away) sooner, from 1 s doubling up to it, so what was kept offline reaches central soon after
/// it is back.
pub async fn report(
    central: Central,
    cache: Cache,
    outbox: Outbox,
    reported: Reported,
    shutdown: CancellationToken,
) {
    let lorawan = &reported.lorawan;
    let mut wait = Duration::ZERO;
    let mut retry = neosens_runtime::backoff::Backoff::new(Duration::from_secs(1), REPORT_EVERY);
    loop {
        // A packet forwarder heard for the first time is reported at once (at most
        // `MAX_FORWARDERS` such wake-ups before the table is full).
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
            () = lorawan.forwarders.new_one() => {}
            // A node order's step goes soon (the steps of one downlink come within a second:
            // one report for them all).
            () = lorawan.orders.news() => tokio::time::sleep(ORDER_NEWS_LINGER).await,
            // A node used the session of a join answered here: central shares it at once.
            () = lorawan.joins.news() => {}
            // The settings in force changed (central's log filter applied, a document refused).
            () = reported.settings.news.notified() => {}
        }
        wait = match report_once(&central, &cache, &outbox, &reported).await {
            Ok(version) => {
                reported.settings.delivered(version);
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

/// What the health report carries besides the outbox: shared with the LoRaWAN listener and the
/// legacy proxy.
#[derive(Debug, Clone)]
pub struct Reported {
    /// The packet forwarders heard.
    pub lorawan: Arc<crate::lorawan::LoraStats>,
    /// Unregistered MACs that asked while central was out of reach.
    pub unclaimed: Arc<crate::unclaimed::UnclaimedHere>,
    /// The local broker (local-broker mode).
    pub local_broker: Arc<crate::local_broker::LocalBroker>,
    /// The settings the agent runs with.
    pub settings: Arc<crate::managed::Settings>,
}

/// One round of reports; the version of the settings report central received.
pub async fn report_once(
    central: &Central,
    cache: &Cache,
    outbox: &Outbox,
    reported: &Reported,
) -> Result<u64, CentralError> {
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
    let joins = reported.lorawan.joins.take();
    if !joins.is_empty() {
        let n = joins.len();
        match central.report_joins(&neosens_protocol::edge::JoinReports { joins: joins.clone() }).await {
            Ok(()) => tracing::info!(joins = n, "OTAA sessions reported to central"),
            // Out of reach: kept for the next round.
            Err(e @ CentralError::Unreachable(_)) => {
                reported.lorawan.joins.put_back(joins);
                return Err(e);
            }
            // Refused (a central without OTAA, a report it cannot read): sending it again would
            // not help, and must not hold up the health report.
            Err(e) => tracing::warn!(error = %e, joins = n, "OTAA sessions not taken by central"),
        }
    }
    let (depth, oldest) = outbox.depth(now_ms).unwrap_or_default();
    let taken = std::time::Instant::now();
    let s = &outbox.stats;
    let (config, version) = reported.settings.report();
    let report = HealthReport {
        outbox_depth: depth,
        outbox_oldest_s: oldest,
        outbox_dropped: s.dropped_full.load(Ordering::Relaxed) + s.dropped_expired.load(Ordering::Relaxed),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        forwarders: reported.lorawan.forwarders.report(std::time::Instant::now()),
        unclaimed: reported.unclaimed.take(taken),
        downlinks: reported.lorawan.orders.take_outcomes(taken),
        local_broker: reported.local_broker.report(),
        config: Some(config),
    };
    let sent = central.report_health(&report).await;
    if sent.is_err() {
        reported.unclaimed.put_back(report.unclaimed, taken);
        reported.lorawan.orders.put_back_outcomes(report.downlinks, taken);
    }
    sent.map(|()| version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use neosens_protocol::ids::{DeviceId, DeviceTypeId};
    use neosens_protocol::sync::{Change, DeviceRecord, WireUid};

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
    fn a_paged_snapshot_commits_with_its_last_page_only() {
        let pending = |first| Step::SnapshotPage { first, complete: None };
        let first = batch(BatchKind::Snapshot, 40, true, vec![device(1), device(2)]);
        let (step, paging) = plan(&first, None);
        assert_eq!((step, paging), (pending(true), Some((40, DeviceId::from_bytes([2; 16])))));
        // The next pages come as deltas of the same snapshot; revision 40 lands with the last.
        let middle = batch(BatchKind::Delta, 40, true, vec![device(3)]);
        let (step, paging) = plan(&middle, paging);
        assert_eq!((step, paging), (pending(false), Some((40, DeviceId::from_bytes([3; 16])))));
        let last = batch(BatchKind::Delta, 40, false, vec![device(4)]);
        assert_eq!(plan(&last, paging), (Step::SnapshotPage { first: false, complete: Some(40) }, None));
    }

    #[test]
    fn a_delta_or_a_whole_snapshot_stores_its_own_revision() {
        assert_eq!(
            plan(&batch(BatchKind::Delta, 7, false, vec![device(1)]), None),
            (Step::Delta { revision: 7 }, None)
        );
        let whole = Step::SnapshotPage { first: true, complete: Some(9) };
        assert_eq!(plan(&batch(BatchKind::Snapshot, 9, false, vec![]), None), (whole, None));
        // A page without a device cannot say where the next starts: written, never committed,
        // and the snapshot starts again.
        let orphan = Step::SnapshotPage { first: true, complete: None };
        assert_eq!(plan(&batch(BatchKind::Snapshot, 9, true, vec![]), None), (orphan, None));
    }
}
