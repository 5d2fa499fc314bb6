//! The bodies of `/api/v1/edge/*` as they are on the wire: each fixture is the exact JSON central
//! or the agent wrote before the two shared these types, read and written back byte for byte.

use super::*;
use alloc::string::ToString;
use serde::de::DeserializeOwned;

const DEVICE: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// `text` reads as `expected` and writes back as `text`.
fn same_both_ways<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(text: &str, expected: &T) {
    let read: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(&read, expected, "{text}");
    assert_eq!(serde_json::to_string(expected).unwrap(), text, "written as read");
}

fn refused<T: DeserializeOwned + fmt::Debug>(bad: &[&str]) {
    for text in bad {
        assert!(serde_json::from_str::<T>(text).is_err(), "accepted {text}");
    }
}

#[test]
fn enrolment_request() {
    same_both_ways(r#"{"token":"nse_abc"}"#, &EnrolmentRequest { token: "nse_abc".into() });
    refused::<EnrolmentRequest>(&[r#"{}"#, r#"{"token":1}"#, r#"{"token":"nse_abc","name":"x"}"#]);
}

#[test]
fn enrolment_grant() {
    let grant = EnrolmentGrant {
        gateway_id: DEVICE.into(),
        name: "gw-u4".into(),
        secret: "nsg_s".into(),
        mqtt_username: "gw-0f1e".into(),
        mqtt_password: "pw".into(),
        keys: "ab".repeat(64),
    };
    let text = alloc::format!(
        r#"{{"gateway_id":"{DEVICE}","name":"gw-u4","secret":"nsg_s","mqtt_username":"gw-0f1e","mqtt_password":"pw","keys":"{}"}}"#,
        "ab".repeat(64)
    );
    same_both_ways(&text, &grant);
    // The agent reads a grant without the MQTT password (it derives it from the keys) and with
    // fields a newer central added.
    let older = text.replace(r#""mqtt_password":"pw","#, "");
    let read: EnrolmentGrant = serde_json::from_str(&older).unwrap();
    assert_eq!(read, EnrolmentGrant { mqtt_password: String::new(), ..grant.clone() });
    let newer = text.replace(r#""name""#, r#""site":"ut3","name""#);
    assert_eq!(serde_json::from_str::<EnrolmentGrant>(&newer).unwrap(), grant);
    refused::<EnrolmentGrant>(&[
        &text.replace(r#","keys":"#, r#","k":"#),
        &text.replace(r#""secret":"nsg_s""#, r#""secret":null"#),
        "[]",
    ]);
}

#[test]
fn health_report() {
    let report = HealthReport {
        outbox_depth: 3,
        outbox_oldest_s: 12,
        outbox_dropped: 0,
        version: "0.1.0".into(),
        forwarders: Vec::new(),
        unclaimed: Vec::new(),
        downlinks: Vec::new(),
        local_broker: None,
        config: None,
    };
    same_both_ways(
        r#"{"outbox_depth":3,"outbox_oldest_s":12,"outbox_dropped":0,"version":"0.1.0"}"#,
        &report,
    );
    // A gateway in local-broker mode.
    let with_broker = HealthReport {
        local_broker: Some(LocalBrokerReport {
            running: true,
            accounts: 120,
            host: Some("192.168.1.2".into()),
            port: Some(1883),
        }),
        ..report.clone()
    };
    same_both_ways(
        concat!(
            r#"{"outbox_depth":3,"outbox_oldest_s":12,"outbox_dropped":0,"version":"0.1.0","#,
            r#""local_broker":{"running":true,"accounts":120,"host":"192.168.1.2","port":1883}}"#
        ),
        &with_broker,
    );
    // The settings it runs with.
    let mut effective = crate::gateway_config::ManagedConfig::default();
    effective.agent.status_period_s = Some(60);
    let with_config = HealthReport {
        config: Some(crate::gateway_config::ConfigReport {
            effective,
            overridden: vec!["hal.sensor_period_s".into()],
            rejected: None,
            restart_pending: false,
        }),
        ..report.clone()
    };
    same_both_ways(
        concat!(
            r#"{"outbox_depth":3,"outbox_oldest_s":12,"outbox_dropped":0,"version":"0.1.0","config":{"#,
            r#""effective":{"log":{"filter":null},"agent":{"status_period_s":60},"#,
            r#""lorawan":{"udp_bind":null,"serial_port":null,"serial_baud":null,"serial_protocol":null,"adr":null,"adr_margin_db":null},"#,
            r#""hal":{"status_led":null,"status_led_active_low":null,"i2c_bus":null,"sensors":null,"sensor_period_s":null}},"#,
            r#""overridden":["hal.sensor_period_s"],"rejected":null,"restart_pending":false}}"#
        ),
        &with_config,
    );
    // Node order outcomes, as a gateway reports them.
    let with_downlinks = HealthReport {
        downlinks: vec![DownlinkOutcome {
            dev_eui: "70b3d57ed0000001".into(),
            reference: Some("0a1b2c3d4e5f".into()),
            f_port: Some(10),
            data: "0102".into(),
            confirmed: true,
            state: DownlinkState::NotAcknowledged,
            f_cnt_down: Some(7),
            detail: None,
            age_s: 3,
        }],
        ..report.clone()
    };
    same_both_ways(
        r#"{"outbox_depth":3,"outbox_oldest_s":12,"outbox_dropped":0,"version":"0.1.0","downlinks":[{"dev_eui":"70b3d57ed0000001","reference":"0a1b2c3d4e5f","f_port":10,"data":"0102","confirmed":true,"state":"not_acknowledged","f_cnt_down":7,"detail":null,"age_s":3}]}"#,
        &with_downlinks,
    );
    refused::<HealthReport>(&[
        r#"{"outbox_depth":3,"outbox_oldest_s":12,"outbox_dropped":0,"version":"0.1.0","downlinks":[{"dev_eui":"70b3d57ed0000001","reference":null,"f_port":null,"data":"","confirmed":false,"state":"lost","f_cnt_down":null,"detail":null,"age_s":0}]}"#,
    ]);
    // Central accepts figures a newer agent adds.
    let newer =
        r#"{"outbox_depth":3,"outbox_oldest_s":12,"outbox_dropped":0,"version":"0.1.0","lora_frames":9}"#;
    assert_eq!(serde_json::from_str::<HealthReport>(newer).unwrap(), report);
    refused::<HealthReport>(&[
        r#"{"outbox_depth":-1,"outbox_oldest_s":12,"outbox_dropped":0,"version":"0.1.0"}"#,
        r#"{"outbox_depth":3,"outbox_oldest_s":12,"outbox_dropped":0}"#,
        r#"{"outbox_depth":"3","outbox_oldest_s":12,"outbox_dropped":0,"version":"0.1.0"}"#,
    ]);
}

#[test]
fn health_report_with_forwarders() {
    let forwarder = ForwarderReport {
        eui: "aa555a0000000101".into(),
        silent_s: 4,
        pull_age_s: Some(4),
        stat_age_s: None,
        figures: ForwarderFigures {
            datagrams: 10,
            uplinks: 80,
            rx_received: 90,
            rx_ok: 85,
            rx_forwarded: 85,
            tx_requested: 1,
            tx_emitted: 1,
            ack_ratio: Some(100.0),
            position: Some(ForwarderPosition { latitude: 43.5617, longitude: 1.4689, altitude: 150 }),
        },
    };
    assert!(forwarder.eui_is_valid());
    let report = HealthReport {
        version: "0.2.0".into(),
        forwarders: alloc::vec![forwarder.clone()],
        ..Default::default()
    };
    same_both_ways(
        concat!(
            r#"{"outbox_depth":0,"outbox_oldest_s":0,"outbox_dropped":0,"version":"0.2.0","forwarders":[{"eui":"aa555a0000000101","#,
            r#""silent_s":4,"pull_age_s":4,"stat_age_s":null,"datagrams":10,"uplinks":80,"rx_received":90,"rx_ok":85,"#,
            r#""rx_forwarded":85,"tx_requested":1,"tx_emitted":1,"ack_ratio":100.0,"#,
            r#""position":{"latitude":43.5617,"longitude":1.4689,"altitude":150}}]}"#
        ),
        &report,
    );
    let unclaimed = UnclaimedReport {
        mac: "24:0A:C4:12:34:56".into(),
        last_seen_age_s: 40,
        count: 3,
        source: "192.168.1.7".into(),
        user_agent: Some("ESP32HTTPClient".into()),
    };
    let offline = HealthReport { unclaimed: alloc::vec![unclaimed], ..Default::default() };
    same_both_ways(
        concat!(
            r#"{"outbox_depth":0,"outbox_oldest_s":0,"outbox_dropped":0,"version":"","unclaimed":[{"mac":"24:0A:C4:12:34:56","#,
            r#""last_seen_age_s":40,"count":3,"source":"192.168.1.7","user_agent":"ESP32HTTPClient"}]}"#
        ),
        &offline,
    );
    for bad in ["AA555A0000000101", "aa555a000000010", "aa555a00000001012", "aa555a000000010g", ""] {
        assert!(!ForwarderReport { eui: bad.into(), ..forwarder.clone() }.eui_is_valid(), "{bad}");
    }
    refused::<HealthReport>(&[
        r#"{"outbox_depth":0,"outbox_oldest_s":0,"outbox_dropped":0,"version":"0","forwarders":[{"eui":"aa"}]}"#,
        r#"{"outbox_depth":0,"outbox_oldest_s":0,"outbox_dropped":0,"version":"0","forwarders":{}}"#,
    ]);
}

#[test]
fn deliveries_and_the_answer() {
    let device: DeviceId = DEVICE.parse().unwrap();
    same_both_ways(
        &alloc::format!(r#"{{"devices":["{DEVICE}"]}}"#),
        &Deliveries { devices: alloc::vec![device] },
    );
    same_both_ways(r#"{"devices":[]}"#, &Deliveries { devices: Vec::new() });
    // What the agent sent before (`json!({"devices": ids})`, ids as `DeviceId::to_string`).
    let ids: Vec<String> = alloc::vec![device.to_string()];
    let before = serde_json::to_string(&serde_json::json!({ "devices": ids })).unwrap();
    assert_eq!(serde_json::from_str::<Deliveries>(&before).unwrap().devices, [device]);
    refused::<Deliveries>(&[
        r#"{}"#,
        r#"{"devices":["not-a-uuid"]}"#,
        &alloc::format!(r#"{{"devices":["{DEVICE}"],"gateway":"x"}}"#),
        r#"{"devices":"x"}"#,
    ]);
    same_both_ways(
        r#"{"reported":2,"newly_delivered":1}"#,
        &DeliveriesAnswer { reported: 2, newly_delivered: 1 },
    );
}

#[test]
fn relayed_logs_read_as_json_and_refuse_unknown_fields() {
    let text = r#"{"logs":[{"device":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","received_at_ms":1700000000000,"device_addr":"10.0.0.7","body":"msg=boom&levelno=40"}]}"#;
    let logs: RelayedLogs = serde_json::from_str(text).unwrap();
    assert_eq!(logs.logs[0].device_addr, "10.0.0.7");
    assert_eq!(serde_json::to_string(&logs).unwrap(), text, "written as read");
    refused::<RelayedLogs>(&[
        r#"{"logs":[{"device":"x","received_at_ms":1,"device_addr":"a","body":""}]}"#,
        r#"{"logs":[{"device":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0","received_at_ms":1,"device_addr":"a","body":"","authorization":"Basic eA=="}]}"#,
        r#"{"logs":{}}"#,
    ]);
    same_both_ways(r#"{"stored":1,"refused":0}"#, &RelayedLogsAnswer { stored: 1, refused: 0 });
    assert_eq!(MAX_RELAYED_LOGS, 100, "the doc of RelayedLogs (central's API document) says 100");
}

#[test]
fn codec_names_and_stored_bytes() {
    for (codec, name, index) in [
        (Codec::CayenneLpp, "cayenne_lpp", 0u8),
        (Codec::NeocampusLpp, "neocampus_lpp", 1),
        (Codec::Hex, "hex", 2),
        (Codec::Layout, "layout", 3),
    ] {
        assert_eq!(codec.as_str(), name);
        assert_eq!(codec.to_string(), name);
        assert_eq!(name.parse::<Codec>(), Ok(codec));
        same_both_ways(&alloc::format!("\"{name}\""), &codec);
        // Central's stored sessions hold the variant index: reordering the variants would read
        // every stored node with another codec.
        assert_eq!(postcard::to_allocvec(&codec).unwrap(), [index], "{name}");
        assert_eq!(postcard::from_bytes::<Codec>(&[index]).unwrap(), codec);
    }
    assert_eq!(Codec::CayenneLpp.lpp_format(), Some(crate::lpp::Format::Cayenne));
    assert_eq!(Codec::Hex.lpp_format(), None);
    for bad in ["", "Hex", "cayenne", "cayenne_lpp ", "CayenneLpp"] {
        assert_eq!(bad.parse::<Codec>(), Err(UnknownCodec(bad.into())), "{bad:?}");
    }
    assert!(UnknownCodec("x".into()).to_string().contains("cayenne_lpp"));
    refused::<Codec>(&[r#""CayenneLpp""#, r#""json""#, "0", "null"]);
    assert!(postcard::from_bytes::<Codec>(&[4]).is_err());
}

#[test]
fn join_reports() {
    let report = JoinReports {
        joins: vec![JoinReport {
            device: crate::ids::DeviceId::from_bytes([7; 16]),
            dev_addr: "01234567".into(),
            nwk_s_key: crate::sync::Sealed { nonce: [1; 12], ciphertext: vec![2, 3] },
            app_s_key: crate::sync::Sealed { nonce: [4; 12], ciphertext: vec![5] },
            dev_nonce: 0x8904,
            joined_age_s: 3,
            f_cnt_up: 1,
        }],
    };
    let text = serde_json::to_string(&report).unwrap();
    assert_eq!(serde_json::from_str::<JoinReports>(&text).unwrap(), report, "{text}");
    refused::<JoinReports>(&[r#"{"joins":[{"device":"x"}]}"#, "[]"]);
}
