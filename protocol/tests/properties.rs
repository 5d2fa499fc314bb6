//! Property tests: parse/print round trips, topic matching against a reference, and no panic on
//! any input for every parser of outside bytes.

use neosens_protocol::legacy::{
    Command, CommandValue, ConfigResponse, Credentials, DeviceStatus, ModuleMessage,
};
use neosens_protocol::sync::SyncBatch;
use neosens_protocol::topic::{matches, validate_filter, validate_name};
use neosens_protocol::{DevAddr, DevEui, Eui64, Mac, pyjson, sanitize};
use proptest::prelude::*;
use serde_json::Value;

/// The matching rule of MQTT 3.1.1 §4.7, written as directly as possible over level lists.
fn reference_match(filter: &[&str], topic: &[&str]) -> bool {
    match (filter.split_first(), topic.split_first()) {
        (Some((&"#", _)), _) => true,
        (None, None) => true,
        (Some((&"+", f)), Some((_, t))) => reference_match(f, t),
        (Some((f0, f)), Some((t0, t))) => f0 == t0 && reference_match(f, t),
        _ => false,
    }
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("u4".to_string()),
        Just("302".to_string()),
        Just("device".to_string()),
        Just("$SYS".to_string()),
        "[a-c]{1,2}"
    ]
}

fn filter_level() -> impl Strategy<Value = String> {
    prop_oneof![3 => level(), 1 => Just("+".to_string())]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn mac_round_trips(bytes in any::<[u8; 6]>()) {
        let mac = Mac::from_bytes(bytes);
        prop_assert_eq!(mac.to_string().parse::<Mac>(), Ok(mac));
        prop_assert_eq!(mac.to_firmware_string().parse::<Mac>(), Ok(mac));
        prop_assert_eq!(mac.to_firmware_string().replace(':', "%3A").parse::<Mac>(), Ok(mac));
        prop_assert_eq!(Mac::parse_lenient(&mac.to_string().replace(':', "")), Ok(mac));
        let login = mac.legacy_login();
        prop_assert!(login.starts_with("senso_") && login.len() == 18);
        let mac4 = mac.mac4();
        let tail = format!("{}:{}", &mac4[..2], &mac4[2..]);
        prop_assert!(mac.to_firmware_string().ends_with(&tail));
    }

    #[test]
    fn eui_round_trips(bytes in any::<[u8; 8]>(), addr in any::<[u8; 4]>()) {
        let eui = DevEui::from_be_bytes(bytes);
        prop_assert_eq!(eui.to_string().parse::<DevEui>(), Ok(eui));
        prop_assert_eq!(eui.to_string().to_lowercase().parse::<DevEui>(), Ok(eui));
        prop_assert_eq!(DevEui::from_le_bytes(eui.to_le_bytes()), eui);
        let a = DevAddr::from_be_bytes(addr);
        prop_assert_eq!(a.to_string().parse::<DevAddr>(), Ok(a));
    }

    #[test]
    fn id_parsers_never_panic(s in any::<String>()) {
        let _ = s.parse::<Mac>();
        let _ = Mac::parse_lenient(&s);
        let _ = s.parse::<Eui64>();
        let _ = s.parse::<DevAddr>();
        let _ = neosens_protocol::DeviceUid::guess(&s);
    }

    #[test]
    fn topic_matching_agrees_with_the_reference(
        f in prop::collection::vec(filter_level(), 1..5),
        hash in any::<bool>(),
        t in prop::collection::vec(level(), 1..6),
    ) {
        let mut f = f;
        if hash { f.push("#".into()); }
        let filter = f.join("/");
        let topic = t.join("/");
        prop_assume!(validate_filter(&filter).is_ok() && validate_name(&topic).is_ok());
        let f_levels: Vec<&str> = filter.split('/').collect();
        let t_levels: Vec<&str> = topic.split('/').collect();
        let dollar_guard = topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#'));
        let expected = !dollar_guard && reference_match(&f_levels, &t_levels);
        prop_assert_eq!(matches(&filter, &topic), expected, "{} vs {}", filter, topic);
    }

    #[test]
    fn a_name_matches_itself_and_hash_matches_all(t in prop::collection::vec(level(), 1..6)) {
        let topic = t.join("/");
        prop_assume!(validate_name(&topic).is_ok());
        prop_assert!(matches(&topic, &topic));
        prop_assert_eq!(matches("#", &topic), !topic.starts_with('$'));
    }

    #[test]
    fn topic_validation_never_panics(s in any::<String>()) {
        let _ = validate_filter(&s);
        let _ = validate_name(&s);
        let _ = matches(&s, &s);
    }

    #[test]
    fn sanitize_gives_a_topic_level(s in any::<String>()) {
        let out = sanitize(&s);
        prop_assert!(out.len() <= 64);
        prop_assert!(out.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{:?}", out);
    }

    #[test]
    fn python_json_parses_back_to_the_same_value(v in json_value()) {
        let printed = pyjson::to_string(&v);
        prop_assert!(printed.is_ascii());
        let back: Value = serde_json::from_str(&printed).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn python_float_repr_round_trips(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let mut out = String::new();
        pyjson::write_float_repr(&mut out, f);
        prop_assert_eq!(out.parse::<f64>().unwrap().to_bits(), f.to_bits());
        prop_assert!(out.contains('.') || out.contains('e'), "{}", out);
    }

    #[test]
    fn commands_round_trip(dest in any::<String>(), order in any::<String>(), value in prop::option::of(prop_oneof![any::<i64>().prop_map(CommandValue::Int), any::<String>().prop_map(CommandValue::Text)])) {
        let c = Command { dest, order, value };
        prop_assert_eq!(Command::parse(c.to_legacy_json().as_bytes()), Ok(c));
    }

    #[test]
    fn payload_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = DeviceStatus::parse(&bytes);
        let _ = ModuleMessage::parse(&bytes);
        let _ = Command::parse(&bytes);
        let _ = Credentials::parse(&bytes);
        let _ = ConfigResponse::parse(&bytes);
        let _ = SyncBatch::decode(&bytes);
    }

    #[test]
    fn payload_parsers_never_panic_on_json(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = DeviceStatus::parse(&bytes);
        let _ = ModuleMessage::parse(&bytes);
        let _ = Command::parse(&bytes);
        let _ = Credentials::parse(&bytes);
        let _ = ConfigResponse::parse(&bytes);
        let _ = neosens_protocol::legacy::validate_zones(&v);
    }
}
