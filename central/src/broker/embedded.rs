//! The embedded MQTT 3.1.1 broker (rumqttd), for the zero-setup default run.
//!
//! It authenticates every CONNECT against the registry (the same decision as the broker-auth
//! backend) but cannot enforce per-topic ACLs: that is Mosquitto's job in production. So it
//! listens on loopback unless configured otherwise, and its memory is small and fixed
//! (docs/security.md): packets up to [`MAX_PAYLOAD`], and per subscription filter a log of
//! [`SEGMENT_COUNT`] segments of [`SEGMENT_BYTES`] (rumqttd keeps recent messages per filter;
//! its own defaults are 100 MiB segments). Retained statuses are cleared by central's ingestion.

/// Largest publish payload the embedded broker accepts (a status is at most 16 KiB).
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Size of one segment of a filter's message log (at least [`MAX_PAYLOAD`]).
pub const SEGMENT_BYTES: usize = 256 * 1024;
/// Segments kept per filter: at most 1 MiB of messages per filter.
pub const SEGMENT_COUNT: usize = 4;
/// Connections accepted at once.
pub const MAX_CONNECTIONS: usize = 20_010;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::registry::{Decision, Registry};

/// A running embedded broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Starts the broker on `bind` (port 0: a free port is chosen) in threads of its own.
pub fn start(bind: SocketAddr, registry: Arc<Registry>) -> anyhow::Result<EmbeddedBroker> {
    let addr = if bind.port() == 0 {
        let probe =
            std::net::TcpListener::bind(bind).with_context(|| format!("finding a free port on {bind}"))?;
        probe.local_addr()?
    } else {
        // Fail here, with the setting's name, rather than in the broker's thread.
        drop(std::net::TcpListener::bind(bind).with_context(|| {
            format!("binding the embedded MQTT broker on {bind} (set [mqtt] embedded_bind or NEOSENS_EMBEDDED_MQTT_BIND, or use a broker: NEOSENS_MQTT_URL)")
        })?);
        bind
    };
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(move |client_id: String, username: String, password: String| {
        let decision = registry.broker_authenticate(&username, &password, &client_id);
        if let Decision::Deny(reason) = decision {
            tracing::debug!(username = %username, reason = reason.as_str(), "embedded broker refused a connection");
        }
        std::future::ready(decision == Decision::Allow)
    });
    let server = ServerSettings {
        name: "neosens-embedded".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: MAX_CONNECTIONS,
            max_outgoing_packet_count: 1_000,
            max_segment_size: SEGMENT_BYTES,
            max_segment_count: SEGMENT_COUNT,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("embedded-mqtt".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .context("starting the embedded MQTT broker thread")?;
    // Ready when it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the embedded MQTT broker did not start listening on {addr}"
        );
        std::thread::park_timeout(Duration::from_millis(5));
    }
    Ok(EmbeddedBroker { addr })
}
