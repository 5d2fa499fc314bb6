//! Packet-forwarder health: what the gateway hears of each Semtech UDP packet forwarder (by
//! gateway EUI): when it last sent anything, its keep-alives (its downlink path), the `stat`
//! figures it sends, its position. Reported to central with the gateway's health, which shows
//! them per gateway and opens an alert when one falls silent — without this a dead concentrator
//! only shows, much later, as many outdated nodes.
//!
//! Bounded: [`MAX_FORWARDERS`] EUIs. Any host of the LAN can send datagrams with any EUI, so a
//! new EUI past the bound is refused (counted in `neosens_edge_lorawan_forwarders_refused`)
//! rather than pushing out a forwarder that was there first; a forwarder silent for
//! [`FORGET_AFTER`] makes room (its alert, at central, stays open until then).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use neosens_protocol::edge::MAX_FORWARDERS;
use neosens_protocol::edge::{ForwarderFigures, ForwarderReport};
use parking_lot::Mutex;

use super::semtech::Stat;

/// A forwarder silent this long is forgotten (a concentrator removed for good; one that comes
/// back is counted again from zero).
pub const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a datagram from a forwarder said.
#[derive(Debug, Clone, Copy)]
pub enum Heard<'a> {
    /// A `PUSH_DATA`: `uplinks` radio packets (`rxpk` entries, readable or not), and its `stat`.
    Push {
        /// `rxpk` entries.
        uplinks: usize,
        /// Its `stat` object, if it carried one.
        stat: Option<&'a Stat>,
    },
    /// A `PULL_DATA` keep-alive, from this address (its downlink path).
    Pull(Option<std::net::SocketAddr>),
    /// A `TX_ACK`.
    TxAck,
}

#[derive(Debug, Clone)]
struct Forwarder {
    last_seen: Instant,
    last_pull: Option<Instant>,
    /// Where its keep-alives come from: where its downlinks go.
    pull_from: Option<std::net::SocketAddr>,
    last_stat: Option<Instant>,
    figures: ForwarderFigures,
}

impl Forwarder {
    fn new(now: Instant) -> Self {
        Forwarder {
            last_seen: now,
            last_pull: None,
            pull_from: None,
            last_stat: None,
            figures: ForwarderFigures::default(),
        }
    }

    fn apply(&mut self, stat: &Stat, now: Instant) {
        self.last_stat = Some(now);
        // Counts since its previous stat: summed (saturating: a hostile neighbour's huge numbers
        // cap, never wrap).
        let add = |total: &mut u64, n: Option<u64>| *total = total.saturating_add(n.unwrap_or(0));
        let f = &mut self.figures;
        add(&mut f.rx_received, stat.rxnb);
        add(&mut f.rx_ok, stat.rxok);
        add(&mut f.rx_forwarded, stat.rxfw);
        add(&mut f.tx_requested, stat.dwnb);
        add(&mut f.tx_emitted, stat.txnb);
        if let Some(ackr) = stat.ackr.filter(|a| a.is_finite()) {
            f.ack_ratio = Some(ackr.clamp(0.0, 100.0));
        }
        if let Some(position) = stat.position() {
            f.position = Some(position);
        }
    }

    fn report(&self, eui: &str, now: Instant) -> ForwarderReport {
        let age = |at: Instant| now.saturating_duration_since(at).as_secs();
        ForwarderReport {
            eui: eui.to_owned(),
            silent_s: age(self.last_seen),
            pull_age_s: self.last_pull.map(age),
            stat_age_s: self.last_stat.map(age),
            figures: self.figures.clone(),
        }
    }
}

/// The packet forwarders heard, by gateway EUI (lowercase hex), [`MAX_FORWARDERS`] at most.
#[derive(Debug, Default)]
pub struct Forwarders {
    by_eui: Mutex<HashMap<String, Forwarder>>,
    refused: AtomicU64,
    /// Woken when a forwarder is heard for the first time (the health report goes at once).
    added: tokio::sync::Notify,
}

