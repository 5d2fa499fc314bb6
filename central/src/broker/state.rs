//! Central's retained state topic when several replicas share one store.
//!
//! Every replica connects with the same `[mqtt] state_topic` and the same last will
//! (`offline`). A replica that dies therefore leaves `offline` on the topic while the others
//! still run, and a monitoring rule on it would page for a service that is up. So each replica
//! listens to the topic and says `online` again whenever it reads `offline`: the topic says
//! whether central — any of its replicas — is up, and stays `offline` once the last one is gone.

use neosens_runtime::mqtt::{LinkError, Message, MqttHandle, OFFLINE, ONLINE, Qos};
use tokio_util::sync::CancellationToken;

/// A replica's side of the shared state topic.
pub struct SharedState {
    topic: String,
    link: MqttHandle,
    shutdown: CancellationToken,
}

impl SharedState {
    /// Listens to `topic` (again after every reconnection) through `link`.
    pub async fn listen(
        topic: String,
        link: MqttHandle,
        shutdown: CancellationToken,
    ) -> Result<SharedState, LinkError> {
        link.subscribe(&topic, Qos::AtLeastOnce).await?;
        Ok(SharedState { topic, link, shutdown })
    }

    /// Whether `message` is on the state topic (and so for [`SharedState::read`], not for
    /// ingestion).
    pub fn owns(&self, message: &Message) -> bool {
        message.topic == self.topic
    }

    /// Reads a message of the state topic: `offline` (another replica's last will or clean
    /// stop, or an old retained one) while this replica runs is answered with `online`.
    /// `online` is never answered, so two replicas cannot answer each other in a loop.
    pub async fn read(&self, message: &Message) {
        if message.payload.as_ref() != OFFLINE.as_bytes() || self.shutdown.is_cancelled() {
            return;
        }
        tracing::info!(topic = %self.topic, "another replica left central's state offline: saying online again");
        if let Err(e) = self.link.publish(&self.topic, ONLINE, Qos::AtLeastOnce, true).await {
            tracing::warn!(topic = %self.topic, error = %e, "cannot say online on the state topic");
        }
    }
}
