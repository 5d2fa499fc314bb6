//! The local Mosquitto as the agent's child: started on its generated configuration, told to
//! reload its accounts (SIGHUP: Mosquitto reads `password_file` and `acl_file` again), stopped
//! with SIGTERM (it saves its persistence file then). Its exit is noticed through a pidfd, so
//! a quiet site costs no polling.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::unix::AsyncFd;

/// How long the agent waits for Mosquitto to save its queue and exit (within the agent's own
/// drain deadline). Past it, Mosquitto is left to finish: systemd's stop of the unit, or the
/// agent's next start ([`stop_leftover`]), sees it out.
const STOP_DEADLINE: Duration = Duration::from_secs(4);
/// How long a leftover Mosquitto has to exit before it is killed.
const LEFTOVER_DEADLINE: Duration = Duration::from_secs(10);

/// A running Mosquitto.
pub(super) struct Mosquitto {
    child: Child,
    exit: Option<AsyncFd<OwnedFd>>,
}

impl Mosquitto {
    /// Starts `binary -c conf`; its output goes to the agent's (the journal).
    pub(super) fn start(binary: &Path, conf: &Path) -> std::io::Result<Self> {
        let child = Command::new(binary)
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("starting {}: {e}", binary.display())))?;
        let exit = pid(&child)
            .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok())
            .and_then(|fd| register(fd).ok());
        Ok(Mosquitto { child, exit })
    }

    /// Its process id.
    pub(super) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Makes it read its password and ACL files again.
    pub(super) fn reload(&self) {
        if let Some(p) = pid(&self.child) {
            let _ = rustix::process::kill_process(p, Signal::HUP);
        }
    }

    /// Waits for it to exit by itself.
    pub(super) async fn exited(&mut self) -> ExitStatus {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            match &self.exit {
                // Readable once the process has exited.
                Some(fd) => match fd.readable().await {
                    Ok(mut guard) => guard.clear_ready(),
                    Err(_) => self.exit = None,
                },
                // No pidfd (a kernel before 5.3): looked at now and then.
                None => tokio::time::sleep(Duration::from_secs(5)).await,
            }
        }
    }

    /// SIGTERM, and waits for it up to [`STOP_DEADLINE`] (never killed: it may be saving a
    /// long queue).
    pub(super) async fn stop(mut self) {
        if let Some(p) = pid(&self.child) {
            let _ = rustix::process::kill_process(p, Signal::TERM);
        }
        if tokio::time::timeout(STOP_DEADLINE, self.exited()).await.is_err() {
            tracing::warn!(
                pid = self.child.id(),
                "the local broker is still saving its queue: left to finish"
            );
        }
    }
}

/// The pidfd on the runtime's reactor (readable once the process exits).
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>, std::io::Error> {
    // SAFETY: the `AsyncFd` owns the `OwnedFd`: the descriptor stays open, and the same, until
    // the `AsyncFd` is dropped.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.map_err(Into::into)
}

fn pid(child: &Child) -> Option<Pid> {
    Pid::from_raw(i32::try_from(child.id()).ok()?)
}

/// Stops a Mosquitto an earlier run of the agent left behind (its `pid_file`), so that the new
/// one gets the port: the agent killed outright does not stop its child. Only a process whose
/// executable is named `mosquitto` is signalled. Blocking (it waits up to 10 s).
pub(super) fn stop_leftover(pid_file: &Path) {
    let Some(p) = std::fs::read_to_string(pid_file).ok().and_then(|t| t.trim().parse::<i32>().ok()) else {
        return;
    };
    let exe = std::fs::read_link(format!("/proc/{p}/exe")).ok();
    let is_mosquitto = exe.as_deref().and_then(Path::file_name).is_some_and(|n| n == "mosquitto");
    let Some(pid) = Pid::from_raw(p).filter(|_| is_mosquitto) else { return };
    tracing::warn!(pid = p, "stopping the local broker a previous run left behind");
    let _ = rustix::process::kill_process(pid, Signal::TERM);
    let gone = || !Path::new(&format!("/proc/{p}")).exists();
    let deadline = std::time::Instant::now() + LEFTOVER_DEADLINE;
    while !gone() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !gone() {
        tracing::warn!(pid = p, "the leftover local broker did not stop within 10 s: killed");
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}
