//! Class A downlinks through the packet forwarders: the ACK of a confirmed uplink (without it a
//! node retransmits, and burns its battery), MAC commands and node orders. LoRaWAN 1.0.x and RP002 EU868: a class A node
//! listens in RX1, [`RECEIVE_DELAY1_US`] after the end of its uplink, on the uplink's frequency
//! and data rate (RX1DROffset 0), then in RX2, one second later, on 869.525 MHz SF12 (DR0).
//!
//! The frame goes out in RX1 through the forwarder that heard the uplink, to the address its
//! `PULL_DATA` keep-alives come from (its downlink path). When the forwarder answers the
//! `PULL_RESP` with a `TX_ACK` error (too late, collision …), the same frame is asked again in
//! RX2. The node's downlink frame counter is stored with the uplink's batch, before the frame
//! leaves: a crash never sends two frames with one counter.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::semtech::{self, TxWindow};

/// RX1 opens this long after the uplink's `tmst` (RECEIVE_DELAY1, 1 s).
pub const RECEIVE_DELAY1_US: u32 = 1_000_000;

/// RX2 opens one second after RX1 (RECEIVE_DELAY2, 2 s).
pub const RECEIVE_DELAY2_US: u32 = 2_000_000;

/// RX2 frequency in EU868 (RP002), MHz.
pub const RX2_FREQUENCY_MHZ: f64 = 869.525;

/// RX2 data rate in EU868 (DR0).
pub const RX2_DATARATE: &str = "SF12BW125";

/// Emission power, dBm (EU868 default max EIRP 16 dBm less a 2 dB antenna gain).
pub const TX_POWER_DBM: i32 = 14;

/// `PULL_RESP`s waiting for their `TX_ACK` at most (a forwarder that never answers, as v1 ones
/// do, only ages them out): what a burst of confirmed uplinks can leave behind, bounded.
pub const MAX_WAITING: usize = 1024;

/// How long a `PULL_RESP` waits for its `TX_ACK` (after RX2 it is too late for anything).
pub const WAIT_FOR_TX_ACK: Duration = Duration::from_secs(3);

/// A forwarder whose last `PULL_DATA` is older than this has no downlink path (keep-alives come
/// every 10 s by default: three missed).
pub const PATH_FRESH_FOR: Duration = Duration::from_secs(30);

/// A datagram to send to a forwarder.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The forwarder's downlink address.
    pub to: SocketAddr,
    /// The `PULL_RESP`.
    pub datagram: Vec<u8>,
}

/// The RX1 window of an uplink heard with this timestamp, frequency and data rate; `None` when
/// the forwarder did not say (RX2 then).
pub fn rx1(tmst: Option<u32>, frequency: Option<f64>, datarate: Option<&str>) -> Option<TxWindow> {
    Some(TxWindow {
        tmst: tmst?.wrapping_add(RECEIVE_DELAY1_US),
        frequency: frequency.filter(|f| f.is_finite() && *f > 0.0)?,
        datarate: datarate.filter(|d| d.starts_with("SF") && d.len() <= 12)?.to_owned(),
        power: TX_POWER_DBM,
    })
}

/// The RX2 window of an uplink heard with this timestamp.
pub fn rx2(tmst: u32) -> TxWindow {
    TxWindow {
        tmst: tmst.wrapping_add(RECEIVE_DELAY2_US),
        frequency: RX2_FREQUENCY_MHZ,
        datarate: RX2_DATARATE.to_owned(),
        power: TX_POWER_DBM,
    }
}

/// The largest PHYPayload RX2 (DR0) carries: MHDR, a MACPayload of M = 59 bytes (RP002), MIC.
pub const MAX_RX2_PHY: usize = 1 + 59 + 4;

/// A `PULL_RESP` sent, waiting for its `TX_ACK`.
#[derive(Debug, Clone)]
struct Waiting {
    sent: Instant,
    /// The same frame in RX2, to ask for if RX1 fails (none for an RX2 attempt).
    fallback: Option<Outgoing>,
    /// What the frame carries, for its sender (the node order in it).
    tag: Option<u64>,
}

