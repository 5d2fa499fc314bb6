//! Adaptive data rate at the gateway, ChirpStack's default algorithm (LoRa, EU868): from the SNR
//! of a node's recent uplinks, the fastest data rate and the lowest power that keep a margin,
//! sent as a `LinkADRReq` in the downlink of an uplink with FCtrl.ADR set.
//!
//! - Per node, the last [`HISTORY`] uplinks: frame counter, SNR, the TX power index in use.
//! - Margin = best SNR − the demodulation floor of the uplink's data rate − the installation
//!   margin (`[lorawan] adr_margin_db`, 10 dB as ChirpStack's default). Each 3 dB is a step: up
//!   one data rate (to DR5, SF7BW125), then down one power index (to 7, MaxEIRP − 14 dB); a
//!   negative step raises the power, only once the history holds [`HISTORY`] uplinks at the
//!   current power (no up/down flapping). The data rate is never lowered: a node lowers it
//!   itself when its `ADRACKReq`s go unanswered.
//! - NbTrans follows the frame loss of a full history (ChirpStack's table).
//! - The channel mask is "all defined channels on" (ChMaskCntl 6, RP002 EU868): the gateway
//!   does not know which channels a node has, and a mask naming an undefined one makes the node
//!   refuse the whole command (LoRaMac-node's `RegionEU868LinkAdrReq` enables every channel with
//!   a frequency for ChMaskCntl 6).
//! - The node's `LinkADRAns` settles the request: accepted, the power and NbTrans are its own;
//!   a refused data rate or power caps what is asked of that node next, a refused mask stops ADR
//!   for it (in memory; an agent restart asks again).
//!
//! The state lives in memory (about 250 bytes per node that sent with ADR on): after a restart
//! the agent assumes the node's power index 0 (maximum), so its first request can only raise
//! the node's power, never lower it below what the measured margin allows.

use std::collections::VecDeque;

/// Uplinks kept per node.
pub const HISTORY: usize = 20;

/// The fastest LoRa 125 kHz data rate of EU868 (SF7BW125).
pub const MAX_DR: u8 = 5;

/// The lowest power of EU868 (TXPower 7: MaxEIRP − 14 dB).
pub const MAX_TX_POWER_INDEX: u8 = 7;

/// ChirpStack's default installation margin, dB.
pub const DEFAULT_MARGIN_DB: f64 = 10.0;

/// Redundancy byte's ChMaskCntl 6: all defined channels on, whatever ChMask says.
const ALL_CHANNELS_ON: u8 = 6 << 4;

/// The EU868 data rate of a LoRa `datr` (`SF12BW125` → 0 … `SF7BW125` → 5, `SF7BW250` → 6).
pub fn data_rate(datr: &str) -> Option<u8> {
    match datr {
        "SF12BW125" => Some(0),
        "SF11BW125" => Some(1),
        "SF10BW125" => Some(2),
        "SF9BW125" => Some(3),
        "SF8BW125" => Some(4),
        "SF7BW125" => Some(5),
        "SF7BW250" => Some(6),
        _ => None,
    }
}

/// The SNR a data rate needs to be demodulated, dB (SX127x: SF7 −7.5 … SF12 −20).
pub fn required_snr(dr: u8) -> f64 {
    -20.0 + 2.5 * f64::from(dr.min(5))
}

/// The settings a node is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Data rate.
    pub dr: u8,
    /// TX power index.
    pub tx_power_index: u8,
    /// Transmissions of each unconfirmed uplink.
    pub nb_trans: u8,
}

impl Settings {
    /// The `LinkADRReq` asking for them.
    pub fn command(&self) -> lorawan::maccommandcreator::LinkADRReqCreator {
        let mut creator = lorawan::maccommandcreator::LinkADRReqCreator::new();
        // Both are within 0..=15 by construction.
        let _ = creator.set_data_rate(self.dr.min(15));
        let _ = creator.set_tx_power(self.tx_power_index.min(15));
        creator.set_channel_mask([0xff, 0x00]).set_redundancy(lorawan::maccommands::Redundancy::new(
            ALL_CHANNELS_ON | self.nb_trans.clamp(1, 15),
        ));
        creator
    }
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    f_cnt: u32,
    snr: f32,
    tx_power_index: u8,
}

/// One node's ADR state.
#[derive(Debug, Clone)]
pub struct NodeAdr {
    history: VecDeque<Seen>,
    tx_power_index: u8,
    nb_trans: u8,
    /// What was asked last, until the node answers.
    pending: Option<Settings>,
    max_dr: u8,
    max_tx_power_index: u8,
    /// The node refused a channel mask: nothing more is asked.
    given_up: bool,
    /// Requests in a row the node did not answer.
    unanswered: u8,
    /// Uplinks to let go by before asking again (after [`MAX_UNANSWERED`]).
    quiet_for: u8,
}

/// Requests in a row a node may leave unanswered (lost downlinks, a stack without ADR) before
/// the gateway stops asking for [`HISTORY`] uplinks: no downlink for every uplink.
pub const MAX_UNANSWERED: u8 = 3;

