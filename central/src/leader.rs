//! One leader among the central processes sharing a store, for what must happen once: the
//! monitor's alerts and notifications, the dynamic-security driver.
//!
//! The claim is the store's ([`crate::store::LeaderLock`]: a PostgreSQL advisory lock held by a
//! session of its own), never a consensus of our own. A process that leads checks its session
//! every [`CHECK_EVERY`] and gives up leading when a check fails or takes longer than
//! [`CHECK_DEADLINE`]; one that does not tries to take the lock every [`RETRY_EVERY`]. With a
//! store only this process uses (redb), it always leads.
//!
//! Takeover: a leader killed (`kill -9`, a crash) has its connection closed by the kernel and
//! the database frees the lock at once: another replica leads within [`RETRY_EVERY`] plus its
//! own start of the tasks. A leader whose machine or link died is noticed by the database's
//! keepalives (about 11 s, see the session settings in `store::pg::shared`); that leader itself
//! stops leading after at most [`CHECK_EVERY`] + [`CHECK_DEADLINE`] (5 s), before the database
//! lets anyone else take over — two leaders do not overlap by these bounds, unless a leader's
//! process is frozen longer than them (a suspended VM), which stops at its next check.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::{LeaderLock, Store};

/// A replica that does not lead tries to take the lock this often.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// A leader checks its session this often.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A check slower than this ends the leadership without waiting for its answer.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(4);

/// What the election says: whether this process leads, in which term (a new one each time it
/// takes the lead, so that a task that missed a quick loss and return still sees the change),
/// and whether the first attempt is over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lead {
    /// Whether this process leads.
    pub leading: bool,
    /// How many times this process took the lead.
    pub term: u64,
    /// Whether the election has tried at least once.
    pub decided: bool,
}

/// Whether this process leads now, and waits for it to change.
#[derive(Debug, Clone)]
pub struct Leadership {
    lead: watch::Receiver<Lead>,
    /// Whether other processes share the store (a leader then has their relayed work to take).
    shared: bool,
    /// The term this holder saw leading last (see [`Leadership::until`]).
    term: u64,
}

impl Leadership {
    /// A process that always leads (a store no one else uses; tests).
    pub fn always() -> Self {
        let (_tx, lead) = watch::channel(Lead { leading: true, term: 1, decided: true });
        // The sender gone, the value never changes: waits on a change never end (`until`).
        Leadership { lead, shared: false, term: 1 }
    }

    /// Whether other processes share the store.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Whether this process leads now.
    pub fn is_leading(&self) -> bool {
        self.lead.borrow().leading
    }

    /// Waits until this process leads (`true`) — remembering the term — or (`false`) until it
    /// no longer leads in the term this holder saw last: a loss followed at once by a new term
    /// counts as a loss.
    pub async fn until(&mut self, leading: bool) {
        if leading {
            let seen = self.lead.wait_for(|l| l.leading).await.map(|l| l.term);
            match seen {
                Ok(term) => self.term = term,
                Err(_) => std::future::pending::<()>().await,
            }
            return;
        }
        if self.term == 0 {
            // Never waited for the lead: the current term is the one held.
            self.term = self.lead.borrow().term;
        }
        let term = self.term;
        if self.lead.wait_for(|l| !l.leading || l.term != term).await.is_err() {
            // The election is gone (shutdown): nothing changes any more.
            std::future::pending::<()>().await;
        }
        self.term = 0;
    }

    /// Waits, at most `deadline`, for the election's first attempt: a process alone on its
    /// database leads before it serves.
    pub async fn decided(&mut self, deadline: Duration) {
        let _ = tokio::time::timeout(deadline, self.lead.wait_for(|l| l.decided)).await;
    }
}

/// What a process does on taking the lead, before it says it leads (blocking: it reads the
/// store). An error gives the lead up (the lock is released, the election retried).
pub type Takeover = Box<dyn Fn() -> anyhow::Result<()> + Send + Sync>;

/// Starts the campaign for the lead (a restartable task: it returns when the database link is
/// lost, leadership given up first). With a store nobody else uses, this process leads from the
/// start (what `takeover` reads, it read when opening) and no task is needed.
pub fn start(
    store: &Arc<dyn Store>,
    takeover: Takeover,
    tasks: &mut neosens_runtime::supervisor::Supervisor,
) -> Leadership {
    if !store.shared() {
        return Leadership::always();
    }
    let (tx, lead) = watch::channel(Lead::default());
    let (tx, store, shutdown) = (Arc::new(tx), Arc::clone(store), tasks.shutdown().clone());
    let takeover: Arc<Takeover> = Arc::new(takeover);
    tasks.restartable("leader election", move || {
        campaign(Arc::clone(&store), Arc::clone(&takeover), Arc::clone(&tx), shutdown.clone())
    });
    Leadership { lead, shared: true, term: 0 }
}

