//! What the agent keeps on disk about its builds: `<data_dir>/agent/update.state` and the
//! installed builds in `<data_dir>/agent/builds/<sha256>`.
//!
//! The state is a few lines of text, one record per line (`running <sha256> <revision>
//! <campaign>`, `trial …`, `previous …`, `rejected <sha256>`, `report <campaign> <sha256> <mac>
//! <outcome> <at_ms> <reason>`): an operator reads it with `cat`, and the agent, whose static
//! build has a 4 MB budget, parses it without a JSON deserializer of its own.
//!
//! The file is the switch: writing it (whole, synced, renamed) is what swaps the build the
//! launcher starts, so a power cut leaves the old choice or the new one. The packaged binary
//! (`/usr/bin/neosens-edge`, what systemd starts) is never written over: with no build chosen,
//! it is the agent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use neosens_protocol::agent_build::{AgentUpdateOutcome, AgentUpdateReport};

use crate::firmware::valid_sha;

/// Builds remembered as refused or rolled back: not tried again while central still offers them
/// (an operator's resume of the campaign offers them afresh, see [`super::Updater::consider`]).
pub const MAX_REJECTED: usize = 16;

/// Starts a build on trial gets: a launcher stopped outright during a trial (systemd's start
/// timeout or watchdog, SIGKILL, a power cut) leaves it counted, so a build that hangs the
/// gateway is rolled back at the next start but one.
pub const MAX_TRIAL_STARTS: u32 = 2;

/// Reports waiting for central.
pub const MAX_PENDING_REPORTS: usize = 16;

/// An installed build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// SHA-256 of its file, lowercase hex: its name under `builds/`.
    pub sha256: String,
    /// The revision it was signed for.
    pub revision: u64,
    /// The campaign that offered it.
    pub campaign: u64,
    /// For a build on trial: how many times a launcher started it; for the running build: how
    /// many times in a row it exited abnormally soon after its start.
    pub starts: u32,
}

/// `update.state`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateState {
    /// The build the launcher starts; `None`: the packaged binary runs in-process.
    pub running: Option<Build>,
    /// A build installed and not yet proven healthy: the launcher starts it next, under a
    /// deadline, and falls back to `running` when it fails.
    pub trial: Option<Build>,
    /// The build `running` replaced, kept on disk for the record.
    pub previous: Option<Build>,
    /// Builds refused or rolled back, newest last.
    pub rejected: Vec<String>,
    /// What became of offered builds, for central, oldest first.
    pub reports: Vec<AgentUpdateReport>,
}

/// The agent's directory of builds and their state.
#[derive(Debug, Clone)]
pub struct BuildDir {
    dir: PathBuf,
}

impl BuildDir {
    /// `<data_dir>/agent`.
    pub fn new(data_dir: &Path) -> Self {
        BuildDir { dir: data_dir.join("agent") }
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("update.state")
    }

    /// The file of an installed build.
    pub fn build_path(&self, sha256: &str) -> PathBuf {
        self.dir.join("builds").join(sha256)
    }

