use super::*;

const NODE: &str = "70b3d57ed0000001";

fn command(data: &[u8], confirmed: bool, reference: Option<&str>) -> Command {
    Command {
        dev_eui: NODE.into(),
        reference: reference.map(str::to_owned),
        f_port: None,
        data: data.to_vec(),
        confirmed,
    }
}

fn states(q: &OrderQueue, now: Instant) -> Vec<DownlinkState> {
    q.take_outcomes(now).into_iter().map(|o| o.state).collect()
}

#[test]
fn command_topics_and_payloads() {
    assert_eq!(dev_eui_of_topic("u4/302/70B3D57ED0000001/command").as_deref(), Some(NODE));
    assert_eq!(dev_eui_of_topic("u4/302/device/command"), None);
    assert_eq!(dev_eui_of_topic("u4/302/temperature/command"), None);
    assert_eq!(dev_eui_of_topic("u4/302/70b3d57ed0000001"), None);
    assert_eq!(dev_eui_of_topic("70b3d57ed000000g/command"), None);

    // The neOCampus convention: data alone.
    let c = parse_command(NODE.into(), br#"{"data":"0102"}"#).unwrap();
    assert_eq!((c.data, c.f_port, c.confirmed, c.reference), (vec![1, 2], None, false, None));
    // lorawan-server's fields, and central's reference.
    let c = parse_command(NODE.into(), br#"{"data":"","port":10,"confirmed":true,"ref":"a1"}"#).unwrap();
    assert_eq!(
        (c.data.len(), c.f_port, c.confirmed, c.reference.as_deref()),
        (0, Some(10), true, Some("a1"))
    );
    assert_eq!(parse_command(NODE.into(), br#"{"data":"ff","f_port":2}"#).unwrap().f_port, Some(2));

    let bad: &[&[u8]] = &[
        b"",
        b"garbage",
        b"[1]",
        br#"{"order":"reboot"}"#,
        br#"{"data":5}"#,
        br#"{"data":"abc"}"#,
        br#"{"data":"zz"}"#,
        br#"{"data":"00","port":0}"#,
        br#"{"data":"00","port":224}"#,
        br#"{"data":"00","port":"1"}"#,
        br#"{"data":"00","confirmed":"yes"}"#,
        br#"{"data":"00","ref":""}"#,
        br#"{"data":"00","ref":7}"#,
    ];
    for payload in bad {
        assert!(parse_command(NODE.into(), payload).is_err(), "{}", String::from_utf8_lossy(payload));
    }
    let long = format!(r#"{{"data":"{}"}}"#, "00".repeat(MAX_DATA + 1));
    assert!(parse_command(NODE.into(), long.as_bytes()).is_err());
    let long_ref = format!(r#"{{"data":"00","ref":"{}"}}"#, "r".repeat(65));
    assert!(parse_command(NODE.into(), long_ref.as_bytes()).is_err());
}

#[test]
fn an_order_goes_with_the_next_uplink_and_its_outcome_follows() {
    let q = OrderQueue::default();
    let now = Instant::now();
    q.queue(command(&[1, 2], false, Some("r1")), now);
    q.queue(command(&[1, 2], false, Some("r1")), now);
    assert_eq!(q.queued(), 1, "a copy of the same reference (QoS 1 sends again) is one order");
    assert!(q.has(NODE) && !q.has("0000000000000000"));
    // Too large for this data rate: it waits.
    assert_eq!(q.take(NODE, Some(5), 1, 0, now), None);
    let taken = q.take(NODE, Some(5), 51, 7, now).unwrap();
    assert_eq!((taken.f_port, taken.data.as_slice(), taken.confirmed), (5, &[1u8, 2][..], false));
    assert!(!q.has(NODE));
    q.tx_result(taken.id, TxResult::Emitted, now);
    let outcomes = q.take_outcomes(now);
    let got: Vec<_> = outcomes.iter().map(|o| (o.state, o.f_cnt_down, o.f_port)).collect();
    assert_eq!(got, [(DownlinkState::Queued, None, None), (DownlinkState::Sent, Some(7), Some(5))]);
    assert_eq!(outcomes[1].reference.as_deref(), Some("r1"));
    assert_eq!(outcomes[1].data, "0102");
    assert!(q.take_outcomes(now).is_empty(), "reported once");
}

#[test]
fn confirmed_orders_wait_for_the_node_ack() {
    let q = OrderQueue::default();
    let now = Instant::now();
    q.queue(command(b"a", true, None), now);
    q.queue(command(b"b", true, None), now);
    let first = q.take(NODE, None, 51, 1, now).unwrap();
    assert_eq!(first.f_port, 1, "no port given nor known: 1");
    q.tx_result(first.id, TxResult::Emitted, now);
    q.uplink(NODE, true, now);
    assert!(q.take(NODE, None, 51, 2, now).is_some());
    assert_eq!(q.queued(), 0);
    // A forwarder that never answers: the frame counts as emitted after the wait.
    assert_eq!(
        states(&q, now + TX_ACK_WAIT),
        [
            DownlinkState::Queued,
            DownlinkState::Queued,
            DownlinkState::Sent,
            DownlinkState::Acknowledged,
            DownlinkState::Sent,
        ]
    );
    // The next uplink without ACK settles it.
    q.uplink(NODE, false, now + TX_ACK_WAIT);
    assert_eq!(states(&q, now + TX_ACK_WAIT), [DownlinkState::NotAcknowledged]);
}

#[test]
fn failures_are_tried_again_then_given_up() {
    let q = OrderQueue::default();
    let now = Instant::now();
    q.queue(command(b"x", false, None), now);
    for attempt in 0..MAX_ATTEMPTS {
        let taken = q.take(NODE, Some(3), 51, u32::from(attempt), now).expect("back in the queue");
        q.tx_result(taken.id, TxResult::Failed, now);
    }
    assert_eq!(q.queued(), 0);
    assert_eq!(states(&q, now), [DownlinkState::Queued, DownlinkState::Failed]);
    // A frame that was never sent (its batch was not stored) goes back as it was.
    q.queue(command(b"y", false, None), now);
    let taken = q.take(NODE, Some(3), 51, 9, now).unwrap();
    q.put_back(taken.id);
    assert_eq!(q.take(NODE, Some(3), 51, 9, now).map(|t| t.data), Some(b"y".to_vec()));
}

#[test]
fn the_queue_and_the_outcomes_are_bounded() {
    let q = OrderQueue::default();
    let now = Instant::now();
    for i in 0..MAX_PER_NODE + 2 {
        q.queue(command(&[i as u8], false, None), now);
    }
    assert_eq!(q.queued(), MAX_PER_NODE);
    let outcomes = q.take_outcomes(now);
    assert_eq!(outcomes.iter().filter(|o| o.state == DownlinkState::Refused).count(), 2);
    assert!(outcomes.last().unwrap().detail.as_deref().unwrap().contains("queue full"));
    // Across nodes: MAX_QUEUED in all.
    for n in 0..(MAX_QUEUED / MAX_PER_NODE + 4) {
        for _ in 0..MAX_PER_NODE {
            let mut c = command(b"z", false, None);
            c.dev_eui = format!("{n:016x}");
            q.queue(c, now);
        }
    }
    assert_eq!(q.queued(), MAX_QUEUED);
    // Outcomes: the most recent MAX_DOWNLINK_OUTCOMES, the rest counted.
    let outcomes = q.take_outcomes(now);
    assert_eq!(outcomes.len(), MAX_DOWNLINK_OUTCOMES);
    assert!(q.outcomes_dropped() > 0);
    // A failed report puts them back, ahead of newer ones, still bounded.
    q.refuse(NODE, None, "not a node of this gateway", now);
    q.put_back_outcomes(outcomes, now);
    let again = q.take_outcomes(now);
    assert_eq!(again.len(), MAX_DOWNLINK_OUTCOMES);
    assert_eq!(again.last().unwrap().detail.as_deref(), Some("not a node of this gateway"));
}

#[test]
fn orders_expire() {
    let q = OrderQueue::default();
    let now = Instant::now();
    q.queue(command(b"x", false, Some("old")), now);
    let later = now + TIME_TO_LIVE;
    assert_eq!(q.take(NODE, None, 51, 0, later), None);
    let outcomes = q.take_outcomes(later);
    assert_eq!(outcomes.last().map(|o| o.state), Some(DownlinkState::Expired));
    assert_eq!(q.queued(), 0);
    assert_eq!((max_payload("SF12BW125"), max_payload("SF9BW125"), max_payload("SF7BW125")), (51, 115, 222));
    assert_eq!(max_payload("odd"), 51);
}
