//! The launcher: what the packaged binary does first when systemd starts it.
//!
//! With no installed build chosen it returns, and the packaged binary serves in-process (what
//! every gateway did before agent updates). With one, it starts that build as its child and
//! waits for it. A build on trial must say it is healthy — synced with central and connected to
//! the broker — through a pipe within `[update] health_deadline_s`; a build that exits first,
//! or stays silent, is stopped and the previous one started instead, by this process, which was
//! not updated. Nothing the new build does (crash at start, hang, wrong configuration) can keep
//! the gateway from coming back.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use neosens_protocol::agent_build::{AgentUpdateOutcome, AgentUpdateReport};
use neosens_protocol::hex;

use super::state::{Build, BuildDir, MAX_TRIAL_STARTS, UpdateState};

/// Set in a build's environment by the launcher: that process serves in-process.
pub const SUPERVISED_ENV: &str = "NEOSENS_EDGE_SUPERVISED";
/// The pipe a build on trial writes to once healthy.
pub const HEALTH_FD_ENV: &str = "NEOSENS_EDGE_HEALTH_FD";
/// The revision the build was signed for (what its status reports).
pub const REVISION_ENV: &str = "NEOSENS_EDGE_BUILD_REVISION";
/// The exit status of an agent that installed a build: systemd (`Restart=always`) starts the
/// launcher again, which starts the build on trial.
pub const EXIT_RESTART: i32 = 75;

/// Exits within [`QUICK_EXIT`] of the start, in a row, after which a kept build is rolled back.
pub const MAX_QUICK_EXITS: u32 = 3;
/// An abnormal exit this soon after the start counts towards [`MAX_QUICK_EXITS`].
const QUICK_EXIT: Duration = Duration::from_secs(120);

/// The child signals go to (0: none).
static CHILD: AtomicI32 = AtomicI32::new(0);
/// Set by SIGTERM or SIGINT: the service is stopping, nothing is judged or started any more.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// How a trial ended.
enum Trial {
    /// Healthy in time: the build runs on.
    Healthy(Child),
    /// Not healthy: why.
    Failed(String),
    /// The service was stopped meanwhile: the child's exit status (the trial is not judged).
    Stopped(i32),
    /// The build asked to be started again ([`EXIT_RESTART`]: new settings from central) before
    /// it was healthy: not judged, but its start stays counted, so a build that keeps doing so
    /// is rolled back once it has had [`MAX_TRIAL_STARTS`].
    Restarted,
}

/// Runs the chosen build, if any, and returns its exit status; `None`: serve in-process.
pub fn launch(data_dir: &Path, deadline: Duration, mac: Option<neosens_protocol::Mac>) -> Option<i32> {
    if std::env::var_os(SUPERVISED_ENV).is_some() {
        // A launcher killed outright (SIGKILL) takes its build down with it.
        let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
        return None;
    }
    let builds = BuildDir::new(data_dir);
    // The trial's start counted first: a launcher stopped outright during it counts as a failure.
    let chosen = builds.update(|state| Ok(choose(&builds, state, mac)));
    let chosen = match chosen {
        Ok(chosen) => chosen?,
        Err(e) => {
            eprintln!("neosens-edge launcher: the update state: {e}: serving with the packaged binary");
            return None;
        }
    };
    let (build, on_trial) = chosen;
    let started = Instant::now();
    if !on_trial {
        return match spawn(&builds, &build, None) {
            Ok(child) => Some(run_kept(&builds, child, &build, (started, QUICK_EXIT), mac)),
            Err(e) => {
                eprintln!(
                    "neosens-edge launcher: starting build {}: {e}: serving with the packaged binary",
                    build.sha256
                );
                None
            }
        };
    }
    match start_trial(&builds, &build, deadline) {
        Trial::Healthy(child) => {
            eprintln!(
                "neosens-edge launcher: build {} (revision {}) is healthy: kept",
                build.sha256, build.revision
            );
            let kept = builds.update(|state| {
                if state.trial.as_ref().is_some_and(|t| t.sha256 == build.sha256) {
                    state.previous = state.running.take();
                    state.running = state.trial.take().map(|t| Build { starts: 0, ..t });
                    if let Some(r) = report(&build, mac, AgentUpdateOutcome::Installed, "healthy") {
                        state.report(r);
                    }
                }
                Ok(())
            });
            if let Err(e) = kept {
                eprintln!("neosens-edge launcher: recording build {} as kept: {e}", build.sha256);
            }
            Some(run_kept(&builds, child, &build, (started, QUICK_EXIT), mac))
        }
        Trial::Restarted => {
            eprintln!("neosens-edge launcher: build {} on trial restarts (new settings)", build.sha256);
            Some(EXIT_RESTART)
        }
        Trial::Stopped(status) => {
            // Not the build's fault: the next start tries it again, as if this one had not been.
            let _ = builds.update(|state| {
                if let Some(t) = state.trial.as_mut().filter(|t| t.sha256 == build.sha256) {
                    t.starts = t.starts.saturating_sub(1);
                }
                Ok(())
            });
            Some(status)
        }
        Trial::Failed(reason) => {
            let rolled = builds.update(|state| {
                roll_back(state, &build, mac, &reason);
                Ok(())
            });
            if let Err(e) = rolled {
                eprintln!("neosens-edge launcher: recording the rollback of {}: {e}", build.sha256);
                return None;
            }
            if STOPPING.load(Ordering::SeqCst) {
                return Some(0);
            }
            // The previous build (or the packaged binary), as chosen again.
            launch(data_dir, deadline, mac)
        }
    }
}

