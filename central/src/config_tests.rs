//! Tests of the configuration: defaults, the template, overrides, errors.

use super::*;
use neosens_runtime::telemetry::LogFormat;

#[test]
fn template_of_the_defaults_parses_back_to_the_defaults() {
    let parsed = Config::from_toml(&template(&Config::default())).unwrap();
    assert_eq!(parsed, Config::default());
}

#[test]
fn template_keeps_current_values() {
    let mut c = Config::default();
    c.storage.data_dir = PathBuf::from("/var/lib/neosens \"quoted\"");
    c.http.bind = "[::1]:9000".parse().unwrap();
    c.log.format = LogFormat::Json;
    c.log.filter = "debug".into();
    c.telemetry.otlp_endpoint = Some("http://collector:4318".into());
    c.firmware.public_url = Some("http://neocampus.univ-tlse3.fr".into());
    assert_eq!(Config::from_toml(&template(&c)).unwrap(), c);
}

#[test]
fn empty_and_partial_files_use_defaults() {
    assert_eq!(Config::from_toml("").unwrap(), Config::default());
    let c = Config::from_toml("[http]\nbind = \"127.0.0.1:1\"\n").unwrap();
    assert_eq!(c.http.bind, "127.0.0.1:1".parse().unwrap());
    assert_eq!(c.storage, StorageConfig::default());
}

#[test]
fn mistakes_are_errors_that_say_where() {
    let cases = [
        ("[http]\nbnid = \"0.0.0.0:80\"\n", "bnid"),
        ("[http]\nbind = \"localhost\"\n", "bind"),
        ("[log]\nformat = \"yaml\"\n", "format"),
        ("[storage\n", "line 1"),
        ("[unknown]\n", "unknown"),
    ];
    for (text, needle) in cases {
        let err = Config::from_toml(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?} gave {err}");
    }
}
