//! Settings from central (docs/edge.md, "Settings from central"): the keys of this file's
//! configuration that an operator sets per gateway in central
//! ([`neosens_protocol::gateway_config::ManagedConfig`]) come with sync in their wire form, are
//! kept in the registry copy (so an agent that starts while central is out of reach runs with
//! them), and are laid under the gateway's own file: a key set in the file, or on the command
//! line, wins. The agent reports what it runs with in its health report.
//!
//! Applying a change: the log filter is swapped in place ([`log_filter`]); any other key
//! restarts the agent (it exits 75 and systemd starts it again, as after an agent update),
//! because the listeners, the modem and the hardware are opened at start. Settings with which
//! the agent then fails to start (a port taken, a modem missing) are set aside ([`failed`]):
//! the next start runs with the local configuration, and reports why, until central's change.

pub mod failed;
pub mod log_filter;

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

pub use log_filter::reload_filter;

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
pub fn resolve(local: &Config, stored: Option<&[u8]>) -> Resolved {
    let (config, central, overridden, rejected) = match stored.map(ManagedConfig::from_wire) {
        None | Some(Ok(None)) => (local.clone(), None, Vec::new(), None),
        Some(Ok(Some(central))) => {
            let (config, overridden) = lay_under(local, &central);
            (config, Some(central), overridden, None)
        }
        Some(Err(reason)) => (local.clone(), None, Vec::new(), Some(reason)),
    };
    let report = ConfigReport { effective: effective(&config), overridden, rejected, restart_pending: false };
    Resolved { config, report, central, set_aside: false }
}

/// What [`resolve`] makes of central's settings.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The configuration to run with.
    pub config: Config,
    /// Its report.
    pub report: ConfigReport,
    /// Central's settings, when they are read and applied.
    pub central: Option<ManagedConfig>,
    /// Set aside: the agent failed to start with these very settings before.
    pub set_aside: bool,
}

/// [`resolve`], unless these very settings made the agent fail at start before: then the local
/// configuration, and why.
fn resolve_stored(local: &Config, stored: &Stored) -> Resolved {
    let wire = stored.wire.as_deref();
    if let (Some(wire), Some(previous)) = (wire, &stored.failed)
        && previous.digest == failed::digest(wire)
    {
        let mut resolved = resolve(local, None);
        resolved.set_aside = true;
        resolved.report.rejected = Some(format!(
            "the agent failed to start with these settings ({}): running with its local configuration until they change",
            previous.reason
        ));
        return resolved;
    }
    resolve(local, wire)
}

/// Central's settings as the gateway keeps them: their wire form in the registry copy, and the
/// record of settings it failed to start with.
struct Stored {
    wire: Option<Vec<u8>>,
    failed: Option<failed::Failed>,
}

/// Reads [`Stored`] on the blocking pool.
async fn read_stored(cache: &Cache, dir: &std::path::Path) -> anyhow::Result<Stored> {
    let (cache, dir) = (cache.clone(), dir.to_owned());
    neosens_runtime::blocking::run(move || -> anyhow::Result<Stored> {
        Ok(Stored { wire: cache.central_config()?, failed: failed::read_current(&dir) })
    })
    .await
}

/// What the reports read: the settings the agent runs with.
#[derive(Debug, Default)]
pub struct Settings {
    report: Mutex<ConfigReport>,
    /// The digest of central's settings when they changed the configuration in force (what a
    /// failed start is blamed on).
    applied: Mutex<Option<String>>,
    /// Whether this start set central's settings aside (they failed at a previous start).
    set_aside: bool,
    /// Woken when the report changed: central hears of it at once, not at the next report.
    pub news: tokio::sync::Notify,
    /// The version of `report`: raised at each change.
    version: std::sync::atomic::AtomicU64,
    /// The latest version central received, woken at each delivery.
    delivered: std::sync::atomic::AtomicU64,
    delivered_news: tokio::sync::Notify,
}

