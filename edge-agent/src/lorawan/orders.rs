//! Node orders: application downlinks queued at the gateway until the node's next uplink opens
//! its receive windows (class A), and what became of each, kept for central.
//!
//! Orders come as MQTT commands on `<base>/<DevEUI>/command` (spec §6, the neOCampus convention
//! of the TEACH RN2483 application): `{"data": "<hex>"}`, with the fields of the downlink JSON
//! of the LoRaWAN server neOCampus ran (gotthardp/lorawan-server, `doc/JSON.md`): `port`
//! (without it, the port of the node's last uplink, as that server does; `f_port` is read too)
//! and `confirmed` (false by default). Central's orders add `ref`, their reference, which the
//! outcomes repeat. Each order is queued ([`MAX_PER_NODE`] per node, [`MAX_QUEUED`] in all,
//! [`TIME_TO_LIVE`]), goes out in the downlink that answers the node's next uplink, and its
//! steps (queued, sent, acknowledged …) wait here ([`MAX_DOWNLINK_OUTCOMES`]) for the next
//! health report.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use neosens_protocol::edge::{DownlinkOutcome, DownlinkState, MAX_DOWNLINK_OUTCOMES};
use parking_lot::Mutex;

/// Orders queued per node at most (a node takes one per uplink).
pub const MAX_PER_NODE: usize = 8;

/// Orders queued at most, all nodes together.
pub const MAX_QUEUED: usize = 1024;

/// How long an order waits for its node's next uplink (ChirpStack keeps a queue item until it
/// is sent; a day bounds what a node that left leaves behind).
pub const TIME_TO_LIVE: Duration = Duration::from_secs(24 * 3600);

/// Times an order is tried when the forwarder cannot emit it.
pub const MAX_ATTEMPTS: u8 = 3;

/// The largest application payload an order may carry (EU868 DR4–7, RP002: N = 222).
pub const MAX_DATA: usize = 222;

/// How long a sent frame waits for its forwarder's `TX_ACK` before it counts as emitted (a
/// protocol v1 forwarder never answers).
pub const TX_ACK_WAIT: Duration = super::downlink::WAIT_FOR_TX_ACK;

/// An order, as its command gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The node's DevEUI (16 lowercase hex digits, from the topic).
    pub dev_eui: String,
    /// `ref`, ≤ 64 characters.
    pub reference: Option<String>,
    /// `port` (1–223); `None`: the port of the node's last uplink.
    pub f_port: Option<u8>,
    /// The payload.
    pub data: Vec<u8>,
    /// `confirmed`.
    pub confirmed: bool,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not a JSON object with a hex `data`.
    #[error("{0}")]
    Malformed(&'static str),
}

/// The DevEUI a command topic `<base>/<DevEUI>/command` names, lowercase; `None` for any other
/// command topic (a sensor module's, the device's own).
pub fn dev_eui_of_topic(topic: &str) -> Option<String> {
    let level = topic.strip_suffix("/command")?.rsplit('/').next()?;
    (level.len() == 16 && level.bytes().all(|b| b.is_ascii_hexdigit())).then(|| level.to_ascii_lowercase())
}

/// The order a command on a node's topic carries (`dev_eui` from [`dev_eui_of_topic`]).
pub fn parse_command(dev_eui: String, payload: &[u8]) -> Result<Command, CommandError> {
    use CommandError::Malformed;
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|_| Malformed("not JSON"))?;
    let obj = v.as_object().ok_or(Malformed("not a JSON object"))?;
    let text = obj.get("data").and_then(|d| d.as_str()).ok_or(Malformed("no hex \"data\""))?;
    let data = neosens_protocol::hex::decode(text, "data").map_err(|_| Malformed("\"data\" is not hex"))?;
    if data.len() > MAX_DATA {
        return Err(Malformed("\"data\" is longer than 222 bytes"));
    }
    let f_port = match obj.get("port").or_else(|| obj.get("f_port")) {
        None | Some(serde_json::Value::Null) => None,
        Some(p) => Some(
            p.as_u64()
                .filter(|p| (1..=223).contains(p))
                .and_then(|p| u8::try_from(p).ok())
                .ok_or(Malformed("\"port\" is 1 to 223"))?,
        ),
    };
    let confirmed = match obj.get("confirmed") {
        None | Some(serde_json::Value::Null) => false,
        Some(c) => c.as_bool().ok_or(Malformed("\"confirmed\" is true or false"))?,
    };
    let reference = match obj.get("ref") {
        None | Some(serde_json::Value::Null) => None,
        Some(r) => Some(
            r.as_str()
                .filter(|r| !r.is_empty() && r.len() <= 64)
                .ok_or(Malformed("\"ref\" is a string of 1 to 64 characters"))?
                .to_owned(),
        ),
    };
    Ok(Command { dev_eui, reference, f_port, data, confirmed })
}

