//! The real `neosens-central` binary: command line, configuration, serving and stopping.

use std::collections::HashMap;
use std::process::Command;

use neosens_runtime::testing::{ServiceProcess, http_get, message};

const BIN: &str = env!("CARGO_BIN_EXE_neosens-central");

fn env(data_dir: &std::path::Path) -> HashMap<String, String> {
    HashMap::from([
        ("NEOSENS_HTTP_BIND".into(), "127.0.0.1:0".into()),
        ("NEOSENS_DATA_DIR".into(), data_dir.to_string_lossy().into_owned()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".into(), "127.0.0.1:0".into()),
    ])
}

#[test]
fn help_names_every_environment_variable() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for var in
        ["NEOSENS_CONFIG", "NEOSENS_DATA_DIR", "NEOSENS_HTTP_BIND", "NEOSENS_LOG", "NEOSENS_LOG_FORMAT"]
    {
        assert!(help.contains(var), "--help does not mention {var}:\n{help}");
    }
    assert!(help.contains("configfile"));
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        format!("neosens-central {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn configfile_prints_the_current_values_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("configfile")
        .env("NEOSENS_HTTP_BIND", "127.0.0.1:9999")
        .env("NEOSENS_DATA_DIR", "/srv/neosens")
        .output()
        .unwrap();
    assert!(out.status.success());
    let template = String::from_utf8(out.stdout).unwrap();
    assert!(template.contains("bind = \"127.0.0.1:9999\""), "{template}");
    assert!(template.contains("data_dir = \"/srv/neosens\""), "{template}");
    assert!(template.lines().filter(|l| l.starts_with('#')).count() > 10, "the template explains itself");

    let file = dir.path().join("central.toml");
    std::fs::write(&file, &template).unwrap();
    let again = Command::new(BIN).args(["--config", file.to_str().unwrap(), "configfile"]).output().unwrap();
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8(again.stdout).unwrap(),
        template,
        "a file printed by configfile loads back unchanged"
    );
}

#[test]
fn a_bad_config_file_is_refused_with_its_name_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[http]\nbnid = \"0.0.0.0:8080\"\n").unwrap();
    let out = Command::new(BIN).args(["--config", file.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.toml") && err.contains("bnid") && err.contains("line 2"), "{err}");
}

#[test]
fn serves_health_then_stops_cleanly_on_sigterm_and_sigint() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut central = ServiceProcess::spawn(std::path::Path::new(BIN), &[], &env(&data));
        assert!(data.is_dir(), "the data directory is created at start");

        let health = http_get(central.addr("http"), "/healthz");
        assert_eq!(health.status, 200);
        let body: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

        let status = central.signal_and_wait(signal);
        assert!(status.success(), "SIG{signal}: exit status {status}");
        let logs = central.logs();
        assert!(logs.iter().any(|l| message(l) == Some("stop requested")), "{logs:#?}");
        assert!(logs.iter().any(|l| message(l) == Some("neosens-central stopped")), "{logs:#?}");
    }
}

#[test]
fn an_unusable_data_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(BIN)
        .env("NEOSENS_HTTP_BIND", "127.0.0.1:0")
        .env("NEOSENS_EMBEDDED_MQTT_BIND", "127.0.0.1:0")
        .env("NEOSENS_DATA_DIR", &file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not-a-dir") && err.contains("NEOSENS_DATA_DIR"), "{err}");
}

#[test]
fn a_busy_port_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .env("NEOSENS_HTTP_BIND", addr.to_string())
        .env("NEOSENS_EMBEDDED_MQTT_BIND", "127.0.0.1:0")
        .env("NEOSENS_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&addr.to_string()) && err.contains("NEOSENS_HTTP_BIND"), "{err}");
}