impl Settings {
    /// The report of the settings in force.
    /// The report, with its version for [`Settings::delivered`].
    pub fn report(&self) -> (ConfigReport, u64) {
        let (mut report, version) = {
            let current = self.report.lock();
            (current.clone(), self.version.load(std::sync::atomic::Ordering::SeqCst))
        };
        // The filter really in force (a filter central's parser took and this agent's did
        // not, or one reloaded by SIGHUP).
        if let Some(installed) = log_filter::installed() {
            report.effective.log.filter = Some(installed);
        }
        (report, version)
    }

    /// The report of `version` reached central (called by the reports task).
    pub fn delivered(&self, version: u64) {
        self.delivered.fetch_max(version, std::sync::atomic::Ordering::SeqCst);
        self.delivered_news.notify_waiters();
    }

    /// Waits until the report of `version` (or a later one) reached central, or `within`.
    async fn wait_delivered(&self, version: u64, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let news = self.delivered_news.notified();
            tokio::pin!(news);
            news.as_mut().enable();
            if self.delivered.load(std::sync::atomic::Ordering::SeqCst) >= version {
                return;
            }
            tokio::select! {
                () = &mut news => {}
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// Replaces the report; returns its version.
    fn set(&self, report: ConfigReport) -> u64 {
        let (changed, version) = {
            let mut current = self.report.lock();
            let changed = *current != report;
            *current = report;
            let version = if changed {
                self.version.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
            } else {
                self.version.load(std::sync::atomic::Ordering::SeqCst)
            };
            (changed, version)
        };
        if changed {
            self.news.notify_one();
        }
        version
    }
}

/// Reads central's settings from the copy and resolves the configuration to run with; installs
/// its log filter.
pub async fn start(local: &Config, cache: &Cache) -> anyhow::Result<(Config, Arc<Settings>)> {
    let stored = read_stored(cache, &local.storage.data_dir).await?;
    let resolved = resolve_stored(local, &stored);
    if let Some(reason) = &resolved.report.rejected {
        tracing::warn!(reason = %reason, "central's settings for this gateway are not applied");
    } else if !resolved.report.overridden.is_empty() {
        warn_overridden(local, &resolved.report.overridden);
    }
    log_filter::start(local, resolved.central.as_ref());
    let applied = blamed_on(local, &resolved.config, stored.wire.as_deref());
    let settings = Settings {
        report: Mutex::new(resolved.report),
        applied: Mutex::new(applied),
        set_aside: resolved.set_aside,
        news: tokio::sync::Notify::new(),
        version: std::sync::atomic::AtomicU64::new(0),
        delivered: std::sync::atomic::AtomicU64::new(0),
        delivered_news: tokio::sync::Notify::new(),
    };
    Ok((resolved.config, Arc::new(settings)))
}

/// Says which of central's settings the local file overrides, and which of them it sets to
/// their default (a file written by an older `configfile`, which wrote every key out: comment
/// them out to let central's apply).
fn warn_overridden(local: &Config, overridden: &[String]) {
    let changed = effective(local).keys_differing(&effective(&Config::default()));
    let at_default: Vec<&String> = overridden.iter().filter(|k| !changed.contains(&k.as_str())).collect();
    tracing::info!(keys = ?overridden, "central's settings overridden by the local configuration");
    if !at_default.is_empty() {
        tracing::info!(keys = ?at_default, "the local configuration sets these keys to their default value, which overrides central's: comment them out to let central's settings apply");
    }
}

/// The managed keys whose value can make a start fail: what opens a socket, a device or a GPIO
/// line.
const OPENED_AT_START: &[&str] = &[
    "lorawan.udp_bind",
    "lorawan.serial_port",
    "lorawan.serial_baud",
    "lorawan.serial_protocol",
    "hal.status_led",
    "hal.status_led_active_low",
    "hal.i2c_bus",
    "hal.sensors",
];

/// The digest of central's settings (`wire`) when a failed start of `config` is theirs: when
/// they change what opens at start. A new log filter or status period cannot fail a start, and
/// is not blamed for one (a full disk, a bad `[storage]`).
fn blamed_on(local: &Config, config: &Config, wire: Option<&[u8]>) -> Option<String> {
    let differing = effective(config).keys_differing(&effective(local));
    differing.iter().any(|key| OPENED_AT_START.contains(key)).then(|| wire.map(failed::digest)).flatten()
}

/// Records that the agent failed to start with central's settings in force, so that the next
/// start (systemd's; the failure counts as the build's, see `update::launch`) runs with the
/// local configuration, in this build and this boot. When this start ran with the local
/// configuration because central's settings had failed before, the record is dropped instead:
/// the local configuration fails too, so the next start tries central's again rather than
/// staying stuck on one that cannot start.
pub async fn failed_at_start(dir: &std::path::Path, settings: &Settings, error: &anyhow::Error) {
    let dir = dir.to_owned();
    if settings.set_aside {
        if let Err(e) = neosens_runtime::blocking::run(move || failed::remove(&dir)).await {
            tracing::error!(error = %e, "removing {}: the next start keeps central's settings aside", failed::FILE);
        }
        return;
    }
    let Some(digest) = settings.applied.lock().clone() else { return };
    let reason = format!("{error:#}");
    tracing::error!(error = %reason, "the agent could not start with central's settings: the next start runs with the local configuration");
    let written = neosens_runtime::blocking::run(move || {
        failed::write(&dir, &failed::Failed { digest, origin: failed::Origin::current(), reason })
    })
    .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "recording central's settings as failed");
    }
}

