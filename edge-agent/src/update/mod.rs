//! Agent updates: gateway builds rolled out by central's firmware campaigns over the gateways'
//! own devices ([`neosens_protocol::agent_build`]).
//!
//! - The firmware cache fetches a campaign's build like any image (resumable, checked by
//!   SHA-256); when the gateway's own device is in a started wave, [`Updater::consider`] checks
//!   the build's ed25519 signature with the pinned key (`[update] public_key`), copies it to
//!   `<data_dir>/agent/builds/`, marks it "on trial" ([`state`]) and stops the agent with
//!   [`launch::EXIT_RESTART`]; systemd starts the launcher again.
//! - The [`launch`]er (the packaged binary, never written over) starts the build on trial,
//!   keeps it once it says it is healthy, and puts the previous build back otherwise.
//! - [`signal_health`] is the build's side: "synced and connected" through the launcher's pipe.
//! - [`send_reports`] tells central what became of each build (installed, refused, rolled back).

pub mod launch;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use neosens_protocol::agent_build::{
    AGENT_BOARD, AgentUpdateOutcome, AgentUpdateReport, agent_hardware, signed_message, version_revision,
};
use neosens_protocol::edge_firmware::ManifestImage;
use neosens_protocol::{Mac, hex};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use state::{Build, BuildDir};

/// `[update]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateConfig {
    /// The ed25519 public key gateway builds must be signed with, 64 hex digits (`neosens-central
    /// agent-key public`); unset: builds offered are refused.
    pub public_key: Option<String>,
    /// Seconds a new build has to become healthy (synced and connected) before it is rolled back.
    pub health_deadline_s: u64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig { public_key: None, health_deadline_s: 300 }
    }
}

impl UpdateConfig {
    /// The pinned key, checked; `Ok(None)` when unset.
    pub fn key(&self) -> anyhow::Result<Option<[u8; 32]>> {
        self.public_key
            .as_deref()
            .map(|k| {
                hex::decode_array::<32>(k.trim(), "public_key")
                    .map_err(|_| anyhow::anyhow!("[update] public_key: expected 64 hex digits"))
            })
            .transpose()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// The revision of the packaged binary (its version).
pub fn packaged_revision() -> u64 {
    version_revision(env!("CARGO_PKG_VERSION")).unwrap_or(0)
}

/// The revision this process runs: the one its build was signed for when the launcher started
/// it, the packaged binary's otherwise. What the gateway's status reports in `firmware`.
pub fn running_revision() -> u64 {
    std::env::var(launch::REVISION_ENV).ok().and_then(|r| r.parse().ok()).unwrap_or_else(packaged_revision)
}

/// The hardware name of this build's target.
pub fn own_hardware() -> String {
    agent_hardware(std::env::consts::ARCH)
}

/// Takes up the builds the firmware cache holds for this gateway.
#[derive(Debug, Clone)]
pub struct Updater {
    builds: BuildDir,
    key: Option<[u8; 32]>,
    mac: Option<Mac>,
    /// Cancelled to stop the agent once a build is installed.
    shutdown: CancellationToken,
}

/// Set once a build is installed: the agent exits with [`launch::EXIT_RESTART`].
static RESTART: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the agent stopped to start an installed build, or to apply new settings.
pub fn restart_requested() -> bool {
    RESTART.load(std::sync::atomic::Ordering::SeqCst)
}

/// Stops the agent to be started again by systemd (settings from central that apply at start).
pub fn request_restart(shutdown: &CancellationToken) {
    RESTART.store(true, std::sync::atomic::Ordering::SeqCst);
    shutdown.cancel();
}

impl Updater {
    /// For the agent in `data_dir`, with its pinned key and its own device.
    pub fn new(
        data_dir: &Path,
        key: Option<[u8; 32]>,
        mac: Option<Mac>,
        shutdown: CancellationToken,
    ) -> Self {
        Updater { builds: BuildDir::new(data_dir), key, mac, shutdown }
    }

    /// The builds among `images` offered to this gateway (its target, its own device in a
    /// started wave), newest first.
    fn offered<'a>(&self, images: &'a [ManifestImage]) -> Vec<&'a ManifestImage> {
        let Some(mac) = self.mac else { return Vec::new() };
        let hardware = own_hardware();
        let mut offered: Vec<&ManifestImage> = images
            .iter()
            .filter(|i| {
                i.hardware == hardware && i.board == AGENT_BOARD && crate::firmware::valid_sha(&i.sha256)
            })
            .filter(|i| i.devices.contains(&mac))
            .collect();
        offered.sort_by_key(|i| std::cmp::Reverse(i.revision));
        offered
    }

