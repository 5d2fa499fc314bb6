//! The MQTT link against a real Mosquitto: subscriptions survive a broker restart, the retained
//! online/offline state follows the link, publishes go out.

use std::time::Duration;

use neosens_runtime::mqtt::{self, LinkConfig, Qos};
use neosens_runtime::testing::{DEADLINE, Mosquitto};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A plain client that records what it receives on `filter` (retained messages included);
/// returns once the broker acknowledged the subscription.
async fn watcher(port: u16, filter: &str) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let mut options = MqttOptions::new(format!("watcher-{}", fastrand::u32(..)), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed, is_subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        // The client must live as long as the loop: rumqttc ends the session when it is dropped.
        let _client = client;
        let mut subscribed = Some(subscribed);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(DEADLINE, is_subscribed).await.expect("SubAck in time").expect("watcher running");
    rx
}

async fn next<T>(rx: &mut mpsc::Receiver<T>) -> T {
    tokio::time::timeout(DEADLINE, rx.recv()).await.expect("in time").expect("open")
}

async fn next_unbounded<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(DEADLINE, rx.recv()).await.expect("in time").expect("open")
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(DEADLINE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not within {DEADLINE:?}: {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_broker_restart_and_keeps_its_state_retained() {
    let mut broker = Mosquitto::start("");
    let shutdown = CancellationToken::new();
    let mut config = LinkConfig::new(broker.url().parse().unwrap(), "neosens-test");
    config.state_topic = Some("neosens/test/state".into());
    config.max_backoff = Duration::from_millis(500);
    let (link, mut inbound) = mqtt::start(config, shutdown.clone());
    link.subscribe("+/+/device", Qos::AtMostOnce).await.unwrap();
    eventually("link up", || link.stats().connected()).await;

    let mut state = watcher(broker.port, "neosens/test/state").await;
    assert_eq!(next_unbounded(&mut state).await.1, b"online");

    // A publish from another client reaches the link's subscription.
    let mut device = watcher(broker.port, "u4/302/device/command").await;
    link.publish("u4/302/device/command", "{}", Qos::AtMostOnce, false).await.unwrap();
    assert_eq!(next_unbounded(&mut device).await.1, b"{}");
    let publisher = {
        let mut options = MqttOptions::new("publisher", "127.0.0.1", broker.port);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
        client
    };
    publisher.publish("u4/302/device", QoS::AtMostOnce, false, "status-1").await.unwrap();
    let m = next(&mut inbound).await;
    assert_eq!((m.topic.as_str(), m.payload.as_ref()), ("u4/302/device", &b"status-1"[..]));

    // Broker restart: the link reconnects by itself and subscribes again.
    broker.restart();
    eventually("reconnected", || link.stats().connects() >= 2 && link.stats().connected()).await;
    assert!(link.stats().disconnects() >= 1);
    let mut options = MqttOptions::new("publisher-2", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(5));
    let (again, mut eventloop) = AsyncClient::new(options, 100);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    // Publish until the re-subscription is in place (QoS 0 to a topic nobody subscribes is lost).
    let received = tokio::time::timeout(DEADLINE, async {
        loop {
            again.publish("irit2/366/device", QoS::AtMostOnce, false, "status-2").await.unwrap();
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), inbound.recv()).await {
                return m;
            }
        }
    })
    .await
    .expect("message after restart");
    assert_eq!(received.topic, "irit2/366/device");

    // A clean stop leaves `offline` retained.
    let mut state = watcher(broker.port, "neosens/test/state").await;
    assert_eq!(next_unbounded(&mut state).await.1, b"online");
    shutdown.cancel();
    assert_eq!(next_unbounded(&mut state).await.1, b"offline");
}

#[tokio::test]
async fn refuses_unpublishable_topics() {
    let shutdown = CancellationToken::new();
    let (link, _inbound) =
        mqtt::start(LinkConfig::new("mqtt://127.0.0.1:1".parse().unwrap(), "x"), shutdown.clone());
    for topic in ["", "a/+", "a/#"] {
        assert!(link.publish(topic, "x", Qos::AtMostOnce, false).await.is_err(), "{topic:?}");
    }
    shutdown.cancel();
}