/// Runs one blocking call on the session, at most `deadline` (`None`: too slow, or the
/// blocking pool is gone). The session comes back with the answer.
async fn on_session<T: Send + 'static>(
    mut session: Box<dyn LeaderLock>,
    deadline: Duration,
    call: impl FnOnce(&mut dyn LeaderLock) -> T + Send + 'static,
) -> Option<(Box<dyn LeaderLock>, T)> {
    let run = neosens_runtime::blocking::run(move || {
        let out = call(session.as_mut());
        (session, out)
    });
    tokio::time::timeout(deadline, run).await.ok()
}

/// Takes the lead when it is free and keeps it while the session lives; returns (leadership
/// given up) when the session is lost, to be restarted with a new one.
async fn campaign(
    store: Arc<dyn Store>,
    takeover: Arc<Takeover>,
    lead: Arc<watch::Sender<Lead>>,
    shutdown: CancellationToken,
) {
    // Not leading, whatever comes next; the attempt counts as decided once it has an answer.
    let step_down = |decided: bool| {
        lead.send_modify(|l| {
            l.leading = false;
            l.decided |= decided;
        })
    };
    let opened = neosens_runtime::blocking::run(move || store.leader_lock()).await;
    let mut session = match opened {
        Ok(Some(session)) => session,
        Ok(None) => {
            lead.send_modify(|l| *l = Lead { leading: true, term: l.term + 1, decided: true });
            return shutdown.cancelled().await;
        }
        Err(e) => {
            step_down(true);
            return tracing::warn!(error = %e, "leader election: cannot open a database session");
        }
    };
    let mut retry = tokio::time::interval(RETRY_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = retry.tick() => {}
        }
        let was_leading = lead.borrow().leading;
        let step = if was_leading {
            on_session(session, CHECK_DEADLINE, |s| s.check().map(|()| true)).await
        } else {
            on_session(session, CHECK_DEADLINE, |s| s.try_acquire()).await
        };
        match step {
            Some((back, Ok(now_leading))) => {
                session = back;
                if !now_leading {
                    step_down(true);
                } else if !was_leading {
                    let started = std::time::Instant::now();
                    let take = Arc::clone(&takeover);
                    if let Err(e) = neosens_runtime::blocking::run(move || take()).await {
                        step_down(true);
                        // The session (and the lock) ends with this task: another replica may try.
                        return tracing::error!(
                            error = format!("{e:#}"),
                            "leader election: taking the lead failed; giving it up"
                        );
                    }
                    lead.send_modify(|l| *l = Lead { leading: true, term: l.term + 1, decided: true });
                    tracing::info!(
                        took_ms = started.elapsed().as_millis() as u64,
                        "leader election: this replica leads now"
                    );
                }
            }
            Some((_, Err(e))) => {
                step_down(true);
                return tracing::warn!(error = %e, was_leading, "leader election: database session lost; not leading");
            }
            None => {
                step_down(true);
                return tracing::warn!(
                    was_leading,
                    deadline_s = CHECK_DEADLINE.as_secs(),
                    "leader election: the database did not answer in time; not leading"
                );
            }
        }
    }
    // Shutdown: the session ends with `session` (another replica takes over at once).
    step_down(true);
}

/// Runs `start`'s task only while this process leads: started when it becomes the leader,
/// cancelled (its own token) and awaited when it no longer is; returns at `shutdown` or when
/// the task ends by itself (the supervisor restarts it).
pub async fn while_leading<F, Fut>(
    task: &'static str,
    mut leadership: Leadership,
    shutdown: CancellationToken,
    mut start: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = leadership.until(true) => {}
        }
        tracing::info!(task, "leading: task started");
        let term = shutdown.child_token();
        let run = start(term.clone());
        tokio::pin!(run);
        let lost = tokio::select! {
            () = &mut run => false,
            () = leadership.until(false) => true,
        };
        if !lost {
            return;
        }
        term.cancel();
        run.await;
        tracing::info!(task, "no longer leading: task stopped");
    }
}