    /// The state; empty when the file is absent. A damaged file is an error naming it (the
    /// launcher then runs the packaged binary).
    pub fn load(&self) -> std::io::Result<UpdateState> {
        match std::fs::read_to_string(self.state_file()) {
            Ok(text) => UpdateState::parse(&text).map_err(|line| {
                std::io::Error::other(format!("{} does not parse at {line:?}", self.state_file().display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UpdateState::default()),
            Err(e) => Err(e),
        }
    }

    /// Changes the state under an exclusive lock of `agent/update.lock`, which the launcher and
    /// the agent's tasks all take (`flock`: across processes and threads alike), then writes it:
    /// a change reads what the other wrote last and never writes over it.
    pub fn update<R>(
        &self,
        change: impl FnOnce(&mut UpdateState) -> std::io::Result<R>,
    ) -> std::io::Result<R> {
        std::fs::create_dir_all(self.dir.join("builds"))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("update.lock"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
        let mut state = self.load()?;
        let out = change(&mut state)?;
        self.save(&state)?;
        Ok(out)
    }

    /// Writes the state whole and durably, then removes builds it no longer names (called under
    /// the lock: [`BuildDir::update`]).
    fn save(&self, state: &UpdateState) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir.join("builds"))?;
        neosens_runtime::durable::write_private(&self.state_file(), state.render().as_bytes())?;
        let kept: Vec<&str> = [&state.running, &state.trial, &state.previous]
            .into_iter()
            .flatten()
            .map(|b| b.sha256.as_str())
            .collect();
        for entry in std::fs::read_dir(self.dir.join("builds"))? {
            let entry = entry?;
            if !kept.iter().any(|k| entry.file_name() == *k) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Writes `content` as an executable build named `sha256`, synced before its rename (call
    /// it within [`BuildDir::update`], which then names it, so no other change removes it).
    pub fn install(&self, content: &[u8], sha256: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        if !valid_sha(sha256) {
            return Err(std::io::Error::other(format!("{sha256:?} is not a SHA-256")));
        }
        let builds = self.dir.join("builds");
        std::fs::create_dir_all(&builds)?;
        let part = builds.join(format!("{sha256}.part"));
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o755).open(&part)?;
        file.write_all(content)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&part, self.build_path(sha256))?;
        std::fs::File::open(&builds)?.sync_all()
    }
}

fn outcome_name(outcome: AgentUpdateOutcome) -> &'static str {
    match outcome {
        AgentUpdateOutcome::Installed => "installed",
        AgentUpdateOutcome::Refused => "refused",
        AgentUpdateOutcome::RolledBack => "rolled_back",
    }
}

impl UpdateState {
    /// The file's text.
    fn render(&self) -> String {
        let mut out = String::from("# neosens-edge agent updates (docs/edge.md#agent-updates)\n");
        for (name, build) in
            [("running", &self.running), ("trial", &self.trial), ("previous", &self.previous)]
        {
            if let Some(b) = build {
                let _ = writeln!(out, "{name} {} {} {} {}", b.sha256, b.revision, b.campaign, b.starts);
            }
        }
        for sha in &self.rejected {
            let _ = writeln!(out, "rejected {sha}");
        }
        for r in &self.reports {
            let reason = r.reason.replace(['\n', '\r'], " ");
            let outcome = outcome_name(r.outcome);
            let _ = writeln!(
                out,
                "report {} {} {} {outcome} {} {reason}",
                r.campaign, r.sha256, r.device, r.at_ms
            );
        }
        out
    }

    /// Reads the file's text; the first line that does not parse is the error.
    fn parse(text: &str) -> Result<Self, String> {
        let mut state = UpdateState::default();
        for line in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            let bad = || line.to_owned();
            let sha = |w: &str| if valid_sha(w) { Ok(w.to_owned()) } else { Err(line.to_owned()) };
            let mut words = line.splitn(7, ' ');
            let kind = words.next().unwrap_or_default();
            let mut word = || words.next().ok_or_else(bad);
            match kind {
                "running" | "trial" | "previous" => {
                    let build = Build {
                        sha256: word().and_then(sha)?,
                        revision: word()?.parse().map_err(|_| bad())?,
                        campaign: word()?.parse().map_err(|_| bad())?,
                        starts: words.next().map_or(Ok(0), |n| n.parse().map_err(|_| bad()))?,
                    };
                    let slot = match kind {
                        "running" => &mut state.running,
                        "trial" => &mut state.trial,
                        _ => &mut state.previous,
                    };
                    *slot = Some(build);
                }
                "rejected" => state.rejected.push(word().and_then(sha)?),
                "report" => {
                    let campaign = word()?.parse().map_err(|_| bad())?;
                    let sha256 = word().and_then(sha)?;
                    let device = word()?.parse().map_err(|_| bad())?;
                    let outcome = match word()? {
                        "installed" => AgentUpdateOutcome::Installed,
                        "refused" => AgentUpdateOutcome::Refused,
                        "rolled_back" => AgentUpdateOutcome::RolledBack,
                        _ => return Err(bad()),
                    };
                    let at_ms = word()?.parse().map_err(|_| bad())?;
                    let reason = words.next().unwrap_or_default().to_owned();
                    state.reports.push(AgentUpdateReport {
                        campaign,
                        sha256,
                        device,
                        outcome,
                        reason,
                        at_ms,
                    });
                }
                _ => return Err(bad()),
            }
        }
        Ok(state)
    }

    /// Notes a build as refused or rolled back, with the report of it when there is one (a
    /// gateway without a MAC of its own has no device to report for).
    pub fn reject(&mut self, sha256: &str, report: Option<AgentUpdateReport>) {
        self.rejected.retain(|s| s != sha256);
        self.rejected.push(sha256.to_owned());
        if self.rejected.len() > MAX_REJECTED {
            self.rejected.remove(0);
        }
        if let Some(report) = report {
            self.report(report);
        }
    }

    /// Queues a report for central (the oldest goes past [`MAX_PENDING_REPORTS`]).
    pub fn report(&mut self, report: AgentUpdateReport) {
        self.reports.push(report);
        if self.reports.len() > MAX_PENDING_REPORTS {
            self.reports.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn report(sha: &str) -> AgentUpdateReport {
        AgentUpdateReport {
            campaign: 1,
            sha256: sha.into(),
            device: "b8:27:eb:00:00:01".parse().unwrap(),
            outcome: AgentUpdateOutcome::Refused,
            reason: "bad signature".into(),
            at_ms: 1,
        }
    }

    fn build(n: u8, revision: u64) -> Build {
        Build { sha256: sha(n), revision, campaign: 1, starts: 0 }
    }

    #[test]
    fn the_state_round_trips_and_unnamed_builds_go() {
        let dir = tempfile::tempdir().unwrap();
        let builds = BuildDir::new(dir.path());
        assert_eq!(builds.load().unwrap(), UpdateState::default(), "absent: the packaged binary");
        builds.install(b"#!/bin/sh\n", &sha(0xaa)).unwrap();
        builds.install(b"#!/bin/sh\n", &sha(0xbb)).unwrap();
        assert!(builds.install(b"x", "../escape").is_err(), "only SHA-256 names");
        let state = UpdateState { running: Some(build(0xaa, 2)), ..UpdateState::default() };
        builds
            .update(|s| {
                *s = state.clone();
                Ok(())
            })
            .unwrap();
        assert_eq!(builds.load().unwrap(), state);
        assert!(builds.build_path(&sha(0xaa)).exists());
        assert!(!builds.build_path(&sha(0xbb)).exists(), "a build no longer named is removed");
        let mut full = state.clone();
        full.trial = Some(Build { starts: 1, ..build(0xbb, 3) });
        full.previous = Some(build(0xcc, 1));
        full.reject(&sha(0xdd), Some(report(&sha(0xdd))));
        full.reports[0].reason = "exited\nat start".into();
        builds
            .update(|s| {
                *s = full.clone();
                Ok(())
            })
            .unwrap();
        let back = builds.load().unwrap();
        assert_eq!(back.reports[0].reason, "exited at start", "one line per record");
        full.reports[0].reason = back.reports[0].reason.clone();
        assert_eq!(back, full);
        let good = sha(1);
        for broken in [
            "{broken".to_owned(),
            "running aa 1 1".to_owned(),
            format!("running {good} x 1"),
            format!("trial {good} 1 1 many"),
            "rejected ../../bin/sh".to_owned(),
            format!("report 1 {good} b8:27:eb:00:00:01 maybe 5 r"),
            format!("report 1 {good} zz refused 5 r"),
            format!("what {good}"),
        ] {
            std::fs::write(dir.path().join("agent/update.state"), &broken).unwrap();
            let err = builds.load().unwrap_err().to_string();
            assert!(err.contains("update.state") && err.contains(&broken), "{broken}: {err}");
        }
    }

    #[test]
    fn rejections_and_reports_are_bounded() {
        let mut state = UpdateState::default();
        for i in 0..40 {
            state.reject(&sha(i), Some(report(&sha(i))));
        }
        state.reject(&sha(5), None);
        assert_eq!(state.rejected.len(), MAX_REJECTED);
        assert_eq!(state.rejected.last(), Some(&sha(5)));
        assert_eq!(state.reports.len(), MAX_PENDING_REPORTS);
        assert_eq!(state.reports[0].sha256, sha(24), "the oldest went first");
    }
}