/// The agent started: a record of other settings that failed is stale (central moved on since;
/// should it come back to them, they are tried again).
pub async fn started(dir: &std::path::Path, settings: &Settings) {
    if !settings.set_aside {
        let dir = dir.to_owned();
        if let Err(e) = neosens_runtime::blocking::run(move || failed::remove(&dir)).await {
            tracing::warn!(error = %e, "removing {}", failed::FILE);
        }
    }
}

/// Everything but the log filter, which changes in place.
fn needs_restart(a: &ManagedConfig, b: &ManagedConfig) -> bool {
    ManagedConfig { log: ManagedLog::default(), ..a.clone() }
        != ManagedConfig { log: ManagedLog::default(), ..b.clone() }
}

/// How long a restart waits for the report that announces it to reach central.
const RESTART_REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Follows central's settings after each sync batch until `shutdown`: a new log filter is
/// swapped in; any other change stops the agent to restart it (the restart flag of
/// [`crate::update`]), once the report saying so reached central (or after
/// [`RESTART_REPORT_WAIT`]).
pub async fn follow(
    local: Arc<Config>,
    cache: Cache,
    settings: Arc<Settings>,
    sync: Arc<crate::sync::SyncStats>,
    shutdown: CancellationToken,
) {
    let running = settings.report.lock().effective.clone();
    loop {
        let synced = sync.synced.notified();
        tokio::pin!(synced);
        synced.as_mut().enable();
        match read_stored(&cache, &local.storage.data_dir).await {
            Ok(stored) => {
                let Resolved { mut report, central, .. } = resolve_stored(&local, &stored);
                log_filter::set_central(central.as_ref());
                if needs_restart(&running, &report.effective) {
                    report.restart_pending = true;
                    let version = settings.set(report);
                    tracing::info!("central changed this gateway's settings: restarting to apply them");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = settings.wait_delivered(version, RESTART_REPORT_WAIT) => {}
                    }
                    crate::update::request_restart(&shutdown);
                    return;
                }
                settings.set(report);
            }
            Err(e) => tracing::warn!(error = %e, "reading central's settings"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = &mut synced => {}
        }
    }
}

#[cfg(test)]
mod tests;