/// An order taken for a downlink: what goes in the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// Its id, for [`OrderQueue::tx_result`] and [`OrderQueue::put_back`].
    pub id: u64,
    /// FPort.
    pub f_port: u8,
    /// Payload.
    pub data: Vec<u8>,
    /// A confirmed downlink.
    pub confirmed: bool,
}

#[derive(Debug, Clone)]
struct Queued {
    id: u64,
    command: Command,
    queued_at: Instant,
    attempts: u8,
}

#[derive(Debug, Clone)]
struct InFlight {
    order: Queued,
    f_port: u8,
    f_cnt_down: u32,
    since: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    by_node: HashMap<String, VecDeque<Queued>>,
    queued: usize,
    next_id: u64,
    /// Taken for a frame, until its forwarder's answer.
    in_flight: HashMap<u64, InFlight>,
    /// Confirmed and sent, until the node's next uplink (one per node: a node has one frame
    /// out at a time).
    awaiting_ack: HashMap<String, InFlight>,
    outcomes: VecDeque<(Instant, DownlinkOutcome)>,
    outcomes_dropped: u64,
    /// Outcomes recorded since start (tells [`OrderQueue::lock`] that one came).
    recorded: u64,
    /// When everything was last looked at for expiry ([`EXPIRY_EVERY`]).
    expired_at: Option<Instant>,
}

/// How often the whole queue is looked at for expired orders and unanswered frames: a look
/// walks every node's queue, so not at every uplink (a node's own head is checked when taken).
const EXPIRY_EVERY: Duration = Duration::from_secs(1);

/// The queue of node orders, and their outcomes not yet reported.
#[derive(Debug, Default)]
pub struct OrderQueue {
    inner: Mutex<Inner>,
    /// Told when an outcome is recorded: the health report carries it soon.
    news: tokio::sync::Notify,
    /// Told when an order leaves in a frame: its forwarder's silence is settled later.
    taken: tokio::sync::Notify,
}

impl Inner {
    fn outcome(&mut self, now: Instant, command: &Command, state: DownlinkState, sent: Option<(u8, u32)>) {
        self.outcome_with(now, command, state, sent, None);
    }

    fn outcome_with(
        &mut self,
        now: Instant,
        command: &Command,
        state: DownlinkState,
        sent: Option<(u8, u32)>,
        detail: Option<String>,
    ) {
        if self.outcomes.len() >= MAX_DOWNLINK_OUTCOMES {
            self.outcomes.pop_front();
            self.outcomes_dropped += 1;
        }
        self.recorded += 1;
        tracing::info!(dev_eui = %command.dev_eui, reference = command.reference.as_deref(), ?state, "node order");
        let outcome = DownlinkOutcome {
            dev_eui: command.dev_eui.clone(),
            reference: command.reference.clone(),
            f_port: sent.map(|(p, _)| p).or(command.f_port),
            data: neosens_protocol::hex::encode(&command.data),
            confirmed: command.confirmed,
            state,
            f_cnt_down: sent.map(|(_, c)| c),
            detail,
            age_s: 0,
        };
        self.outcomes.push_back((now, outcome));
    }

    fn known(&self, dev_eui: &str, reference: &str) -> bool {
        let same = |c: &Command| c.reference.as_deref() == Some(reference);
        self.by_node.get(dev_eui).is_some_and(|q| q.iter().any(|o| same(&o.command)))
            || self.in_flight.values().any(|f| same(&f.order.command))
            || self.awaiting_ack.get(dev_eui).is_some_and(|f| same(&f.order.command))
    }

