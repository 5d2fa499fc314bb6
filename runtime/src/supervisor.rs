//! One owner for a service's long-lived tasks, so none of them can die unnoticed.
//!
//! - A **critical** task (status ingestion, the monitor, the gateway's sync…) must run as long as
//!   the process: if it ends or panics before shutdown, the supervisor records it (`/readyz` goes
//!   false at once), cancels the shutdown token (the listeners drain) and [`Supervisor::finish`]
//!   returns the failure, so `main` exits non-zero and systemd restarts the service.
//! - A **restartable** task (a LED, a modem, a report loop) is started again with a capped,
//!   jittered back-off, and each restart is counted (`/metrics`): a flapping sensor must not take
//!   the gateway's provisioning down with it.
//!
//! Dropping the supervisor aborts its tasks; every task is one boxed future type (code size).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// A task, boxed: one future type for every task the supervisor spawns.
type BoxedTask = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The first pause before a restartable task is started again; it doubles up to [`RESTART_CAP`].
pub const RESTART_FIRST: Duration = Duration::from_secs(1);
/// The longest pause between two restarts.
pub const RESTART_CAP: Duration = Duration::from_secs(60);

/// What the supervisor knows, shared with `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct TaskHealth {
    /// The first critical task that failed, and how.
    failed: Mutex<Option<(&'static str, String)>>,
    /// In the order the tasks were started (a handful: a list, not a map).
    restarts: Mutex<Vec<(&'static str, Arc<AtomicU64>)>>,
}

impl TaskHealth {
    /// The critical task that failed, and how (`None` while all run).
    pub fn failed(&self) -> Option<String> {
        self.failed.lock().as_ref().map(|(task, how)| format!("{task} {how}"))
    }

    /// Restarts of each restartable task since start, by name (a fixed set: the names are
    /// `&'static str` given in the code, so the label set of the metric is bounded).
    pub fn restarts(&self) -> Vec<(&'static str, u64)> {
        self.restarts.lock().iter().map(|(name, n)| (*name, n.load(Ordering::Relaxed))).collect()
    }

    fn counter(&self, name: &'static str) -> Arc<AtomicU64> {
        let mut restarts = self.restarts.lock();
        if let Some((_, n)) = restarts.iter().find(|(task, _)| *task == name) {
            return Arc::clone(n);
        }
        let n = Arc::<AtomicU64>::default();
        restarts.push((name, Arc::clone(&n)));
        n
    }
}

/// The supervisor's series for `/metrics`: `<prefix>_task_restarts_total{task}` and
/// `<prefix>_task_failed` (1 once a critical task failed: the process is stopping).
#[derive(Debug)]
pub struct TaskMetrics {
    /// `neosens` (central) or `neosens_edge`.
    pub prefix: &'static str,
    /// The supervisor's health.
    pub health: Arc<TaskHealth>,
}

impl prometheus_client::collector::Collector for TaskMetrics {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let name = format!("{}_task_restarts", self.prefix);
        let mut family = encoder.encode_descriptor(
            &name,
            "Restarts of each restartable task",
            None,
            MetricType::Counter,
        )?;
        for (task, n) in self.health.restarts() {
            ConstCounter::new(n).encode(family.encode_family(&[("task", task)])?)?;
        }
        let name = format!("{}_task_failed", self.prefix);
        let failed = i64::from(self.health.failed().is_some());
        ConstGauge::new(failed).encode(encoder.encode_descriptor(
            &name,
            "1 once a critical task stopped (the process is shutting down to be restarted)",
            None,
            MetricType::Gauge,
        )?)
    }
}

/// A critical task ended before shutdown: the process must stop and be restarted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("critical task {task} {how}")]
pub struct TaskFailed {
    /// The task's name.
    pub task: &'static str,
    /// "panicked: …" or "ended".
    pub how: String,
}

/// The tasks of one process.
#[derive(Debug)]
pub struct Supervisor {
    /// The watchers (each awaits its task); aborted when the supervisor is dropped.
    watchers: Vec<tokio::task::JoinHandle<()>>,
    shutdown: CancellationToken,
    health: Arc<TaskHealth>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for w in &self.watchers {
            w.abort();
        }
    }
}

impl Supervisor {
    /// A supervisor that cancels `shutdown` when a critical task fails.
    pub fn new(shutdown: CancellationToken) -> Self {
        Supervisor { watchers: Vec::new(), shutdown, health: Arc::default() }
    }

    /// What `/readyz` and `/metrics` read.
    pub fn health(&self) -> Arc<TaskHealth> {
        Arc::clone(&self.health)
    }

    /// The token the tasks watch.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Runs `task` for the life of the process. It should return only once `shutdown` is
    /// cancelled; ending (or panicking) earlier fails the process.
    pub fn critical(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.critical_boxed(name, Box::pin(task));
    }

