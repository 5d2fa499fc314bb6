//! Structured logs: `tracing` to stderr, as text for people or JSON for log pipelines, with a
//! filter that can be swapped while the service runs (SIGHUP, see `service`).

use serde::{Deserialize, Serialize};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry, reload};

/// `[log]` section shared by both services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter directives, e.g. `info,neosens_central=debug`.
    #[serde(deserialize_with = "filter_present")]
    pub filter: String,
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
}

/// `log.filter` is one of the keys a gateway's file can pin over central's settings.
fn filter_present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    crate::config_file::present("log.filter", d)
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

/// Another `tracing` layer under the filter, e.g. central's OpenTelemetry export (feature `otel`).
pub type ExtraLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// What the filter layer sits on: the registry and the optional extra layer.
type Base = tracing_subscriber::layer::Layered<Option<ExtraLayer>, Registry>;

/// The installed filter, to swap it while the service runs.
#[derive(Clone)]
pub struct LogFilter {
    handle: reload::Handle<Targets, Base>,
}

impl std::fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFilter").field("current", &self.current()).finish()
    }
}

impl LogFilter {
    /// Replaces the filter by `filter`; one that does not parse is refused, the current one
    /// stays.
    pub fn reload(&self, filter: &str) -> Result<(), FilterError> {
        let parsed = parse(filter)?;
        // Rebuilds tracing's per-callsite interest cache itself: lines disabled so far appear.
        self.handle
            .reload(parsed)
            .map_err(|e| FilterError { filter: filter.to_owned(), reason: e.to_string() })
    }

    /// The filter in force, as directives.
    pub fn current(&self) -> Option<String> {
        self.handle.with_current(|f| f.to_string()).ok()
    }
}

/// Checks that `filter` parses as a filter [`LogFilter::reload`] and [`init`] take (central
/// checks a gateway's filter with it before sending it).
pub fn check_filter(filter: &str) -> Result<(), FilterError> {
    parse(filter).map(drop)
}

/// Directives `target=level` and a default `level`, comma-separated. `Targets` rather than
/// `EnvFilter`: the same syntax for what we use, without span and field filters, and without
/// the regex engine they need (100 kB of the gateway's 4 MB budget).
fn parse(filter: &str) -> Result<Targets, FilterError> {
    filter.parse().map_err(|e: tracing_subscriber::filter::ParseError| FilterError {
        filter: filter.to_owned(),
        reason: e.to_string(),
    })
}

/// The subscriber of `config` writing to `writer`, and the handle of its filter.
fn subscriber<W>(
    config: &LogConfig,
    extra: Option<ExtraLayer>,
    writer: W,
) -> Result<(impl tracing::Subscriber + Send + Sync + 'static, LogFilter), FilterError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let (filter, handle) = reload::Layer::new(parse(&config.filter)?);
    let output = tracing_subscriber::fmt::layer().with_writer(writer);
    let output = match config.format {
        LogFormat::Text => output.boxed(),
        LogFormat::Json => output.json().flatten_event(true).boxed(),
    };
    // The filter is a global one (not per layer): what it drops, the extra layer does not see
    // either, so `NEOSENS_LOG` also chooses what is exported.
    let subscriber = Registry::default().with(extra).with(filter).with(output);
    Ok((subscriber, LogFilter { handle }))
}

/// Installs the global subscriber. Installing twice (tests) keeps the first one (and the
/// returned handle then swaps a filter nobody uses).
pub fn init(config: &LogConfig) -> Result<LogFilter, FilterError> {
    init_with(config, None)
}

/// [`init`] with another layer under the filter.
pub fn init_with(config: &LogConfig, extra: Option<ExtraLayer>) -> Result<LogFilter, FilterError> {
    let (subscriber, filter) = subscriber(config, extra, std::io::stderr)?;
    // `try_init` (which also routes `log` records to tracing) fails only when a subscriber is
    // already installed, which is harmless.
    if subscriber.try_init().is_ok() {
        let _ = INSTALLED.set(filter.clone());
    }
    Ok(filter)
}

/// The filter of the subscriber [`init`] installed.
static INSTALLED: std::sync::OnceLock<LogFilter> = std::sync::OnceLock::new();

/// The installed subscriber's filter (`None` before [`init`], or when another subscriber was
/// installed first): for a service whose filter also comes from elsewhere than its file (a
/// gateway's settings from central).
pub fn installed() -> Option<LogFilter> {
    INSTALLED.get().cloned()
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
    fn the_filter_is_swapped_and_a_bad_one_keeps_the_old() {
        let buffer = crate::testing::LogBuffer::default();
        let writer = buffer.clone();
        let config = LogConfig { filter: "info".into(), format: LogFormat::Json };
        let (subscriber, filter) = subscriber(&config, None, move || writer.clone()).unwrap();
        let lines = || buffer.text();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("first debug line");
            assert!(!lines().contains("first debug line"), "debug is off under info");

            filter.reload("info,neosens_runtime=debug").unwrap();
            assert_eq!(filter.current().as_deref(), Some("neosens_runtime=debug,info"));
            tracing::debug!("second debug line");
            assert!(lines().contains("second debug line"), "{}", lines());

            let err = filter.reload("info,=[").unwrap_err();
            assert!(err.to_string().contains("info,=["), "{err}");
            tracing::debug!("third debug line");
            assert!(lines().contains("third debug line"), "the old filter stays: {}", lines());

            filter.reload("warn").unwrap();
            tracing::info!("an info line");
            assert!(!lines().contains("an info line"), "{}", lines());
        });
    }

    #[test]
    fn config_section_round_trips() {
        let c = LogConfig { filter: "debug".into(), format: LogFormat::Json };
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<LogConfig>(&text).unwrap(), c);
        assert!(toml::from_str::<LogConfig>("fromat = \"json\"").is_err());
    }
}
