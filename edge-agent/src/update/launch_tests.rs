//! The launcher with real child processes (shell scripts standing in for builds).

use super::*;

const MAC: &str = "b8:27:eb:00:00:01";

/// A data directory whose update state puts `script` on trial (and `running`, if given, before it).
fn with_trial(script: &str, running: Option<&str>) -> (tempfile::TempDir, Build) {
    let dir = tempfile::tempdir().unwrap();
    let builds = BuildDir::new(dir.path());
    let mut state = UpdateState::default();
    let install = |text: &str, revision: u64| {
        let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref());
        builds.install(text.as_bytes(), &sha).unwrap();
        Build { sha256: sha, revision, campaign: 7, starts: 0 }
    };
    state.running = running.map(|r| install(r, u64::MAX - 1));
    let trial = install(script, u64::MAX);
    state.trial = Some(trial.clone());
    builds
        .update(|s| {
            *s = state;
            Ok(())
        })
        .unwrap();
    (dir, trial)
}

#[test]
fn a_build_silent_past_its_deadline_is_stopped_and_rolled_back() {
    let (dir, trial) = with_trial("#!/bin/sh\nexec sleep 30\n", None);
    let started = Instant::now();
    assert_eq!(
        launch(dir.path(), Duration::from_millis(300), MAC.parse().ok()),
        None,
        "the packaged binary serves"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "stopped by SIGTERM, not waited for");
    let state = BuildDir::new(dir.path()).load().unwrap();
    assert_eq!((state.trial, state.running), (None, None));
    assert_eq!(state.rejected, vec![trial.sha256.clone()]);
    assert_eq!(state.reports.len(), 1);
    assert_eq!(state.reports[0].outcome, AgentUpdateOutcome::RolledBack);
    assert!(state.reports[0].reason.contains("not healthy"), "{}", state.reports[0].reason);
    assert!(
        !BuildDir::new(dir.path()).build_path(&trial.sha256).exists(),
        "the rolled-back build is removed"
    );
}

#[test]
fn a_healthy_build_is_kept_and_its_exit_status_passed_on() {
    let healthy = "#!/bin/sh\nprintf 1 >&$NEOSENS_EDGE_HEALTH_FD\nexit 75\n";
    let (dir, trial) = with_trial(healthy, Some("#!/bin/sh\nexit 0\n"));
    let previous = BuildDir::new(dir.path()).load().unwrap().running;
    assert_eq!(launch(dir.path(), Duration::from_secs(20), MAC.parse().ok()), Some(EXIT_RESTART));
    let state = BuildDir::new(dir.path()).load().unwrap();
    assert_eq!(state.running, Some(Build { starts: 0, ..trial }));
    assert_eq!((state.trial, state.previous), (None, previous));
    assert_eq!(state.reports[0].outcome, AgentUpdateOutcome::Installed);
}

/// A build on trial that restarts to apply new settings (exit 75 before it is healthy) is not
/// judged, but the start stays counted: one such restart per trial, not an endless one.
#[test]
fn a_trial_restarting_for_new_settings_is_not_judged_but_counted() {
    let (dir, trial) = with_trial(
        "#!/bin/sh
exit 75
",
        None,
    );
    let builds = BuildDir::new(dir.path());
    assert_eq!(launch(dir.path(), Duration::from_secs(20), MAC.parse().ok()), Some(EXIT_RESTART));
    let state = builds.load().unwrap();
    assert_eq!(state.trial.as_ref().map(|t| t.starts), Some(1), "still on trial, its start counted");
    assert!(state.rejected.is_empty() && state.reports.is_empty());
    assert_eq!(launch(dir.path(), Duration::from_secs(20), MAC.parse().ok()), Some(EXIT_RESTART));
    assert_eq!(launch(dir.path(), Duration::from_secs(20), MAC.parse().ok()), None, "rolled back");
    assert_eq!(builds.load().unwrap().rejected, vec![trial.sha256]);
}

