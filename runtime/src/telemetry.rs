//! Structured logs: `tracing` to stderr, as text for people or JSON for log pipelines.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// `[log]` section shared by both services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter directives, e.g. `info,neosens_central=debug`.
    pub filter: String,
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        // The embedded broker logs every connection at info level: keep it to warnings.
        LogConfig { filter: "info,rumqttd=warn".into(), format: LogFormat::Text }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// A log filter that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter {filter:?}: {reason} (example: \"info,neosens_central=debug\")")]
pub struct FilterError {
    filter: String,
    reason: String,
}

/// Installs the global subscriber. Installing twice (tests) keeps the first one.
pub fn init(config: &LogConfig) -> Result<(), FilterError> {
    let filter = EnvFilter::try_new(&config.filter)
        .map_err(|e| FilterError { filter: config.filter.clone(), reason: e.to_string() })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already installed, which is harmless.
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filters_are_named() {
        let err = init(&LogConfig { filter: "info,=[".into(), format: LogFormat::Text }).unwrap_err();
        assert!(err.to_string().contains("info,=["), "{err}");
    }

    #[test]
    fn config_section_round_trips() {
        let c = LogConfig { filter: "debug".into(), format: LogFormat::Json };
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<LogConfig>(&text).unwrap(), c);
        assert!(toml::from_str::<LogConfig>("fromat = \"json\"").is_err());
    }
}
