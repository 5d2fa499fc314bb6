//! An MQTT subscriber for tests, on a real broker.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{DEADLINE, free_port};

/// An MQTT subscriber for tests: subscribes to `filter` (QoS 1) and keeps what it receives.
pub struct MqttWitness {
    messages: mpsc::Receiver<(String, Vec<u8>)>,
}

impl MqttWitness {
    /// Connects to `broker` anonymously and subscribes; returns once the subscription is acknowledged.
    pub fn subscribe(broker: SocketAddr, filter: &str) -> Self {
        let id = format!("witness-{}", free_port());
        let mut options = rumqttc::MqttOptions::new(id, broker.ip().to_string(), broker.port());
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = rumqttc::Client::new(options, 100);
        let (tx, messages) = mpsc::channel();
        let (subscribed, is_subscribed) = mpsc::channel();
        let filter = filter.to_owned();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = client.subscribe(filter.as_str(), rumqttc::QoS::AtLeastOnce);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = subscribed.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        if tx.send((p.topic, p.payload.to_vec())).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::park_timeout(Duration::from_millis(100)),
                }
            }
        });
        is_subscribed.recv_timeout(DEADLINE).expect("the witness could not subscribe");
        MqttWitness { messages }
    }

    /// The payload of the next message that satisfies `pred` within `wait`, if any.
    pub fn next_within(&self, wait: Duration, pred: impl Fn(&str, &[u8]) -> bool) -> Option<Vec<u8>> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok((topic, payload)) if pred(&topic, &payload) => return Some(payload),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The payload of the next message that satisfies `pred`, within [`DEADLINE`].
    pub fn next(&self, pred: impl Fn(&str, &[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok((topic, payload)) if pred(&topic, &payload) => return payload,
                Ok(_) => {}
                Err(_) => panic!("no matching MQTT message within {DEADLINE:?}"),
            }
        }
    }
}
