//! `lora-node`: parses the command line, then hands over to the library.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use neosens_lora_node::{Session, key, run};
use neosens_protocol::{DevAddr, Eui64};

/// A simulated ABP LoRaWAN node heard by an emulated packet forwarder: sends real encrypted
/// Cayenne LPP uplinks (temperature, humidity) to a neosens edge agent's Semtech UDP port.
#[derive(Debug, Parser)]
#[command(name = "lora-node", version, about)]
struct Cli {
    /// The agent's packet-forwarder port.
    #[arg(long, default_value = "127.0.0.1:1700")]
    forwarder: SocketAddr,
    /// Device address, 8 hex digits (as registered in central).
    #[arg(long)]
    dev_addr: String,
    /// NwkSKey, 32 hex digits.
    #[arg(long)]
    nwk_s_key: String,
    /// AppSKey, 32 hex digits.
    #[arg(long)]
    app_s_key: String,
    /// First frame counter.
    #[arg(long, default_value_t = 1)]
    f_cnt: u32,
    /// Uplinks to send.
    #[arg(long, default_value_t = 10)]
    count: u64,
    /// Milliseconds between uplinks.
    #[arg(long, default_value_t = 10_000)]
    interval_ms: u64,
    /// The emulated gateway's EUI, 16 hex digits.
    #[arg(long, default_value = "AA555A0000000001")]
    gateway_eui: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let parsed = (|| -> Result<_, String> {
        let dev_addr: DevAddr = cli.dev_addr.trim().parse().map_err(|e| format!("--dev-addr: {e}"))?;
        let eui: Eui64 = cli.gateway_eui.trim().parse().map_err(|e| format!("--gateway-eui: {e}"))?;
        let session = Session {
            dev_addr: dev_addr.to_u32(),
            nwk_s_key: key(&cli.nwk_s_key).map_err(|e| format!("--nwk-s-key {e}"))?,
            app_s_key: key(&cli.app_s_key).map_err(|e| format!("--app-s-key {e}"))?,
        };
        Ok((session, eui.to_be_bytes()))
    })();
    let (session, eui) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lora-node: {e}");
            return ExitCode::FAILURE;
        }
    };
    let interval = Duration::from_millis(cli.interval_ms);
    match run(&session, cli.forwarder, eui, cli.f_cnt, cli.count, interval, Duration::from_secs(2)) {
        Ok(report) => {
            println!(
                "sent {} uplinks, {} acknowledged by the forwarder's server",
                report.sent, report.acknowledged
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lora-node: {e}");
            ExitCode::FAILURE
        }
    }
}
