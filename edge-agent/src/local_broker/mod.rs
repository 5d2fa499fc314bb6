//! Local-broker mode (docs/edge.md, "Remote sites"): the devices of the gateway's scope use a
//! Mosquitto on the gateway, bridged to central's broker, so that a site whose WAN link drops
//! keeps every status and reading (queued on the gateway's disk by Mosquitto's bridge) and
//! central's orders still reach its devices once the link is back.
//!
//! Mosquitto's own mechanisms do the work: `password_file` (one `$7$` PBKDF2 line per device,
//! made by central: neither central's keys nor the devices' secrets are on the gateway),
//! `acl_file` (the rights central's broker gives each device), persistence, and a bridge with
//! the gateway's login, QoS 1 both ways, `cleansession false`. The agent writes those
//! files from its registry copy after each sync, reloads Mosquitto (SIGHUP) when accounts
//! change, restarts it when the bridge's topics change, and restarts it if it exits.
//!
//! Whether the mode is on: central's setting for this gateway, unless `[local_broker] enabled =
//! false` (the local file wins). Devices are given `[local_broker] advertise`, otherwise the
//! address central's setting names, while Mosquitto runs; the gateway reports it to central,
//! which then gives it too.

mod files;
mod process;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use neosens_protocol::sync::GatewaySettingsRecord;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use files::Upstream;

use crate::cache::Cache;
use crate::sync::SyncStats;

/// `[local_broker]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalBrokerConfig {
    /// `false` keeps this gateway out of local-broker mode whatever central says; unset or
    /// `true`: as central sets it (central makes the accounts, so it cannot be on without it).
    pub enabled: Option<bool>,
    /// `host:port` the devices are given; unset: the address set in central.
    pub advertise: Option<String>,
    /// Where the local broker listens (the site's LAN).
    pub listen: SocketAddr,
    /// The Mosquitto binary (Debian's `mosquitto` package).
    pub mosquitto: PathBuf,
    /// Bound of the bridge's queue while central's broker is out of reach, in messages.
    pub max_queued_messages: u64,
    /// Bound of the bridge's queue, in bytes of payload (0: none but the message count).
    pub max_queued_bytes: u64,
    /// Seconds between two saves of Mosquitto's in-memory state (the queue) to disk: a power
    /// cut loses at most that much; a stop saves everything.
    pub autosave_interval_s: u32,
}

impl Default for LocalBrokerConfig {
    fn default() -> Self {
        LocalBrokerConfig {
            enabled: None,
            advertise: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            mosquitto: PathBuf::from("/usr/sbin/mosquitto"),
            max_queued_messages: 100_000,
            max_queued_bytes: 64 * 1024 * 1024,
            autosave_interval_s: 60,
        }
    }
}

impl LocalBrokerConfig {
    /// `advertise` parsed, checked at start.
    pub fn advertised(&self) -> anyhow::Result<Option<(String, u16)>> {
        let Some(text) = &self.advertise else { return Ok(None) };
        let parsed = text.rsplit_once(':').and_then(|(h, p)| Some((h.trim(), p.trim().parse::<u16>().ok()?)));
        match parsed {
            Some((host, port)) if !host.is_empty() && host.len() <= 63 && port > 0 => {
                Ok(Some((host.to_owned(), port)))
            }
            _ => anyhow::bail!(
                "[local_broker] advertise {text:?}: expected host:port (host at most 63 characters)"
            ),
        }
    }

    /// The broker devices are given when the mode is on: this file's, else central's; `None`
    /// when the mode is off.
    fn effective(&self, central: &GatewaySettingsRecord) -> Option<Option<(String, u16)>> {
        if self.enabled == Some(false) || central.local_broker.is_none() {
            return None;
        }
        let from_central = central.local_broker.as_ref().map(|e| (e.server.clone(), e.port));
        Some(self.advertised().ok().flatten().or(from_central))
    }
}

/// What the rest of the agent sees of the local broker.
#[derive(Debug, Default)]
pub struct LocalBroker {
    /// The broker devices are given in `/device/credentials` (`None`: the mode is off, or no
    /// address is known).
    advertised: RwLock<Option<(String, u16)>>,
    /// Whether Mosquitto runs.
    pub running: std::sync::atomic::AtomicBool,
    /// Times it was started.
    pub starts: std::sync::atomic::AtomicU64,
    /// Accounts in its password file.
    pub accounts: std::sync::atomic::AtomicU64,
    /// Whether the mode is on (as central sets it, unless the local file turns it off).
    on: std::sync::atomic::AtomicBool,
}

