//! `import-legacy` on a realistic 2016 export (`tests/fixtures/sensocampus-2016.json`): what is
//! imported, what is reported, idempotence, and devices provisioning afterwards exactly as they
//! did against the 2016 server.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use common::client::ApiClient;
use common::client::wire::{ImportCounts, ImportReport};
use common::{BIN, start};
use neosens_runtime::testing::raw_http;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sensocampus-2016.json");

/// Runs `import-legacy --json`; its report (the JSON on stdout) and its progress (stderr).
fn import(data: &Path, extra: &[&str]) -> (ImportReport, String) {
    let out = Command::new(BIN)
        .args(["import-legacy", FIXTURE, "--json"])
        .args(extra)
        .env("NEOSENS_DATA_DIR", data)
        .envs(common::store_env(data))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "import failed: {stderr}");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not the JSON report ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (report, stderr)
}

/// `(created, updated, unchanged)`.
fn counts(c: ImportCounts) -> (u64, u64, u64) {
    (c.created, c.updated, c.unchanged)
}

/// Each kind's counts, by name.
fn kinds(report: &ImportReport) -> [(&'static str, ImportCounts); 4] {
    [
        ("types", report.types),
        ("buildings", report.buildings),
        ("rooms", report.rooms),
        ("devices", report.devices),
    ]
}

/// `row: why` lines of the rejected rows or the warnings.
fn rows(list: &[(String, String)]) -> Vec<String> {
    list.iter().map(|(row, why)| format!("{row}: {why}")).collect()
}

#[test]
fn imports_reports_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();

    let (dry, _) = import(dir.path(), &["--dry-run"]);
    assert!(dry.dry_run);
    assert_eq!(counts(dry.devices), (6, 0, 0));

    let (first, progress) = import(dir.path(), &[]);
    assert!(progress.contains("3 types, 4 buildings, 6 locations, 9 devices, 5 permissions"), "{progress}");
    assert!(!first.dry_run);
    assert_eq!(counts(first.types), (3, 0, 0));
    assert_eq!(counts(first.buildings), (4, 0, 0));
    assert_eq!(counts(first.rooms), (6, 0, 0));
    assert_eq!(counts(first.devices), (6, 0, 0), "the dry run predicted the real run");
    let rejected = rows(&first.rejected);
    assert_eq!(rejected.len(), 3, "{rejected:#?}");
    assert!(rejected.iter().any(|r| r.contains("pk=6") && r.contains("invalid MAC")), "{rejected:#?}");
    assert!(rejected.iter().any(|r| r.contains("pk=7") && r.contains("type pk=Some(99)")), "{rejected:#?}");
    assert!(rejected.iter().any(|r| r.contains("pk=9") && r.contains("another device")), "{rejected:#?}");
    let warnings = rows(&first.warnings);
    assert!(warnings.iter().any(|w| w.contains("pk=8") && w.contains("not JSON")), "{warnings:#?}");
    assert!(
        warnings.iter().any(|w| w.contains("permission pk=5") && w.contains("batiment_3tp2/#")),
        "{warnings:#?}"
    );
    assert_eq!(first.standard_permissions, 4);
    assert_eq!(first.skipped_rows, 8, "other apps' rows and the log message");

    let (second, _) = import(dir.path(), &[]);
    for (kind, c) in kinds(&second) {
        assert_eq!((c.created, c.updated), (0, 0), "second run changed {kind}: {second:?}");
    }
    assert_eq!(second.devices.unchanged, 6);

    // The text report, for people.
    let out = Command::new(BIN)
        .args(["import-legacy", FIXTURE, "--dry-run"])
        .env("NEOSENS_DATA_DIR", dir.path())
        .envs(common::store_env(dir.path()))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("Dry run") && text.contains("Nothing to change") && text.contains("Not imported (3)"),
        "{text}"
    );
}

#[test]
fn imported_devices_provision_as_before() {
    let dir = tempfile::tempdir().unwrap();
    import(dir.path(), &[]);
    let central = start(dir.path());
    let addr = central.addr("http");
    let credentials = |mac: &str| {
        let r = raw_http(
            addr,
            format!("GET /device/credentials?mac={mac} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200, "{mac}");
        r.text()
    };
    let config = |login: &str, password: &str| {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
        raw_http(
            addr,
            format!("GET /device/config HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\n\r\n")
                .as_bytes(),
        )
    };

    // Delivered in 2016: login only; its old password still opens its config.
    assert_eq!(credentials("24:0a:c4:12:34:56"), r#"{"login": "senso_240ac4123456"}"#);
    let c = config("senso_240ac4123456", "0f8e6b0a-2c1d-4e8f-9a7b-3c2d1e0f4a5b");
    assert_eq!(c.text(), r#"{"topics": ["irit2/366"], "zones": []}"#);

    // Not delivered yet: its stored password, once; two locations in database order; modules
    // with CRLF parsed and served with Python's separators.
    assert_eq!(
        credentials("24:0a:c4:ab:cd:ef"),
        r#"{"login": "senso_240ac4abcdef", "password": "5b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"}"#
    );
    let c = config("senso_240ac4abcdef", "5b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d");
    assert_eq!(
        c.text(),
        r#"{"topics": ["u4/campusfab", "u4/302"], "zones": [{"topic": "u4/campusfab", "modules": [{"module": "airquality", "driver": "pm_serial", "unit": "pm_sds011", "frequency": 120, "params": [{"param": "type", "value": 32}, {"param": "link_speed", "value": 9600}]}, {"module": "digital", "unit": "gpio", "params": [{"param": "subID", "value": "IRsensor"}, {"param": "input", "value": 4}, {"param": "type", "value": 1}, {"param": "cooldown", "value": 60}, {"param": "front", "value": 1}]}]}]}"#
    );

    // A custom broker; a renamed building whose room keeps its stored topic.
    assert_eq!(
        credentials("30:ae:a4:00:11:22"),
        r#"{"login": "senso_30aea4001122", "password": "11111111-2222-4333-8444-555555555555", "server": "neocampus.univ-tlse3.fr", "port": 10883}"#
    );
    assert_eq!(
        config("senso_30aea4001122", "11111111-2222-4333-8444-555555555555").text(),
        r#"{"topics": ["u3/101"], "zones": []}"#
    );
    // mqtt_defaults false with an empty server: defaults; a login not derivable from the MAC, kept.
    assert_eq!(credentials("5c:cf:7f:00:00:02"), r#"{"login": "senso_5ccf7f000001"}"#);
    // Disabled: credentials yes, config no.
    assert_eq!(config("senso_b827eb112233", "9a8b7c6d-5e4f-4321-8fed-cba987654321").status, 403);

    let admin = ApiClient::admin(addr);
    let d = admin.device("24:0A:C4:12:34:56").expect("the imported device");
    assert_eq!(d.last_status.as_deref(), Some("running"));
    assert_eq!(d.last_seen.as_deref(), Some("2021-05-06T08:52:13.394Z"));
    assert_eq!(d.device_type, "esp32_neosensor");
    let rooms = admin.rooms().expect("rooms");
    let hall = rooms.iter().find(|r| r.name == "Hall d'entrée").unwrap();
    assert_eq!((hall.base_topic.as_deref(), hall.topic_source.as_str()), (Some("u4/hall_d_entree"), "kept"));
}
