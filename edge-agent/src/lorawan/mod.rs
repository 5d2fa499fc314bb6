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

mod accepted;
mod acks;
pub mod adr;
pub mod codec;
pub mod commands;
pub mod downlink;
pub mod forwarders;
pub mod frame;
pub mod join;
mod listener;
pub mod mac;
pub mod modem;
pub mod orders;
mod recent;
pub mod semtech;
mod sessions;

use accepted::Accepted;
pub use listener::{ACK_BUDGET, run};
pub use recent::{DEDUPE_WINDOW, MAX_RECENT_FRAMES, RETRANSMISSION_AFTER};
use recent::{Recency, Recent};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use neosens_runtime::keys::Keys;
use parking_lot::Mutex;

use crate::cache::{Cache, SessionCounter};
use crate::outbox::Outbox;

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
    /// Downlinks by outcome (`ack_scheduled`, `tx_ok`, `rx2_fallback`, `tx_too_late` …).
    pub downlinks: Mutex<BTreeMap<&'static str, u64>>,
    /// Node orders waiting for their nodes, and their outcomes for central.
    pub orders: orders::OrderQueue,
    /// Joins answered here whose sessions the nodes used, for central.
    pub joins: join::JoinReportQueue,
}

impl LoraStats {
    fn frame(&self, outcome: &'static str) {
        *self.frames.lock().entry(outcome).or_default() += 1;
    }
    fn datagram(&self, outcome: &'static str) {
        *self.datagrams.lock().entry(outcome).or_default() += 1;
    }
    fn downlink(&self, outcome: &'static str) {
        *self.downlinks.lock().entry(outcome).or_default() += 1;
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
    downlinks: Mutex<downlink::Scheduler>,
    /// ADR's installation margin, dB (`None`: ADR off).
    adr_margin_db: Option<f64>,
}

/// A map of the pipeline's per-node state. Its keys are registry ids and the device addresses
/// of registered sessions (a frame's unknown address is never inserted), so nothing a
/// neighbour sends chooses them: a fast hasher, seeded per process, instead of SipHash.
type NodeMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Sessions opened so far, by device address, for the registry revision they come from; and
/// the last counter accepted per node (written to the database with each datagram's readings).
/// Both hold nodes of the gateway's scope only (addresses without a node are not kept): sessions
/// for at most [`MAX_OPEN_ADDRESSES`] addresses, a counter per node of the scope. Both are
/// dropped when the registry changes or a store fails (and reopened from the database, which has
/// the counters that were committed).
#[derive(Debug, Default)]
struct Nodes {
    revision: u64,
    /// The cache's registry commits when `revision` was read (`None`: not yet).
    registry_commits: Option<u64>,
    by_addr: NodeMap<u32, Vec<Arc<frame::NodeSession>>>,
    last: NodeMap<neosens_protocol::ids::DeviceId, SessionCounter>,
    /// When each node's status was last relayed (nodes of the scope that sent: bounded by it).
    status_at: NodeMap<neosens_protocol::ids::DeviceId, Instant>,
    /// The last downlink counter used per node (nodes of the scope that asked for an ACK).
    f_cnt_down: NodeMap<neosens_protocol::ids::DeviceId, SessionCounter>,
    /// When each node was last asked for its status (`DevStatusReq`; nodes of the scope that
    /// sent; kept across registry changes, or a change would ask every node again).
    dev_status_at: NodeMap<neosens_protocol::ids::DeviceId, Instant>,
    /// ADR state of each node that sent with ADR on (nodes of the scope; kept across registry
    /// changes like the status requests).
    adr: NodeMap<neosens_protocol::ids::DeviceId, adr::NodeAdr>,
    /// The last batch's lists, emptied, for the next ([`Accepted::recycle`]). A list of
    /// kilobytes allocated afresh per batch had glibc's allocator tidy all the small blocks
    /// freed since the last one (`malloc_consolidate`): a twentieth of the agent's CPU at 50
    /// datagrams/s for the messages, a thirtieth for the counters.
    spare: Accepted,
}

impl Nodes {
    fn forget(&mut self) {
        self.by_addr.clear();
        self.last.clear();
        self.f_cnt_down.clear();
        // A node's next uplink relays its status again (after a registry change, its room or
        // type may have changed; after a failed store, its status was not stored).
        self.status_at.clear();
    }

