//! The LoRaWAN pipeline with the public test vectors (`spec/lorawan-vectors.md`): datagrams as a
//! packet forwarder sends them, a cache holding the sessions as central syncs them (keys sealed
//! for the gateway), and what lands in the outbox. Negative cases: wrong MIC, replayed counter,
//! truncated frame, bad base64, unknown DevAddr, oversized datagram, duplicates.

mod common;

use std::sync::Arc;

use base64::Engine;
use common::client::parse_bytes;
use common::client::wire::{DeviceStatus, Reading};
use neosens_edge::cache::Cache;
use neosens_edge::lorawan::{LoraStats, Pipeline};
use neosens_edge::outbox::{Limits, Outbox};
use neosens_edge::self_test::{AbpNode, NODE_ROOM, room_snapshot};
use neosens_protocol::ids::RoomId;
use neosens_protocol::sync::DeviceRecord;
use neosens_runtime::keys::Keys;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NWK_1: &str = "44024241ed4ce9a68c6a8bc055233fd3";
const APP_1: &str = "ec925802ae430ca77fd3dd73cb2cc588";
const VECTOR_1: &str = "40F17DBE4900020001954378762B11FF0D";
const VECTOR_2: &str = "40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8aa17ad30075293f28dea8a20af3c5e7";
const VECTOR_4: &str = "40F17DBE4900020001954478762B11FF0D";
const VECTOR_5: &str = "4006DC00FCC07400000244925050";
const NWK_5: &str = "581c4d08ef04cda30b1fef7a8b2c74b8";

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

fn node(keys: &Keys, n: u8, dev_addr: &str, nwk: &str, app: &str, codec: &str, room: RoomId) -> DeviceRecord {
    AbpNode { n, dev_addr, nwk_s_key: nwk, app_s_key: app, codec, room }.record(keys).unwrap()
}

/// A PUSH_DATA datagram carrying these frames.
fn push(frames: &[&[u8]]) -> Vec<u8> {
    let rxpk: Vec<Value> = frames
        .iter()
        .map(|f| {
            serde_json::json!({"tmst": 1, "freq": 868.1, "stat": 1, "modu": "LORA", "datr": "SF7BW125", "rssi": -57, "lsnr": 9.5,
                "size": f.len(), "data": base64::engine::general_purpose::STANDARD.encode(f)})
        })
        .collect();
    let mut d = vec![2, 0x12, 0x34, 0x00, 0xaa, 0x55, 0x5a, 0, 0, 0, 0, 1];
    d.extend_from_slice(serde_json::json!({"rxpk": rxpk}).to_string().as_bytes());
    d
}

struct Rig {
    _dir: Option<tempfile::TempDir>,
    outbox: Outbox,
    stats: Arc<LoraStats>,
    pipeline: Pipeline,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rig_in(dir.path());
    r._dir = Some(dir);
    r
}

/// The pipeline over the database in `dir` (synced with the test sessions).
fn rig_in(dir: &std::path::Path) -> Rig {
    let cache = Cache::open(dir).unwrap();
    let keys = Keys::from_bytes(&[7; 32], &[8; 32], ring::rand::SystemRandom::new());
    let room = NODE_ROOM;
    let batch = room_snapshot(vec![
        node(&keys, 1, "49BE7DF1", NWK_1, APP_1, "hex", room),
        // Another node on the same address (a different key): the MIC tells them apart.
        node(&keys, 2, "49BE7DF1", NWK_5, APP_1, "hex", room),
        node(&keys, 5, "FC00DC06", NWK_5, APP_1, "cayenne_lpp", room),
    ]);
    cache.apply(&batch, 1).unwrap();
    let outbox =
        Outbox::open(cache.database(), Limits { max_messages: 1000, max_age_ms: 3_600_000 }).unwrap();
    let stats = Arc::new(LoraStats::default());
    let pipeline = Pipeline::new(cache, Arc::new(keys), outbox.clone(), Arc::clone(&stats));
    Rig { _dir: None, outbox, stats, pipeline }
}

/// The outbox's messages, taken out: topic and payload text.
fn drained(outbox: &Outbox) -> Vec<(String, String)> {
    let records = outbox.peek(0, 100).unwrap();
    let ids: Vec<u64> = records.iter().map(|(id, _)| *id).collect();
    outbox.acknowledge(&ids).unwrap();
    records.into_iter().map(|(_, r)| (r.topic, String::from_utf8(r.payload).unwrap())).collect()
}

