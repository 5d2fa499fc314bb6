//! LoRaWAN uplinks decoded at the gateway: Semtech UDP datagrams from the packet forwarders
//! ([`semtech`]), frames checked and decrypted with the keys synced from central ([`frame`]),
//! payloads decoded into neOCampus readings ([`codec`]), and everything appended to the outbox
//! in one transaction per datagram together with the frame counters that let the frames through
//! (so a crash cannot accept a frame twice, nor lose one it acknowledged).
//!
//! Per accepted uplink: one reading per value on `<base>/<kind>`
//! (`{"value", "value_units", "subID", "unitID", "msg_id"}`, `unitID` = the DevEUI) and the node's
//! status on `<base>/device` (RSSI, SNR, frame counter, gateway), so LoRaWAN nodes appear in the
//! dashboard and go red like every other device.

pub mod codec;
pub mod frame;
pub mod modem;
pub mod semtech;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use neosens_runtime::keys::Keys;
use parking_lot::Mutex;
use serde_json::json;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::outbox::Outbox;

/// How long the same frame heard by several forwarders counts as one.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(5);

/// Counters by outcome (`decoded`, `duplicate`, `mic_invalid` …) and by datagram error.
#[derive(Debug, Default)]
pub struct LoraStats {
    /// Frames by outcome.
    pub frames: Mutex<BTreeMap<&'static str, u64>>,
    /// Datagrams dropped by reason, and `received`.
    pub datagrams: Mutex<BTreeMap<&'static str, u64>>,
    /// MAC command bytes seen (FOpts and port 0).
    pub mac_command_bytes: std::sync::atomic::AtomicU64,
}

impl LoraStats {
    fn frame(&self, outcome: &'static str) {
        *self.frames.lock().entry(outcome).or_default() += 1;
    }
    fn datagram(&self, outcome: &'static str) {
        *self.datagrams.lock().entry(outcome).or_default() += 1;
    }
}

/// The decoding pipeline of a gateway.
pub struct Pipeline {
    cache: Cache,
    keys: Arc<Keys>,
    outbox: Outbox,
    /// Counters.
    pub stats: Arc<LoraStats>,
    recent: Mutex<Recent>,
    nodes: Mutex<Nodes>,
}

/// Frames heard in the last [`DEDUPE_WINDOW`]: a set for lookups, a queue in arrival order for
/// expiry (amortised O(1) per frame, whatever the traffic).
#[derive(Debug, Default)]
struct Recent {
    seen: std::collections::HashSet<Vec<u8>>,
    order: std::collections::VecDeque<(Instant, Vec<u8>)>,
}