impl LocalBroker {
    /// The broker devices of the scope are given, when in local-broker mode.
    pub fn advertised(&self) -> Option<(String, u16)> {
        self.advertised.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_advertised(&self, value: Option<(String, u16)>) {
        *self.advertised.write().unwrap_or_else(std::sync::PoisonError::into_inner) = value;
    }

    /// The broker devices are given right now: the advertised one while Mosquitto runs.
    pub fn serving(&self) -> Option<(String, u16)> {
        if self.running.load(std::sync::atomic::Ordering::Relaxed) { self.advertised() } else { None }
    }

    /// What the gateway's health report says of it (`None` while the mode is off).
    pub fn report(&self) -> Option<neosens_protocol::edge::LocalBrokerReport> {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.on.load(Relaxed) {
            return None;
        }
        let advertised = self.advertised();
        Some(neosens_protocol::edge::LocalBrokerReport {
            running: self.running.load(Relaxed),
            accounts: self.accounts.load(Relaxed),
            host: advertised.as_ref().map(|(h, _)| h.clone()),
            port: advertised.map(|(_, p)| p),
        })
    }
}

/// What the task needs.
#[derive(Clone)]
pub struct Context {
    /// `[local_broker]`.
    pub config: LocalBrokerConfig,
    /// `<data_dir>/broker`: the generated files and Mosquitto's persistence.
    pub dir: PathBuf,
    /// The registry copy.
    pub cache: Cache,
    /// Woken after each sync batch.
    pub sync: Arc<SyncStats>,
    /// Central's broker, for the bridge.
    pub upstream: Upstream,
    /// Shared state.
    pub state: Arc<LocalBroker>,
}

/// Hashes of the files as last written (`None`: not written by this run yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Rendered {
    conf: Option<u64>,
    passwd: Option<u64>,
    acl: Option<u64>,
}

/// What writing the files found.
#[derive(Debug, Clone, Copy)]
struct Written {
    hashes: Rendered,
    conf_changed: bool,
    accounts_changed: bool,
    accounts: u64,
    skipped: u64,
    topics: usize,
}

