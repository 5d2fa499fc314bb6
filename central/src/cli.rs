//! The command line. Global options override the config file, and each one reads an environment
//! variable too (shown in `--help`), which is how tests and containers configure the binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use neosens_runtime::telemetry::LogFormat;

use crate::config::{self, Config};

/// neosens central: registry, legacy sensOCampus API and broker backend of a campus IoT fleet.
///
/// Without a subcommand, serves. Options override the config file; each also reads the
/// environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "neosens-central", version = neosens_runtime::long_version!(), about, long_about)]
pub struct Cli {
    /// TOML configuration file (print a commented template with `configfile`).
    #[arg(long, short, env = "NEOSENS_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Options that override the config file.
    #[command(flatten)]
    pub overrides: Overrides,

    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options that override the config file.
#[derive(Debug, Default, Args)]
pub struct Overrides {
    /// Directory of the embedded database and key files.
    #[arg(long, env = "NEOSENS_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// PostgreSQL instead of the embedded database: postgres://user:password@host:port/db
    /// (`?sslmode=require` to insist on TLS).
    #[arg(long, env = "NEOSENS_DATABASE_URL", global = true, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Address of the HTTP listener.
    #[arg(long, env = "NEOSENS_HTTP_BIND", global = true, value_name = "ADDR")]
    pub http_bind: Option<SocketAddr>,

    /// The MQTT broker: mqtt://[user:password@]host:port (unset: embedded broker).
    #[arg(long, env = "NEOSENS_MQTT_URL", global = true, value_name = "URL", hide_env_values = true)]
    pub mqtt_url: Option<String>,

    /// Where the embedded broker listens when no broker URL is set.
    #[arg(long, env = "NEOSENS_EMBEDDED_MQTT_BIND", global = true, value_name = "ADDR")]
    pub embedded_mqtt_bind: Option<SocketAddr>,

    /// Drive Mosquitto's dynamic-security plug-in (true/false).
    #[arg(long, env = "NEOSENS_MQTT_DYNSEC", global = true, value_name = "BOOL")]
    pub mqtt_dynsec: Option<bool>,

    /// URL receiving alert changes as JSON POSTs.
    #[arg(long, env = "NEOSENS_ALERT_WEBHOOK", global = true, value_name = "URL")]
    pub alert_webhook: Option<String>,

    /// Listener of the broker-auth backend (/mqtt/*, /mqtt_auth/*), e.g. 127.0.0.1:8081.
    #[arg(long, env = "NEOSENS_BROKER_AUTH_BIND", global = true, value_name = "ADDR")]
    pub broker_auth_bind: Option<SocketAddr>,

    /// Bootstrap admin token for /api/v1 (registered at start; at least 16 characters).
    #[arg(long, env = "NEOSENS_ADMIN_TOKEN", global = true, value_name = "TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Bearer token `/metrics` and `/readyz` require (at least 16 characters; open without).
    #[arg(long, env = "NEOSENS_METRICS_TOKEN", global = true, value_name = "TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Password of the dashboard user `admin`, created at start when no user exists.
    #[arg(
        long,
        env = "NEOSENS_ADMIN_PASSWORD",
        global = true,
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<String>,

    /// Log filter (`tracing` directives such as `info,neosens_central=debug`).
    #[arg(long = "log", env = "NEOSENS_LOG", global = true, value_name = "FILTER")]
    pub log_filter: Option<String>,