    /// Orders past their time to live expire; frames without a forwarder's answer count as
    /// emitted.
    fn expire(&mut self, now: Instant) {
        if self.expired_at.is_some_and(|at| now.saturating_duration_since(at) < EXPIRY_EVERY) {
            return;
        }
        self.expired_at = Some(now);
        let mut expired = Vec::new();
        for queue in self.by_node.values_mut() {
            while queue.front().is_some_and(|o| now.saturating_duration_since(o.queued_at) >= TIME_TO_LIVE) {
                expired.extend(queue.pop_front());
            }
        }
        self.by_node.retain(|_, q| !q.is_empty());
        self.queued -= expired.len();
        for order in expired {
            self.outcome(now, &order.command, DownlinkState::Expired, None);
        }
        let unanswered: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.since) >= TX_ACK_WAIT)
            .map(|(id, _)| *id)
            .collect();
        for id in unanswered {
            self.emitted(id, now);
        }
        let stale: Vec<String> = self
            .awaiting_ack
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.since) >= TIME_TO_LIVE)
            .map(|(node, _)| node.clone())
            .collect();
        for node in stale {
            if let Some(f) = self.awaiting_ack.remove(&node) {
                let sent = Some((f.f_port, f.f_cnt_down));
                self.outcome(now, &f.order.command, DownlinkState::NotAcknowledged, sent);
            }
        }
    }

    /// The expired orders at the head of one node's queue (between two whole looks).
    fn expire_head(&mut self, dev_eui: &str, now: Instant) {
        let Some(queue) = self.by_node.get_mut(dev_eui) else { return };
        let mut expired = Vec::new();
        while queue.front().is_some_and(|o| now.saturating_duration_since(o.queued_at) >= TIME_TO_LIVE) {
            expired.extend(queue.pop_front());
        }
        if queue.is_empty() {
            self.by_node.remove(dev_eui);
        }
        self.queued -= expired.len();
        for order in expired {
            self.outcome(now, &order.command, DownlinkState::Expired, None);
        }
    }

    fn emitted(&mut self, id: u64, now: Instant) {
        let Some(mut f) = self.in_flight.remove(&id) else { return };
        self.outcome(now, &f.order.command, DownlinkState::Sent, Some((f.f_port, f.f_cnt_down)));
        if f.order.command.confirmed {
            f.since = now;
            if let Some(older) = self.awaiting_ack.insert(f.order.command.dev_eui.clone(), f) {
                let sent = Some((older.f_port, older.f_cnt_down));
                self.outcome(now, &older.order.command, DownlinkState::NotAcknowledged, sent);
            }
        }
    }

    fn requeue_front(&mut self, order: Queued) {
        self.queued += 1;
        self.by_node.entry(order.command.dev_eui.clone()).or_default().push_front(order);
    }
}

/// [`OrderQueue::lock`]'s guard.
struct Locked<'a> {
    inner: parking_lot::MutexGuard<'a, Inner>,
    news: &'a tokio::sync::Notify,
    before: u64,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.inner.recorded != self.before {
            self.news.notify_one();
        }
    }
}

/// What the forwarder said of a frame that carried an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxResult {
    /// Emitted.
    Emitted,
    /// Not emitted, nothing more to try for this uplink.
    Failed,
}