/// Sessions opened so far, by device address, for the registry revision they come from; and
/// the last counter accepted per node (written to the database with each datagram's readings).
#[derive(Debug, Default)]
struct Nodes {
    revision: u64,
    by_addr: HashMap<u32, Vec<Arc<frame::NodeSession>>>,
    last: HashMap<neosens_protocol::ids::DeviceId, u32>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pipeline { .. }")
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Pipeline {
    /// A pipeline over this cache and outbox, with the gateway's keys.
    pub fn new(cache: Cache, keys: Arc<Keys>, outbox: Outbox, stats: Arc<LoraStats>) -> Self {
        Pipeline { cache, keys, outbox, stats, recent: Mutex::default(), nodes: Mutex::default() }
    }

    /// The sessions of a device address (opened from the cache on first use, dropped when the
    /// registry revision changes), with their last counters.
    fn candidates(&self, nodes: &mut Nodes, dev_addr: u32) -> Result<Vec<frame::Candidate>, frame::Reject> {
        if !nodes.by_addr.contains_key(&dev_addr) {
            let mut opened = Vec::new();
            for (record, last) in self.cache.nodes_by_dev_addr(dev_addr)? {
                let base = match record.rooms.first() {
                    Some(room) => self.cache.room(*room)?.map(|r| r.base_topic),
                    None => None,
                };
                if let Some(node) = frame::NodeSession::open(&record, base, &self.keys) {
                    if let Some(l) = last {
                        nodes.last.entry(node.id).or_insert(l);
                    }
                    opened.push(Arc::new(node));
                }
            }
            nodes.by_addr.insert(dev_addr, opened);
        }
        Ok(nodes.by_addr[&dev_addr]
            .iter()
            .map(|n| frame::Candidate { node: Arc::clone(n), last: nodes.last.get(&n.id).copied() })
            .collect())
    }

    /// Whether this exact frame was already heard within the window (and remembers it).
    fn seen_recently(&self, phy: &[u8], now: Instant) -> bool {
        let mut recent = self.recent.lock();
        while let Some((at, _)) = recent.order.front() {
            if now.duration_since(*at) < DEDUPE_WINDOW {
                break;
            }
            if let Some((_, old)) = recent.order.pop_front() {
                recent.seen.remove(&old);
            }
        }
        if recent.seen.contains(phy) {
            return true;
        }
        recent.seen.insert(phy.to_vec());
        recent.order.push_back((now, phy.to_vec()));
        false
    }

    /// Handles one datagram: the answer to send back (PUSH_ACK, PULL_ACK), if any.
    pub fn handle(&self, datagram: &[u8]) -> Option<[u8; 4]> {
        self.handle_batch(&[datagram]).pop().flatten()
    }

    /// Handles datagrams that arrived together: their uplinks are stored in one transaction
    /// (a durable commit costs more than decoding a frame); returns each one's answer, in order.
    pub fn handle_batch(&self, datagrams: &[&[u8]]) -> Vec<Option<[u8; 4]>> {
        let now = Instant::now();
        // (topic, JSON object text without its `msg_id`, which the outbox assigns).
        let mut messages: Vec<(String, String)> = Vec::new();
        let mut counters = Vec::new();
        let mut answers = Vec::with_capacity(datagrams.len());
        let mut nodes = self.nodes.lock();
        self.refresh(&mut nodes);
        for datagram in datagrams {
            self.stats.datagram("received");
            let (ack, gateway, packets, bad) = match semtech::parse(datagram) {
                Ok(semtech::Datagram::Push { ack, gateway, packets, bad }) => (ack, gateway, packets, bad),
                Ok(semtech::Datagram::Pull { ack, .. }) => {
                    answers.push(Some(ack));
                    continue;
                }
                Ok(semtech::Datagram::TxAck) => {
                    answers.push(None);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "datagram dropped");
                    self.stats.datagram(e.as_str());
                    answers.push(None);
                    continue;
                }
            };
            for _ in 0..bad {
                self.stats.frame("bad_rxpk");
            }
            self.decode_packets(&mut nodes, &gateway, packets, now, &mut messages, &mut counters);
            answers.push(Some(ack));
        }
        self.store(&messages, &counters);
        answers
    }

    /// Frames from a serial modem (no datagram around them).
    pub fn handle_frames(&self, gateway: &str, packets: Vec<semtech::RxPacket>) {
        let mut messages = Vec::new();
        let mut counters = Vec::new();
        let mut nodes = self.nodes.lock();
        self.refresh(&mut nodes);
        self.decode_packets(&mut nodes, gateway, packets, Instant::now(), &mut messages, &mut counters);
        self.store(&messages, &counters);
    }

    /// Forgets the opened sessions when the registry changed.
    fn refresh(&self, nodes: &mut Nodes) {
        match self.cache.revision() {
            Ok(r) if r != nodes.revision => {
                nodes.by_addr.clear();
                nodes.revision = r;
            }
            _ => {}
        }
    }

    fn decode_packets(
        &self,
        nodes: &mut Nodes,
        gateway: &str,
        packets: Vec<semtech::RxPacket>,
        now: Instant,
        messages: &mut Vec<(String, String)>,
        counters: &mut Vec<(neosens_protocol::ids::DeviceId, u32)>,
    ) {
        for packet in packets {
            if self.seen_recently(&packet.phy, now) {
                self.stats.frame("duplicate");
                continue;
            }
            match frame::decode(&packet.phy, |addr| self.candidates(nodes, addr)) {
                Ok(uplink) => {
                    self.stats.frame("decoded");
                    self.stats
                        .mac_command_bytes
                        .fetch_add(uplink.mac_command_bytes as u64, std::sync::atomic::Ordering::Relaxed);
                    nodes.last.insert(uplink.node.id, uplink.f_cnt);
                    counters.push((uplink.node.id, uplink.f_cnt));
                    self.messages(&uplink, &packet, gateway, messages);
                }
                Err(reject) => {
                    tracing::debug!(reason = reject.as_str(), detail = ?reject, gateway = %gateway, "uplink rejected");
                    self.stats.frame(reject.as_str());
                }
            }
        }
    }

