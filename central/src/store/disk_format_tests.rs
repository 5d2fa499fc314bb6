//! The bytes central keeps on disk, pinned: one fixed value of every kind of record the store
//! writes, its postcard encoding as a hex literal, and the literal decoded back.
//!
//! Why: postcard encodes whatever serde is told, and the records' serde attributes are one edit
//! away from anyone's hands (the API has its own JSON forms in `http/api/schema`, so there is no
//! reason to touch them for a client, but the reason is not a guarantee). An attribute added for the API can change the disk format without a compiler error or
//! a failing round-trip test: `skip_serializing_if` drops a field from the bytes (the next read
//! then takes the following field for it), `with`/`serialize_with` or a changed field type writes
//! other bytes, `flatten` does not encode and an internally tagged enum does not decode, reordered
//! fields or enum variants shift every byte after them. A database written by the previous build
//! would then no longer load. Field and variant *names* are not in postcard's bytes (a field is its
//! position, a variant its index): `rename`/`rename_all` for the API are safe and pass here.
//!
//! When a test here fails:
//! - If the change was not meant to touch the disk (an attribute for the API), undo it, or move
//!   the API concern to a view type in `http/api` that converts from the record.
//! - If the format change is deliberate, **never just paste the new hex**: old databases still hold
//!   the old bytes. Keep the previous shape as a `…V<n>` type (as `DeviceV2`, `GatewayV2`), bump
//!   [`SCHEMA_VERSION`](super::SCHEMA_VERSION), add the step to `RedbStore::migrate` in
//!   `redb_store.rs` (a `reencode::<Old, New>` of the table), pin the old type's bytes here next to
//!   the new ones, and only then update the record's literal.
//!
//! A new variant of `Record` or of a stored enum does not compile here until its bytes are pinned.
//! The device histories and alerts are pinned next door, in `disk_format_history_tests.rs`, and
//! the earlier schemas `RedbStore::migrate` reads in `disk_format_migration_tests.rs`.
//! Outside postcard, and so outside these tests: the `meta` table (redb `u64`s), table keys (redb
//! `[u8; 16]`, `u64`, `([u8; 16], u64)`) and user settings (the dashboard's JSON text as is).

use std::fmt::Debug;

use neosens_protocol::DeviceUid;
use neosens_protocol::gateway_config::{ManagedAgent, ManagedConfig, ManagedHal, ManagedLog, ManagedLorawan};
use neosens_protocol::hex;
use neosens_protocol::ids::{
    BuildingId, DevAddr, DevEui, DeviceId, DeviceTypeId, GatewayId, Mac, RoomId, SiteId,
};
use neosens_protocol::sync::Sealed;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::ChangeEntry;
use super::redb_store::encode;
use crate::model::{
    AlertKind, Building, Codec, Device, DeviceSecret, DeviceType, DeviceTypeV3, Enrolment, EntityKind,
    Gateway, GatewayCredentials, GatewayScope, GatewaySettings, GatewaySettingsV9, GatewayV8, GatewayV9,
    LastJoin, LocalBroker, LorawanSession, MqttEndpoint, OtaaKeys, Record, Role, Room, RoomTopic, RuleOp,
    RuleValue, Site, StatusRule, Timestamp,
};

/// 2021-05-06T08:52:13.394Z: every fixture's "when", give or take a few seconds.
pub(super) const T0: i64 = 1_620_291_133_394;

pub(super) fn at(offset_ms: i64) -> Timestamp {
    Timestamp(T0 + offset_ms)
}

/// A fixed 16-byte id: `tag` repeated, last byte 1 (so no id is all one byte).
pub(super) fn key(tag: u8) -> [u8; 16] {
    let mut k = [tag; 16];
    k[15] = 1;
    k
}

pub(super) fn sealed(tag: u8, len: u8) -> Sealed {
    Sealed { nonce: [tag; 12], ciphertext: (0..len).map(|i| tag ^ i).collect() }
}

/// Hex of `value` as the store encodes it.
fn stored_hex<T: Serialize>(value: &T) -> String {
    hex::encode(&encode(value).expect("the fixture encodes"))
}