/// What to start, given the state (changed: a trial's start counted, a trial started too often
/// rolled back, a build as old as the packaged binary or damaged dropped): `(build, on trial)`,
/// or `None` for the packaged binary in-process.
fn choose(
    builds: &BuildDir,
    state: &mut UpdateState,
    mac: Option<neosens_protocol::Mac>,
) -> Option<(Build, bool)> {
    if let Some(trial) = state.trial.as_mut() {
        if trial.starts < MAX_TRIAL_STARTS {
            trial.starts += 1;
            return Some((trial.clone(), true));
        }
        let trial = trial.clone();
        let reason = format!("started {} times without becoming healthy (stopped outright)", trial.starts);
        eprintln!("neosens-edge launcher: build {} rolled back: {reason}", trial.sha256);
        roll_back(state, &trial, mac, &reason);
    }
    let running = state.running.clone()?;
    let packaged = super::packaged_revision();
    let reason = if packaged >= running.revision {
        format!("the packaged binary (revision {packaged}) is as new")
    } else {
        match check_file(builds, &running) {
            Ok(()) => return Some((running, false)),
            Err(reason) => reason,
        }
    };
    eprintln!(
        "neosens-edge launcher: build {} (revision {}): {reason}: serving with the packaged binary",
        running.sha256, running.revision
    );
    state.previous = state.running.take();
    None
}