/// Keeps the local broker in step with the registry copy until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) -> anyhow::Result<()> {
    let dir = ctx.dir.clone();
    neosens_runtime::blocking::run(move || -> anyhow::Result<()> {
        std::fs::create_dir_all(dir.join("db"))?;
        process::stop_leftover(&dir.join("mosquitto.pid"));
        Ok(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("preparing {}: {e}", ctx.dir.display()))?;
    let mut broker: Option<process::Mosquitto> = None;
    let mut backoff = neosens_runtime::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut rendered = Rendered::default();
    loop {
        let synced = ctx.sync.synced.notified();
        tokio::pin!(synced);
        synced.as_mut().enable();
        // A step that failed (Mosquitto missing, a full disk) is tried again after a while,
        // not only at the next sync batch.
        let retry = match step(&ctx, &mut broker, &mut rendered).await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, retry_in_s = backoff.current().as_secs(), "local broker");
                Some(backoff.next_delay())
            }
        };
        let exited = async {
            match broker.as_mut() {
                Some(b) => b.exited().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = &mut synced => {}
            () = async { match retry { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
            status = exited => {
                tracing::warn!(%status, retry_in_s = backoff.current().as_secs(), "the local broker exited: starting it again");
                broker = None;
                ctx.state.running.store(false, std::sync::atomic::Ordering::Relaxed);
                rendered.conf = None;
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    }
    if let Some(b) = broker.take() {
        b.stop().await;
        tracing::info!("local broker stopped");
    }
    Ok(())
}

/// Renders the files from the registry copy, writes those that changed, and starts, reloads or
/// stops Mosquitto to match.
async fn step(
    ctx: &Context,
    broker: &mut Option<process::Mosquitto>,
    rendered: &mut Rendered,
) -> anyhow::Result<()> {
    let cache = ctx.cache.clone();
    let settings = neosens_runtime::blocking::run(move || cache.gateway_settings()).await?;
    let Some(advertised) = ctx.config.effective(&settings) else {
        ctx.state.on.store(false, std::sync::atomic::Ordering::Relaxed);
        ctx.state.set_advertised(None);
        if let Some(b) = broker.take() {
            tracing::info!("local-broker mode off: stopping the local broker");
            b.stop().await;
            ctx.state.running.store(false, std::sync::atomic::Ordering::Relaxed);
        }
        *rendered = Rendered::default();
        return Ok(());
    };
    ctx.state.on.store(true, std::sync::atomic::Ordering::Relaxed);
    ctx.state.set_advertised(advertised);
    let (job, previous) = (ctx.clone(), *rendered);
    let written = neosens_runtime::blocking::run(move || write_files(&job, previous))
        .await
        .map_err(|e| anyhow::anyhow!("writing the local broker's files in {}: {e}", ctx.dir.display()))?;
    *rendered = written.hashes;
    ctx.state.accounts.store(written.accounts, std::sync::atomic::Ordering::Relaxed);
    if written.skipped > 0 {
        tracing::warn!(skipped = written.skipped, "devices whose login cannot be a local broker account");
    }
    match broker {
        Some(_) if !written.conf_changed && !written.accounts_changed => {}
        // The bridge and listener are read at start only: a new configuration needs a restart
        // (the queue is saved and read back).
        Some(b) if !written.conf_changed => {
            tracing::info!(accounts = written.accounts, "local broker accounts changed: reloading");
            b.reload();
        }
        _ => {
            if let Some(b) = broker.take() {
                tracing::info!("local broker configuration changed: restarting it");
                ctx.state.running.store(false, std::sync::atomic::Ordering::Relaxed);
                b.stop().await;
            }
            let started = process::Mosquitto::start(&ctx.config.mosquitto, &ctx.dir.join("mosquitto.conf"))?;
            tracing::info!(pid = started.id(), listen = %ctx.config.listen, accounts = written.accounts,
                topics = written.topics, bridge = ?ctx.upstream, "local broker started");
            ctx.state.running.store(true, std::sync::atomic::Ordering::Relaxed);
            ctx.state.starts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *broker = Some(started);
        }
    }
    Ok(())
}

/// Writes `passwd`, `acl` and `mosquitto.conf` from the registry copy, streaming the accounts
/// (one device in memory at a time); each file replaces the old one only when it changed.
/// Blocking.
fn write_files(ctx: &Context, previous: Rendered) -> anyhow::Result<Written> {
    let dir = &ctx.dir;
    let topics = ctx.cache.scope_topics()?;
    let mut passwd = files::Staged::create(&dir.join("passwd"))?;
    let mut acl = files::Staged::create(&dir.join("acl"))?;
    acl.push(files::ACL_HEADER)?;
    let (mut accounts, mut skipped, mut failed) = (0u64, 0u64, None);
    ctx.cache.each_broker_user(|user| {
        let lines = files::password_line(user).zip(files::acl_entry(user));
        let Some((line, entry)) = lines else {
            skipped += 1;
            return true;
        };
        accounts += 1;
        match passwd.push(&line).and_then(|()| acl.push(&entry)) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let (passwd_hash, passwd_changed) = passwd.finish(previous.passwd)?;
    let (acl_hash, acl_changed) = acl.finish(previous.acl)?;
    let mut conf = files::Staged::create(&dir.join("mosquitto.conf"))?;
    conf.push(&files::mosquitto_conf(dir, &ctx.config, Some(&ctx.upstream), &topics))?;
    let (conf_hash, conf_changed) = conf.finish(previous.conf)?;
    Ok(Written {
        hashes: Rendered { conf: Some(conf_hash), passwd: Some(passwd_hash), acl: Some(acl_hash) },
        conf_changed,
        accounts_changed: passwd_changed || acl_changed,
        accounts,
        skipped,
        topics: topics.len(),
    })
}

#[cfg(test)]
mod tests {
    use neosens_protocol::sync::MqttEndpoint;

    use super::*;

    #[test]
    fn the_local_file_wins_over_central() {
        let on = GatewaySettingsRecord {
            local_broker: Some(MqttEndpoint { server: "gw.site".into(), port: 1883 }),
        };
        let off = GatewaySettingsRecord::default();
        let mut c = LocalBrokerConfig::default();
        assert_eq!(c.effective(&on), Some(Some(("gw.site".into(), 1883))));
        assert_eq!(c.effective(&off), None);
        c.enabled = Some(false);
        assert_eq!(c.effective(&on), None);
        c.enabled = Some(true);
        assert_eq!(c.effective(&off), None, "the accounts come from central");
        c.advertise = Some("10.0.0.2:1884".into());
        assert_eq!(c.effective(&on), Some(Some(("10.0.0.2".into(), 1884))));
    }

    #[test]
    fn a_bad_advertised_address_is_named() {
        for bad in ["nohost", ":1883", "h:0", "h:99999"] {
            let c = LocalBrokerConfig { advertise: Some(bad.into()), ..LocalBrokerConfig::default() };
            assert!(c.advertised().unwrap_err().to_string().contains("[local_broker] advertise"), "{bad}");
        }
    }
}
