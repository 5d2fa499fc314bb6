//! LoRaWAN uplinks decoded at the gateway: Semtech UDP datagrams from the packet forwarders
//! ([`semtech`]), frames checked and decrypted with the keys synced from central ([`frame`]),
//! payloads decoded into neOCampus readings ([`codec`]), and everything appended to the outbox
//! in one transaction per datagram together with the frame counters that let the frames through
//! (so a crash cannot accept a frame twice, nor lose one it acknowledged).
//!
//! Per accepted uplink: one reading per value on `<base>/<kind>`
//! (`{"value", "value_units", "subID", "unitID", "msg_id"}`, `unitID` = the DevEUI); and the
//! node's status on `<base>/device` (RSSI, SNR, frame counter, gateway), so LoRaWAN nodes appear
//! in the dashboard and go red like every other device — with its first uplink, then at most once
//! per [`frame::status_every`] (its type's status period): a node is a device like the others,
//! and a status per uplink would triple what the gateway and the broker carry.

pub mod codec;
pub mod forwarders;
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

use crate::cache::{Cache, SessionCounter};
use crate::outbox::Outbox;

/// How long the same frame heard by several forwarders counts as one.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(5);

/// Frames remembered for deduplication at most, whatever the traffic: a flood of random frames
/// pushes the oldest out early (at most 256 B each: 2 MiB with the set and the queue), a real
/// site hears a few hundred frames in [`DEDUPE_WINDOW`].
pub const MAX_RECENT_FRAMES: usize = 4096;

/// The largest PHYPayload LoRaWAN allows (RP002: 255 bytes at any data rate); a longer one is
/// dropped before any work (`oversized`).
pub const MAX_PHY_PAYLOAD: usize = 255;

/// Device addresses whose sessions are kept open at most (nodes of the gateway's scope only:
/// an address no node has is never remembered, so random addresses cost a lookup, no memory).
pub const MAX_OPEN_ADDRESSES: usize = 65_536;

/// Counters by outcome (`decoded`, `duplicate`, `mic_invalid` …) and by datagram error.
#[derive(Debug, Default)]
pub struct LoraStats {
    /// Frames by outcome.
    pub frames: Mutex<BTreeMap<&'static str, u64>>,
    /// Datagrams dropped by reason, and `received`.
    pub datagrams: Mutex<BTreeMap<&'static str, u64>>,
    /// MAC command bytes seen (FOpts and port 0).
    pub mac_command_bytes: std::sync::atomic::AtomicU64,
    /// Device addresses with open sessions (≤ [`MAX_OPEN_ADDRESSES`]), after the last batch.
    pub open_addresses: std::sync::atomic::AtomicUsize,
    /// Frames in the duplicate window (≤ [`MAX_RECENT_FRAMES`]), after the last batch.
    pub recent_frames: std::sync::atomic::AtomicUsize,
    /// The packet forwarders heard (reported to central with the gateway's health).
    pub forwarders: forwarders::Forwarders,
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

/// Frames heard in the last [`DEDUPE_WINDOW`], [`MAX_RECENT_FRAMES`] at most: a set for lookups,
/// a queue in arrival order for expiry (amortised O(1) per frame, whatever the traffic).
#[derive(Debug, Default)]
struct Recent {
    seen: std::collections::HashSet<Vec<u8>>,
    order: std::collections::VecDeque<(Instant, Vec<u8>)>,
}

/// Sessions opened so far, by device address, for the registry revision they come from; and
/// the last counter accepted per node (written to the database with each datagram's readings).
/// Both hold nodes of the gateway's scope only (addresses without a node are not kept): sessions
/// for at most [`MAX_OPEN_ADDRESSES`] addresses, a counter per node of the scope. Both are
/// dropped when the registry changes or a store fails (and reopened from the database, which has
/// the counters that were committed).
#[derive(Debug, Default)]
struct Nodes {
    revision: u64,
    by_addr: HashMap<u32, Vec<Arc<frame::NodeSession>>>,
    last: HashMap<neosens_protocol::ids::DeviceId, SessionCounter>,
    /// When each node's status was last relayed (nodes of the scope that sent: bounded by it).
    status_at: HashMap<neosens_protocol::ids::DeviceId, Instant>,
}

impl Nodes {
    fn forget(&mut self) {
        self.by_addr.clear();
        self.last.clear();
        // A node's next uplink relays its status again (after a registry change, its room or
        // type may have changed; after a failed store, its status was not stored).
        self.status_at.clear();
    }

