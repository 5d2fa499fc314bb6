//! Checks every neosens service binary must pass, shared by their test suites: the command line
//! documents itself, `configfile` round-trips, bad settings are named, signals stop it cleanly.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use super::{ServiceProcess, http_get, message};

/// A service binary and the names of its settings.
#[derive(Debug, Clone)]
pub struct Service {
    /// Path of the binary.
    pub bin: &'static str,
    /// Its name in `--version`.
    pub name: &'static str,
    /// Variable of the main HTTP listener.
    pub http_var: &'static str,
    /// Variable of the data directory.
    pub data_var: &'static str,
    /// Extra variables every run needs (free ports for secondary listeners …).
    pub base_env: &'static [(&'static str, &'static str)],
}

impl Service {
    fn command(&self) -> Command {
        let mut c = Command::new(self.bin);
        c.envs(self.base_env.iter().copied());
        c
    }

    /// `--help` names every variable in `vars`, and `--version` prints the version, the git
    /// revision and the target: `neosens-central 0.1.0 (git 7525071, x86_64-unknown-linux-gnu)`.
    pub fn check_help(&self, vars: &[&str], version: &str) {
        let out = self.command().arg("--help").output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        for var in vars {
            assert!(help.contains(var), "--help does not mention {var}:\n{help}");
        }
        assert!(help.contains("configfile"));
        let out = self.command().arg("--version").output().unwrap();
        let printed = String::from_utf8(out.stdout).unwrap();
        let build = printed
            .trim()
            .strip_prefix(&format!("{} {version} (git ", self.name))
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("--version printed {printed:?}"));
        let (git, target) = build.split_once(", ").unwrap_or_else(|| panic!("--version printed {printed:?}"));
        assert!(
            git == "unknown" || git.trim_end_matches("-dirty").chars().all(|c| c.is_ascii_hexdigit()),
            "git revision {git:?}"
        );
        assert!(target.split('-').count() >= 3, "target triple {target:?}");
    }

    /// `configfile` prints the values in force (here set through the environment), explains
    /// itself, and a file it printed loads back to the same template. Returns the template.
    pub fn check_configfile(&self) -> String {
        let dir = tempfile::tempdir().unwrap();
        let out = self
            .command()
            .arg("configfile")
            .env(self.http_var, "127.0.0.1:9999")
            .env(self.data_var, "/srv/neosens")
            .output()
            .unwrap();
        assert!(out.status.success());
        let template = String::from_utf8(out.stdout).unwrap();
        assert!(template.contains("bind = \"127.0.0.1:9999\""), "{template}");
        assert!(template.contains("data_dir = \"/srv/neosens\""), "{template}");
        assert!(template.lines().filter(|l| l.starts_with('#')).count() > 10, "the template explains itself");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, &template).unwrap();
        let again = self.command().args(["--config", file.to_str().unwrap(), "configfile"]).output().unwrap();
        assert!(again.status.success());
        assert_eq!(
            String::from_utf8(again.stdout).unwrap(),
            template,
            "a file printed by configfile loads back unchanged"
        );
        template
    }

    /// A config file with a misspelt key is refused, naming the file, the key and the line.
    pub fn check_bad_config_file(&self) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[http]\nbnid = \"0.0.0.0:8080\"\n").unwrap();
        let out = self.command().args(["--config", file.to_str().unwrap()]).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("bad.toml") && err.contains("bnid") && err.contains("line 2"), "{err}");
    }

    fn env(&self, data: &Path) -> HashMap<String, String> {
        let mut env: HashMap<String, String> =
            self.base_env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        env.insert(self.http_var.into(), "127.0.0.1:0".into());
        env.insert(self.data_var.into(), data.to_string_lossy().into_owned());
        env
    }

    /// Serves `/healthz`, creates its data directory, and stops cleanly (exit 0, logged) on
    /// SIGTERM and on SIGINT.
    pub fn check_serves_and_stops(&self) {
        for signal in ["TERM", "INT"] {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let mut service = ServiceProcess::spawn(Path::new(self.bin), &[], &self.env(&data));
            assert!(data.is_dir(), "the data directory is created at start");
            let health = http_get(service.addr("http"), "/healthz");
            assert_eq!(health.status, 200);
            let body: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
            assert_eq!(body["status"], "ok");
            for field in ["version", "git", "target"] {
                assert!(body[field].as_str().is_some_and(|v| !v.is_empty()), "/healthz {field}: {body}");
            }
            assert!(health.header("x-request-id").is_some(), "every answer carries a request id");
            let status = service.signal_and_wait(signal);
            assert!(status.success(), "SIG{signal}: exit status {status}");
            let logs = service.logs();
            let stopped = format!("{} stopped", self.name);
            assert!(logs.iter().any(|l| message(l) == Some("stop requested")), "{logs:#?}");
            assert!(logs.iter().any(|l| message(l) == Some(stopped.as_str())), "{logs:#?}");
        }
    }

    /// `/readyz` answers 200 with every supervised task running (`checks.tasks.ok`), once the
    /// service serves.
    pub fn check_ready(&self) {
        let dir = tempfile::tempdir().unwrap();
        let mut service =
            ServiceProcess::spawn(Path::new(self.bin), &[], &self.env(&dir.path().join("data")));
        let ready = http_get(service.addr("http"), "/readyz");
        let body: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
        assert_eq!(ready.status, 200, "{body}");
        assert_eq!(body["ready"], true, "{body}");
        assert_eq!(body["checks"]["tasks"]["ok"], true, "{body}");
        assert!(service.signal_and_wait("TERM").success());
    }

    /// SIGHUP re-reads `[log] filter` from the configuration file: a debug line appears once the
    /// file asks for it, and a filter that does not parse is refused with an error, the service
    /// going on with the previous one.
    pub fn check_sighup_reloads_the_log_filter(&self) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[log]\nfilter = \"info\"\n").unwrap();
        let env = self.env(&dir.path().join("data"));
        let mut service =
            ServiceProcess::spawn(Path::new(self.bin), &["--config", file.to_str().unwrap()], &env);
        let addr = service.addr("http");
        let is_response = |l: &serde_json::Value| message(l) == Some("response");
        http_get(addr, "/healthz");

        std::fs::write(&file, "[log]\nfilter = \"info,neosens_runtime::http=debug\"\n").unwrap();
        let hangup = |service: &ServiceProcess| {
            let status = Command::new("kill").args(["-HUP", &service.pid().to_string()]).status().unwrap();
            assert!(status.success(), "kill -HUP");
        };
        hangup(&service);
        service.wait_for_log(|l| message(l) == Some("log filter reloaded"));
        assert!(!service.logs().iter().any(is_response), "no response line under the first filter");
        let answer = http_get(addr, "/healthz");
        let id = answer.header("x-request-id").expect("a request id").to_owned();
        let line = service.wait_for_log(is_response);
        assert_eq!(line["status"], 200, "{line}");
        let span = &line["span"];
        assert_eq!(span["route"], "/healthz", "{line}");
        assert_eq!(span["request_id"], id.as_str(), "the logged id is the one returned: {line}");

        std::fs::write(&file, "[log]\nfilter = \"info,=[\"\n").unwrap();
        hangup(&service);
        let refused =
            service.wait_for_log(|l| message(l) == Some("log filter refused; keeping the current one"));
        assert!(refused["error"].as_str().is_some_and(|e| e.contains("info,=[")), "{refused}");
        http_get(addr, "/healthz");
        service.wait_for_log(is_response);
        assert!(service.signal_and_wait("TERM").success());
    }

    /// With systemd's `NOTIFY_SOCKET` and `WATCHDOG_USEC`, says `READY=1` once serving, pings
    /// `WATCHDOG=1`, and says `STOPPING=1` on SIGTERM.
    pub fn check_systemd_notifications(&self) {
        let dir = tempfile::tempdir().unwrap();
        let socket_path = dir.path().join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
        socket.set_read_timeout(Some(super::DEADLINE)).unwrap();
        let mut env = self.env(&dir.path().join("data"));
        env.insert("NOTIFY_SOCKET".into(), socket_path.to_string_lossy().into_owned());
        env.insert("WATCHDOG_USEC".into(), "200000".into());
        let mut service = ServiceProcess::spawn(Path::new(self.bin), &[], &env);
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !(seen.iter().any(|s| s == "READY=1")
            && seen.iter().filter(|s| *s == "WATCHDOG=1").count() >= 2)
        {
            let n = socket.recv(&mut buf).expect("a notification in time");
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(seen[0], "READY=1", "READY first: {seen:?}");
        assert!(service.signal_and_wait("TERM").success());
        let mut stopping = false;
        while let Ok(n) = socket.recv(&mut buf) {
            if &buf[..n] == b"STOPPING=1" {
                stopping = true;
                break;
            }
        }
        assert!(stopping, "STOPPING=1 on SIGTERM");
    }

    /// A data directory that is a file, and a busy port, are refused naming the setting.
    pub fn check_bad_settings_are_named(&self) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let out =
            self.command().env(self.http_var, "127.0.0.1:0").env(self.data_var, &file).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("not-a-dir") && err.contains(self.data_var), "{err}");

        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let out = self
            .command()
            .env(self.http_var, addr.to_string())
            .env(self.data_var, dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(&addr.to_string()) && err.contains(self.http_var), "{err}");
    }
}