    /// Whether `node` is to be asked for its status ([`mac::DEV_STATUS_EVERY`]; notes it if so).
    fn dev_status_due(&mut self, node: neosens_protocol::ids::DeviceId, now: Instant) -> bool {
        match self.dev_status_at.get(&node) {
            Some(at) if now.duration_since(*at) < mac::DEV_STATUS_EVERY => false,
            _ => {
                self.dev_status_at.insert(node, now);
                true
            }
        }
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
        Pipeline {
            cache,
            keys,
            outbox,
            stats,
            recent: Mutex::default(),
            nodes: Mutex::default(),
            downlinks: Mutex::default(),
            adr_margin_db: Some(adr::DEFAULT_MARGIN_DB),
        }
    }

    /// The same with ADR at this installation margin (dB), or off.
    pub fn with_adr(mut self, margin_db: Option<f64>) -> Self {
        self.adr_margin_db = margin_db;
        self
    }

    /// Whether this exact frame was already heard within the window (and remembers it).
    fn seen_recently(&self, phy: &[u8], now: Instant) -> Recency {
        self.recent.lock().check(phy, now)
    }

    /// Handles one datagram: the answer to send back (PUSH_ACK, PULL_ACK), if any.
    pub fn handle(&self, datagram: &[u8]) -> Option<[u8; 4]> {
        self.handle_batch(&[datagram]).pop().flatten()
    }

    /// Handles datagrams that arrived together: their uplinks are stored in one transaction
    /// (a durable commit costs more than decoding a frame); returns each one's answer, in order.
    /// A `PUSH_ACK` means stored: when the store fails, no push of the batch is acknowledged.
    /// (Without the senders' addresses: no downlink can be sent; see [`Self::handle_datagrams`].)
    pub fn handle_batch(&self, datagrams: &[&[u8]]) -> Vec<Option<[u8; 4]>> {
        let with: Vec<(&[u8], Option<SocketAddr>)> = datagrams.iter().map(|d| (*d, None)).collect();
        self.handle_datagrams(&with).answers
    }