    /// Appends the readings and statuses, and the counters that let them through, in one
    /// transaction.
    fn store(&self, messages: &[(String, String)], counters: &[(neosens_protocol::ids::DeviceId, u32)]) {
        if !counters.is_empty() || !messages.is_empty() {
            let appended = self.outbox.append_and(
                messages.len(),
                now_ms(),
                |i, id| {
                    let (topic, body) = &messages[i];
                    // `{"msg_id":N,` + the rest of the object: no second serialisation.
                    let mut payload = format!("{{\"msg_id\":{id},").into_bytes();
                    payload.extend_from_slice(&body.as_bytes()[1..]);
                    (topic.clone(), payload)
                },
                |txn| crate::cache::write_f_cnts(txn, counters),
            );
            if let Err(e) = appended {
                tracing::error!(error = %e, "storing decoded uplinks");
                self.stats.frame("storage");
            }
        }
    }

    /// The readings and the status of an accepted uplink.
    fn messages(
        &self,
        uplink: &frame::Uplink,
        packet: &semtech::RxPacket,
        gateway: &str,
        out: &mut Vec<(String, String)>,
    ) {
        let Some(base) = &uplink.node.base_topic else { return };
        let codec = uplink.node.codec.as_str();
        if uplink.f_port.is_some_and(|p| p > 0) && !uplink.payload.is_empty() {
            match codec::decode(codec, &uplink.payload) {
                Ok(readings) => {
                    for r in readings {
                        let body = json!({"value": r.value, "value_units": r.units, "subID": r.sub_id, "unitID": uplink.node.dev_eui});
                        out.push((format!("{base}/{}", r.kind), body.to_string()));
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, dev_eui = %uplink.node.dev_eui, "payload does not decode");
                    self.stats.frame("codec_error");
                }
            }
        }
        let status = json!({
            "status": "running",
            "unitID": uplink.node.dev_eui,
            "f_cnt": uplink.f_cnt,
            "f_port": uplink.f_port,
            "rssi": packet.rssi,
            "snr": packet.snr,
            "frequency": packet.frequency,
            "datarate": packet.datarate,
            "gateway": gateway,
        });
        out.push((format!("{base}/device"), status.to_string()));
    }
}

/// Most datagrams stored in one transaction.
const BATCH: usize = 64;

/// Serves the Semtech UDP protocol on `socket` until `shutdown`. Datagrams already waiting when
/// one arrives are handled with it, in one transaction; each is acknowledged after it is stored.
pub async fn run(socket: UdpSocket, pipeline: Arc<Pipeline>, shutdown: CancellationToken) {
    // One byte more than accepted, to tell an oversized datagram from a full one.
    let mut buf = vec![0u8; semtech::MAX_DATAGRAM + 1];
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => (buf[..n].to_vec(), from),
                Err(e) => {
                    tracing::warn!(error = %e, "packet forwarder socket");
                    continue;
                }
            },
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => batch.push((buf[..n].to_vec(), from)),
                Err(_) => break,
            }
        }
        let p = Arc::clone(&pipeline);
        let datagrams: Vec<Vec<u8>> = batch.iter().map(|(d, _)| d.clone()).collect();
        let answers = tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = datagrams.iter().map(Vec::as_slice).collect();
            p.handle_batch(&refs)
        })
        .await
        .unwrap_or_default();
        for ((_, from), ack) in batch.iter().zip(answers) {
            if let Some(ack) = ack {
                if let Err(e) = socket.send_to(&ack, from).await {
                    tracing::debug!(error = %e, forwarder = %from, "acknowledging a datagram");
                }
            }
        }
    }
}