    /// Tasks and watchers are all one boxed future type: each spawn of a new future type
    /// instantiates tokio's task machinery again (code size on the gateway's ARM build).
    fn critical_boxed(&mut self, name: &'static str, task: BoxedTask) {
        let shutdown = self.shutdown.clone();
        let health = Arc::clone(&self.health);
        self.watch(Box::pin(async move {
            let inner = tokio::spawn(task);
            let _abort = AbortOnDrop(inner.abort_handle());
            let how = match inner.await {
                Ok(()) if shutdown.is_cancelled() => return,
                Ok(()) => "ended".to_owned(),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
                Err(e) => format!("was cancelled: {e}"),
            };
            tracing::error!(task = name, how = %how, "a critical task stopped: shutting down so that the service is restarted");
            health.failed.lock().get_or_insert((name, how));
            shutdown.cancel();
        }));
    }

    /// Runs the task `start` makes, and makes it again after a back-off whenever it ends or
    /// panics before shutdown.
    pub fn restartable<F, Fut>(&mut self, name: &'static str, mut start: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.restartable_boxed(name, Box::new(move || Box::pin(start()) as BoxedTask));
    }

    fn restartable_boxed(&mut self, name: &'static str, mut start: Box<dyn FnMut() -> BoxedTask + Send>) {
        let shutdown = self.shutdown.clone();
        let restarts = self.health.counter(name);
        self.watch(Box::pin(async move {
            let mut backoff = Backoff::new(RESTART_FIRST, RESTART_CAP);
            loop {
                let started = std::time::Instant::now();
                let attempt = tokio::spawn(start());
                let _abort = AbortOnDrop(attempt.abort_handle());
                let run = attempt.await;
                // A run that lasted is not a flap: the next failure starts the back-off again.
                if started.elapsed() >= RESTART_CAP {
                    backoff = Backoff::new(RESTART_FIRST, RESTART_CAP);
                }
                if shutdown.is_cancelled() {
                    return;
                }
                let how = match run {
                    Ok(()) => "ended".to_owned(),
                    Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
                    Err(e) => format!("was cancelled: {e}"),
                };
                tracing::warn!(task = name, how = %how, "a task stopped: restarting it");
                restarts.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }));
    }

    fn watch(&mut self, watcher: BoxedTask) {
        self.watchers.push(tokio::spawn(watcher));
    }

    /// Waits for shutdown (which a failed critical task requests), then for every task to end,
    /// at most `deadline`; those still running then are aborted. `Err` when a critical task
    /// failed.
    pub async fn finish(mut self, deadline: Duration) -> Result<(), TaskFailed> {
        self.shutdown.cancelled().await;
        let watchers = std::mem::take(&mut self.watchers);
        let aborts: Vec<_> = watchers.iter().map(tokio::task::JoinHandle::abort_handle).collect();
        let drained = crate::shutdown::drain("background tasks", deadline, async {
            for w in watchers {
                let _ = w.await;
            }
        })
        .await;
        if drained.is_none() {
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
        match self.health.failed.lock().clone() {
            Some((task, how)) => Err(TaskFailed { task, how }),
            None => Ok(()),
        }
    }
}

/// Aborts the supervised task when its watcher is aborted (supervisor dropped or drain cut):
/// the task is spawned apart so that a panic in it is caught, not propagated to the watcher.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_text(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_critical_task_that_ends_early_fails_the_process() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        let health = tasks.health();
        let watcher = shutdown.clone();
        tasks.critical("steady", async move { watcher.cancelled().await });
        tasks.critical("monitor", async { panic!("tracker invariant") });
        let failed = tasks.finish(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(failed.task, "monitor");
        assert!(failed.how.contains("tracker invariant"), "{failed}");
        assert!(shutdown.is_cancelled(), "the failure stops the process");
        assert!(health.failed().unwrap().starts_with("monitor panicked"));
    }

    #[tokio::test]
    async fn tasks_that_stop_at_shutdown_are_a_clean_exit() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        for name in ["a", "b"] {
            let watcher = shutdown.clone();
            tasks.critical(name, async move { watcher.cancelled().await });
        }
        shutdown.cancel();
        assert_eq!(tasks.finish(Duration::from_secs(5)).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn restartable_tasks_come_back_after_a_backoff_and_are_counted() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        let health = tasks.health();
        let runs = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&runs);
        let watcher = shutdown.clone();
        tasks.restartable("led", move || {
            let n = counted.fetch_add(1, Ordering::Relaxed);
            let watcher = watcher.clone();
            async move {
                match n {
                    0 => panic!("gpio busy"),
                    1 => {}
                    _ => watcher.cancelled().await,
                }
            }
        });
        // Paused time: the runtime jumps over the back-offs as soon as everything waits.
        tokio::time::sleep(RESTART_CAP * 3).await;
        assert_eq!(runs.load(Ordering::Relaxed), 3, "a panic, an early end, then it runs");
        assert_eq!(health.restarts(), vec![("led", 2)]);
        assert_eq!(health.failed(), None, "a restartable task never fails the process");
        shutdown.cancel();
        assert_eq!(tasks.finish(Duration::from_secs(5)).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_shutdown_is_cut_at_the_deadline() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        tasks.critical("stuck", std::future::pending());
        shutdown.cancel();
        assert_eq!(tasks.finish(Duration::from_secs(5)).await, Ok(()));
    }
}