impl OrderQueue {
    /// The queue, locked; the reports are told when an outcome was recorded meanwhile.
    fn lock(&self) -> Locked<'_> {
        let inner = self.inner.lock();
        let before = inner.recorded;
        Locked { inner, news: &self.news, before }
    }

    /// Resolves when an outcome was recorded since the last call.
    pub async fn news(&self) {
        self.news.notified().await;
    }

    /// Queues an order (an order whose `ref` is already queued or out is a copy: ignored).
    pub fn queue(&self, command: Command, now: Instant) {
        let mut inner = self.lock();
        inner.expire(now);
        if let Some(r) = &command.reference {
            if inner.known(&command.dev_eui, r) {
                return;
            }
        }
        let held = inner.by_node.get(&command.dev_eui).map_or(0, VecDeque::len);
        if held >= MAX_PER_NODE || inner.queued >= MAX_QUEUED {
            let detail = format!("queue full ({MAX_PER_NODE} per node, {MAX_QUEUED} per gateway)");
            inner.outcome_with(now, &command, DownlinkState::Refused, None, Some(detail));
            return;
        }
        inner.outcome(now, &command, DownlinkState::Queued, None);
        inner.next_id += 1;
        let order = Queued { id: inner.next_id, command, queued_at: now, attempts: 0 };
        inner.queued += 1;
        inner.by_node.entry(order.command.dev_eui.clone()).or_default().push_back(order);
    }

    /// Records a command that could not be queued.
    pub fn refuse(&self, dev_eui: &str, reference: Option<String>, why: &str, now: Instant) {
        let command = Command {
            dev_eui: dev_eui.to_owned(),
            reference,
            f_port: None,
            data: Vec::new(),
            confirmed: false,
        };
        self.lock().outcome_with(now, &command, DownlinkState::Refused, None, Some(why.to_owned()));
    }

    /// An uplink of the node: the confirmed order it was to acknowledge, if any, is settled by
    /// its FCtrl.ACK.
    pub fn uplink(&self, dev_eui: &str, ack: bool, now: Instant) {
        let mut inner = self.lock();
        if let Some(f) = inner.awaiting_ack.remove(dev_eui) {
            let state = if ack { DownlinkState::Acknowledged } else { DownlinkState::NotAcknowledged };
            inner.outcome(now, &f.order.command, state, Some((f.f_port, f.f_cnt_down)));
        }
    }

    /// Whether an order waits for the node.
    pub fn has(&self, dev_eui: &str) -> bool {
        self.lock().by_node.contains_key(dev_eui)
    }

    /// Whether the node's next order fits in `room` bytes (what [`Self::take`] would give).
    pub fn next_fits(&self, dev_eui: &str, room: usize, now: Instant) -> bool {
        let mut inner = self.lock();
        inner.expire(now);
        inner.expire_head(dev_eui, now);
        inner.by_node.get(dev_eui).and_then(VecDeque::front).is_some_and(|o| o.command.data.len() <= room)
    }

    /// The node's next order, if its payload fits in `room` bytes, for the frame with counter
    /// `f_cnt_down`; `last_port` is the port of the uplink that opens the window.
    pub fn take(
        &self,
        dev_eui: &str,
        last_port: Option<u8>,
        room: usize,
        f_cnt_down: u32,
        now: Instant,
    ) -> Option<Taken> {
        let mut inner = self.lock();
        inner.expire(now);
        inner.expire_head(dev_eui, now);
        let queue = inner.by_node.get_mut(dev_eui)?;
        if queue.front()?.command.data.len() > room {
            return None;
        }
        let order = queue.pop_front()?;
        if queue.is_empty() {
            inner.by_node.remove(dev_eui);
        }
        inner.queued -= 1;
        let f_port = order.command.f_port.or(last_port.filter(|p| (1..=223).contains(p))).unwrap_or(1);
        let taken = Taken {
            id: order.id,
            f_port,
            data: order.command.data.clone(),
            confirmed: order.command.confirmed,
        };
        inner.in_flight.insert(order.id, InFlight { order, f_port, f_cnt_down, since: now });
        drop(inner);
        self.taken.notify_one();
        Some(taken)
    }

    /// Puts a taken order back at the head of its node's queue (its frame was not sent).
    pub fn put_back(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(f) = inner.in_flight.remove(&id) {
            inner.requeue_front(f.order);
        }
    }

    /// The forwarder's answer for the frame that carried order `id`.
    pub fn tx_result(&self, id: u64, result: TxResult, now: Instant) {
        let mut inner = self.lock();
        match result {
            TxResult::Emitted => inner.emitted(id, now),
            TxResult::Failed => {
                let Some(mut f) = inner.in_flight.remove(&id) else { return };
                f.order.attempts += 1;
                if f.order.attempts >= MAX_ATTEMPTS {
                    let sent = Some((f.f_port, f.f_cnt_down));
                    inner.outcome(now, &f.order.command, DownlinkState::Failed, sent);
                } else {
                    inner.requeue_front(f.order);
                }
            }
        }
    }

    /// Resolves when an order left in a frame since the last call.
    pub async fn taken(&self) {
        self.taken.notified().await;
    }

    /// Whether frames carrying orders wait for their forwarder's answer.
    pub fn in_flight(&self) -> bool {
        !self.inner.lock().in_flight.is_empty()
    }

    /// Settles what is due at `now`: expired orders, frames whose forwarder never answered.
    pub fn settle(&self, now: Instant) {
        let mut inner = self.lock();
        inner.expired_at = None;
        inner.expire(now);
    }

    /// Orders waiting now (all nodes).
    pub fn queued(&self) -> usize {
        self.lock().queued
    }

    /// Outcomes dropped unreported (more than [`MAX_DOWNLINK_OUTCOMES`] between two reports).
    pub fn outcomes_dropped(&self) -> u64 {
        self.lock().outcomes_dropped
    }

    /// The outcomes to report, oldest first, their ages at `now` (expiring what is due first).
    pub fn take_outcomes(&self, now: Instant) -> Vec<DownlinkOutcome> {
        let mut inner = self.lock();
        inner.expired_at = None;
        inner.expire(now);
        inner
            .outcomes
            .drain(..)
            .map(|(at, mut o)| {
                o.age_s = now.saturating_duration_since(at).as_secs();
                o
            })
            .collect()
    }

    /// Outcomes taken at `taken` whose report failed: kept for the next one (ahead of newer).
    pub fn put_back_outcomes(&self, outcomes: Vec<DownlinkOutcome>, taken: Instant) {
        let mut inner = self.lock();
        let at = |o: &DownlinkOutcome| taken.checked_sub(Duration::from_secs(o.age_s)).unwrap_or(taken);
        for o in outcomes.into_iter().rev() {
            if inner.outcomes.len() >= MAX_DOWNLINK_OUTCOMES {
                inner.outcomes_dropped += 1;
                continue;
            }
            inner.outcomes.push_front((at(&o), o));
        }
    }
}

/// The largest FRMPayload a downlink at this data rate carries (EU868, RP002 `N` with no
/// FOpts): 51 bytes at SF12–SF10, 115 at SF9, 222 at SF8 and SF7.
pub fn max_payload(datarate: &str) -> usize {
    match datarate.split_once("BW").map(|(sf, _)| sf) {
        Some("SF7" | "SF8") => 222,
        Some("SF9") => 115,
        _ => 51,
    }
}

#[cfg(test)]
#[path = "orders_tests.rs"]
mod tests;
