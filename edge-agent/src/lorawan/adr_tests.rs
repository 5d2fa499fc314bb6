use super::*;
use lorawan::maccommands::SerializableMacCommand;

fn node_with(snrs: &[f64]) -> NodeAdr {
    let mut node = NodeAdr::default();
    for (i, snr) in snrs.iter().enumerate() {
        node.observe(i as u32, *snr);
    }
    node
}

#[test]
fn data_rates_and_floors() {
    assert_eq!(data_rate("SF12BW125"), Some(0));
    assert_eq!(data_rate("SF7BW125"), Some(5));
    assert_eq!(data_rate("SF7BW250"), Some(6));
    assert_eq!(data_rate("50000"), None);
    assert_eq!((required_snr(0), required_snr(3), required_snr(5)), (-20.0, -12.5, -7.5));
}

/// Each 3 dB of margin above floor and installation margin is a step: data rate first, then
/// power.
#[test]
fn margin_raises_the_data_rate_then_lowers_the_power() {
    // SF12 at +10 dB: 10 + 20 − 10 = 20 dB, 6 steps: DR0 → DR5, then one power step.
    let mut node = node_with(&[10.0]);
    assert_eq!(node.decide(0, DEFAULT_MARGIN_DB), Some(Settings { dr: 5, tx_power_index: 1, nb_trans: 1 }));
    // Two steps at SF9 (DR3), from the best SNR (4 + 12.5 − 10 = 6.5 dB): DR5, same power.
    let mut node = node_with(&[4.0, -2.0]);
    assert_eq!(node.decide(3, DEFAULT_MARGIN_DB), Some(Settings { dr: 5, tx_power_index: 0, nb_trans: 1 }));
    // Less than a step: nothing to ask.
    let mut node = node_with(&[0.0]);
    assert_eq!(node.decide(5, DEFAULT_MARGIN_DB), None);
    // Power never below the lowest.
    let mut node = node_with(&[40.0]);
    assert_eq!(node.decide(5, DEFAULT_MARGIN_DB).map(|s| s.tx_power_index), Some(MAX_TX_POWER_INDEX));
    // No SNR known: nothing.
    assert_eq!(NodeAdr::default().decide(0, DEFAULT_MARGIN_DB), None);
}

/// A negative margin raises the power only with a full history at the current power.
#[test]
fn power_goes_up_only_after_a_full_history() {
    let mut node = node_with(&[30.0]);
    let asked = node.decide(5, DEFAULT_MARGIN_DB).unwrap();
    node.answered(AdrAnswer::from_status(0x07));
    assert_eq!(node.tx_power_index, asked.tx_power_index);
    // Now weak: −5 dB at SF7 is −7.5 below the margin: −2 steps, but the history at this power
    // is not full yet.
    for f_cnt in 100..100 + HISTORY as u32 - 1 {
        node.observe(f_cnt, -5.0);
    }
    let mut weak = node.clone();
    weak.history.retain(|h| h.snr < 0.0);
    assert_eq!(weak.decide(5, DEFAULT_MARGIN_DB), None);
    weak.observe(1000, -5.0);
    let raised = weak.decide(5, DEFAULT_MARGIN_DB).unwrap();
    assert_eq!((raised.dr, raised.tx_power_index), (5, asked.tx_power_index - 2));
}

#[test]
fn nb_trans_follows_the_loss_of_a_full_history() {
    assert_eq!(
        (nb_trans(1, 0.0), nb_trans(3, 4.9), nb_trans(2, 9.9), nb_trans(1, 10.0), nb_trans(1, 30.0)),
        (1, 2, 2, 2, 3)
    );
    // One frame in two lost over a full history: 3 transmissions.
    let mut node = NodeAdr::default();
    for i in 0..HISTORY as u32 {
        node.observe(i * 2, -30.0);
    }
    assert!(node.loss_percent() > 90.0);
    assert_eq!(node.decide(0, DEFAULT_MARGIN_DB).map(|s| s.nb_trans), Some(3));
    // Counters that go back or repeat are not history.
    node.observe(3, 0.0);
    assert_eq!(node.history.len(), HISTORY);
}

#[test]
fn refusals_cap_what_is_asked_next() {
    let mut node = node_with(&[30.0]);
    let asked = node.decide(0, DEFAULT_MARGIN_DB).unwrap();
    assert_eq!(asked.dr, 5);
    node.answered(AdrAnswer::from_status(0b101));
    assert_eq!(node.decide(0, DEFAULT_MARGIN_DB).map(|s| s.dr), Some(4), "data rate refused: one below");
    node.answered(AdrAnswer::from_status(0b011));
    let next = node.decide(0, DEFAULT_MARGIN_DB).unwrap();
    assert!(next.tx_power_index < MAX_TX_POWER_INDEX, "power refused: one above");
    node.answered(AdrAnswer::from_status(0b110));
    assert_eq!(node.decide(0, DEFAULT_MARGIN_DB), None, "mask refused: no more ADR for this node");
    // An answer without a request changes nothing.
    let mut idle = NodeAdr::default();
    idle.answered(AdrAnswer::from_status(0));
    assert!(!idle.given_up);
}

/// The command's bytes: CID 3, DR 5 / TXPower 1, ChMask 0x00ff, ChMaskCntl 6 / NbTrans 1.
#[test]
fn link_adr_req_bytes() {
    let command = Settings { dr: 5, tx_power_index: 1, nb_trans: 1 }.command();
    let mut bytes = vec![command.cid()];
    bytes.extend_from_slice(command.payload_bytes());
    assert_eq!(bytes, [0x03, 0x51, 0xff, 0x00, 0x61]);
}

/// A node that never answers is not asked at every uplink.
#[test]
fn unanswered_requests_back_off() {
    let mut node = node_with(&[30.0]);
    let asked: Vec<bool> = (0..MAX_UNANSWERED + HISTORY as u8 + 1)
        .map(|_| node.decide(0, DEFAULT_MARGIN_DB).is_some())
        .collect();
    let first_quiet = usize::from(MAX_UNANSWERED);
    assert!(asked[..first_quiet].iter().all(|a| *a), "{asked:?}");
    assert!(asked[first_quiet..first_quiet + HISTORY + 1].iter().all(|a| !*a), "{asked:?}");
    assert!(node.decide(0, DEFAULT_MARGIN_DB).is_some(), "then it asks again");
}
