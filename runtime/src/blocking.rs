//! The one way async code reaches the disk: [`run`] moves the work to tokio's blocking pool and
//! awaits it; [`assert_off_async_worker`], called where a storage transaction starts, checks in
//! debug builds that nobody took a shortcut.
//!
//! Why: a redb commit is an `fsync` — milliseconds on an SSD, up to a second on a tired SD card.
//! Run on an async worker it stalls every connection that worker serves; central's broker-auth
//! answers and `/healthz`, and the gateway's `PUSH_ACK`s (its runtime has one worker), would wait
//! for someone else's disk write. The guard turns a missed call site into a test failure instead
//! of a latency spike in the field: every test in debug mode checks the rule for free.

use std::any::Any;
use std::cell::Cell;

thread_local! {
    /// Set while a closure given to [`run`] executes on this thread.
    static ON_BLOCKING_POOL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` on the blocking pool and returns its result. A panic in `work` is resumed in the
/// caller, as if the work had run inline (the caller's task fails the way it would have).
///
/// The work is boxed and handed to one non-generic spawn: each `spawn_blocking` call site
/// instantiates tokio's task machinery again, which cost the gateway's static ARM binary tens of
/// kilobytes against its 4 MB budget.
pub async fn run<T, F>(work: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let answer = run_boxed(Box::new(move || Box::new(work()) as Box<dyn Any + Send>)).await;
    match answer.downcast::<T>() {
        Ok(value) => *value,
        // `run_boxed` hands back what the job returned: a `T`.
        Err(_) => unreachable!("a blocking job's answer is of its own type"),
    }
}

/// The one instantiation behind [`run`]: marks the thread, runs the job, resumes its panic in
/// the caller.
async fn run_boxed(job: Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>) -> Box<dyn Any + Send> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tokio::task::spawn_blocking(move || {
        ON_BLOCKING_POOL.with(|flag| flag.set(true));
        let _reset = ResetOnDrop;
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
    })
    .await;
    match rx.await {
        Ok(Ok(answer)) => answer,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // Only a runtime shutting down drops a blocking job before it runs.
        Err(_) => panic!("blocking work cancelled: the runtime is shutting down"),
    }
}

/// Clears the flag even when the work panics (the pool thread is reused).
struct ResetOnDrop;

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        ON_BLOCKING_POOL.with(|flag| flag.set(false));
    }
}

/// Whether blocking here would stall an async worker: the thread runs inside a tokio runtime and
/// not in a closure given to [`run`]. Plain threads (tests, CLI tools, [`crate::workers`]) may
/// block.
pub fn on_async_worker() -> bool {
    tokio::runtime::Handle::try_current().is_ok() && !ON_BLOCKING_POOL.with(Cell::get)
}

/// Panics in debug builds when called on an async worker; `what` names the storage operation.
/// Storage layers call it where a transaction starts.
#[track_caller]
pub fn assert_off_async_worker(what: &str) {
    if cfg!(debug_assertions) && on_async_worker() {
        panic!(
            "{what} on an async worker: storage work must go through neosens_runtime::blocking::run \
             (see docs/architecture.md, \"the one path to storage\")"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_threads_may_block() {
        assert!(!on_async_worker());
        assert_off_async_worker("a test write");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_workers_may_not_and_the_pool_may() {
        assert!(on_async_worker());
        let caught = std::panic::catch_unwind(|| assert_off_async_worker("a commit"));
        assert_eq!(caught.is_err(), cfg!(debug_assertions), "the guard fires in debug builds");
        assert!(!run(on_async_worker).await, "inside run the disk may be touched");
        assert!(on_async_worker(), "the flag does not leak back");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_in_the_work_reaches_the_caller_and_the_flag_is_reset() {
        let task = tokio::spawn(run(|| -> u8 { panic!("disk on fire") }));
        let err = task.await.unwrap_err();
        assert!(err.is_panic());
        // The next job on the (possibly same) pool thread starts with a clean flag and still
        // sees it set while it runs.
        assert!(!run(on_async_worker).await);
        assert_eq!(run(|| 41 + 1).await, 42);
    }
}
