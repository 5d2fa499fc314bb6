//! `lora-node`: parses the command line, then hands over to the library.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use neosens_lora_node::{Session, key, run};
use neosens_protocol::{DevAddr, Eui64};

/// A simulated LoRaWAN node heard by an emulated packet forwarder: sends real encrypted Cayenne
/// LPP uplinks (temperature, humidity) to a neosens edge agent's Semtech UDP port, with an ABP
/// session (`--dev-addr`, `--nwk-s-key`, `--app-s-key`) or after an OTAA join (`--dev-eui`,
/// `--join-eui`, `--app-key`).
#[derive(Debug, Parser)]
#[command(name = "lora-node", version, about)]
struct Cli {
    /// The agent's packet-forwarder port.
    #[arg(long, default_value = "127.0.0.1:1700")]
    forwarder: SocketAddr,
    /// ABP: device address, 8 hex digits (as registered in central).
    #[arg(long, required_unless_present = "app_key")]
    dev_addr: Option<String>,
    /// ABP: NwkSKey, 32 hex digits.
    #[arg(long, required_unless_present = "app_key")]
    nwk_s_key: Option<String>,
    /// ABP: AppSKey, 32 hex digits.
    #[arg(long, required_unless_present = "app_key")]
    app_s_key: Option<String>,
    /// OTAA: DevEUI, 16 hex digits.
    #[arg(long, requires = "app_key")]
    dev_eui: Option<String>,
    /// OTAA: JoinEUI (AppEUI), 16 hex digits.
    #[arg(long, requires = "app_key")]
    join_eui: Option<String>,
    /// OTAA: AppKey, 32 hex digits; the node joins first (DevNonce `--dev-nonce`).
    #[arg(long, requires_all = ["dev_eui", "join_eui"], conflicts_with_all = ["dev_addr", "nwk_s_key", "app_s_key"])]
    app_key: Option<String>,
    /// OTAA: the join request's DevNonce (a node uses each once).
    #[arg(long, default_value_t = 1)]
    dev_nonce: u16,
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
        let eui: Eui64 = cli.gateway_eui.trim().parse().map_err(|e| format!("--gateway-eui: {e}"))?;
        let session = match &cli.app_key {
            Some(app_key) => join(&cli, app_key, eui.to_be_bytes())?,
            None => {
                let text = |v: &Option<String>| v.clone().unwrap_or_default();
                let dev_addr: DevAddr =
                    text(&cli.dev_addr).trim().parse().map_err(|e| format!("--dev-addr: {e}"))?;
                Session {
                    dev_addr: dev_addr.to_u32(),
                    nwk_s_key: key(&text(&cli.nwk_s_key)).map_err(|e| format!("--nwk-s-key {e}"))?,
                    app_s_key: key(&text(&cli.app_s_key)).map_err(|e| format!("--app-s-key {e}"))?,
                }
            }
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

/// Joins by OTAA through the agent; the session the join-accept gives.
fn join(cli: &Cli, app_key: &str, gateway_eui: [u8; 8]) -> Result<Session, String> {
    let eui = |v: &Option<String>, flag: &str| -> Result<[u8; 8], String> {
        let e: Eui64 = v.clone().unwrap_or_default().trim().parse().map_err(|e| format!("{flag}: {e}"))?;
        Ok(e.to_be_bytes())
    };
    let keys = neosens_lora_node::otaa::OtaaKeys {
        dev_eui: eui(&cli.dev_eui, "--dev-eui")?,
        join_eui: eui(&cli.join_eui, "--join-eui")?,
        app_key: key(app_key).map_err(|e| format!("--app-key {e}"))?,
    };
    let socket = std::net::UdpSocket::bind(if cli.forwarder.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })
        .map_err(|e| e.to_string())?;
    // The join-accept comes 5 s after the request (RX1): wait a little longer.
    let session = neosens_lora_node::otaa::join(
        &socket,
        cli.forwarder,
        gateway_eui,
        &keys,
        cli.dev_nonce,
        Duration::from_secs(10),
    )?;
    println!("joined: DevAddr {:08X}", session.dev_addr);
    Ok(session)
}
