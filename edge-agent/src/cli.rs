//! The command line. Global options override the config file, and each one reads an environment
//! variable too (shown in `--help`), which is how tests and containers configure the binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use neosens_runtime::telemetry::LogFormat;

use crate::config::{self, Config};

/// neosens edge agent: local provisioning, LoRaWAN decoding and a lossless outbox on a gateway.
///
/// Without a subcommand, serves. Options override the config file; each also reads the
/// environment variable shown.
#[derive(Debug, Parser)]
#[command(name = "neosens-edge", version = neosens_runtime::long_version!(), about, long_about)]
pub struct Cli {
    /// TOML configuration file (print a commented template with `configfile`).
    #[arg(long, short, env = "NEOSENS_EDGE_CONFIG", global = true, value_name = "FILE")]
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
    /// Directory of the local registry cache, outbox and credentials.
    #[arg(long, env = "NEOSENS_EDGE_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Base URL of neosens-central.
    #[arg(long, env = "NEOSENS_EDGE_CENTRAL_URL", global = true, value_name = "URL")]
    pub central_url: Option<String>,

    /// Broker the outbox drains to (`mqtt://host:port`, `mqtts://…`).
    #[arg(long, env = "NEOSENS_EDGE_MQTT_URL", global = true, value_name = "URL")]
    pub mqtt_url: Option<String>,

    /// Address of the Semtech UDP listener for LoRaWAN packet forwarders.
    #[arg(long, env = "NEOSENS_EDGE_UDP_BIND", global = true, value_name = "ADDR")]
    pub udp_bind: Option<SocketAddr>,

    /// Address of the LAN listener devices provision through.
    #[arg(long, env = "NEOSENS_EDGE_HTTP_BIND", global = true, value_name = "ADDR")]
    pub http_bind: Option<SocketAddr>,

    /// Bearer token `/metrics` requires (at least 16 characters; open without).
    #[arg(
        long,
        env = "NEOSENS_EDGE_METRICS_TOKEN",
        global = true,
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,

    /// Log filter (`tracing` directives such as `info,neosens_edge=debug`).
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
    /// Exchange a one-time enrolment token (from an admin: `POST /api/v1/gateways/{id}/enrolment`)
    /// for this gateway's credentials, stored 0600 in the data directory.
    Enroll {
        /// Base URL of neosens-central.
        #[arg(long, value_name = "URL")]
        central: String,
        /// The one-time token.
        #[arg(long, value_name = "TOKEN")]
        token: String,
        /// Accept a plain `http://` central URL: the token and the gateway's secrets then cross
        /// the network in clear (a lab, or central on this host).
        #[arg(long)]
        insecure: bool,
    },
    /// Check that this build works here (redb database, AES-GCM, LoRaWAN MIC and decryption on
    /// a public test vector, payload codec) in a fresh temporary directory, then exit. For
    /// cross-compiled binaries under qemu, and after installing on a new gateway.
    SelfTest,
}

impl Overrides {
    /// Applies the options that were given on top of `config`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(dir) = &self.data_dir {
            config.storage.data_dir.clone_from(dir);
        }
        if let Some(url) = &self.central_url {
            config.central.url = Some(url.clone());
        }
        if let Some(url) = &self.mqtt_url {
            config.mqtt.url = Some(url.clone());
        }
        if let Some(udp) = self.udp_bind {
            config.lorawan.udp_bind = Some(udp);
            config.pinned.insert("lorawan.udp_bind".into());
        }
        if let Some(bind) = self.http_bind {
            config.http.bind = bind;
        }
        if let Some(token) = &self.metrics_token {
            config.http.metrics_token = Some(token.clone());
        }
        if let Some(filter) = &self.log_filter {
            config.log.filter.clone_from(filter);
            config.pinned.insert("log.filter".into());
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

/// Runs the command line.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(&cli)?;
    match cli.command.clone().unwrap_or(Command::Serve) {
        Command::Configfile => {
            print!("{}", config::template(&config));
            Ok(())
        }
        Command::Enroll { central, token, insecure } => {
            if !insecure && !central.trim_start().to_ascii_lowercase().starts_with("https://") {
                anyhow::bail!(
                    "{central} is not an https:// URL: the enrolment token and the gateway's secrets would cross the network in clear. Use central's https:// address, or add --insecure on a network you trust"
                );
            }
            neosens_runtime::telemetry::init(&config.log)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let creds = runtime.block_on(crate::enroll(&config.storage.data_dir, &central, &token))?;
            println!(
                "enrolled as gateway {:?} ({}); credentials in {}",
                creds.name,
                creds.gateway_id,
                config.storage.data_dir.join(crate::credentials::FILE).display()
            );
            Ok(())
        }
        Command::SelfTest => {
            let dir = std::env::temp_dir().join(format!("neosens-edge-self-test-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let result = crate::self_test::run(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            for line in result? {
                println!("ok: {line}");
            }
            println!("self-test passed");
            Ok(())
        }
        Command::Serve => {
            // An installed build, when one is chosen, runs as this process's child (update::launch).
            let deadline = std::time::Duration::from_secs(config.update.health_deadline_s.max(10));
            let mac = crate::gateway_mac(&config).ok().flatten();
            if let Some(status) = crate::update::launch::launch(&config.storage.data_dir, deadline, mac) {
                std::process::exit(status);
            }
            let bind = config.http.bind;
            // A gateway's load is light (provisioning, a few uplinks a second): one worker and
            // a couple of threads for database commits keep the agent small on a Pi.
            let logging = neosens_runtime::service::Logging {
                config: config.log.clone(),
                // SIGHUP: the file again, the same options and environment on top, as at start
                // (and central's filter where they leave it to central).
                reload: Box::new(move || {
                    load_config(&cli).map(|c| crate::managed::reload_filter(&c)).map_err(|e| format!("{e:#}"))
                }),
                extra: None,
            };
            neosens_runtime::service::run_with(
                logging,
                bind,
                "[http] bind or NEOSENS_EDGE_HTTP_BIND",
                neosens_runtime::service::Threads::Small { workers: 1, blocking: 2 },
                |listener, shutdown| crate::run(config, listener, shutdown),
            )?;
            if crate::update::restart_requested() {
                // systemd (Restart=always) starts the launcher again, which starts the new build.
                std::process::exit(crate::update::launch::EXIT_RESTART);
            }
            Ok(())
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
            "neosens-edge",
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
    fn a_missing_config_file_is_named() {
        let cli = Cli::try_parse_from(["neosens-edge", "--config", "/nonexistent/neosens.toml"]).unwrap();
        let err = format!("{:#}", load_config(&cli).unwrap_err());
        assert!(err.contains("/nonexistent/neosens.toml"), "{err}");
    }
}