/// The message on `topic`, read as `T` (a [`Reading`] or a [`DeviceStatus`]).
fn on<T: DeserializeOwned>(out: &[(String, String)], topic: &str) -> T {
    let (_, payload) =
        out.iter().find(|(t, _)| t == topic).unwrap_or_else(|| panic!("nothing on {topic}: {out:?}"));
    parse_bytes(topic, payload.as_bytes())
}

fn count(stats: &LoraStats, outcome: &str) -> u64 {
    stats.frames.lock().get(outcome).copied().unwrap_or(0)
}

#[test]
fn public_vectors_through_the_pipeline() {
    let r = rig();
    // Vector 1: MIC valid with NwkSKey, FCnt 2, port 1, plaintext "test".
    let ack = r.pipeline.handle(&push(&[&bytes(VECTOR_1)]));
    assert_eq!(ack, Some([2, 0x12, 0x34, 0x01]), "PUSH_ACK with the token");
    let out = drained(&r.outbox);
    let reading: Reading = on(&out, "u4/302/raw");
    assert_eq!(reading.value, "74657374", "ASCII test");
    assert_eq!((reading.unit_id.as_str(), reading.sub_id.as_str()), ("70b3d57ed0000001", ""));
    let status: DeviceStatus = on(&out, "u4/302/device");
    assert_eq!((status.f_cnt, status.rssi), (Some(2), Some(-57.0)));
    assert_eq!(status.gateway.as_deref(), Some("aa555a0000000001"));
    assert!(status.msg_id.is_some(), "{status:?}");

    // Vector 2: FCnt 4, 44 bytes of plaintext over three keystream blocks.
    r.pipeline.handle(&push(&[&bytes(VECTOR_2)]));
    let out = drained(&r.outbox);
    let text = on::<Reading>(&out, "u4/302/raw").value.as_str().expect("the hex codec's text").to_owned();
    let plain: Vec<u8> =
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect();
    assert_eq!(String::from_utf8(plain).unwrap(), "The quick brown fox jumps over the lazy dog.");

    // Vector 1 again, after FCnt 4 (and outside the duplicate window's key: a new datagram of the
    // same frame is a duplicate first; a replay is an older counter).
    r.pipeline.handle(&push(&[&bytes(VECTOR_1)]));
    assert_eq!(count(&r.stats, "duplicate"), 1, "the same frame within the window");
    // Vector 4: one ciphertext byte changed, MIC invalid for every session on that address.
    r.pipeline.handle(&push(&[&bytes(VECTOR_4)]));
    assert_eq!(count(&r.stats, "mic_invalid"), 1);
    assert!(drained(&r.outbox).is_empty(), "nothing published for rejected frames");

    // Vector 5: port 0, MAC commands encrypted with the NwkSKey.
    r.pipeline.handle(&push(&[&bytes(VECTOR_5)]));
    let out = drained(&r.outbox);
    assert_eq!(out.len(), 1, "a status, no reading: {out:?}");
    assert_eq!(on::<DeviceStatus>(&out, "u4/302/device").f_port, Some(0), "{out:?}");
    assert!(r.stats.mac_command_bytes.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(count(&r.stats, "decoded"), 3);
}

/// A node's status goes with its first uplink, then at most once per its status interval: its
/// readings go every time.
#[test]
fn a_node_status_at_most_once_per_interval() {
    let r = rig();
    r.pipeline.handle(&push(&[&bytes(VECTOR_1)]));
    let first = drained(&r.outbox);
    assert_eq!(first.iter().filter(|(t, _)| t == "u4/302/device").count(), 1, "{first:?}");
    r.pipeline.handle(&push(&[&bytes(VECTOR_2)]));
    let second = drained(&r.outbox);
    assert_eq!(second.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["u4/302/raw"], "no status again");
    // Another node: its own first status.
    r.pipeline.handle(&push(&[&bytes(VECTOR_5)]));
    assert_eq!(on::<DeviceStatus>(&drained(&r.outbox), "u4/302/device").f_port, Some(0));
    assert_eq!(count(&r.stats, "decoded"), 3);
}

#[test]
fn replays_and_malformed_input_are_rejected_and_counted() {
    let r = rig();
    r.pipeline.handle(&push(&[&bytes(VECTOR_2)])); // FCnt 4 accepted
    // Vector 1 (FCnt 2) after FCnt 4: a replay. Make it a different datagram (it is not the same
    // frame as vector 2, so the duplicate window does not apply).
    r.pipeline.handle(&push(&[&bytes(VECTOR_1)]));
    assert_eq!(count(&r.stats, "replay"), 1);
    // Truncated frame, unknown address (valid frame shape), join request.
    r.pipeline.handle(&push(&[&bytes("40F17DBE")]));
    assert_eq!(count(&r.stats, "malformed"), 1);
    let mut unknown = bytes(VECTOR_1);
    unknown[1] = 0x00;
    r.pipeline.handle(&push(&[&unknown]));
    assert_eq!(count(&r.stats, "unknown_dev_addr"), 1);
    r.pipeline.handle(&push(&[&bytes("0039363463336913AA05693574323831330489C65B1304")]));
    assert_eq!(count(&r.stats, "join_request"), 1);
    assert_eq!(count(&r.stats, "join_unknown_dev_eui"), 1, "no node of the scope joins with it");
    // Bad base64 in an rxpk; an oversized datagram; garbage.
    let mut bad = vec![2, 0, 1, 0x00, 1, 2, 3, 4, 5, 6, 7, 8];
    bad.extend_from_slice(br#"{"rxpk":[{"stat":1,"data":"***"}]}"#);
    assert!(r.pipeline.handle(&bad).is_some(), "still acknowledged");
    assert_eq!(count(&r.stats, "bad_rxpk"), 1);
    assert_eq!(r.pipeline.handle(&vec![2u8; 20_000]), None);
    assert_eq!(r.stats.datagrams.lock().get("oversized"), Some(&1));
    assert_eq!(r.pipeline.handle(b"\x02\x00\x00\x00garbage"), None);
    assert_eq!(r.outbox.depth(0).unwrap().0, 2, "only vector 2's reading and status");
}

#[test]
fn frame_counters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let r = rig_in(dir.path());
    r.pipeline.handle(&push(&[&bytes(VECTOR_2)]));
    assert_eq!(count(&r.stats, "decoded"), 1);
    drop(r);
    // The agent restarts: the counter was stored with the reading, the older frame is a replay.
    let r = rig_in(dir.path());
    r.pipeline.handle(&push(&[&bytes(VECTOR_1)]));
    assert_eq!((count(&r.stats, "replay"), count(&r.stats, "decoded")), (1, 0));
}

/// A serial modem, played by the test on the master side of a pseudo-terminal: the agent opens
/// the slave side as a serial port, puts the RN2483 into reception, and decodes what it hears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_modem_on_a_pseudo_terminal() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsFd;

    let r = neosens_runtime::blocking::run(rig).await;
    let master =
        rustix::pty::openpt(rustix::pty::OpenptFlags::RDWR | rustix::pty::OpenptFlags::NOCTTY).unwrap();
    rustix::pty::grantpt(master.as_fd()).unwrap();
    rustix::pty::unlockpt(master.as_fd()).unwrap();
    let slave = rustix::pty::ptsname(master.as_fd(), Vec::new()).unwrap();
    let slave = std::path::PathBuf::from(slave.to_str().unwrap());
    // Raw mode on the modem side: no echo, no line editing, as a UART is.
    let mut termios = rustix::termios::tcgetattr(master.as_fd()).unwrap();
    termios.make_raw();
    rustix::termios::tcsetattr(master.as_fd(), rustix::termios::OptionalActions::Now, &termios).unwrap();
    let mut modem = std::fs::File::from(master);
    let mut commands = BufReader::new(modem.try_clone().unwrap());

    let port = neosens_edge::lorawan::modem::open(&slave, 57_600).expect("the pty opens as a serial port");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let pipeline = Arc::new(r.pipeline);
    let task = tokio::spawn(neosens_edge::lorawan::modem::run(
        port,
        neosens_edge::lorawan::modem::protocol("rn2483").unwrap(),
        Arc::clone(&pipeline),
        "serial:test".into(),
        shutdown.clone(),
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while commands.read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = tx.send(line.trim().to_owned());
            line.clear();
        }
    });
    let next = || rx.recv_timeout(neosens_runtime::testing::DEADLINE).expect("a command from the agent");
    assert_eq!((next(), next()), ("mac pause".to_owned(), "radio rx 0".to_owned()));
    writeln!(modem, "4294967245\r").unwrap();
    writeln!(modem, "ok\r").unwrap();
    writeln!(modem, "radio_rx  {VECTOR_1}\r").unwrap();
    assert_eq!(next(), "radio rx 0", "reception started again after the frame");
    assert_eq!(count(&r.stats, "decoded"), 1);
    let outbox = r.outbox.clone();
    let out = neosens_runtime::blocking::run(move || drained(&outbox)).await;
    assert_eq!(on::<Reading>(&out, "u4/302/raw").value, "74657374");
    assert_eq!(on::<DeviceStatus>(&out, "u4/302/device").gateway.as_deref(), Some("serial:test"));
    writeln!(modem, "radio_err\r").unwrap();
    assert_eq!(next(), "radio rx 0", "and after an error");
    shutdown.cancel();
    task.await.unwrap();
}
