//! The real `neosens-edge` binary: command line, configuration, serving and stopping.

use neosens_runtime::testing::binary::Service;

const EDGE: Service = Service {
    bin: env!("CARGO_BIN_EXE_neosens-edge"),
    name: "neosens-edge",
    http_var: "NEOSENS_EDGE_HTTP_BIND",
    data_var: "NEOSENS_EDGE_DATA_DIR",
    base_env: &[],
};

#[test]
fn help_names_every_environment_variable() {
    EDGE.check_help(
        &[
            "NEOSENS_EDGE_CONFIG",
            "NEOSENS_EDGE_DATA_DIR",
            "NEOSENS_EDGE_CENTRAL_URL",
            "NEOSENS_EDGE_HTTP_BIND",
            "NEOSENS_EDGE_UDP_BIND",
            "NEOSENS_EDGE_MQTT_URL",
            "NEOSENS_LOG",
            "NEOSENS_LOG_FORMAT",
        ],
        env!("CARGO_PKG_VERSION"),
    );
}

#[test]
fn configfile_prints_the_current_values_and_loads_back() {
    let template = EDGE.check_configfile();
    assert!(template.contains("# url = "), "no central configured: the url line is a commented example");
}

#[test]
fn a_bad_config_file_is_refused_with_its_name_and_line() {
    EDGE.check_bad_config_file();
}

#[test]
fn serves_health_then_stops_cleanly_on_sigterm_and_sigint() {
    EDGE.check_serves_and_stops();
}

#[test]
fn ready_while_every_supervised_task_runs() {
    EDGE.check_ready();
}

#[test]
fn unusable_settings_are_named() {
    EDGE.check_bad_settings_are_named();
}

#[test]
fn tells_systemd_it_is_ready_alive_and_stopping() {
    EDGE.check_systemd_notifications();
}

#[test]
fn sighup_reloads_the_log_filter_from_the_config_file() {
    EDGE.check_sighup_reloads_the_log_filter();
}
