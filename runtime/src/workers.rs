//! A few named threads that own one kind of slow, memory-hungry work (password hashing), fed by
//! a bounded queue: async code awaits the answer, never runs the work itself, and a flood finds
//! the queue full instead of growing memory.
//!
//! Why not tokio's blocking pool: it grows to hundreds of threads, and an argon2id check takes
//! 19 MiB, which the C allocator keeps in each thread's own arena after it is freed. Measured
//! under a sign-in flood (edge-agent/benches/attack_soak.rs): central's resident memory rose from
//! 43 MB to 374 MB as more blocking threads took turns. With two threads of their own, at most
//! two arenas ever hold that memory.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Why work was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WorkersError {
    /// The queue is full: try again later (a `429` for HTTP callers).
    #[error("busy: {0} jobs already waiting")]
    Busy(usize),
    /// The job panicked, or the workers are gone.
    #[error("the worker failed")]
    Failed,
}

/// The handle: cheap to clone; the threads end when the last handle is dropped.
#[derive(Clone)]
pub struct Workers {
    queue: SyncSender<Job>,
    capacity: usize,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl Workers {
    /// `threads` threads named `name-N`, with room for `waiting` jobs not yet started.
    pub fn start(name: &str, threads: usize, waiting: usize) -> std::io::Result<Self> {
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(waiting);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads.max(1) {
            let jobs: Arc<Mutex<Receiver<Job>>> = Arc::clone(&jobs);
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job, not while running it.
                    let job = match jobs.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })?;
        }
        Ok(Workers { queue, capacity: waiting })
    }

    /// Runs `work` on one of the threads and waits for its answer; [`WorkersError::Busy`] at
    /// once when the queue is full.
    pub async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, WorkersError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            if let Ok(answer) = answer {
                let _ = tx.send(answer);
            }
        });
        match self.queue.try_send(job) {
            Ok(()) => rx.await.map_err(|_| WorkersError::Failed),
            Err(TrySendError::Full(_)) => Err(WorkersError::Busy(self.capacity)),
            Err(TrySendError::Disconnected(_)) => Err(WorkersError::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Waker};

    /// Polls a future once (a `run` future enqueues its job on its first poll).
    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn work_runs_on_the_named_threads_and_a_full_queue_says_busy() {
        let workers = Workers::start("test-work", 1, 2).unwrap();
        let name = workers.run(|| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert_eq!(name.as_deref(), Some("test-work-0"));
        // Hold the only thread, fill the queue (2 jobs), then one more is refused at once.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let started = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&started);
        let held = tokio::spawn({
            let w = workers.clone();
            async move {
                w.run(move || {
                    s.store(true, Ordering::SeqCst);
                    let _ = hold.recv();
                })
                .await
            }
        });
        while !started.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        let mut first = std::pin::pin!(workers.run(|| 1));
        let mut second = std::pin::pin!(workers.run(|| 2));
        assert!(poll_once(first.as_mut()).is_pending() && poll_once(second.as_mut()).is_pending());
        let mut third = std::pin::pin!(workers.run(|| 3));
        assert_eq!(poll_once(third.as_mut()), Poll::Ready(Err(WorkersError::Busy(2))));
        release.send(()).unwrap();
        held.await.unwrap().unwrap();
        assert_eq!((first.await, second.await), (Ok(1), Ok(2)));
        assert_eq!(workers.run(|| -> u8 { panic!("a bug in a job") }).await, Err(WorkersError::Failed));
        assert_eq!(workers.run(|| 7).await, Ok(7), "a panicking job does not take its thread down");
    }
}