/// The pinned bytes, decoded as the store decodes them.
pub(super) fn decode_pinned<T: DeserializeOwned>(name: &str, pinned: &str) -> T {
    let bytes = hex::decode(pinned, "pinned bytes").expect("the pinned literal is hex");
    postcard::from_bytes(&bytes).unwrap_or_else(|e| {
        panic!("{name}: the pinned bytes no longer decode ({e}) — see disk_format_tests.rs")
    })
}

#[track_caller]
pub(super) fn assert_same_hex(name: &str, now: &str, pinned: &str) {
    assert!(
        now == pinned,
        "{name}: the stored bytes changed — read the note at the top of disk_format_tests.rs\n\
         pinned: {pinned}\n\
         now:    {now}"
    );
}

/// `value` encodes to `pinned`, and `pinned` decodes to `value`.
#[track_caller]
pub(super) fn assert_pinned<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    name: &str,
    value: &T,
    pinned: &str,
) {
    assert_same_hex(name, &stored_hex(value), pinned);
    assert_eq!(decode_pinned::<T>(name, pinned), *value, "{name}: the pinned bytes decode to another value");
}

/// Bytes of a registry record as `Store::apply` writes it (exhaustive: a new kind of record does
/// not compile until it is pinned).
pub(super) fn record_hex(record: &Record) -> String {
    match record {
        Record::Site(r) => stored_hex(r),
        Record::Building(r) => stored_hex(r),
        Record::Room(r) => stored_hex(r),
        Record::DeviceType(r) => stored_hex(r),
        Record::Device(r) => stored_hex(r.as_ref()),
        Record::Gateway(r) => stored_hex(r.as_ref()),
        Record::User(r) => stored_hex(r),
        Record::Token(r) => stored_hex(r),
    }
}

/// A registry record read back from its table, as `Store::load` reads each one.
pub(super) fn record_from(kind: EntityKind, name: &str, pinned: &str) -> Record {
    match kind {
        EntityKind::Site => Record::Site(decode_pinned(name, pinned)),
        EntityKind::Building => Record::Building(decode_pinned(name, pinned)),
        EntityKind::Room => Record::Room(decode_pinned(name, pinned)),
        EntityKind::DeviceType => Record::DeviceType(decode_pinned(name, pinned)),
        EntityKind::Device => Record::Device(Box::new(decode_pinned(name, pinned))),
        EntityKind::Gateway => Record::Gateway(Box::new(decode_pinned(name, pinned))),
        EntityKind::User => Record::User(decode_pinned(name, pinned)),
        EntityKind::Token => Record::Token(decode_pinned(name, pinned)),
    }
}

#[track_caller]
pub(super) fn assert_record_pinned(name: &str, record: Record, pinned: &str) {
    assert_same_hex(name, &record_hex(&record), pinned);
    assert_eq!(
        record_from(record.kind(), name, pinned),
        record,
        "{name}: the pinned bytes decode to another value"
    );
}

/// Every pinned registry record, decoded: what another backend must store and give back
/// unchanged (the PostgreSQL store's tests put each one and read it back).
pub(super) fn pinned_records() -> Vec<Record> {
    use super::disk_format_access_tests::{TOKEN, USER};
    [
        (EntityKind::Site, "SITE", SITE),
        (EntityKind::Building, "BUILDING", BUILDING),
        (EntityKind::Room, "ROOM_DERIVED", ROOM_DERIVED),
        (EntityKind::Room, "ROOM_IMPORTED", ROOM_IMPORTED),
        (EntityKind::DeviceType, "DEVICE_TYPE", DEVICE_TYPE),
        (EntityKind::Device, "DEVICE_ETHERNET", DEVICE_ETHERNET),
        (EntityKind::Device, "DEVICE_LORAWAN", DEVICE_LORAWAN),
        (EntityKind::Device, "DEVICE_OTAA", DEVICE_OTAA),
        (EntityKind::Device, "DEVICE_UUID", DEVICE_UUID),
        (EntityKind::Gateway, "GATEWAY_SITE_ENROLLED", GATEWAY_SITE_ENROLLED),
        (EntityKind::Gateway, "GATEWAY_BUILDINGS_PENDING", GATEWAY_BUILDINGS_PENDING),
        (EntityKind::User, "USER", USER),
        (EntityKind::Token, "TOKEN", TOKEN),
    ]
    .into_iter()
    .map(|(kind, name, pinned)| record_from(kind, name, pinned))
    .collect()
}

