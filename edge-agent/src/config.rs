//! Configuration: typed, defaulted, documented, layered.
//!
//! Layers, lowest first: built-in defaults, the TOML file (`--config FILE`), then command-line
//! options, each of which also reads an environment variable (`NEOSENS_EDGE_DATA_DIR` …).
//! Unknown keys in the file are errors: a typo must not silently fall back to a default.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use neosens_runtime::config_file::ConfigError;
use neosens_runtime::config_file::quoted;
use neosens_runtime::telemetry::LogConfig;
use serde::{Deserialize, Serialize};

/// Everything the agent reads at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the local registry cache and outbox live.
    pub storage: StorageConfig,
    /// How to reach central.
    pub central: CentralConfig,
    /// The LAN listener devices provision through.
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the local database and credentials; created at start.
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { data_dir: PathBuf::from("./edge-data") }
    }
}

/// `[central]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CentralConfig {
    /// Base URL of neosens-central, e.g. `https://neosens.example.org`.
    pub url: Option<String>,
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the LAN listener (legacy provisioning paths, metrics, health). Devices expect
    /// port 80.
    pub bind: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { bind: SocketAddr::from(([0, 0, 0, 0], 80)) }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        neosens_runtime::config_file::load(path)
    }

    /// Parses TOML text over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// The commented configuration file, filled with the values of `config`.
pub fn template(config: &Config) -> String {
    let mut t = String::new();
    let central = match &config.central.url {
        Some(url) => format!("url = {}", quoted(url)),
        None => String::from("# url = \"https://neosens.example.org\""),
    };
    let _ = write!(
        t,
        r#"# neosens-edge configuration.
#
# Every option can also be set on the command line or by an environment variable, which win
# over this file: see `neosens-edge --help`.

[storage]
# Directory of the local registry cache, the outbox and the gateway's credentials.
# Created at start; must be writable. Keep it on persistent storage.
# Environment: NEOSENS_EDGE_DATA_DIR
data_dir = {data_dir}

[central]
# Base URL of neosens-central. `neosens-edge enroll` records it too.
# Environment: NEOSENS_EDGE_CENTRAL_URL
{central}

[http]
# LAN listener: the legacy provisioning paths devices call (/device/*), /metrics, /healthz.
# The firmware calls port 80 (needs CAP_NET_BIND_SERVICE, see systemd/neosens-edge.service).
# Environment: NEOSENS_EDGE_HTTP_BIND
bind = {bind}

[log]
# `tracing` filter directives, e.g. "info" or "info,neosens_edge=debug".
# Environment: NEOSENS_LOG
filter = {filter}
# "text" for people, "json" for log pipelines.
# Environment: NEOSENS_LOG_FORMAT
format = {format}
"#,
        data_dir = quoted(&config.storage.data_dir.to_string_lossy()),
        bind = quoted(&config.http.bind.to_string()),
        filter = quoted(&config.log.filter),
        format = quoted(config.log.format.as_str()),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_back_to_the_values_it_shows() {
        assert_eq!(Config::from_toml(&template(&Config::default())).unwrap(), Config::default());
        let mut c = Config::default();
        c.central.url = Some("https://central.example:8443".into());
        c.http.bind = "127.0.0.1:8080".parse().unwrap();
        c.storage.data_dir = PathBuf::from("/var/lib/neosens-edge");
        assert_eq!(Config::from_toml(&template(&c)).unwrap(), c);
    }

    #[test]
    fn mistakes_are_errors_that_say_where() {
        for (text, needle) in [
            ("[central]\nurl = 5\n", "url"),
            ("[http]\nbind = \"0.0.0.0\"\n", "bind"),
            ("[storage]\ndatadir = \"x\"\n", "datadir"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err}");
        }
    }
}