/// Tokens and the `PULL_RESP`s waiting for their `TX_ACK`, [`MAX_WAITING`] at most.
#[derive(Debug, Default)]
pub struct Scheduler {
    next_token: u16,
    waiting: HashMap<u16, Waiting>,
    order: VecDeque<(Instant, u16)>,
}

/// What a `TX_ACK` led to.
#[derive(Debug, Clone, PartialEq)]
pub enum TxOutcome {
    /// Scheduled by the forwarder.
    Emitted,
    /// RX1 failed: the same frame asked again in RX2.
    Rx2(Outgoing),
    /// Not scheduled, nothing more to try.
    Failed,
    /// A token this agent is not waiting for (late, or another agent's).
    Unknown,
}

impl Scheduler {
    /// The `PULL_RESP`(s) of `phy` for an uplink heard at `tmst` in `rx1` by the forwarder at
    /// `to`: RX1 now, RX2 kept for a failed RX1 (or RX2 at once when RX1 is unknown; no RX2 for
    /// a frame longer than DR0 carries). `tag` comes back with the forwarder's answer.
    pub fn schedule(
        &mut self,
        to: SocketAddr,
        tmst: Option<u32>,
        rx1: Option<TxWindow>,
        phy: &[u8],
        tag: Option<u64>,
        now: Instant,
    ) -> Option<Outgoing> {
        self.schedule_windows(to, rx1, Some(rx2(tmst?)), phy, tag, now)
    }

    /// [`Self::schedule`] with both windows given (a join-accept's open later).
    pub fn schedule_windows(
        &mut self,
        to: SocketAddr,
        rx1: Option<TxWindow>,
        rx2: Option<TxWindow>,
        phy: &[u8],
        tag: Option<u64>,
        now: Instant,
    ) -> Option<Outgoing> {
        self.expire(now);
        let rx2 = rx2.filter(|_| phy.len() <= MAX_RX2_PHY).map(|window| {
            let rx2_token = self.token();
            Outgoing { to, datagram: semtech::pull_resp(rx2_token, &window, phy) }
        });
        let (first, fallback) = match (rx1, rx2) {
            (Some(window), rx2) => {
                let token = self.token();
                (Outgoing { to, datagram: semtech::pull_resp(token, &window, phy) }, rx2)
            }
            (None, Some(rx2)) => (rx2, None),
            (None, None) => return None,
        };
        self.wait(token_of(&first), Waiting { sent: now, fallback, tag }, now);
        Some(first)
    }

    /// The forwarder's answer to the `PULL_RESP` with `token`, and the tag it was sent with.
    pub fn tx_ack(&mut self, token: u16, error: Option<&str>, now: Instant) -> (TxOutcome, Option<u64>) {
        self.expire(now);
        let Some(waiting) = self.waiting.remove(&token) else { return (TxOutcome::Unknown, None) };
        let tag = waiting.tag;
        let outcome = match (error, waiting.fallback) {
            (None, _) => TxOutcome::Emitted,
            (Some(_), Some(rx2)) => {
                self.wait(token_of(&rx2), Waiting { sent: now, fallback: None, tag }, now);
                TxOutcome::Rx2(rx2)
            }
            (Some(_), None) => TxOutcome::Failed,
        };
        (outcome, tag)
    }

    /// `PULL_RESP`s waiting for their `TX_ACK` now.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn token(&mut self) -> u16 {
        self.next_token = self.next_token.wrapping_add(1);
        self.next_token
    }

    fn wait(&mut self, token: u16, waiting: Waiting, now: Instant) {
        while self.waiting.len() >= MAX_WAITING {
            let Some((_, oldest)) = self.order.pop_front() else { break };
            self.waiting.remove(&oldest);
        }
        self.waiting.insert(token, waiting);
        self.order.push_back((now, token));
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, token)) = self.order.front() {
            if now.saturating_duration_since(at) < WAIT_FOR_TX_ACK {
                break;
            }
            self.order.pop_front();
            if self.waiting.get(&token).is_some_and(|w| w.sent == at) {
                self.waiting.remove(&token);
            }
        }
    }
}

/// The token of a `PULL_RESP` (bytes 1 and 2).
fn token_of(out: &Outgoing) -> u16 {
    u16::from_be_bytes([out.datagram[1], out.datagram[2]])
}