// ---------------------------------------------------------------------------------------------
// Registry records (`Store::apply`, one table per kind, synced through the change log)

const SITE: &str =
    "10515151515151515151515151515151010375743318556e69766572736974c3a920546f756c6f7573652049494901";
const BUILDING: &str = "10b1b1b1b1b1b1b1b1b1b1b1b1b1b1b10110515151515151515151515151515151010255340000";
const ROOM_DERIVED: &str =
    "107070707070707070707070707070700110b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1010332303402545000";
const ROOM_IMPORTED: &str = concat!(
    "107070707070707070707070707070700110b1b1b1b1b1b1b1b1b1b1b1b1b1b1b10103323034025450010c75342f6361",
    "6d707573666162",
);

#[test]
fn locations_are_pinned() {
    let site = Site {
        id: SiteId::from_bytes(key(0x51)),
        slug: "ut3".into(),
        name: "Université Toulouse III".into(),
        is_default: true,
    };
    assert_record_pinned("SITE", Record::Site(site), SITE);
    let building = Building {
        id: BuildingId::from_bytes(key(0xb1)),
        site: SiteId::from_bytes(key(0x51)),
        name: "U4".into(),
        description: String::new(),
        outside: false,
    };
    assert_record_pinned("BUILDING", Record::Building(building), BUILDING);
    let room = |topic| Room {
        id: RoomId::from_bytes(key(0x70)),
        building: BuildingId::from_bytes(key(0xb1)),
        name: "204".into(),
        description: "TP".into(),
        topic,
    };
    assert_record_pinned("ROOM_DERIVED", Record::Room(room(RoomTopic::Derived)), ROOM_DERIVED);
    let imported = room(RoomTopic::Imported("u4/campusfab".into()));
    assert_record_pinned("ROOM_IMPORTED", Record::Room(imported), ROOM_IMPORTED);
}

const DEVICE_TYPE: &str = concat!(
    "10d7d7d7d7d7d7d7d7d7d7d7d7d7d7d701056573703332146e654f43616d707573204553503332206e6f646501107b22",
    "74797065223a226172726179227d880e982a0306737461747573067265626f6f74097265696e7374616c6c04086c6f77",
    "5f6865617004686561700201000000002088d3400b6e6f745f72756e6e696e670673746174757301020772756e6e696e",
    "6704666c6167026f6b000300056e6f5f6677086669726d7761726506000101010100080106616e616c6f670000010001",
    "000000000000f03f000000000000000000020d616e616c6f675f6f75747075740000010001000000000000f03f000000",
    "00000000000003076469676974616c0000010001000000000000f03f000000000000000000040e6469676974616c5f6f",
    "75747075740000010001000000000000f03f000000000000000000050a6c756d696e6f73697479036c75780002000100",
    "0000000000f03f000000000000000000060870726573656e63650000010001000000000000f03f000000000000000000",
    "07096672657175656e637906706572732f6a00020001000000000000f03f000000000000000000080b74656d70657261",
    "747572650763656c7369757300010101000000000000d03f00000000000034400102",
);

/// The device type as schema 3 stored it, read by `RedbStore::migrate`.
const DEVICE_TYPE_V3: &str = concat!(
    "10d7d7d7d7d7d7d7d7d7d7d7d7d7d7d701056573703332146e654f43616d707573204553503332206e6f646501107b22",
    "74797065223a226172726179227d880e982a0306737461747573067265626f6f74097265696e7374616c6c04086c6f77",
    "5f6865617004686561700201000000002088d3400b6e6f745f72756e6e696e670673746174757301020772756e6e696e",
    "6704666c6167026f6b000300056e6f5f6677086669726d776172650600",
);

