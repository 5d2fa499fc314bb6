//! Settings from central (docs/edge.md, "Settings from central"): the keys of this file's
//! configuration that an operator sets per gateway in central
//! ([`neosens_protocol::gateway_config::ManagedConfig`]) come with sync in their wire form, are
//! kept in the registry copy (so an agent that starts while central is out of reach runs with
//! them), and are laid under the gateway's own file: a key set in the file, or on the command
//! line, wins. The agent reports what it runs with in its health report.
//!
//! Applying a change: the log filter is swapped in place; any other key restarts the agent (it
//! exits 75 and systemd starts it again, as after an agent update), because the listeners,
//! the modem and the hardware are opened at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use neosens_protocol::gateway_config::{
    ConfigReport, ManagedAgent, ManagedConfig, ManagedHal, ManagedLog, ManagedLorawan, OFF,
};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::cache::Cache;

/// Central's value of an optional path or address: [`OFF`] is `None`.
fn optional<T>(v: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<Option<T>> {
    if v == OFF { Some(None) } else { parse(v).map(Some) }
}

/// `local` with central's values of the keys it does not pin, and the keys central sets that
/// `local` pins (its file wins there).
pub fn lay_under(local: &Config, central: &ManagedConfig) -> (Config, Vec<String>) {
    let mut c = local.clone();
    let mut overridden = Vec::new();
    let mut take = |key: &str| {
        let pinned = local.pinned.contains(key);
        if pinned {
            overridden.push(key.to_owned());
        }
        !pinned
    };
    let (l, h) = (&central.lorawan, &central.hal);
    if let Some(v) = &central.log.filter
        && take("log.filter")
    {
        c.log.filter.clone_from(v);
    }
    if let Some(v) = central.agent.status_period_s
        && take("agent.status_period_s")
    {
        c.agent.status_period_s = v;
    }
    if let Some(v) = l.udp_bind.as_deref().and_then(|v| optional(v, |s| s.parse::<SocketAddr>().ok()))
        && take("lorawan.udp_bind")
    {
        c.lorawan.udp_bind = v;
    }
    if let Some(v) = l.serial_port.as_deref().and_then(|v| optional(v, |s| Some(PathBuf::from(s))))
        && take("lorawan.serial_port")
    {
        c.lorawan.serial_port = v;
    }
    if let Some(v) = l.serial_baud
        && take("lorawan.serial_baud")
    {
        c.lorawan.serial_baud = v;
    }
    if let Some(v) = &l.serial_protocol
        && take("lorawan.serial_protocol")
    {
        c.lorawan.serial_protocol.clone_from(v);
    }
    if let Some(v) = l.adr
        && take("lorawan.adr")
    {
        c.lorawan.adr = v;
    }
    if let Some(v) = l.adr_margin_db
        && take("lorawan.adr_margin_db")
    {
        c.lorawan.adr_margin_db = v;
    }
    if let Some(v) = h.status_led.as_deref().and_then(|v| optional(v, |s| Some(s.to_owned())))
        && take("hal.status_led")
    {
        c.hal.status_led = v;
    }
    if let Some(v) = h.status_led_active_low
        && take("hal.status_led_active_low")
    {
        c.hal.status_led_active_low = v;
    }
    if let Some(v) = h.i2c_bus.as_deref().and_then(|v| optional(v, |s| Some(PathBuf::from(s))))
        && take("hal.i2c_bus")
    {
        c.hal.i2c_bus = v;
    }
    if let Some(v) = &h.sensors
        && take("hal.sensors")
    {
        c.hal.sensors.clone_from(v);
    }
    if let Some(v) = h.sensor_period_s
        && take("hal.sensor_period_s")
    {
        c.hal.sensor_period_s = v;
    }
    (c, overridden)
}

/// Every managed key's value in `config` (`off` for what is off): what the agent reports.
pub fn effective(config: &Config) -> ManagedConfig {
    let off_or = |v: Option<String>| Some(v.unwrap_or_else(|| OFF.to_owned()));
    let (l, h) = (&config.lorawan, &config.hal);
    ManagedConfig {
        log: ManagedLog { filter: Some(config.log.filter.clone()) },
        agent: ManagedAgent { status_period_s: Some(config.agent.status_period_s) },
        lorawan: ManagedLorawan {
            udp_bind: off_or(l.udp_bind.map(|a| a.to_string())),
            serial_port: off_or(l.serial_port.as_ref().map(|p| p.to_string_lossy().into_owned())),
            serial_baud: Some(l.serial_baud),
            serial_protocol: Some(l.serial_protocol.clone()),
            adr: Some(l.adr),
            adr_margin_db: Some(l.adr_margin_db),
        },
        hal: ManagedHal {
            status_led: off_or(h.status_led.clone()),
            status_led_active_low: Some(h.status_led_active_low),
            i2c_bus: off_or(h.i2c_bus.as_ref().map(|p| p.to_string_lossy().into_owned())),
            sensors: Some(h.sensors.clone()),
            sensor_period_s: Some(h.sensor_period_s),
        },
    }
}

/// The configuration to run with, given the local one and central's stored settings (their
/// wire form), and the report of it.
pub fn resolve(local: &Config, stored: Option<&[u8]>) -> (Config, ConfigReport) {
    let (config, overridden, rejected) = match stored.map(ManagedConfig::from_wire) {
        None | Some(Ok(None)) => (local.clone(), Vec::new(), None),
        Some(Ok(Some(central))) => {
            let (config, overridden) = lay_under(local, &central);
            (config, overridden, None)
        }
        Some(Err(reason)) => (local.clone(), Vec::new(), Some(reason)),
    };
    let report = ConfigReport { effective: effective(&config), overridden, rejected, restart_pending: false };
    (config, report)
}

/// Central's log filter in force, for SIGHUP: the file's own filter wins only where it pins one.
static CENTRAL_LOG_FILTER: Mutex<Option<String>> = Mutex::new(None);

/// The log filter a reload takes: the reloaded local configuration's, unless it leaves the key
/// to central and central sets one.
pub fn reload_filter(local: &Config) -> String {
    match CENTRAL_LOG_FILTER.lock().clone() {
        Some(central) if !local.pinned.contains("log.filter") => central,
        _ => local.log.filter.clone(),
    }
}

/// The filter this module last wanted installed (`None` before the first call).
static LAST_WANTED: Mutex<Option<String>> = Mutex::new(None);

/// Installs `config`'s log filter when it differs from the one this module last wanted (so a
/// filter reloaded by SIGHUP meanwhile stays until central's changes), and remembers central's
/// for SIGHUP.
fn apply_log_filter(local: &Config, config: &Config) {
    let from_central = (config.log.filter != local.log.filter).then(|| config.log.filter.clone());
    *CENTRAL_LOG_FILTER.lock() = from_central;
    let wanted = config.log.filter.clone();
    let previous = LAST_WANTED.lock().replace(wanted.clone());
    let unchanged = match previous {
        Some(p) => p == wanted,
        // The first call: the subscriber was installed with the local filter.
        None => wanted == local.log.filter,
    };
    let Some(filter) = neosens_runtime::telemetry::installed().filter(|_| !unchanged) else { return };
    match filter.reload(&wanted) {
        Ok(()) => tracing::info!(filter = %wanted, "log filter from central's settings"),
        Err(e) => tracing::warn!(error = %e, "central's log filter"),
    }
}

/// What the reports read: the settings the agent runs with.
#[derive(Debug, Default)]
pub struct Settings {
    report: Mutex<ConfigReport>,
    /// Woken when the report changed: central hears of it at once, not at the next report.
    pub news: tokio::sync::Notify,
}

impl Settings {
    /// The report of the settings in force.
    pub fn report(&self) -> ConfigReport {
        self.report.lock().clone()
    }

    fn set(&self, report: ConfigReport) {
        let changed = {
            let mut current = self.report.lock();
            let changed = *current != report;
            *current = report;
            changed
        };
        if changed {
            self.news.notify_one();
        }
    }
}

/// Reads central's document from the copy (on the blocking pool) and resolves the configuration
/// to run with; installs its log filter.
pub async fn start(local: &Config, cache: &Cache) -> anyhow::Result<(Config, Arc<Settings>)> {
    let c = cache.clone();
    let stored = neosens_runtime::blocking::run(move || c.central_config()).await?;
    let (config, report) = resolve(local, stored.as_deref());
    if let Some(reason) = &report.rejected {
        tracing::warn!(reason = %reason, "central's settings for this gateway are not applied");
    } else if !report.overridden.is_empty() {
        tracing::info!(keys = ?report.overridden, "central's settings overridden by the local configuration");
    }
    apply_log_filter(local, &config);
    Ok((config, Arc::new(Settings { report: Mutex::new(report), news: tokio::sync::Notify::new() })))
}

/// Everything but the log filter, which changes in place.
fn needs_restart(a: &ManagedConfig, b: &ManagedConfig) -> bool {
    ManagedConfig { log: ManagedLog::default(), ..a.clone() }
        != ManagedConfig { log: ManagedLog::default(), ..b.clone() }
}

/// Follows central's document after each sync batch until `shutdown`: a new log filter is
/// swapped in; any other change stops the agent to restart it (the restart flag of
/// [`crate::update`]).
pub async fn follow(
    local: Arc<Config>,
    cache: Cache,
    settings: Arc<Settings>,
    sync: Arc<crate::sync::SyncStats>,
    shutdown: CancellationToken,
) {
    let running = settings.report().effective;
    loop {
        let synced = sync.synced.notified();
        tokio::pin!(synced);
        synced.as_mut().enable();
        let c = cache.clone();
        match neosens_runtime::blocking::run(move || c.central_config()).await {
            Ok(stored) => {
                let (config, mut report) = resolve(&local, stored.as_deref());
                apply_log_filter(&local, &config);
                if needs_restart(&running, &report.effective) {
                    report.restart_pending = true;
                    settings.set(report);
                    tracing::info!("central changed this gateway's settings: restarting to apply them");
                    crate::update::request_restart(&shutdown);
                    return;
                }
                settings.set(report);
            }
            Err(e) => tracing::warn!(error = %e, "reading central's settings from the registry copy"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = &mut synced => {}
        }
    }
}

#[cfg(test)]
#[path = "managed_tests.rs"]
mod tests;