impl Default for NodeAdr {
    fn default() -> Self {
        NodeAdr {
            history: VecDeque::with_capacity(HISTORY),
            tx_power_index: 0,
            nb_trans: 1,
            pending: None,
            max_dr: MAX_DR,
            max_tx_power_index: MAX_TX_POWER_INDEX,
            given_up: false,
            unanswered: 0,
            quiet_for: 0,
        }
    }
}

/// What a `LinkADRAns` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdrAnswer {
    /// Channel mask accepted.
    pub channel_mask: bool,
    /// Data rate accepted.
    pub data_rate: bool,
    /// Power accepted.
    pub power: bool,
}

impl AdrAnswer {
    /// From the status byte (bit 0 mask, bit 1 data rate, bit 2 power).
    pub fn from_status(status: u8) -> Self {
        AdrAnswer { channel_mask: status & 1 != 0, data_rate: status & 2 != 0, power: status & 4 != 0 }
    }
}

impl NodeAdr {
    /// Notes an uplink (counter, SNR); the oldest of [`HISTORY`] goes.
    pub fn observe(&mut self, f_cnt: u32, snr: f64) {
        if self.history.back().is_some_and(|h| h.f_cnt >= f_cnt) {
            return;
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Seen { f_cnt, snr: snr as f32, tx_power_index: self.tx_power_index });
    }

    /// The node's answer to the last request.
    pub fn answered(&mut self, answer: AdrAnswer) {
        let Some(asked) = self.pending.take() else { return };
        self.unanswered = 0;
        if answer.channel_mask && answer.data_rate && answer.power {
            self.tx_power_index = asked.tx_power_index;
            self.nb_trans = asked.nb_trans;
            return;
        }
        tracing::info!(?answer, ?asked, "a node refused its LinkADRReq");
        if !answer.channel_mask {
            self.given_up = true;
        }
        if !answer.data_rate {
            self.max_dr = asked.dr.saturating_sub(1).min(self.max_dr);
        }
        if !answer.power {
            self.max_tx_power_index = asked.tx_power_index.saturating_sub(1).min(self.max_tx_power_index);
        }
    }

    /// The settings to ask of a node now sending at data rate `dr`, if they differ from what
    /// it uses (noted as pending).
    pub fn decide(&mut self, dr: u8, margin_db: f64) -> Option<Settings> {
        let best = self.history.iter().map(|h| f64::from(h.snr)).fold(f64::NEG_INFINITY, f64::max);
        if self.given_up || !best.is_finite() || dr > MAX_DR {
            return None;
        }
        if self.quiet_for > 0 {
            self.quiet_for -= 1;
            return None;
        }
        if self.pending.is_some() {
            self.unanswered += 1;
            if self.unanswered >= MAX_UNANSWERED {
                tracing::info!(
                    requests = self.unanswered,
                    "a node leaves its LinkADRReqs unanswered: asking again later"
                );
                (self.unanswered, self.pending, self.quiet_for) = (0, None, HISTORY as u8);
                return None;
            }
        }
        let steps = ((best - required_snr(dr) - margin_db) / 3.0).trunc() as i32;
        let full = self.history.iter().filter(|h| h.tx_power_index == self.tx_power_index).count() == HISTORY;
        let nb_trans = nb_trans(self.nb_trans, self.loss_percent());
        let (mut new_dr, mut tx) = (dr, self.tx_power_index);
        if steps > 0 {
            let steps = steps.min(15) as u8;
            let up = steps.min(self.max_dr.saturating_sub(dr));
            new_dr += up;
            tx = tx.saturating_add(steps - up).min(self.max_tx_power_index);
        } else if steps < 0 && full {
            tx = tx.saturating_sub(steps.unsigned_abs().min(15) as u8);
        }
        let wanted = Settings { dr: new_dr, tx_power_index: tx, nb_trans };
        if (new_dr, tx, nb_trans) == (dr, self.tx_power_index, self.nb_trans) {
            self.pending = None;
            return None;
        }
        self.pending = Some(wanted);
        Some(wanted)
    }

    /// Frames lost within a full history, percent (0 until it is full).
    fn loss_percent(&self) -> f64 {
        if self.history.len() < HISTORY {
            return 0.0;
        }
        let lost: u64 = self
            .history
            .iter()
            .zip(self.history.iter().skip(1))
            .map(|(a, b)| u64::from(b.f_cnt.saturating_sub(a.f_cnt).saturating_sub(1)))
            .sum();
        lost as f64 * 100.0 / self.history.len() as f64
    }
}

/// ChirpStack's NbTrans table: by loss (< 5 %, < 10 %, < 30 %, more) and the current NbTrans.
fn nb_trans(current: u8, loss_percent: f64) -> u8 {
    const TABLE: [[u8; 3]; 4] = [[1, 1, 2], [1, 2, 3], [2, 3, 3], [3, 3, 3]];
    let row = match loss_percent {
        l if l < 5.0 => 0,
        l if l < 10.0 => 1,
        l if l < 30.0 => 2,
        _ => 3,
    };
    TABLE[row][usize::from(current.clamp(1, 3) - 1)]
}

#[cfg(test)]
#[path = "adr_tests.rs"]
mod tests;
