//! The real `neosens-central` binary: command line, configuration, serving and stopping.

use std::collections::BTreeMap;

use neosens_runtime::testing::binary::Service;

const CENTRAL: Service = Service {
    bin: env!("CARGO_BIN_EXE_neosens-central"),
    name: "neosens-central",
    http_var: "NEOSENS_HTTP_BIND",
    data_var: "NEOSENS_DATA_DIR",
    // The embedded broker on a free port: tests run side by side.
    base_env: &[("NEOSENS_EMBEDDED_MQTT_BIND", "127.0.0.1:0")],
};

#[test]
fn help_names_every_environment_variable() {
    CENTRAL.check_help(
        &[
            "NEOSENS_CONFIG",
            "NEOSENS_DATA_DIR",
            "NEOSENS_HTTP_BIND",
            "NEOSENS_MQTT_URL",
            "NEOSENS_EMBEDDED_MQTT_BIND",
            "NEOSENS_MQTT_DYNSEC",
            "NEOSENS_BROKER_AUTH_BIND",
            "NEOSENS_ADMIN_TOKEN",
            "NEOSENS_LOG",
            "NEOSENS_LOG_FORMAT",
            "import-legacy",
        ],
        env!("CARGO_PKG_VERSION"),
    );
}

#[test]
fn configfile_prints_the_current_values_and_loads_back() {
    let template = CENTRAL.check_configfile();
    assert!(template.contains("# admin_token = "), "secrets are never printed: {template}");
    assert!(template.contains("# url = "), "no broker configured: the url line is a commented example");
}

#[test]
fn a_bad_config_file_is_refused_with_its_name_and_line() {
    CENTRAL.check_bad_config_file();
}

#[test]
fn serves_health_then_stops_cleanly_on_sigterm_and_sigint() {
    CENTRAL.check_serves_and_stops();
}

#[test]
fn unusable_settings_are_named() {
    CENTRAL.check_bad_settings_are_named();
}

#[test]
fn tells_systemd_it_is_ready_alive_and_stopping() {
    CENTRAL.check_systemd_notifications();
}

#[test]
fn sighup_reloads_the_log_filter_from_the_config_file() {
    CENTRAL.check_sighup_reloads_the_log_filter();
}

/// `openapi` prints the document and touches nothing: not the config file, not the data
/// directory (what lets a build generate the dashboard's API types on any machine).
#[test]
fn openapi_prints_the_document_without_config_or_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("never-created");
    let out = std::process::Command::new(CENTRAL.bin)
        .args(["--config", "/nonexistent/neosens.toml", "openapi"])
        .env("NEOSENS_DATA_DIR", &data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: OpenApiDoc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not an OpenAPI document ({e}): {}", String::from_utf8_lossy(&out.stdout))
    });
    assert_eq!(doc.info.version, env!("CARGO_PKG_VERSION"));
    let devices = doc.paths.get("/api/v1/devices").expect("the devices path");
    assert!(devices.get("post").is_some_and(serde_json::Value::is_object), "{devices:?}");
    assert!(!data_dir.exists(), "the data directory was left alone");
}

/// The parts of the OpenAPI document the test reads (written here, not the server's types).
#[derive(serde::Deserialize)]
struct OpenApiDoc {
    info: OpenApiInfo,
    /// Path → its item (methods and their operations, free-form here).
    paths: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

#[derive(serde::Deserialize)]
struct OpenApiInfo {
    version: String,
}