impl Forwarders {
    /// Notes a datagram from `eui` at `now`; `false` when the table is full of forwarders heard
    /// more recently than [`FORGET_AFTER`] and `eui` is not one of them (refused, counted).
    pub fn heard(&self, eui: &str, what: Heard<'_>, now: Instant) -> bool {
        let mut map = self.by_eui.lock();
        if !map.contains_key(eui) {
            if map.len() >= MAX_FORWARDERS {
                map.retain(|_, f| now.saturating_duration_since(f.last_seen) < FORGET_AFTER);
            }
            if map.len() >= MAX_FORWARDERS {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            map.insert(eui.to_owned(), Forwarder::new(now));
            self.added.notify_one();
        }
        let Some(f) = map.get_mut(eui) else { return false };
        f.last_seen = f.last_seen.max(now);
        f.figures.datagrams = f.figures.datagrams.saturating_add(1);
        match what {
            Heard::Push { uplinks, stat } => {
                f.figures.uplinks = f.figures.uplinks.saturating_add(uplinks as u64);
                if let Some(stat) = stat {
                    f.apply(stat, now);
                }
            }
            Heard::Pull(from) => {
                f.last_pull = Some(now);
                if from.is_some() {
                    f.pull_from = from;
                }
            }
            Heard::TxAck => {}
        }
        true
    }

    /// Every forwarder heard within [`FORGET_AFTER`], by EUI (the others are forgotten now).
    pub fn report(&self, now: Instant) -> Vec<ForwarderReport> {
        let mut map = self.by_eui.lock();
        map.retain(|_, f| now.saturating_duration_since(f.last_seen) < FORGET_AFTER);
        let mut out: Vec<ForwarderReport> = map.iter().map(|(eui, f)| f.report(eui, now)).collect();
        out.sort_by(|a, b| a.eui.cmp(&b.eui));
        out
    }

    /// Resolves when a forwarder is heard for the first time (or was, since the last call).
    pub async fn new_one(&self) {
        self.added.notified().await;
    }

    /// Where to send `eui` a downlink: the address of its last `PULL_DATA`, if that came
    /// within `fresh`.
    pub fn downlink_path(&self, eui: &str, fresh: Duration, now: Instant) -> Option<std::net::SocketAddr> {
        let map = self.by_eui.lock();
        let f = map.get(eui)?;
        f.last_pull.filter(|at| now.saturating_duration_since(*at) < fresh).and(f.pull_from)
    }

    /// Forwarders known now.
    pub fn len(&self) -> usize {
        self.by_eui.lock().len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// New EUIs refused because the table was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eui(n: usize) -> String {
        format!("{n:016x}")
    }

    #[test]
    fn keep_alives_pushes_and_stats_add_up() {
        let table = Forwarders::default();
        let t0 = Instant::now();
        let stat = Stat {
            rxnb: Some(5),
            rxok: Some(4),
            rxfw: Some(4),
            dwnb: Some(1),
            txnb: Some(1),
            ackr: Some(100.0),
            lati: Some(43.5617),
            long: Some(1.4689),
            alti: Some(150),
        };
        assert!(table.heard("aa555a0000000101", Heard::Pull(None), t0));
        assert!(table.heard("aa555a0000000101", Heard::Push { uplinks: 3, stat: None }, t0));
        let t1 = t0 + Duration::from_secs(30);
        assert!(table.heard("aa555a0000000101", Heard::Push { uplinks: 0, stat: Some(&stat) }, t1));
        assert!(table.heard("aa555a0000000101", Heard::Push { uplinks: 0, stat: Some(&stat) }, t1));
        let report = table.report(t1 + Duration::from_secs(7));
        assert_eq!(report.len(), 1);
        let r = &report[0];
        assert_eq!((r.silent_s, r.pull_age_s, r.stat_age_s), (7, Some(37), Some(7)));
        let f = &r.figures;
        assert_eq!((f.datagrams, f.uplinks), (4, 3));
        assert_eq!((f.rx_received, f.rx_ok, f.rx_forwarded, f.tx_requested, f.tx_emitted), (10, 8, 8, 2, 2));
        assert_eq!(f.ack_ratio, Some(100.0));
        let position =
            neosens_protocol::edge::ForwarderPosition { latitude: 43.5617, longitude: 1.4689, altitude: 150 };
        assert_eq!(f.position, Some(position));
        assert!(r.eui_is_valid());
        // Its downlink path: where its keep-alives come from, while they keep coming.
        let from: std::net::SocketAddr = "192.168.1.20:41000".parse().unwrap();
        assert_eq!(
            table.downlink_path("aa555a0000000101", Duration::from_secs(30), t1),
            None,
            "no address yet"
        );
        table.heard("aa555a0000000101", Heard::Pull(Some(from)), t1);
        assert_eq!(table.downlink_path("aa555a0000000101", Duration::from_secs(30), t1), Some(from));
        assert_eq!(
            table.downlink_path("aa555a0000000101", Duration::from_secs(30), t1 + Duration::from_secs(30)),
            None
        );
        assert_eq!(table.downlink_path("0000000000000009", Duration::from_secs(30), t1), None);
    }

    #[test]
    fn hostile_figures_saturate_and_bad_positions_are_left_out() {
        let table = Forwarders::default();
        let now = Instant::now();
        let huge = Stat {
            rxnb: Some(u64::MAX),
            ackr: Some(f64::NAN),
            lati: Some(123.0),
            long: Some(1.0),
            ..Stat::default()
        };
        table.heard("0000000000000001", Heard::Push { uplinks: usize::MAX, stat: Some(&huge) }, now);
        table.heard("0000000000000001", Heard::Push { uplinks: usize::MAX, stat: Some(&huge) }, now);
        let f = &table.report(now)[0].figures;
        assert_eq!((f.rx_received, f.uplinks), (u64::MAX, u64::MAX));
        assert_eq!((f.ack_ratio, f.position), (None, None), "NaN and a latitude of 123° are not figures");
    }

    /// Past the bound, a new EUI is refused (not one that was there first), until one of those
    /// has been silent for `FORGET_AFTER`.
    #[test]
    fn the_table_is_bounded_and_keeps_the_forwarders_that_came_first() {
        let table = Forwarders::default();
        let t0 = Instant::now();
        for n in 0..MAX_FORWARDERS {
            assert!(table.heard(&eui(n), Heard::Pull(None), t0));
        }
        for n in MAX_FORWARDERS..MAX_FORWARDERS * 10 {
            assert!(!table.heard(&eui(n), Heard::Pull(None), t0 + Duration::from_secs(1)));
        }
        assert_eq!((table.len(), table.refused()), (MAX_FORWARDERS, (MAX_FORWARDERS * 9) as u64));
        assert!(
            table.heard(&eui(0), Heard::Pull(None), t0 + Duration::from_secs(2)),
            "a known one is still heard"
        );
        // All but the first fall silent for a week: a newcomer takes a free place.
        let later = t0 + FORGET_AFTER + Duration::from_secs(1);
        assert!(table.heard(&eui(0), Heard::Pull(None), later));
        assert!(table.heard(&eui(1000), Heard::Pull(None), later));
        let euis: Vec<String> = table.report(later).into_iter().map(|r| r.eui).collect();
        assert_eq!(euis, [eui(0), eui(1000)], "the silent ones are forgotten, the rest sorted");
        assert!(table.report(later + FORGET_AFTER).is_empty());
    }
}
