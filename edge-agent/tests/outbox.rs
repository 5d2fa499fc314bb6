//! The outbox and its uplink against a real Mosquitto: nothing lost and nothing doubled across a
//! broker outage, in order; what is still queued when the agent stops goes after it restarts.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use neosens_edge::cache::Cache;
use neosens_edge::outbox::{Limits, Outbox};
use neosens_edge::uplink::{self, UplinkConfig, UplinkStats};
use neosens_runtime::testing::{Mosquitto, wait_until};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

/// A subscriber with a persistent session, so that it misses nothing across broker restarts.
fn witness(port: u16) -> mpsc::Receiver<u64> {
    let mut options = MqttOptions::new("witness", "127.0.0.1", port);
    options.set_clean_session(false);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(options, 100);
    let (tx, rx) = mpsc::channel();
    let (subscribed, is_subscribed) = mpsc::channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.subscribe("lossless/#", QoS::AtLeastOnce).unwrap();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = subscribed.send(());
                }
                // The broker sending again what it had not seen acknowledged when it stopped is
                // the broker's QoS 1 at work, not the outbox: only first deliveries count.
                Ok(Event::Incoming(Packet::Publish(p))) if p.dup => {}
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let id = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                    if tx.send(id).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                // The broker restarting: rumqttc reconnects on the next iteration.
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    is_subscribed.recv_timeout(neosens_runtime::testing::DEADLINE).expect("witness subscribed");
    rx
}

/// Opens the gateway's database and outbox (on the blocking pool, as the agent does).
async fn open(dir: &std::path::Path) -> (Cache, Outbox) {
    let dir = dir.to_owned();
    neosens_runtime::blocking::run(move || {
        let cache = Cache::open(&dir).unwrap();
        let limits = Limits { max_messages: 100_000, max_age_ms: 3_600_000 };
        let outbox = Outbox::open(cache.database(), limits).unwrap();
        (cache, outbox)
    })
    .await
}

/// Appends on the blocking pool, as the agent's producers do.
async fn append_async(outbox: &Outbox, range: std::ops::Range<u64>) {
    let outbox = outbox.clone();
    neosens_runtime::blocking::run(move || append(&outbox, range)).await;
}

fn append(outbox: &Outbox, range: std::ops::Range<u64>) {
    let n = (range.end - range.start) as usize;
    let ids = outbox
        .append_with(n, 0, |i, _| ("lossless/t".into(), (range.start + i as u64).to_string().into_bytes()));
    assert_eq!(ids.unwrap().len(), n);
}

fn start_uplink(
    outbox: &Outbox,
    port: u16,
) -> (CancellationToken, Arc<UplinkStats>, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let stats = Arc::new(UplinkStats::default());
    let config = UplinkConfig {
        url: format!("mqtt://127.0.0.1:{port}").parse().unwrap(),
        client_id: "edge-under-test".into(),
        subscriptions: vec![],
    };
    let (orders, _orders_rx) = tokio::sync::mpsc::channel(8);
    let (_subscriber, more) = uplink::Subscriber::channel();
    let task =
        tokio::spawn(uplink::run(config, outbox.clone(), Arc::clone(&stats), orders, more, shutdown.clone()));
    (shutdown, stats, task)
}

fn collect(rx: &mpsc::Receiver<u64>, seen: &mut Vec<u64>, until: impl Fn(&[u64]) -> bool) {
    let deadline = std::time::Instant::now() + neosens_runtime::testing::DEADLINE;
    while !until(seen) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(id) => seen.push(id),
            Err(_) => panic!(
                "the witness got {} messages, expected more: {:?}…",
                seen.len(),
                &seen[seen.len().saturating_sub(5)..]
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_lost_nor_doubled_across_a_broker_outage_and_an_agent_restart() {
    let broker_dir = tempfile::tempdir().unwrap();
    // Mosquitto drops root for its own user: its persistence directory must be writable to it.
    std::fs::set_permissions(broker_dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut broker = Mosquitto::start(&format!(
        "persistence true\npersistence_location {}/\n",
        broker_dir.path().display()
    ));
    let rx = witness(broker.port);
    let dir = tempfile::tempdir().unwrap();
    let (cache, outbox) = open(dir.path()).await;
    let (shutdown, stats, task) = start_uplink(&outbox, broker.port);

    // Link up: everything goes, in order, and leaves the outbox once acknowledged.
    append_async(&outbox, 0..300).await;
    let mut seen = Vec::new();
    tokio::task::block_in_place(|| collect(&rx, &mut seen, |s| s.len() >= 300));
    wait_until("outbox drained", || outbox.depth(0).unwrap().0 == 0);

    // The broker goes away: the outbox keeps what comes meanwhile.
    tokio::task::block_in_place(|| broker.stop());
    wait_until("uplink down", || !stats.connected.load(std::sync::atomic::Ordering::Relaxed));
    append_async(&outbox, 300..600).await;
    assert_eq!(outbox.depth(0).unwrap().0, 300, "kept on disk while the broker is down");
    tokio::task::block_in_place(|| broker.restart());
    tokio::task::block_in_place(|| collect(&rx, &mut seen, |s| s.len() >= 600));
    wait_until("outbox drained again", || outbox.depth(0).unwrap().0 == 0);
    let expected: Vec<u64> = (0..600).collect();
    if seen != expected {
        let at = seen.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(expected.len());
        panic!(
            "not every message once in order: first difference at {at}: {:?}",
            &seen[at.saturating_sub(3)..(at + 5).min(seen.len())]
        );
    }

    // The agent stops with messages queued (its uplink gone, the database closed), then restarts.
    shutdown.cancel();
    task.await.unwrap();
    append_async(&outbox, 600..700).await;
    drop(outbox);
    drop(cache);
    let (_cache, outbox) = open(dir.path()).await;
    assert_eq!(outbox.depth(0).unwrap().0, 100, "the queue survives the restart");
    let (shutdown, _stats, task) = start_uplink(&outbox, broker.port);
    tokio::task::block_in_place(|| collect(&rx, &mut seen, |s| s.len() >= 700));
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), 700);
    assert_eq!(seen.len(), 700, "nothing sent twice");
    shutdown.cancel();
    task.await.unwrap();
}