/// Waits for a kept build's end and returns its status. An abnormal exit within `quick`
/// ([`QUICK_EXIT`]) of its start (not a stop, not a restart for an update) is counted;
/// [`MAX_QUICK_EXITS`] in a row roll the build back to the one before it (or the packaged
/// binary), as a trial's failure would: a build that passed its trial and then breaks at every
/// start does not keep the gateway down. A run that lasts past `quick` resets the count as soon
/// as it does (a power cut later does not leave it counted), and so does a clean exit.
fn run_kept(
    builds: &BuildDir,
    child: Child,
    build: &Build,
    (started, quick): (Instant, Duration),
    mac: Option<neosens_protocol::Mac>,
) -> i32 {
    if runs_past(&child, quick.saturating_sub(started.elapsed()))
        && builds
            .load()
            .ok()
            .and_then(|s| s.running)
            .is_some_and(|r| r.sha256 == build.sha256 && r.starts > 0)
    {
        let reset = builds.update(|state| {
            if let Some(running) = state.running.as_mut().filter(|r| r.sha256 == build.sha256) {
                running.starts = 0;
            }
            Ok(())
        });
        if let Err(e) = reset {
            eprintln!("neosens-edge launcher: recording that build {} runs: {e}", build.sha256);
        }
    }
    let status = wait(child);
    let quick_end = started.elapsed() < quick;
    let quick_exit = !STOPPING.load(Ordering::SeqCst) && status != 0 && status != EXIT_RESTART && quick_end;
    let counted = builds.update(|state| {
        let Some(running) = state.running.as_mut().filter(|r| r.sha256 == build.sha256) else {
            return Ok(());
        };
        running.starts = if quick_exit {
            running.starts + 1
        } else if quick_end && status != 0 {
            // A stop or a restart for new settings soon after the start: neither counted nor a
            // proof of health.
            running.starts
        } else {
            0
        };
        if running.starts >= MAX_QUICK_EXITS {
            let reason = format!(
                "exited ({status}) within {} s of its start {} times in a row",
                QUICK_EXIT.as_secs(),
                running.starts
            );
            eprintln!("neosens-edge launcher: build {} rolled back: {reason}", build.sha256);
            state.running = state.previous.take();
            state.reject(&build.sha256, report(build, mac, AgentUpdateOutcome::RolledBack, &reason));
        }
        Ok(())
    });
    if let Err(e) = counted {
        eprintln!("neosens-edge launcher: recording how build {} ended: {e}", build.sha256);
    }
    status
}

/// The trial ends: the build is rejected (not tried again while central offers it) and reported.
fn roll_back(state: &mut UpdateState, build: &Build, mac: Option<neosens_protocol::Mac>, reason: &str) {
    state.trial = None;
    state.reject(&build.sha256, report(build, mac, AgentUpdateOutcome::RolledBack, reason));
}

fn report(
    build: &Build,
    mac: Option<neosens_protocol::Mac>,
    outcome: AgentUpdateOutcome,
    reason: &str,
) -> Option<AgentUpdateReport> {
    Some(AgentUpdateReport {
        campaign: build.campaign,
        sha256: build.sha256.clone(),
        device: mac?,
        outcome,
        reason: reason.to_owned(),
        at_ms: super::now_ms(),
    })
}

/// The build's file still hashes to its name (a disk that rots does not start a broken build).
fn check_file(builds: &BuildDir, build: &Build) -> Result<(), String> {
    let bytes = std::fs::read(builds.build_path(&build.sha256)).map_err(|e| format!("reading it: {e}"))?;
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    if sha == build.sha256 { Ok(()) } else { Err(format!("its file hashes to {sha}")) }
}

/// Starts a build with the launcher's arguments, signals forwarded to it.
fn spawn(builds: &BuildDir, build: &Build, health: Option<&OwnedFd>) -> std::io::Result<Child> {
    forward_signals();
    let mut command = Command::new(builds.build_path(&build.sha256));
    command
        .args(std::env::args_os().skip(1))
        .env(SUPERVISED_ENV, "1")
        .env(REVISION_ENV, build.revision.to_string());
    if let Some(fd) = health {
        command.env(HEALTH_FD_ENV, fd.as_raw_fd().to_string());
    }
    let child = command.spawn()?;
    CHILD.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
    Ok(child)
}

/// Starts a build on trial and waits until it says it is healthy; stops it on failure.
fn start_trial(builds: &BuildDir, build: &Build, deadline: Duration) -> Trial {
    if let Err(reason) = check_file(builds, build) {
        return Trial::Failed(reason);
    }
    let pipe = rustix::pipe::pipe().and_then(|(read, write)| {
        rustix::io::fcntl_setfd(&read, rustix::io::FdFlags::CLOEXEC)?;
        Ok((read, write))
    });
    let (read, write) = match pipe {
        Ok(pair) => pair,
        Err(e) => return Trial::Failed(format!("a pipe: {e}")),
    };
    let mut child = match spawn(builds, build, Some(&write)) {
        Ok(child) => child,
        Err(e) => return Trial::Failed(format!("starting it: {e}")),
    };
    drop(write);
    let said = wait_for_byte(&read, deadline);
    if said == Some(true) {
        return Trial::Healthy(child);
    }
    if STOPPING.load(Ordering::SeqCst) {
        return Trial::Stopped(wait(child));
    }
    // The pipe closed: the build is exiting (its descriptors close before it can be reaped).
    let exited = if said == Some(false) { exited_within(&mut child, Duration::from_secs(2)) } else { None };
    if exited.is_some_and(|status| status.code() == Some(EXIT_RESTART)) {
        CHILD.store(0, Ordering::SeqCst);
        return Trial::Restarted;
    }
    let reason = match exited {
        Some(status) => format!("it exited ({status}) before it was healthy"),
        None if said == Some(false) => String::from("it closed its health pipe without being healthy"),
        None => format!("not healthy (synced and connected) within {} s", deadline.as_secs()),
    };
    stop(&mut child);
    Trial::Failed(reason)
}