    /// Whether `node`'s status is due with this uplink (and, if so, notes it relayed now).
    fn status_due(&mut self, node: &frame::NodeSession, now: Instant) -> bool {
        match self.status_at.get(&node.id) {
            Some(at) if now.duration_since(*at) < node.status_every => false,
            _ => {
                self.status_at.insert(node.id, now);
                true
            }
        }
    }
}

/// What a batch let through, to store together.
#[derive(Debug, Default)]
struct Accepted {
    /// (topic, JSON object text without its `msg_id`, which the outbox assigns).
    messages: Vec<(String, String)>,
    /// The counters that let them through.
    counters: Vec<(neosens_protocol::ids::DeviceId, SessionCounter)>,
    /// The frames' bytes (forgotten by the dedupe window if the store fails).
    frames: Vec<Vec<u8>>,
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
                let status_every = frame::status_every(self.cache.device_type(record.device_type)?.as_ref());
                if let Some(node) = frame::NodeSession::open(&record, base, status_every, &self.keys) {
                    if let Some(l) = last {
                        nodes.last.entry(node.id).or_insert(l);
                    }
                    opened.push(Arc::new(node));
                }
            }
            if opened.is_empty() {
                // Not one of ours: nothing remembered (a flood of random addresses costs a
                // lookup each, and no memory).
                return Ok(Vec::new());
            }
            if nodes.by_addr.len() >= MAX_OPEN_ADDRESSES {
                // Sessions are opened again when needed; the counters stay (one per node of the
                // scope: bounded by it), since this batch's are not stored yet.
                nodes.by_addr.clear();
            }
            nodes.by_addr.insert(dev_addr, opened);
        }
        let sessions = nodes.by_addr.get(&dev_addr).map(Vec::as_slice).unwrap_or_default();
        Ok(sessions
            .iter()
            .map(|n| frame::Candidate {
                node: Arc::clone(n),
                last: nodes.last.get(&n.id).and_then(|c| c.for_session(n.session)),
            })
            .collect())
    }

    /// Whether this exact frame was already heard within the window (and remembers it).
    fn seen_recently(&self, phy: &[u8], now: Instant) -> bool {
        let mut recent = self.recent.lock();
        while let Some((at, _)) = recent.order.front() {
            if now.duration_since(*at) < DEDUPE_WINDOW && recent.order.len() < MAX_RECENT_FRAMES {
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
    /// A `PUSH_ACK` means stored: when the store fails, no push of the batch is acknowledged.
    pub fn handle_batch(&self, datagrams: &[&[u8]]) -> Vec<Option<[u8; 4]>> {
        let now = Instant::now();
        let mut accepted = Accepted::default();
        let mut answers = Vec::with_capacity(datagrams.len());
        let mut pushes = Vec::new();
        let mut nodes = self.nodes.lock();
        self.refresh(&mut nodes);
        for datagram in datagrams {
            self.stats.datagram("received");
            let heard = |gateway: &str, what| self.stats.forwarders.heard(gateway, what, now);
            let (ack, gateway, packets, bad) = match semtech::parse(datagram) {
                Ok(semtech::Datagram::Push { ack, gateway, packets, bad, stat }) => {
                    heard(
                        &gateway,
                        forwarders::Heard::Push { uplinks: packets.len() + bad, stat: stat.as_ref() },
                    );
                    (ack, gateway, packets, bad)
                }
                Ok(semtech::Datagram::Pull { ack, gateway }) => {
                    heard(&gateway, forwarders::Heard::Pull);
                    answers.push(Some(ack));
                    continue;
                }
                Ok(semtech::Datagram::TxAck { gateway }) => {
                    if let Some(gateway) = gateway {
                        heard(&gateway, forwarders::Heard::TxAck);
                    }
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
            self.decode_packets(&mut nodes, &gateway, packets, now, &mut accepted);
            pushes.push(answers.len());
            answers.push(Some(ack));
        }
        if !self.store(&mut nodes, &accepted) {
            for i in pushes {
                answers[i] = None;
            }
        }
        self.gauge(&nodes);
        answers
    }

    fn gauge(&self, nodes: &Nodes) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.open_addresses.store(nodes.by_addr.len(), Relaxed);
        self.stats.recent_frames.store(self.recent.lock().order.len(), Relaxed);
    }

    /// Frames from a serial modem (no datagram around them).
    pub fn handle_frames(&self, gateway: &str, packets: Vec<semtech::RxPacket>) {
        let mut accepted = Accepted::default();
        let mut nodes = self.nodes.lock();
        self.refresh(&mut nodes);
        self.decode_packets(&mut nodes, gateway, packets, Instant::now(), &mut accepted);
        self.store(&mut nodes, &accepted);
        self.gauge(&nodes);
    }

    /// Forgets the opened sessions when the registry changed.
    fn refresh(&self, nodes: &mut Nodes) {
        match self.cache.revision() {
            Ok(r) if r != nodes.revision => {
                nodes.forget();
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
        accepted: &mut Accepted,
    ) {
        for packet in packets {
            if packet.phy.len() > MAX_PHY_PAYLOAD {
                self.stats.frame("oversized");
                continue;
            }
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
                    let counter = SessionCounter { session: uplink.node.session, f_cnt: uplink.f_cnt };
                    nodes.last.insert(uplink.node.id, counter);
                    accepted.counters.push((uplink.node.id, counter));
                    let with_status = nodes.status_due(&uplink.node, now);
                    self.messages(&uplink, &packet, gateway, with_status, &mut accepted.messages);
                    accepted.frames.push(packet.phy);
                }
                Err(reject) => {
                    tracing::debug!(reason = reject.as_str(), detail = ?reject, gateway = %gateway, "uplink rejected");
                    self.stats.frame(reject.as_str());
                }
            }
        }
    }

    /// Appends the readings and statuses, and the counters that let them through, in one
    /// transaction. When that fails, what was accepted is undone in memory (counters reloaded
    /// from the database, frames no longer duplicates), so the frames can come again.
    fn store(&self, nodes: &mut Nodes, accepted: &Accepted) -> bool {
        let Accepted { messages, counters, frames } = accepted;
        if counters.is_empty() && messages.is_empty() {
            return true;
        }
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
        match appended {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, frames = frames.len(), "storing decoded uplinks: not acknowledged");
                self.stats.frame("storage");
                nodes.forget();
                let mut recent = self.recent.lock();
                for phy in frames {
                    recent.seen.remove(phy);
                }
                false
            }
        }
    }

    /// The readings of an accepted uplink, and the node's status when `with_status`.
    fn messages(
        &self,
        uplink: &frame::Uplink,
        packet: &semtech::RxPacket,
        gateway: &str,
        with_status: bool,
        out: &mut Vec<(String, String)>,
    ) {
        let Some(base) = &uplink.node.base_topic else { return };
        let codec = uplink.node.codec.as_str();
        if uplink.f_port.is_some_and(|p| p > 0) && !uplink.payload.is_empty() {
            match codec::decode(codec, &uplink.payload) {
                Ok(readings) => {
                    for r in readings {
                        let body = ReadingBody {
                            value: &r.value,
                            value_units: r.units,
                            sub_id: &r.sub_id,
                            unit_id: &uplink.node.dev_eui,
                        };
                        // A struct serialises straight into the text (no map built per reading).
                        let Ok(body) = serde_json::to_string(&body) else { continue };
                        out.push((format!("{base}/{}", r.kind), body));
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, dev_eui = %uplink.node.dev_eui, "payload does not decode");
                    self.stats.frame("codec_error");
                }
            }
        }
        if !with_status {
            return;
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

/// A reading as the neOCampus sensors publish it, fields in their order.
#[derive(serde::Serialize)]
struct ReadingBody<'a> {
    value: &'a serde_json::Value,
    value_units: &'a str,
    #[serde(rename = "subID")]
    sub_id: &'a str,
    #[serde(rename = "unitID")]
    unit_id: &'a str,
}

/// Most datagrams stored in one transaction.
const BATCH: usize = 64;

/// How long the listener keeps collecting datagrams after one arrived, before storing them in
/// one durable commit and acknowledging them. A commit (a disk sync) costs more than decoding a
/// datagram's frames: at 50 datagrams/s this halves the commits, at 500/s it divides them by
/// about fifteen. Well under the 100 ms a Semtech packet forwarder waits for its `PUSH_ACK`
/// (`push_timeout_ms`), with room for a slow SD card's sync. A `lora_pkt_fwd` waits for that
/// `PUSH_ACK` before its next datagram, so what the linger merges are several forwarders'
/// datagrams (its own next one carries the frames heard meanwhile).
pub const COMMIT_LINGER: Duration = Duration::from_millis(30);

/// Reads the datagrams waiting in `socket`, up to [`BATCH`] in `batch`.
fn drain(socket: &UdpSocket, buf: &mut [u8], batch: &mut Vec<(Vec<u8>, std::net::SocketAddr)>) {
    while batch.len() < BATCH {
        match socket.try_recv_from(buf) {
            Ok((n, from)) => batch.push((buf[..n].to_vec(), from)),
            Err(_) => break,
        }
    }
}

/// Serves the Semtech UDP protocol on `socket` until `shutdown`. The datagrams that arrive
/// within [`COMMIT_LINGER`] of a first one are handled with it, in one transaction; each is
/// acknowledged after it is stored.
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
        drain(&socket, &mut buf, &mut batch);
        if batch.len() < BATCH {
            // The next ones wait in the socket's buffer meanwhile (a few kB at these rates), read
            // in one go after: one timer per batch, not a wake-up per datagram. A full batch
            // (a backlog) goes at once.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(COMMIT_LINGER) => {}
            }
            drain(&socket, &mut buf, &mut batch);
        }
        let p = Arc::clone(&pipeline);
        let (datagrams, senders): (Vec<Vec<u8>>, Vec<std::net::SocketAddr>) = batch.into_iter().unzip();
        // Decoding and the batch's commit run on the blocking pool; a panic there (a bug, never
        // an input: the parsers are fuzzed) loses this batch's acks, not the listener.
        let answers = neosens_runtime::blocking::run(move || {
            let refs: Vec<&[u8]> = datagrams.iter().map(Vec::as_slice).collect();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.handle_batch(&refs)))
        })
        .await
        .unwrap_or_else(|_| {
            tracing::error!("handling a batch of datagrams panicked: not acknowledged");
            Vec::new()
        });
        for (from, ack) in senders.into_iter().zip(answers) {
            if let Some(ack) = ack {
                if let Err(e) = socket.send_to(&ack, from).await {
                    tracing::debug!(error = %e, forwarder = %from, "acknowledging a datagram");
                }
            }
        }
    }
}
