//! `sim-device`: a fleet of simulated neOSensors talking to neosens (see the library docs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use neosens_sim_device::device::{Fleet, run};
use neosens_sim_device::provisioning::StateFile;
use neosens_sim_device::register::{Plan, mac, register};
use neosens_sim_device::{FleetStats, Pace};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PaceArg {
    /// The firmware's timing (statuses every 30 min, sensors on change).
    Realistic,
    /// A status and readings every --period-ms (load tests).
    Fast,
}

/// Simulated neOSensors: provisioning over HTTP, one MQTT connection per module, statuses,
/// readings and orders, exactly as the firmware does them. Devices are 02:5e:00:00:00:00,
/// 02:5e:00:00:00:01 … (locally administered MACs).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Base URL of neosens-central (or of a gateway's LAN listener).
    #[arg(long, env = "SIM_CENTRAL", default_value = "http://127.0.0.1:8080")]
    central: String,
    /// Base URL of the firmware-update check each device makes at boot (the real boards ask
    /// neocampus.univ-tlse3.fr); default: --central.
    #[arg(long, env = "SIM_IMAGES")]
    images: Option<String>,
    /// Broker (host:port) when central's credentials name none.
    #[arg(long, env = "SIM_MQTT", default_value = "127.0.0.1:1883")]
    mqtt: String,
    /// How many devices.
    #[arg(long, short = 'n', default_value_t = 1)]
    count: u32,
    /// Number of the first device (its MAC is 02:5e:…:<first>): fleets side by side, e.g. one
    /// through central and one through a gateway, use distinct ranges.
    #[arg(long, default_value_t = 0)]
    first: u32,
    /// Timing.
    #[arg(long, value_enum, default_value = "realistic")]
    pace: PaceArg,
    /// Period of --pace fast, milliseconds.
    #[arg(long, default_value_t = 1000)]
    period_ms: u64,
    /// Devices start spread over this many seconds (as a building's boards do after a power cut).
    #[arg(long, default_value_t = 5)]
    ramp_s: u64,
    /// Register the fleet first with this admin API token (buildings SIM-A…, rooms, type esp32).
    #[arg(long, env = "SIM_ADMIN_TOKEN", hide_env_values = true)]
    register_with: Option<String>,
    /// Buildings when registering.
    #[arg(long, default_value_t = 3)]
    buildings: u32,
    /// Rooms per building when registering.
    #[arg(long, default_value_t = 4)]
    rooms_per_building: u32,
    /// Where devices keep their credentials across runs (the firmware's flash).
    #[arg(long, default_value = "sim-devices.json")]
    state: PathBuf,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    duration_s: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (host, port) = cli.mqtt.rsplit_once(':').context("--mqtt is host:port")?;
    let (host, port): (String, u16) = (host.to_owned(), port.parse().context("--mqtt port")?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        if let Some(token) = &cli.register_with {
            let plan = Plan { devices: cli.count, buildings: cli.buildings, rooms_per_building: cli.rooms_per_building };
            register(&http, &cli.central, token, &plan).await?;
        }
        let pace = match cli.pace {
            PaceArg::Realistic => Pace::Realistic,
            PaceArg::Fast => Pace::Fast { period: Duration::from_millis(cli.period_ms.max(10)) },
        };
        let fleet = Arc::new(Fleet {
            http,
            central: cli.central.clone(),
            images: cli.images.clone().unwrap_or_else(|| cli.central.clone()),
            mqtt: (host, port),
            pace,
            state: StateFile::open(Some(&cli.state))?,
            stats: FleetStats::default(),
        });
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let started = Instant::now();
        let first = cli.first;
        for n in 0..cli.count {
            let (fleet, stop) = (Arc::clone(&fleet), shutdown.clone());
            let delay = Duration::from_millis(cli.ramp_s * 1000 * u64::from(n) / u64::from(cli.count.max(1)));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                run(fleet, mac(first + n), stop).await;
            }));
        }
        eprintln!("sim-device: {} devices starting against {} (MQTT {}), pace {:?}", cli.count, cli.central, cli.mqtt, cli.pace);
        let mut progress = tokio::time::interval(Duration::from_secs(5));
        progress.tick().await;
        let deadline = cli.duration_s.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                () = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
                _ = progress.tick() => eprintln!("sim-device [{:>4} s] {}", started.elapsed().as_secs(), fleet.stats.summary()),
            }
        }
        shutdown.cancel();
        for t in tasks {
            let _ = t.await;
        }
        eprintln!("sim-device: stopped after {} s; {}", started.elapsed().as_secs(), fleet.stats.summary());
        Ok(())
    })
}