#[test]
fn a_build_whose_file_changed_is_not_started() {
    let (dir, trial) = with_trial("#!/bin/sh\nexit 0\n", None);
    std::fs::write(BuildDir::new(dir.path()).build_path(&trial.sha256), "#!/bin/sh\nexit 9\n").unwrap();
    assert_eq!(launch(dir.path(), Duration::from_secs(20), MAC.parse().ok()), None);
    let state = BuildDir::new(dir.path()).load().unwrap();
    assert!(state.reports[0].reason.contains("hashes to"), "{}", state.reports[0].reason);
}

#[test]
fn a_trial_a_launcher_never_saw_through_is_rolled_back_at_the_next_start_but_one() {
    let (dir, trial) = with_trial("#!/bin/sh\nexit 0\n", None);
    let builds = BuildDir::new(dir.path());
    // Two launchers stopped outright (SIGKILL, a power cut) while it was on trial.
    builds
        .update(|s| {
            s.trial.as_mut().unwrap().starts = MAX_TRIAL_STARTS;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        launch(dir.path(), Duration::from_secs(20), MAC.parse().ok()),
        None,
        "not started a third time"
    );
    let state = builds.load().unwrap();
    assert_eq!(state.trial, None);
    assert_eq!(state.rejected, vec![trial.sha256]);
    assert!(state.reports[0].reason.contains("started 2 times"), "{}", state.reports[0].reason);
}

#[test]
fn a_kept_build_that_keeps_exiting_at_start_is_rolled_back() {
    let (dir, _) = with_trial("#!/bin/sh\nexit 0\n", Some("#!/bin/sh\nexit 1\n"));
    let builds = BuildDir::new(dir.path());
    let crashing = builds.load().unwrap().running.unwrap();
    builds
        .update(|s| {
            s.trial = None;
            Ok(())
        })
        .unwrap();
    for round in 1..MAX_QUICK_EXITS {
        assert_eq!(launch(dir.path(), Duration::from_secs(20), MAC.parse().ok()), Some(1));
        assert_eq!(builds.load().unwrap().running.map(|r| r.starts), Some(round), "counted");
    }
    assert_eq!(launch(dir.path(), Duration::from_secs(20), MAC.parse().ok()), Some(1));
    let state = builds.load().unwrap();
    assert_eq!(state.running, None, "back to the packaged binary (no build before it)");
    assert_eq!(state.rejected, vec![crashing.sha256]);
    assert!(state.reports[0].reason.contains("3 times in a row"), "{}", state.reports[0].reason);
    assert_eq!(launch(dir.path(), Duration::from_secs(20), MAC.parse().ok()), None);
}

/// A kept build that outlives the quick-exit window has its count reset while it runs: a power
/// cut later (no exit for the launcher to see) does not leave earlier quick exits counted.
#[test]
fn a_kept_build_running_past_the_quick_exit_window_is_counted_healthy_while_it_runs() {
    let gate = tempfile::tempdir().unwrap();
    let go = gate.path().join("go");
    let script = format!("#!/bin/sh\nwhile [ ! -e {} ]; do sleep 0.05; done\nexit 1\n", go.display());
    let (dir, _) = with_trial("#!/bin/sh\nexit 0\n", Some(&script));
    let builds = BuildDir::new(dir.path());
    builds
        .update(|s| {
            s.trial = None;
            if let Some(running) = s.running.as_mut() {
                running.starts = MAX_QUICK_EXITS - 1;
            }
            Ok(())
        })
        .unwrap();
    let build = builds.load().unwrap().running.unwrap();
    let started = Instant::now();
    let child = spawn(&builds, &build, None).unwrap();
    let kept = {
        let (dir, build) = (dir.path().to_owned(), build.clone());
        std::thread::spawn(move || {
            run_kept(&BuildDir::new(&dir), child, &build, (started, Duration::from_millis(200)), None)
        })
    };
    neosens_runtime::testing::wait_until("the count reset while the build runs", || {
        builds.load().unwrap().running.is_some_and(|r| r.starts == 0)
    });
    assert!(!kept.is_finished(), "still running");
    std::fs::write(&go, "").unwrap();
    assert_eq!(kept.join().unwrap(), 1);
    let state = builds.load().unwrap();
    assert_eq!(state.running.map(|r| r.starts), Some(0), "a late exit is not a quick one");
    assert!(state.rejected.is_empty());
}