    /// Blocking (reads and hashes the build, writes the disk): checks and installs the newest
    /// build offered to this gateway above the revision it runs and not rejected, if any;
    /// `cached` names an image's file in the firmware cache. Returns whether one was installed
    /// (the agent is then stopping, to be started again on it).
    ///
    /// A rejected build is forgotten once central stops offering it to this gateway (central
    /// has the failure): an operator's resume of the campaign offers it afresh, and it is tried
    /// again.
    pub fn consider(
        &self,
        images: &[ManifestImage],
        cached: &dyn Fn(&str) -> PathBuf,
    ) -> std::io::Result<bool> {
        let offered = self.offered(images);
        let state = self.builds.load()?;
        if state.rejected.iter().any(|r| !offered.iter().any(|i| i.sha256 == *r)) {
            self.builds.update(|s| {
                s.rejected.retain(|r| offered.iter().any(|i| i.sha256 == *r));
                Ok(())
            })?;
        }
        if state.trial.is_some() {
            return Ok(false);
        }
        let running = running_revision();
        let Some(image) =
            offered.into_iter().find(|i| i.revision > running && !state.rejected.contains(&i.sha256))
        else {
            return Ok(false);
        };
        let content = match self.check(image, &cached(&image.sha256)) {
            Ok(content) => content,
            Err(reason) => {
                tracing::warn!(sha256 = %image.sha256, revision = image.revision, %reason, "a gateway build was refused");
                let report = self.mac.map(|device| AgentUpdateReport {
                    campaign: image.campaign,
                    sha256: image.sha256.clone(),
                    device,
                    outcome: AgentUpdateOutcome::Refused,
                    reason,
                    at_ms: now_ms(),
                });
                self.builds.update(|state| {
                    state.reject(&image.sha256, report);
                    Ok(())
                })?;
                NEW_REPORT.notify_one();
                return Ok(false);
            }
        };
        let build = Build {
            sha256: image.sha256.clone(),
            revision: image.revision,
            campaign: image.campaign,
            starts: 0,
        };
        // Written and named under the lock: no other change of the state removes it meanwhile.
        self.builds.update(|state| {
            self.builds.install(&content, &build.sha256)?;
            state.trial = Some(build.clone());
            Ok(())
        })?;
        tracing::info!(sha256 = %build.sha256, revision = build.revision, "a gateway build is installed: restarting on it (rolled back unless healthy)");
        RESTART.store(true, std::sync::atomic::Ordering::SeqCst);
        self.shutdown.cancel();
        Ok(true)
    }

    /// The build's content, checked against its name and its signature against the pinned key
    /// (what is installed is these bytes, not the file read again).
    fn check(&self, image: &ManifestImage, file: &Path) -> Result<Vec<u8>, String> {
        let key = self.key.ok_or("no [update] public_key is pinned on this gateway")?;
        let bytes = std::fs::read(file).map_err(|e| format!("reading the cached build: {e}"))?;
        let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
        if sha != image.sha256 {
            return Err(format!("its content hashes to {sha}"));
        }
        let signature = image.signature.as_deref().ok_or("it carries no signature")?;
        let signature = hex::decode_array::<64>(signature, "signature")
            .map_err(|_| "its signature is not 128 hex digits")?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(&signed_message(&image.hardware, image.revision, &sha), &signature)
            .map_err(|_| {
                String::from("bad signature: not signed for this hardware and revision by the pinned key")
            })?;
        Ok(bytes)
    }
}

#[allow(unsafe_code)] // taking the descriptor the launcher handed over (below)
/// A build on trial's side of the launcher's pipe: once the agent has synced with central and
/// reached its broker (when it has one), one byte says it is healthy.
pub async fn signal_health(
    sync: Arc<crate::sync::SyncStats>,
    uplink: Option<Arc<crate::uplink::UplinkStats>>,
    shutdown: CancellationToken,
) {
    use std::sync::atomic::Ordering;
    // Taken once: a restarted task must not take the descriptor's number again.
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let fd = std::env::var(launch::HEALTH_FD_ENV).ok().and_then(|f| f.parse::<i32>().ok());
    // A task of the process's life (the supervisor restarts tasks that end early).
    let Some(fd) = fd.filter(|_| !TAKEN.swap(true, Ordering::SeqCst)) else {
        return shutdown.cancelled().await;
    };
    // SAFETY: the launcher opened this descriptor for this process alone and named it here;
    // nothing else in the process uses it.
    // Only a pipe above the standard descriptors: a stray variable cannot make this task close
    // standard error or a socket.
    let is_pipe = fd > 2
        && rustix::fs::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) })
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo);
    if !is_pipe {
        tracing::warn!(fd, "{} names no pipe: no health signal", launch::HEALTH_FD_ENV);
        return shutdown.cancelled().await;
    }
    let pipe = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let _ = rustix::io::fcntl_setfd(&pipe, rustix::io::FdFlags::CLOEXEC);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let synced = sync.last_success_s.load(Ordering::Relaxed) > 0;
        let connected = uplink.as_ref().is_none_or(|u| u.connected.load(Ordering::Relaxed));
        if synced && connected {
            let _ = rustix::io::write(&pipe, b"1");
            drop(pipe);
            tracing::info!("healthy on this build (synced and connected): the launcher keeps it");
            return shutdown.cancelled().await;
        }
    }
}

/// Woken when [`Updater::consider`] leaves a report.
static NEW_REPORT: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Sends the reports the launcher and [`Updater::consider`] left, every 10 s while some wait
/// (central down: they stay on disk) or while this build's trial is not settled (the launcher
/// writes "installed" once this process said it is healthy); idle otherwise.
pub async fn send_reports(data_dir: PathBuf, central: crate::central::Central, shutdown: CancellationToken) {
    let builds = BuildDir::new(&data_dir);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let b = builds.clone();
        let Ok(state) = neosens_runtime::blocking::run(move || b.load()).await else { continue };
        let settled = state.trial.is_none();
        let mut sent = Vec::new();
        for report in &state.reports {
            match central.agent_update(report).await {
                Ok(true) => sent.push(report.clone()),
                Ok(false) => {
                    tracing::warn!(sha256 = %report.sha256, "central refused a build report for good: dropped");
                    sent.push(report.clone());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "a build report waits for central");
                    break;
                }
            }
        }
        let all_sent = sent.len() == state.reports.len();
        if !sent.is_empty() {
            let b = builds.clone();
            let done = neosens_runtime::blocking::run(move || {
                b.update(|s| {
                    s.reports.retain(|r| !sent.contains(r));
                    Ok(())
                })
            })
            .await;
            if let Err(e) = done {
                tracing::warn!(error = %e, "writing the update state");
            }
        }
        if all_sent && settled {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = NEW_REPORT.notified() => tick.reset_immediately(),
            }
        }
    }
}

#[cfg(test)]
#[path = "updater_tests.rs"]
mod tests;