/// The child's exit status if it exits within `within`.
fn exited_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Whether `child` still runs after `within` (watched through a pidfd: no polling). `false` when
/// it exited, or where the kernel has no pidfd (before 5.3).
fn runs_past(child: &Child, within: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)) else {
        return false;
    };
    let Ok(pidfd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return false;
    };
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let timeout = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => return true,
            // A forwarded signal interrupted the wait: the child may be stopping, look again.
            Err(rustix::io::Errno::INTR) => {}
            _ => return false,
        }
    }
}

/// `Some(true)`: a byte came on `read` before `deadline`; `Some(false)`: the pipe closed first
/// (the child is exiting); `None`: neither (or a signal for the launcher to stop).
fn wait_for_byte(read: &OwnedFd, deadline: Duration) -> Option<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let until = Instant::now() + deadline;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || STOPPING.load(Ordering::SeqCst) {
            return None;
        }
        let timeout = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [PollFd::new(read, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => return None,
            Ok(_) => {
                let mut byte = [0u8; 1];
                return Some(matches!(rustix::io::read(read, &mut byte), Ok(1)));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Stops a child: SIGTERM, then SIGKILL after 10 s. (The pid is signalled only while the
/// child is not reaped, so it cannot be another process's.)
fn stop(child: &mut Child) {
    let until = Instant::now() + Duration::from_secs(10);
    let mut termed = false;
    while Instant::now() < until {
        if !matches!(child.try_wait(), Ok(None)) {
            CHILD.store(0, Ordering::SeqCst);
            return;
        }
        if !termed {
            if let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            termed = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    CHILD.store(0, Ordering::SeqCst);
}

/// Waits for the child and returns its exit status (128 + the signal that ended it).
fn wait(mut child: Child) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    // A stop signal that came between the child's start and [`spawn`] recording its pid was not
    // passed on: it is now (the child is not reaped yet, so the pid is still its own; a second
    // SIGTERM is harmless to an agent already stopping).
    if STOPPING.load(Ordering::SeqCst)
        && let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let status = loop {
        match child.wait() {
            Ok(status) => break status,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("neosens-edge launcher: waiting for the build: {e}");
                return 1;
            }
        }
    };
    CHILD.store(0, Ordering::SeqCst);
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// SIGTERM, SIGINT and SIGHUP (log reload) go on to the child, once registered.
#[allow(unsafe_code)] // registering a signal action; the action is async-signal-safe (below)
fn forward_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for signal in
            [rustix::process::Signal::TERM, rustix::process::Signal::INT, rustix::process::Signal::HUP]
        {
            // SAFETY: the action only reads an atomic and makes the kill system call, both
            // async-signal-safe.
            let registered = unsafe {
                signal_hook_registry::register(signal.as_raw(), move || {
                    if signal != rustix::process::Signal::HUP {
                        STOPPING.store(true, Ordering::SeqCst);
                    }
                    if let Some(pid) = rustix::process::Pid::from_raw(CHILD.load(Ordering::SeqCst)) {
                        let _ = rustix::process::kill_process(pid, signal);
                    }
                })
            };
            if let Err(e) = registered {
                eprintln!("neosens-edge launcher: forwarding signal {}: {e}", signal.as_raw());
            }
        }
    });
}

#[cfg(test)]
#[path = "launch_tests.rs"]
mod tests;
