//! Central's retained state topic when several replicas share one store.
//!
//! Every replica connects with the same `[mqtt] state_topic` and the same last will
//! (`offline`). A replica that dies therefore leaves `offline` on the topic while the others
//! still run, and a monitoring rule on it would page for a service that is up. So each replica
//! listens to the topic and says `online` again whenever it reads `offline`: the topic says
//! whether central — any of its replicas — is up, and stays `offline` once the last one is gone.

use std::future::Future;
use std::sync::Arc;

use neosens_runtime::mqtt::{LinkError, Message, MqttHandle, OFFLINE, ONLINE, Qos};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A replica's side of the shared state topic, for the reader of the link's messages.
pub struct SharedState {
    topic: String,
    /// Wakes the answering task; notifications coalesce, so a burst of `offline` is answered
    /// once and the reader never waits for the link's outgoing queue.
    answer: Arc<Notify>,
}

impl SharedState {
    /// Listens to `topic` (again after every reconnection) through `link`; returns the reader's
    /// side and the task that answers, to run until `shutdown`.
    pub async fn listen(
        topic: String,
        link: MqttHandle,
        shutdown: CancellationToken,
    ) -> Result<(SharedState, impl Future<Output = ()> + Send + 'static), LinkError> {
        link.subscribe(&topic, Qos::AtLeastOnce).await?;
        let answer = Arc::new(Notify::new());
        let task = answer_offline(topic.clone(), link, Arc::clone(&answer), shutdown);
        Ok((SharedState { topic, answer }, task))
    }

    /// Whether `message` is on the state topic (and so for [`SharedState::read`], not for
    /// ingestion).
    pub fn owns(&self, message: &Message) -> bool {
        message.topic == self.topic
    }

    /// Reads a message of the state topic: `offline` (another replica's last will or clean
    /// stop, or an old retained one) is to be answered with `online`. `online` is never
    /// answered, so two replicas cannot answer each other in a loop.
    pub fn read(&self, message: &Message) {
        if message.payload.as_ref() == OFFLINE.as_bytes() {
            self.answer.notify_one();
        }
    }
}

/// Says `online` on `topic` after each `offline` read, until `shutdown`: never once this replica
/// stops (its own `offline`, published as it stops, stays).
async fn answer_offline(topic: String, link: MqttHandle, answer: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = answer.notified() => {}
        }
        if shutdown.is_cancelled() {
            return;
        }
        tracing::info!(topic = %topic, "another replica left central's state offline: saying online again");
        tokio::select! {
            () = shutdown.cancelled() => return,
            sent = link.publish(&topic, ONLINE, Qos::AtLeastOnce, true) => if let Err(e) = sent {
                tracing::warn!(topic = %topic, error = %e, "cannot say online on the state topic");
            },
        }
    }
}