/// The metrics label of a `TX_ACK` error (a forwarder's text is not a label: bounded here).
pub fn tx_error_label(error: &str) -> &'static str {
    match error {
        "TOO_LATE" => "tx_too_late",
        "TOO_EARLY" => "tx_too_early",
        "COLLISION_PACKET" => "tx_collision_packet",
        "COLLISION_BEACON" => "tx_collision_beacon",
        "TX_FREQ" => "tx_frequency",
        "TX_POWER" => "tx_power",
        "GPS_UNLOCKED" => "tx_gps_unlocked",
        _ => "tx_other_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to() -> SocketAddr {
        "127.0.0.1:1700".parse().unwrap()
    }

    fn txpk(out: &Outgoing) -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&out.datagram[4..]).unwrap()["txpk"].clone()
    }

    #[test]
    fn rx1_then_rx2_when_the_forwarder_says_rx1_failed() {
        let mut s = Scheduler::default();
        let now = Instant::now();
        let window = rx1(Some(u32::MAX - 10), Some(868.3), Some("SF9BW125"));
        let first = s.schedule(to(), Some(u32::MAX - 10), window, &[0x60, 1], Some(4), now).unwrap();
        let t = txpk(&first);
        assert_eq!(
            (t["tmst"].as_u64(), t["freq"].as_f64(), t["datr"].as_str()),
            (Some(999_989), Some(868.3), Some("SF9BW125")),
            "wraps"
        );
        let token = u16::from_be_bytes([first.datagram[1], first.datagram[2]]);
        let (TxOutcome::Rx2(second), Some(4)) = s.tx_ack(token, Some("TOO_LATE"), now) else { panic!() };
        let t = txpk(&second);
        assert_eq!(
            (t["tmst"].as_u64(), t["freq"].as_f64(), t["datr"].as_str()),
            (Some(1_999_989), Some(869.525), Some("SF12BW125"))
        );
        let token2 = u16::from_be_bytes([second.datagram[1], second.datagram[2]]);
        assert_eq!(
            s.tx_ack(token2, Some("TOO_LATE"), now),
            (TxOutcome::Failed, Some(4)),
            "after RX2, nothing more"
        );
        assert_eq!(s.tx_ack(token2, None, now), (TxOutcome::Unknown, None), "answered once");
        // An uplink without its frequency goes to RX2 directly; without tmst, nowhere.
        let only_rx2 =
            s.schedule(to(), Some(5), rx1(Some(5), None, Some("SF7BW125")), &[0x60], None, now).unwrap();
        assert_eq!(txpk(&only_rx2)["freq"].as_f64(), Some(869.525));
        assert_eq!(s.schedule(to(), None, None, &[0x60], None, now), None);
        assert_eq!(s.tx_ack(token_of(&only_rx2), None, now), (TxOutcome::Emitted, None));
        // A frame longer than DR0 carries has no RX2: RX1 only, and nothing without it.
        let long = [0x60; MAX_RX2_PHY + 1];
        let window = rx1(Some(5), Some(868.1), Some("SF7BW125"));
        let first = s.schedule(to(), Some(5), window, &long, None, now).unwrap();
        assert_eq!(s.tx_ack(token_of(&first), Some("TOO_LATE"), now), (TxOutcome::Failed, None));
        assert_eq!(s.schedule(to(), Some(5), None, &long, None, now), None);
    }

    /// A forwarder that never answers (protocol v1) leaves nothing behind for long.
    #[test]
    fn waiting_is_bounded_and_expires() {
        let mut s = Scheduler::default();
        let now = Instant::now();
        for _ in 0..MAX_WAITING * 3 {
            s.schedule(to(), Some(1), rx1(Some(1), Some(868.1), Some("SF7BW125")), &[0x60], None, now);
        }
        assert_eq!(s.waiting(), MAX_WAITING);
        s.schedule(to(), Some(1), None, &[0x60], None, now + WAIT_FOR_TX_ACK);
        assert_eq!(s.waiting(), 1, "the old ones expired");
        assert_eq!(tx_error_label("COLLISION_PACKET"), "tx_collision_packet");
        assert_eq!(tx_error_label("something new"), "tx_other_error");
    }
}