    /// Log format.
    #[arg(long, env = "NEOSENS_LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// Print a commented configuration file filled with the current values, then exit.
    Configfile,
    /// Print the OpenAPI document of `/api/v1` (pretty JSON, as `GET /api/v1/openapi.json`
    /// serves it), then exit.
    ///
    /// Needs no configuration, data directory or network: the dashboard's TypeScript API types
    /// are generated from it at build time (`npm run gen:api` in central/dashboard).
    Openapi,
    /// Bring the database to this build's schema, then exit (serving does it too; this runs it
    /// alone, e.g. before starting new replicas). On PostgreSQL, also creates the data
    /// directory's server keys if absent and records them in the database: every replica must
    /// be given that `keys/` folder (one started with other keys refuses to serve).
    Migrate,
    /// Copy the embedded store of a data directory into an empty PostgreSQL database, then
    /// compare the two record by record.
    ///
    /// Stop neosens-central on that data directory first. The key files are not copied: give
    /// every replica the data directory's `keys/` folder.
    CopyStore {
        /// The data directory holding `central.redb`.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL database: postgres://user:password@host:port/db.
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Import the 2016 sensOCampus database from a Django `manage.py dumpdata` JSON export.
    ///
    /// Idempotent (a second run changes nothing). Stop neosens-central on this data directory
    /// first: the database is opened directly.
    ImportLegacy {
        /// The export (`python manage.py dumpdata > sensocampus.json`).
        file: PathBuf,
        /// Print what would be done without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The signing key of gateway builds (agent updates): create it, show its public key (what
    /// every gateway pins in `[update] public_key`), or sign a build for upload. Needs no
    /// configuration or network: keep the key off central's host.
    AgentKey {
        /// What to do.
        #[command(subcommand)]
        action: AgentKeyAction,
    },
}

/// `agent-key` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum AgentKeyAction {
    /// Create a new key pair (PKCS#8, 0600) and print its public key.
    Generate {
        /// Where to write the private key (never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key of a key pair.
    Public {
        /// The private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Print the signature of a build: upload it with `POST /api/v1/firmware?hardware=…&board=neosens-edge&revision=…&signature=…`.
    Sign {
        /// The private key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The build's target: `neosens-edge-aarch64`, `neosens-edge-armv7` or `neosens-edge-x86_64`.
        #[arg(long)]
        hardware: String,
        /// The revision the build reports (version major.minor.patch as major×10⁶ + minor×10³ + patch).
        #[arg(long)]
        revision: u64,
        /// The build (the static `neosens-edge` binary).
        build: PathBuf,
    },
}

impl Overrides {
    /// Applies the options that were given on top of `config`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.data_dir {
            config.storage.data_dir.clone_from(dir);
        }
        if let Some(url) = &self.database_url {
            config.storage.database_url = Some(url.clone());
        }
        if let Some(bind) = self.http_bind {
            config.http.bind = bind;
        }
        if let Some(url) = &self.mqtt_url {
            config.mqtt.url = Some(url.clone());
        }
        if let Some(bind) = self.embedded_mqtt_bind {
            config.mqtt.embedded_bind = bind;
        }
        if let Some(url) = &self.alert_webhook {
            config.alerts.webhook_url = Some(url.clone());
        }
        if let Some(d) = self.mqtt_dynsec {
            config.mqtt.dynamic_security = d;
        }
        if let Some(bind) = self.broker_auth_bind {
            config.broker_auth.bind = Some(bind);
        }
        if let Some(token) = &self.admin_token {
            config.auth.admin_token = Some(token.clone());
        }
        if let Some(token) = &self.metrics_token {
            config.http.metrics_token = Some(token.clone());
        }
        if let Some(password) = &self.admin_password {
            config.auth.admin_password = Some(password.clone());
        }
        if let Some(filter) = &self.log_filter {
            config.log.filter.clone_from(filter);
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
    }
}

/// Loads the layered configuration of `cli`.
pub fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    cli.overrides.apply(&mut config);
    Ok(config)
}

/// The OpenAPI document as pretty JSON, ending with a newline (what `openapi` prints).
pub fn openapi_json() -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(&crate::http::openapi_document())?;
    text.push('\n');
    Ok(text)
}

/// Runs the command line.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command.clone().unwrap_or(Command::Serve) {
        // No configuration read: the document depends on none of it, so a broken or missing
        // config file must not stop a build from generating the API types.
        Command::Openapi => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            out.write_all(openapi_json()?.as_bytes())?;
            Ok(out.flush()?)
        }
        Command::Configfile => {
            print!("{}", config::template(&load_config(&cli)?));
            Ok(())
        }
        Command::AgentKey { action } => {
            let out = match action {
                AgentKeyAction::Generate { out } => crate::agent_key::generate(&out)?,
                AgentKeyAction::Public { key } => crate::agent_key::public_key(&key)?,
                AgentKeyAction::Sign { key, hardware, revision, build } => {
                    crate::agent_key::sign(&key, &hardware, revision, &build)?
                }
            };
            println!("{out}");
            Ok(())
        }
        Command::Migrate => {
            let config = load_config(&cli)?;
            neosens_runtime::telemetry::init(&config.log)?;
            crate::store_tools::migrate(&config)
        }
        Command::CopyStore { from, to } => {
            let config = load_config(&cli)?;
            neosens_runtime::telemetry::init(&config.log)?;
            crate::store_tools::copy_store(&config, &from, &to)
        }
        Command::ImportLegacy { file, dry_run, json } => {
            let config = load_config(&cli)?;
            neosens_runtime::telemetry::init(&config.log)?;
            crate::import_legacy::run(&config, &file, dry_run, json)
        }
        Command::Serve => {
            let config = load_config(&cli)?;
            let bind = config.http.bind;
            // Before the async runtime: the exporter's blocking HTTP client runs its own.
            #[cfg(feature = "otel")]
            let otel = crate::otel::Export::start(&config.telemetry)?;
            let logging = neosens_runtime::service::Logging {
                config: config.log.clone(),
                // SIGHUP: the file again, the same options and environment on top, as at start.
                reload: Box::new(move || {
                    load_config(&cli).map(|c| c.log.filter).map_err(|e| format!("{e:#}"))
                }),
                #[cfg(feature = "otel")]
                extra: otel.as_ref().map(crate::otel::Export::layer),
                #[cfg(not(feature = "otel"))]
                extra: None,
            };
            let served = neosens_runtime::service::run(
                logging,
                bind,
                "[http] bind or NEOSENS_HTTP_BIND",
                |listener, shutdown| crate::run(config, listener, shutdown),
            );
            // The spans of the drain too: sent before the process ends.
            #[cfg(feature = "otel")]
            if let Some(otel) = otel {
                otel.shutdown();
            }
            served
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_override_the_file() {
        let dir = std::env::temp_dir().join(format!("neosens-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[http]\nbind = \"127.0.0.1:1\"\n[storage]\ndata_dir = \"/from/file\"\n")
            .unwrap();
        let cli = Cli::try_parse_from([
            "neosens-central",
            "--config",
            file.to_str().unwrap(),
            "configfile",
            "--data-dir",
            "/from/flag",
        ])
        .unwrap();
        let config = load_config(&cli).unwrap();
        assert_eq!(config.storage.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.http.bind, "127.0.0.1:1".parse().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn openapi_prints_the_served_document() {
        let text = openapi_json().unwrap();
        assert!(text.ends_with("}\n"), "one document, one final newline");
        let printed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let served = serde_json::to_value(crate::http::openapi_document()).unwrap();
        assert_eq!(printed, served, "the same document as GET /api/v1/openapi.json");
        assert!(printed["openapi"].as_str().unwrap().starts_with("3.1"), "{}", printed["openapi"]);
        assert!(printed["paths"]["/api/v1/devices"]["get"].is_object(), "the device list is described");
        assert!(printed["components"]["schemas"]["DeviceView"].is_object(), "schemas are components");
    }

    #[test]
    fn a_missing_config_file_is_named() {
        let cli = Cli::try_parse_from(["neosens-central", "--config", "/nonexistent/neosens.toml"]).unwrap();
        let err = format!("{:#}", load_config(&cli).unwrap_err());
        assert!(err.contains("/nonexistent/neosens.toml"), "{err}");
    }
}