#[test]
fn device_types_are_pinned() {
    let rule =
        |name: &str, field: &str, op, value| StatusRule { name: name.into(), field: field.into(), op, value };
    let device_type = DeviceType {
        id: DeviceTypeId::from_bytes(key(0xd7)),
        name: "esp32".into(),
        description: "neOCampus ESP32 node".into(),
        config_schema: Some(r#"{"type":"array"}"#.into()),
        status_period_s: 1800,
        outdated_after_s: 5400,
        orders: vec!["status".into(), "reboot".into(), "reinstall".into()],
        status_rules: vec![
            rule("low_heap", "heap", RuleOp::Lt, RuleValue::Number(20000.5)),
            rule("not_running", "status", RuleOp::Ne, RuleValue::Text("running".into())),
            rule("flag", "ok", RuleOp::Eq, RuleValue::Bool(false)),
            rule("no_fw", "firmware", RuleOp::Missing, RuleValue::None),
        ],
        payload_layout: None,
    };
    let v3 = DeviceTypeV3 {
        id: device_type.id,
        name: device_type.name.clone(),
        description: device_type.description.clone(),
        config_schema: device_type.config_schema.clone(),
        status_period_s: device_type.status_period_s,
        outdated_after_s: device_type.outdated_after_s,
        orders: device_type.orders.clone(),
        status_rules: device_type.status_rules.clone(),
    };
    assert_pinned("DEVICE_TYPE_V3", &v3, DEVICE_TYPE_V3);
    let mut layout = neosens_protocol::layout::neocampus_lpp();
    layout.records.truncate(8);
    let device_type = DeviceType { payload_layout: Some(layout), ..device_type };
    assert_record_pinned("DEVICE_TYPE", Record::DeviceType(device_type), DEVICE_TYPE);
}

const DEVICE_ETHERNET: &str = concat!(
    "10dedededededededededededededede0100240ac412345610d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7010b68616c6c2073",
    "656e736f720210707070707070707070707070707070011071717171717171717171717171717101012a5b7b226d6f64",
    "756c65223a2274656d7065726174757265222c22756e6974223a226175746f5f30227d5d01106d7174742e6578616d70",
    "6c652e6f7267b345166e656f73656e736f725f3234306163343132333435365a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5e5e5e5e5e5e5e5e5e5e5e5e035e5f5c0101a038a4ff848ea85ef48e858ea85e0000",
);
const DEVICE_LORAWAN: &str = concat!(
    "10dedededededededededededededede010170b3d57ed000000110d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7010b68616c6c",
    "2073656e736f720210707070707070707070707070707070011071717171717171717171717171717101012a5b7b226d",
    "6f64756c65223a2274656d7065726174757265222c22756e6974223a226175746f5f30227d5d00166e656f73656e736f",
    "725f3234306163343132333435365a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5e5e",
    "5e5e5e5e5e5e5e5e5e5e035e5f5c0000a4ff848ea85ef48e858ea85e0126011bda4e4e4e4e4e4e4e4e4e4e4e4e034e4f",
    "4ca9a9a9a9a9a9a9a9a9a9a9a903a9a8ab9221010100",
);
const DEVICE_OTAA: &str = concat!(
    "10dedededededededededededededede010170b3d57ed000000210d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7010b68616c6c",
    "2073656e736f720210707070707070707070707070707070011071717171717171717171717171717101012a5b7b226d",
    "6f64756c65223a2274656d7065726174757265222c22756e6974223a226175746f5f30227d5d00166e656f73656e736f",
    "725f3234306163343132333435365a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5e5e",
    "5e5e5e5e5e5e5e5e5e5e035e5f5c0000a4ff848ea85ef48e858ea85e000170b3d57ed000000aaaaaaaaaaaaaaaaaaaaa",
    "aaaa03aaaba80001849202c49e858ea85e",
);
const DEVICE_UUID: &str = concat!(
    "10dedededededededededededededede01020d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0110d7d7d7d7d7d7d7d7d7d7d7d7d7",
    "d7d7010b68616c6c2073656e736f72021070707070707070707070707070707001107171717171717171717171717171",
    "7101012a5b7b226d6f64756c65223a2274656d7065726174757265222c22756e6974223a226175746f5f30227d5d0016",
    "6e656f73656e736f725f3234306163343132333435365a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
    "5a5a5a5a5a5a5e5e5e5e5e5e5e5e5e5e5e5e035e5f5c0000a4ff848ea85ef48e858ea85e0000",
);

pub(super) fn device(uid: DeviceUid) -> Device {
    Device {
        id: DeviceId::from_bytes(key(0xde)),
        uid,
        device_type: DeviceTypeId::from_bytes(key(0xd7)),
        description: "hall sensor".into(),
        rooms: vec![RoomId::from_bytes(key(0x70)), RoomId::from_bytes(key(0x71))],
        enabled: true,
        config: r#"[{"module":"temperature","unit":"auto_0"}]"#.into(),
        mqtt: None,
        login: "neosensor_240ac4123456".into(),
        secret: DeviceSecret { hash: [0x5a; 32], sealed: sealed(0x5e, 3) },
        credentials_delivered: false,
        outdated_after_s: None,
        created_at: at(0),
        updated_at: at(1_000),
        lorawan: None,
        otaa: None,
    }
}

#[test]
fn devices_are_pinned() {
    let ethernet = Device {
        mqtt: Some(MqttEndpoint { server: "mqtt.example.org".into(), port: 8883 }),
        credentials_delivered: true,
        outdated_after_s: Some(7200),
        ..device(DeviceUid::Ethernet(Mac::from_bytes([0x24, 0x0a, 0xc4, 0x12, 0x34, 0x56])))
    };
    assert_record_pinned("DEVICE_ETHERNET", Record::Device(Box::new(ethernet)), DEVICE_ETHERNET);
    let lorawan = Device {
        lorawan: Some(LorawanSession {
            dev_addr: DevAddr::from_be_bytes([0x26, 0x01, 0x1b, 0xda]),
            nwk_s_key: sealed(0x4e, 3),
            app_s_key: sealed(0xa9, 3),
            f_cnt_up: 4242,
            relax_f_cnt: true,
            codec: Codec::NeocampusLpp,
        }),
        ..device(DeviceUid::Lorawan(DevEui::from_be_bytes([0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 1])))
    };
    assert_record_pinned("DEVICE_LORAWAN", Record::Device(Box::new(lorawan)), DEVICE_LORAWAN);
    let uuid = device(DeviceUid::Uuid(Uuid::from_bytes(key(0x0d))));
    assert_record_pinned("DEVICE_UUID", Record::Device(Box::new(uuid)), DEVICE_UUID);
    let otaa = Device {
        otaa: Some(OtaaKeys {
            join_eui: [0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 0x0a],
            app_key: sealed(0xaa, 3),
            codec: Codec::CayenneLpp,
            last_join: Some(LastJoin { dev_nonce: 0x8904, at: at(2_000) }),
        }),
        ..device(DeviceUid::Lorawan(DevEui::from_be_bytes([0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 2])))
    };
    assert_record_pinned("DEVICE_OTAA", Record::Device(Box::new(otaa)), DEVICE_OTAA);
}

const GATEWAY_V8_SITE_ENROLLED: &str = concat!(
    "109a9a9a9a9a9a9a9a9a9a9a9a9a9a9a010567772d7534001051515151515151515151515151515101a4ff848ea85e01",
    "c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c0c0c0c0c0c0c0c0c0c0c0c003c0c1c2",
    "cbcbcbcbcbcbcbcbcbcbcbcb03cbcac9e4a88c8ea85e00",
);
/// Schema 9: the settings after the enrolment (here none).
const GATEWAY_V9_SITE_ENROLLED: &str = concat!(
    "109a9a9a9a9a9a9a9a9a9a9a9a9a9a9a010567772d7534001051515151515151515151515151515101a4ff848ea85e01",
    "c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c0c0c0c0c0c0c0c0c0c0c0c003c0c1c2",
    "cbcbcbcbcbcbcbcbcbcbcbcb03cbcac9e4a88c8ea85e0000",
);
const GATEWAY_V8_BUILDINGS_PENDING: &str = concat!(
    "109b9b9b9b9b9b9b9b9b9b9b9b9b9b9b010867772d75332d7534010210b1b1b1b1b1b1b1b1b1b1b1b1b1b1b10110b2b2",
    "b2b2b2b2b2b2b2b2b2b2b2b2b201a4ff848ea85e0001e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7",
    "e7e7e7e7e7e7a4efb7e0a85e",
);
/// Schema 9: in local-broker mode (`gw.local:1883`).
const GATEWAY_V9_BUILDINGS_PENDING: &str = concat!(
    "109b9b9b9b9b9b9b9b9b9b9b9b9b9b9b010867772d75332d7534010210b1b1b1b1b1b1b1b1b1b1b1b1b1b1b10110b2b2",
    "b2b2b2b2b2b2b2b2b2b2b2b2b201a4ff848ea85e0001e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7",
    "e7e7e7e7e7e7a4efb7e0a85e010867772e6c6f63616cdb0e",
);

/// Schema 10: the agent's settings after the local broker (here none).
const GATEWAY_SITE_ENROLLED: &str = concat!(
    "109a9a9a9a9a9a9a9a9a9a9a9a9a9a9a010567772d7534001051515151515151515151515151515101a4ff848ea85e01",
    "c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c0c0c0c0c0c0c0c0c0c0c0c003c0c1c2",
    "cbcbcbcbcbcbcbcbcbcbcbcb03cbcac9e4a88c8ea85e000000000000000000000000000000",
);
/// Schema 10: in local-broker mode, with agent settings.
const GATEWAY_BUILDINGS_PENDING: &str = concat!(
    "109b9b9b9b9b9b9b9b9b9b9b9b9b9b9b010867772d75332d7534010210b1b1b1b1b1b1b1b1b1b1b1b1b1b1b10110b2b2",
    "b2b2b2b2b2b2b2b2b2b2b2b2b201a4ff848ea85e0001e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7",
    "e7e7e7e7e7e7a4efb7e0a85e010867772e6c6f63616cdb0e01056465627567013c01036f666600000001000000000001",
    "010a7368743378403078343400",
);

/// A gateway as schema 9 stored it (before its agent's settings).
fn v9(g: &Gateway) -> GatewayV9 {
    GatewayV9 {
        id: g.id,
        name: g.name.clone(),
        scope: g.scope.clone(),
        created_at: g.created_at,
        credentials: g.credentials.clone(),
        enrolment: g.enrolment.clone(),
        settings: GatewaySettingsV9 { local_broker: g.settings.local_broker.clone() },
    }
}

/// A gateway as schema 8 stored it (before its settings).
fn v8(g: &Gateway) -> GatewayV8 {
    GatewayV8 {
        id: g.id,
        name: g.name.clone(),
        scope: g.scope.clone(),
        created_at: g.created_at,
        credentials: g.credentials.clone(),
        enrolment: g.enrolment.clone(),
    }
}

#[test]
fn gateways_are_pinned() {
    let enrolled = Gateway {
        id: GatewayId::from_bytes(key(0x9a)),
        name: "gw-u4".into(),
        scope: GatewayScope::Site(SiteId::from_bytes(key(0x51))),
        created_at: at(0),
        credentials: Some(GatewayCredentials {
            secret_hash: [0xc5; 32],
            sealed_secret: sealed(0xc0, 3),
            keys: sealed(0xcb, 3),
            enrolled_at: at(60_000),
        }),
        enrolment: None,
        settings: GatewaySettings::default(),
    };
    assert_pinned("GATEWAY_V8_SITE_ENROLLED", &v8(&enrolled), GATEWAY_V8_SITE_ENROLLED);
    assert_pinned("GATEWAY_V9_SITE_ENROLLED", &v9(&enrolled), GATEWAY_V9_SITE_ENROLLED);
    assert_record_pinned("GATEWAY_SITE_ENROLLED", Record::Gateway(Box::new(enrolled)), GATEWAY_SITE_ENROLLED);
    let pending = Gateway {
        id: GatewayId::from_bytes(key(0x9b)),
        name: "gw-u3-u4".into(),
        scope: GatewayScope::Buildings(vec![
            BuildingId::from_bytes(key(0xb1)),
            BuildingId::from_bytes(key(0xb2)),
        ]),
        created_at: at(0),
        credentials: None,
        enrolment: Some(Enrolment { token_hash: [0xe7; 32], expires_at: at(86_400_000) }),
        settings: GatewaySettings {
            local_broker: Some(LocalBroker { host: "gw.local".into(), port: 1883 }),
            config: ManagedConfig {
                log: ManagedLog { filter: Some("debug".into()) },
                agent: ManagedAgent { status_period_s: Some(60) },
                lorawan: ManagedLorawan {
                    udp_bind: Some("off".into()),
                    adr: Some(false),
                    ..Default::default()
                },
                hal: ManagedHal { sensors: Some(vec!["sht3x@0x44".into()]), ..Default::default() },
            },
        },
    };
    assert_pinned("GATEWAY_V8_BUILDINGS_PENDING", &v8(&pending), GATEWAY_V8_BUILDINGS_PENDING);
    assert_pinned("GATEWAY_V9_BUILDINGS_PENDING", &v9(&pending), GATEWAY_V9_BUILDINGS_PENDING);
    let from_v8 = Gateway::from(GatewayV9::from(v8(&pending)));
    assert_eq!(from_v8.settings, GatewaySettings::default(), "schema 9 reads schema 8 with default settings");
    let mut migrated = Gateway::from(v9(&pending));
    assert_eq!(
        migrated.settings.config,
        ManagedConfig::default(),
        "schema 10 reads schema 9 with no agent settings"
    );
    migrated.settings.config = pending.settings.config.clone();
    assert_eq!(migrated, pending);
    let pinned = GATEWAY_BUILDINGS_PENDING;
    assert_record_pinned("GATEWAY_BUILDINGS_PENDING", Record::Gateway(Box::new(pending)), pinned);
}

// Users and tokens: `disk_format_access_tests.rs`.

// ---------------------------------------------------------------------------------------------
// Records kept beside the registry: change log, statuses, logs, orders, alerts

const CHANGE_PUT: &str = "ac0204dedededededededededededededede0100";
const CHANGE_DELETE: &str = "ad02077070707070707070707070707070700101";

#[test]
fn change_log_entries_are_pinned() {
    let put = ChangeEntry { revision: 300, kind: EntityKind::Device, key: key(0xde), deleted: false };
    assert_pinned("CHANGE_PUT", &put, CHANGE_PUT);
    let delete = ChangeEntry { revision: 301, kind: EntityKind::Token, key: key(0x70), deleted: true };
    assert_pinned("CHANGE_DELETE", &delete, CHANGE_DELETE);
}

/// The variant index of each stored enum's variants: the byte postcard writes for it. Exhaustive
/// matches, so a new variant does not compile until its index is written here (append variants:
/// one inserted before others shifts their stored bytes).
#[test]
fn enum_variant_indices_are_pinned() {
    fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T, index: u8) {
        assert_pinned(&format!("{value:?}"), &value, &hex::encode(&[index]));
    }
    for kind in [
        EntityKind::Site,
        EntityKind::Building,
        EntityKind::Room,
        EntityKind::DeviceType,
        EntityKind::Device,
        EntityKind::Gateway,
        EntityKind::User,
        EntityKind::Token,
    ] {
        let index = match kind {
            EntityKind::Site => 0,
            EntityKind::Building => 1,
            EntityKind::Room => 2,
            EntityKind::DeviceType => 3,
            EntityKind::Device => 4,
            EntityKind::Gateway => 5,
            EntityKind::User => 6,
            EntityKind::Token => 7,
        };
        check(kind, index);
    }
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let index = match role {
            Role::Viewer => 0,
            Role::Operator => 1,
            Role::Admin => 2,
        };
        check(role, index);
    }
    for kind in [
        AlertKind::Outage,
        AlertKind::Failure,
        AlertKind::ForeignDelivery,
        AlertKind::ForwarderSilent,
        AlertKind::RebootLoop,
        AlertKind::SiteDisconnected,
    ] {
        let index = match kind {
            AlertKind::Outage => 0,
            AlertKind::Failure => 1,
            AlertKind::ForeignDelivery => 2,
            AlertKind::ForwarderSilent => 3,
            AlertKind::RebootLoop => 4,
            AlertKind::SiteDisconnected => 5,
        };
        check(kind, index);
    }
    for op in [RuleOp::Eq, RuleOp::Ne, RuleOp::Lt, RuleOp::Le, RuleOp::Gt, RuleOp::Ge, RuleOp::Missing] {
        let index = match op {
            RuleOp::Eq => 0,
            RuleOp::Ne => 1,
            RuleOp::Lt => 2,
            RuleOp::Le => 3,
            RuleOp::Gt => 4,
            RuleOp::Ge => 5,
            RuleOp::Missing => 6,
        };
        check(op, index);
    }
    for codec in Codec::ALL {
        let index = match codec {
            Codec::CayenneLpp => 0,
            Codec::NeocampusLpp => 1,
            Codec::Hex => 2,
            Codec::Layout => 3,
        };
        check(codec, index);
    }
}

// Earlier schemas, read by `RedbStore::migrate` from old databases: `disk_format_migration_tests.rs`.
