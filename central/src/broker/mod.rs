//! Central and the broker: which broker, and how central reaches it.
//!
//! With `[mqtt] url`, central connects to that broker (Mosquitto in production) as its own
//! service account. Without it, central starts an embedded broker and connects to that — the
//! zero-setup default of the README's run command.

pub mod dynsec;
#[cfg(feature = "embedded-broker")]
pub mod embedded;
pub mod state;

use std::sync::Arc;

use anyhow::Context;
use neosens_runtime::mqtt::{self, BrokerUrl, LinkConfig, Message, MqttHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::MqttConfig;
use crate::registry::Registry;

/// Largest MQTT packet central accepts from its broker: far above any status (16 KiB) and the
/// shipped Mosquitto configurations' `max_packet_size` (64 KiB), so that whatever a device gets
/// through is dropped and counted by ingestion instead of ending central's connection; large
/// enough for the dynamic-security plug-in's client list of a big campus.
pub const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// The broker central talks to.
pub struct BrokerLink {
    /// The link's handle.
    pub handle: MqttHandle,
    /// Messages received.
    pub inbound: mpsc::Receiver<Message>,
    /// Where the broker is (for logs).
    pub address: String,
    /// Whether it is the embedded broker.
    pub embedded: bool,
    /// Central's username on the broker.
    pub username: Option<String>,
    /// The link's event loop, for the supervisor to run.
    pub event_loop: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// Connects central to its broker, starting the embedded one when none is configured.
pub fn connect(
    config: &MqttConfig,
    registry: &Arc<Registry>,
    shutdown: CancellationToken,
) -> anyhow::Result<BrokerLink> {
    let (url, embedded) = match &config.url {
        Some(url) => {
            let url: BrokerUrl = url.parse().context("[mqtt] url / NEOSENS_MQTT_URL")?;
            // Mosquitto asks central's broker-auth backend about central's own login too.
            if let Some((user, pass)) = &url.credentials {
                registry.add_service_account(user, pass);
            }
            (url, false)
        }
        #[cfg(not(feature = "embedded-broker"))]
        None => anyhow::bail!(
            "no broker configured, and this build has no embedded broker (built without the `embedded-broker` feature, as production images are): set [mqtt] url or NEOSENS_MQTT_URL to your Mosquitto"
        ),
        #[cfg(feature = "embedded-broker")]
        None => {
            let broker = embedded::start(config.embedded_bind, Arc::clone(registry))?;
            tracing::warn!(
                mqtt = %broker.addr,
                "no broker configured: embedded MQTT broker started; it authenticates devices against the registry but does NOT enforce topic ACLs — for trying neosens, not for production (set NEOSENS_MQTT_URL)"
            );
            let password = registry.keys().new_token()?;
            registry.add_service_account(&config.client_id, &password);
            let url = BrokerUrl {
                host: "127.0.0.1".into(),
                port: broker.addr.port(),
                tls: false,
                credentials: Some((config.client_id.clone(), password)),
            };
            (url, true)
        }
    };
    let address = format!("{}:{}", url.host, url.port);
    let username = url.credentials.as_ref().map(|(u, _)| u.clone());
    let mut link = LinkConfig::new(url, &config.client_id);
    link.state_topic = Some(config.state_topic.clone());
    link.max_incoming_packet = MAX_INCOMING_PACKET;
    let (handle, inbound, event_loop) = mqtt::link(link, shutdown);
    Ok(BrokerLink { handle, inbound, address, embedded, username, event_loop: Box::pin(event_loop) })
}
