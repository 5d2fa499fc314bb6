//! Puts the gateway's hardware to work from `[hal]`: the status LED follows the links, local
//! sensors publish through the outbox (so their readings survive a broker outage like every
//! other message). Malformed settings stop the start with the setting named; hardware that is
//! absent or busy is reported and left off — the gateway's job does not depend on an LED.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::bail;
use neosens_protocol::Mac;
use neosens_runtime::supervisor::Supervisor;
#[cfg(test)]
use tokio_util::sync::CancellationToken;

use super::LineSpec;
use super::led::{self, LinkState};
use super::linux::{GpioOutput, LinuxI2c};
use super::sensors::{self, SensorSpec};
use crate::cache::Cache;
use crate::config::HalConfig;
use crate::outbox::Outbox;
use crate::sync::SyncStats;
use crate::uplink::UplinkStats;

/// Central counts as reachable while a sync exchange succeeded this recently (a long poll
/// lasts at most 60 s).
const CENTRAL_FRESH_S: u64 = 150;

/// What the hardware reports on and publishes through.
pub struct Links {
    /// Whether the gateway has credentials.
    pub enrolled: bool,
    /// Sync counters (last exchange with central).
    pub sync: Arc<SyncStats>,
    /// Uplink counters (broker connection).
    pub uplink: Arc<UplinkStats>,
    /// The cache (the gateway's room).
    pub cache: Cache,
    /// The outbox readings go through.
    pub outbox: Outbox,
    /// The gateway's MAC (its readings' `unitID`).
    pub mac: Option<Mac>,
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The link state from the counters.
pub fn link_state(enrolled: bool, sync: &SyncStats, uplink: &UplinkStats) -> LinkState {
    if !enrolled {
        return LinkState::NotEnrolled;
    }
    let last = sync.last_success_s.load(Ordering::Relaxed);
    LinkState::Enrolled {
        central: last > 0 && now_s().saturating_sub(last) <= CENTRAL_FRESH_S,
        broker: uplink.connected.load(Ordering::Relaxed),
    }
}

/// Checks `[hal]` and starts what it asks for, under `tasks`: the LED and the sensors are
/// restartable (each restart opens the line or the bus again), so a flaky wire never stops the
/// gateway's provisioning.
pub fn start(config: &HalConfig, links: Links, tasks: &mut Supervisor) -> anyhow::Result<()> {
    let led_line = config.status_led.as_deref().map(str::parse::<LineSpec>).transpose()?;
    let sensors: Vec<SensorSpec> = config.sensors.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    if !sensors.is_empty() && config.i2c_bus.is_none() {
        bail!("[hal] sensors are set but [hal] i2c_bus is not: name the bus, e.g. i2c_bus = \"/dev/i2c-1\"");
    }
    if let Some(line) = led_line {
        match GpioOutput::open(&line, config.status_led_active_low) {
            Ok(first) => {
                let (enrolled, sync, uplink) =
                    (links.enrolled, Arc::clone(&links.sync), Arc::clone(&links.uplink));
                let (shutdown, active_low) = (tasks.shutdown().clone(), config.status_led_active_low);
                let mut pin = Some(first);
                let reopen = line.clone();
                tasks.restartable("status led", move || {
                    let pin = pin.take().map_or_else(|| GpioOutput::open(&reopen, active_low), Ok);
                    let (sync, uplink, shutdown) = (Arc::clone(&sync), Arc::clone(&uplink), shutdown.clone());
                    async move {
                        match pin {
                            Ok(pin) => {
                                led::run(pin, move || link_state(enrolled, &sync, &uplink), shutdown).await
                            }
                            Err(e) => tracing::warn!(error = %e, "status LED line"),
                        }
                    }
                });
                tracing::info!(line = %format!("{}:{}", line.chip.display(), line.offset), "status LED on");
            }
            Err(e) => tracing::warn!(error = %e, "no status LED"),
        }
    }
    if let (Some(bus_path), false) = (&config.i2c_bus, sensors.is_empty()) {
        let Some(mac) = links.mac else {
            bail!("[hal] sensors need the gateway's MAC for their unitID: set [agent] mac");
        };
        match LinuxI2c::open(bus_path) {
            Ok(first) => {
                let (cache, outbox) = (links.cache.clone(), links.outbox.clone());
                // Called on the blocking pool (an outbox append commits).
                let publish = move |kind: &'static str, payload: String| {
                    let Some(base) = crate::status::base_topic(&cache, mac) else {
                        tracing::debug!("a gateway reading dropped: the gateway is in no room yet");
                        return;
                    };
                    let now_ms = now_s() * 1000;
                    if let Err(e) = outbox.append(&[(format!("{base}/{kind}"), payload.into_bytes())], now_ms)
                    {
                        tracing::error!(error = %e, "appending a gateway reading to the outbox");
                    }
                };
                let period = Duration::from_secs(config.sensor_period_s.max(1));
                let (path, list, shutdown) = (bus_path.clone(), sensors.clone(), tasks.shutdown().clone());
                let mut bus = Some(first);
                tasks.restartable("gateway sensors", move || {
                    let bus = bus.take().map_or_else(|| LinuxI2c::open(&path), Ok);
                    let (list, publish, shutdown) = (list.clone(), publish.clone(), shutdown.clone());
                    async move {
                        match bus {
                            Ok(bus) => {
                                sensors::run(
                                    Box::new(bus),
                                    list,
                                    mac.module_unit_id("auto"),
                                    period,
                                    publish,
                                    shutdown,
                                )
                                .await
                            }
                            Err(e) => tracing::warn!(error = %e, "gateway sensor bus"),
                        }
                    }
                });
                tracing::info!(bus = %bus_path.display(), sensors = sensors.len(), "gateway sensors on");
            }
            Err(e) => tracing::warn!(error = %e, "no gateway sensors"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_state_comes_from_the_counters() {
        let (sync, uplink) = (SyncStats::default(), UplinkStats::default());
        assert_eq!(link_state(false, &sync, &uplink), LinkState::NotEnrolled);
        assert_eq!(link_state(true, &sync, &uplink), LinkState::Enrolled { central: false, broker: false });
        sync.last_success_s.store(now_s() - 10, Ordering::Relaxed);
        uplink.connected.store(true, Ordering::Relaxed);
        assert_eq!(link_state(true, &sync, &uplink), LinkState::Enrolled { central: true, broker: true });
        sync.last_success_s.store(now_s() - 1000, Ordering::Relaxed);
        assert_eq!(link_state(true, &sync, &uplink), LinkState::Enrolled { central: false, broker: true });
    }

    #[tokio::test]
    async fn malformed_settings_stop_the_start_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let (cache, outbox) = neosens_runtime::blocking::run(move || {
            let cache = Cache::open(&path).unwrap();
            let limits = crate::outbox::Limits { max_messages: 10, max_age_ms: 1000 };
            let outbox = Outbox::open(cache.database(), limits).unwrap();
            (cache, outbox)
        })
        .await;
        let links = || Links {
            enrolled: true,
            sync: Arc::default(),
            uplink: Arc::default(),
            cache: cache.clone(),
            outbox: outbox.clone(),
            mac: None,
        };
        let mut tasks = Supervisor::new(CancellationToken::new());
        let bad_led = HalConfig { status_led: Some("gpiochip0".into()), ..HalConfig::default() };
        assert!(start(&bad_led, links(), &mut tasks).unwrap_err().to_string().contains("[hal] status_led"));
        let no_bus = HalConfig { sensors: vec!["sht3x".into()], ..HalConfig::default() };
        assert!(start(&no_bus, links(), &mut tasks).unwrap_err().to_string().contains("i2c_bus"));
        let bad_sensor = HalConfig { sensors: vec!["bme280".into()], ..HalConfig::default() };
        assert!(start(&bad_sensor, links(), &mut tasks).unwrap_err().to_string().contains("[hal] sensors"));
        // Absent hardware is not an error: the gateway runs without it.
        let absent = HalConfig { status_led: Some("/dev/gpiochip-none:3".into()), ..HalConfig::default() };
        start(&absent, links(), &mut tasks).unwrap();
        assert!(start(&HalConfig::default(), links(), &mut tasks).is_ok());
    }
}