    /// [`Self::handle_batch`] with each datagram's sender: a `PULL_DATA`'s address is its
    /// forwarder's downlink path, and the batch's downlinks (ACKs of confirmed uplinks, RX2
    /// retries) come back to send after the answers.
    pub fn handle_datagrams(&self, datagrams: &[(&[u8], Option<SocketAddr>)]) -> Handled {
        let now = Instant::now();
        let mut nodes = self.nodes.lock();
        let mut accepted = std::mem::take(&mut nodes.spare);
        // Room for a batch of full datagrams (8 frames, two readings each) made once: grown
        // datagram by datagram, the messages were copied at each doubling.
        accepted.messages.reserve(datagrams.len() * 16);
        let mut answers = Vec::with_capacity(datagrams.len());
        let mut downlinks = Vec::new();
        let mut pushes = Vec::new();
        self.refresh(&mut nodes);
        for (datagram, from) in datagrams {
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
                    heard(&gateway, forwarders::Heard::Pull(*from));
                    answers.push(Some(ack));
                    continue;
                }
                Ok(semtech::Datagram::TxAck { gateway, token, error }) => {
                    if let Some(gateway) = gateway {
                        heard(&gateway, forwarders::Heard::TxAck);
                    }
                    downlinks.extend(self.tx_ack(token, error.as_deref(), now));
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
        let stored = accepted.has_work();
        if self.store(&mut nodes, &accepted) {
            downlinks.extend(self.acks(std::mem::take(&mut accepted.acks), now));
            if !accepted.joins.is_empty() {
                // The nodes' previous sessions end with their joins.
                nodes.forget();
                downlinks.extend(self.join_accepts(std::mem::take(&mut accepted.joins), now));
            }
        } else {
            for i in pushes {
                answers[i] = None;
            }
            // Their frames are not sent: the orders they were to carry wait again.
            for id in accepted.acks.iter().filter_map(|a| a.order.as_ref().map(|o| o.id)) {
                self.stats.orders.put_back(id);
            }
        }
        nodes.spare = accepted.recycle();
        self.gauge(&nodes);
        Handled { answers, downlinks, stored }
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
        let now = Instant::now();
        self.decode_packets(&mut nodes, gateway, packets, now, &mut accepted);
        if self.store(&mut nodes, &accepted) {
            // A serial modem here only receives: its confirmed uplinks are counted as having no
            // downlink path.
            let unsent = self.acks(std::mem::take(&mut accepted.acks), now);
            debug_assert!(unsent.is_empty());
        }
        self.gauge(&nodes);
    }

    /// Forgets the opened sessions when the registry changed.
    fn refresh(&self, nodes: &mut Nodes) {
        let commits = self.cache.registry_commits();
        if nodes.registry_commits == Some(commits) {
            return;
        }
        match self.cache.revision() {
            Ok(r) => {
                nodes.registry_commits = Some(commits);
                if r != nodes.revision {
                    nodes.forget();
                    nodes.revision = r;
                }
            }
            // Read again with the next batch.
            Err(e) => tracing::debug!(error = %e, "reading the registry revision"),
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
        // Two readings a frame is the common case: room made once per datagram, not grown.
        accepted.messages.reserve(packets.len() * 2);
        accepted.counters.reserve(packets.len());
        accepted.frames.reserve(packets.len());
        for packet in packets {
            if packet.phy.len() > MAX_PHY_PAYLOAD {
                self.stats.frame("oversized");
                continue;
            }
            if self.seen_recently(&packet.phy, now) == Recency::Copy {
                self.stats.frame("duplicate");
                continue;
            }
            match frame::decode(&packet.phy, |addr| self.candidates(nodes, addr)) {
                Ok(uplink) if uplink.retransmission => {
                    // Its data went with the first copy: only the ACK it did not hear, again.
                    self.stats.frame("retransmission");
                    self.want_downlink(nodes, &uplink, &packet, gateway, accepted, now);
                }
                Ok(uplink) => {
                    self.stats.frame("decoded");
                    self.stats
                        .mac_command_bytes
                        .fetch_add(uplink.mac_command_bytes as u64, std::sync::atomic::Ordering::Relaxed);
                    self.stats.orders.uplink(&uplink.node.dev_eui, uplink.ack, now);
                    self.stats.joins.used(&uplink.node, uplink.f_cnt, now_ms());
                    self.note_adr(nodes, &uplink, &packet);
                    let counter = SessionCounter { session: uplink.node.session, f_cnt: uplink.f_cnt };
                    nodes.last.insert(uplink.node.id, counter);
                    accepted.counters.push((uplink.node.id, counter));
                    // A DevStatusAns is news: its status goes now.
                    let with_status = nodes.status_due(&uplink.node, now) || uplink.mac.dev_status.is_some();
                    self.messages(&uplink, &packet, gateway, with_status, &mut accepted.messages);
                    self.want_downlink(nodes, &uplink, &packet, gateway, accepted, now);
                    accepted.frames.push(packet.phy);
                }
                Err(frame::Reject::JoinRequest { .. }) => {
                    // Every join request counts as one; what became of it, as another outcome.
                    self.stats.frame("join_request");
                    self.join(nodes, &packet, gateway, accepted, now);
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
        if !accepted.has_work() {
            return true;
        }
        let Accepted { messages, counters, frames, down_counters, joins, .. } = accepted;
        // `{"msg_id":N,` + the rest of the object: no second serialisation.
        let fill = |i: usize, id: u64, topic: &mut String, payload: &mut Vec<u8>| {
            messages.stamp_into(i, id, topic, payload);
        };
        let build = |i: usize, id: u64| {
            let (mut topic, mut payload) = (String::new(), Vec::new());
            fill(i, id, &mut topic, &mut payload);
            (topic, payload)
        };
        // Joins are rare and carry sessions: they commit to redb directly. The rest goes through
        // the outbox's journal (one synced write per batch).
        let appended = if joins.is_empty() {
            self.outbox.append_journaled_into(messages.len(), now_ms(), fill, counters, down_counters)
        } else {
            self.outbox.append_and(messages.len(), now_ms(), build, |txn| {
                crate::cache::write_f_cnts(txn, counters)?;
                crate::cache::write_f_cnt_downs(txn, down_counters)?;
                for join in joins {
                    let (device, local) = join.stored();
                    crate::cache::write_join(txn, device, local)?;
                }
                Ok(())
            })
        };
        match appended {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, frames = frames.len(), "storing decoded uplinks: not acknowledged");
                self.stats.frame("storage");
                nodes.forget();
                let mut recent = self.recent.lock();
                for phy in frames {
                    recent.forget(phy);
                }
                false
            }
        }
    }
}

/// What a batch of datagrams gave: each one's answer (`PUSH_ACK`, `PULL_ACK`), in order, and
/// the downlinks to send after them.
#[derive(Debug, Default)]
pub struct Handled {
    /// Answers, one per datagram.
    pub answers: Vec<Option<[u8; 4]>>,
    /// `PULL_RESP`s.
    pub downlinks: Vec<downlink::Outgoing>,
    /// Whether the batch stored something (its handling included a disk sync).
    pub stored: bool,
}
