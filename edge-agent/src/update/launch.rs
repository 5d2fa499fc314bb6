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
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use neosens_protocol::agent_build::{AgentUpdateOutcome, AgentUpdateReport};
use neosens_protocol::hex;

use super::state::{Build, BuildDir, UpdateState};

/// Set in a build's environment by the launcher: that process serves in-process.
pub const SUPERVISED_ENV: &str = "NEOSENS_EDGE_SUPERVISED";
/// The pipe a build on trial writes to once healthy.
pub const HEALTH_FD_ENV: &str = "NEOSENS_EDGE_HEALTH_FD";
/// The revision the build was signed for (what its status reports).
pub const REVISION_ENV: &str = "NEOSENS_EDGE_BUILD_REVISION";
/// The exit status of an agent that installed a build: systemd (`Restart=always`) starts the
/// launcher again, which starts the build on trial.
pub const EXIT_RESTART: i32 = 75;

/// The child signals go to (0: none).
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Runs the chosen build, if any, and returns its exit status; `None`: serve in-process.
pub fn launch(data_dir: &Path, deadline: Duration, mac: Option<neosens_protocol::Mac>) -> Option<i32> {
    if std::env::var_os(SUPERVISED_ENV).is_some() {
        // A launcher killed outright (SIGKILL) takes its build down with it.
        let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
        return None;
    }
    let builds = BuildDir::new(data_dir);
    loop {
        let mut state = match builds.load() {
            Ok(state) => state,
            Err(e) => {
                eprintln!("neosens-edge launcher: {e}: serving with the packaged binary");
                return None;
            }
        };
        if let Some(trial) = state.trial.clone() {
            match start_trial(&builds, &trial, deadline) {
                Ok(child) => {
                    eprintln!(
                        "neosens-edge launcher: build {} (revision {}) is healthy: kept",
                        trial.sha256, trial.revision
                    );
                    state.previous = state.running.take();
                    state.running = Some(trial.clone());
                    state.trial = None;
                    let report = report(&trial, mac, AgentUpdateOutcome::Installed, "healthy");
                    report.into_iter().for_each(|r| state.report(r));
                    save(&builds, &state);
                    return Some(wait(child));
                }
                Err(reason) => {
                    eprintln!("neosens-edge launcher: build {} rolled back: {reason}", trial.sha256);
                    state.trial = None;
                    match report(&trial, mac, AgentUpdateOutcome::RolledBack, &reason) {
                        Some(r) => state.reject(r),
                        None => state.rejected.push(trial.sha256.clone()),
                    }
                    save(&builds, &state);
                    continue;
                }
            }
        }
        let running = state.running.clone()?;
        let packaged = super::packaged_revision();
        if packaged >= running.revision {
            eprintln!(
                "neosens-edge launcher: the packaged binary (revision {packaged}) is as new as build {} (revision {}): serving with it",
                running.sha256, running.revision
            );
            state.previous = state.running.take();
            save(&builds, &state);
            return None;
        }
        if let Err(reason) = check_file(&builds, &running) {
            eprintln!(
                "neosens-edge launcher: build {}: {reason}: serving with the packaged binary",
                running.sha256
            );
            state.running = None;
            save(&builds, &state);
            return None;
        }
        match spawn(&builds, &running, None) {
            Ok(child) => return Some(wait(child)),
            Err(e) => {
                eprintln!(
                    "neosens-edge launcher: starting build {}: {e}: serving with the packaged binary",
                    running.sha256
                );
                return None;
            }
        }
    }
}

fn save(builds: &BuildDir, state: &UpdateState) {
    if let Err(e) = builds.save(state) {
        eprintln!("neosens-edge launcher: writing the update state: {e}");
    }
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
fn start_trial(builds: &BuildDir, build: &Build, deadline: Duration) -> Result<Child, String> {
    check_file(builds, build)?;
    let (read, write) = rustix::pipe::pipe().map_err(|e| format!("a pipe: {e}"))?;
    rustix::io::fcntl_setfd(&read, rustix::io::FdFlags::CLOEXEC).map_err(|e| format!("a pipe: {e}"))?;
    let mut child = spawn(builds, build, Some(&write)).map_err(|e| format!("starting it: {e}"))?;
    drop(write);
    let healthy = wait_for_byte(&read, deadline);
    if healthy {
        return Ok(child);
    }
    let reason = match child.try_wait() {
        Ok(Some(status)) => format!("it exited ({status}) before it was healthy"),
        _ => format!("not healthy (synced and connected) within {} s", deadline.as_secs()),
    };
    stop(&mut child);
    Err(reason)
}

/// Whether a byte came on `read` before `deadline` (end of file: the child closed it, exiting).
fn wait_for_byte(read: &OwnedFd, deadline: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let until = Instant::now() + deadline;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let timeout = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
        let mut fds = [PollFd::new(read, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => return false,
            Ok(_) => {
                let mut byte = [0u8; 1];
                return matches!(rustix::io::read(read, &mut byte), Ok(1));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Stops a child: SIGTERM, then SIGKILL after 10 s.
fn stop(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if !matches!(child.try_wait(), Ok(None)) {
            CHILD.store(0, Ordering::SeqCst);
            return;
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
