//! The bytes of the device histories and alerts central keeps on disk, pinned — statuses, log
//! lines, orders, alerts of every kind. The why and what to do when one fails: the note at the
//! top of `disk_format_tests.rs`, whose helpers these tests use.

use neosens_protocol::ids::{BuildingId, DeviceId};
use neosens_protocol::legacy::LogRecord;

use super::DeviceLogEntry;
use super::disk_format_tests::{T0, assert_pinned, at, key};
use crate::model::{
    Ack, Actor, AlertKind, AlertRecord, AuditEntry, BulkAction, BulkOperation, BulkOutcome,
    DeviceStatusRecord, FieldChange, OrderRecord,
};

const STATUS_FULL: &str = concat!(
    "01a4dce08fa85e010772756e6e696e6701227b22737461747573223a2272756e6e696e67222c2268656170223a313731",
    "3230347d",
);
const STATUS_EMPTY: &str = "000000";

/// Everything kept beside the registry that is pinned, decoded, for the PostgreSQL store's
/// tests: statuses, a log line, an order, alerts of every kind, an audit entry, bulk operations.
pub(super) struct PinnedHistory {
    pub statuses: Vec<DeviceStatusRecord>,
    pub log: DeviceLogEntry,
    pub order: OrderRecord,
    pub alerts: Vec<AlertRecord>,
    pub audit: Vec<AuditEntry>,
    pub bulk: Vec<BulkOperation>,
}

pub(super) fn pinned_history() -> PinnedHistory {
    use super::disk_format_tests::decode_pinned;
    PinnedHistory {
        statuses: vec![
            decode_pinned("STATUS_FULL", STATUS_FULL),
            decode_pinned("STATUS_EMPTY", STATUS_EMPTY),
        ],
        log: decode_pinned("DEVICE_LOG", DEVICE_LOG),
        order: decode_pinned("ORDER", ORDER),
        alerts: [ALERT_OUTAGE, ALERT_FAILURE, ALERT_FOREIGN_DELIVERY]
            .into_iter()
            .map(|hex| decode_pinned("ALERT", hex))
            .collect(),
        audit: std::iter::once(AUDIT_UPDATE)
            .chain(AUDIT_ACTORS)
            .map(|hex| decode_pinned("AUDIT", hex))
            .collect(),
        bulk: std::iter::once(BULK_ORDER)
            .chain(BULK_OTHER_ACTIONS)
            .map(|hex| decode_pinned("BULK", hex))
            .collect(),
    }
}

#[test]
fn statuses_are_pinned() {
    let full = DeviceStatusRecord {
        last_seen: Some(at(1_800_000)),
        last_status: Some("running".into()),
        last_payload: Some(r#"{"status":"running","heap":171204}"#.into()),
    };
    assert_pinned("STATUS_FULL", &full, STATUS_FULL);
    assert_pinned("STATUS_EMPTY", &DeviceStatusRecord::default(), STATUS_EMPTY);
}

const DEVICE_LOG: &str = concat!(
    "dedededededededededededededede018c87858ea85e0831302e302e302e370102343001054552524f5201096e656f73",
    "656e736f72000000010372756e0103313137010b73656e736f72206c6f73740000000000010e31363230323931313333",
    "2e333934000000",
);

#[test]
fn device_logs_are_pinned() {
    let record = LogRecord {
        levelno: Some("40".into()),
        levelname: Some("ERROR".into()),
        name: Some("neosensor".into()),
        func_name: Some("run".into()),
        lineno: Some("117".into()),
        msg: Some("sensor lost".into()),
        created: Some("1620291133.394".into()),
        ..LogRecord::default()
    };
    let entry =
        DeviceLogEntry { device: key(0xde), received_at: at(500), remote_addr: "10.0.0.7".into(), record };
    assert_pinned("DEVICE_LOG", &entry, DEVICE_LOG);
}

const ORDER: &str = concat!(
    "94ae858ea85e086f70657261746f72096672657175656e63790103393030066465766963651132343a30413a43343a31",
    "323a33343a35361575342f3230342f6465766963652f636f6d6d616e643c7b2264657374223a2232343a30413a43343a",
    "31323a33343a3536222c226f72646572223a226672657175656e6379222c2276616c7565223a3930307d0473656e74",
);

#[test]
fn orders_are_pinned() {
    let order = OrderRecord {
        at: at(3_000),
        by: "operator".into(),
        order: "frequency".into(),
        value: Some("900".into()),
        module: "device".into(),
        dest: "24:0A:C4:12:34:56".into(),
        topic: "u4/204/device/command".into(),
        payload: r#"{"dest":"24:0A:C4:12:34:56","order":"frequency","value":900}"#.into(),
        outcome: "sent".into(),
    };
    assert_pinned("ORDER", &order, ORDER);
}

const ALERT_OUTAGE: &str = "01000110b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1010000000405a4ff848ea85e0000";
const ALERT_FAILURE: &str = concat!(
    "02010110b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1010110dedededededededededededededede0101086c6f775f68656170",
    "011668656170203d20313230303020283c203230303030290101a4ff848ea85e01a49ece8ea85e01086f70657261746f",
    "72e4a88c8ea85e01a4b9bc91a85e",
);
const ALERT_FOREIGN_DELIVERY: &str = concat!(
    "0302000110dedededededededededededededede0100011664656c69766572656420746f203139322e302e322e390405",
    "a4ff848ea85e00010561646d696ea4d2938ea85e00",
);

#[test]
fn alerts_of_every_kind_are_pinned() {
    let outage = AlertRecord {
        id: 1,
        kind: AlertKind::Outage,
        building: Some(BuildingId::from_bytes(key(0xb1))),
        device: None,
        rule: None,
        detail: None,
        outdated: 4,
        total_devices: 5,
        opened_at: T0,
        resolved_at: None,
        ack: None,
    };
    assert_pinned("ALERT_OUTAGE", &outage, ALERT_OUTAGE);
    let failure = AlertRecord {
        id: 2,
        kind: AlertKind::Failure,
        device: Some(DeviceId::from_bytes(key(0xde))),
        rule: Some("low_heap".into()),
        detail: Some("heap = 12000 (< 20000)".into()),
        outdated: 1,
        total_devices: 1,
        resolved_at: Some(T0 + 600_000),
        ack: Some(Ack { by: "operator".into(), at: T0 + 60_000, silenced_until: Some(T0 + 3_600_000) }),
        ..outage.clone()
    };
    assert_pinned("ALERT_FAILURE", &failure, ALERT_FAILURE);
    let foreign = AlertRecord {
        id: 3,
        kind: AlertKind::ForeignDelivery,
        building: None,
        device: Some(DeviceId::from_bytes(key(0xde))),
        detail: Some("delivered to 192.0.2.9".into()),
        ack: Some(Ack { by: "admin".into(), at: T0 + 120_000, silenced_until: None }),
        ..outage
    };
    assert_pinned("ALERT_FOREIGN_DELIVERY", &foreign, ALERT_FOREIGN_DELIVERY);
}

const AUDIT_UPDATE: &str = concat!(
    "2ae4bd858ea85e00015e5e5e5e5e5e5e5e5e5e5e5e5e5e5e0105616c6963650d6465766963652e757064617465066465",
    "766963652464656465646564652d646564652d646564652d646564652d6465646564656465646564651132343a30613a",
    "63343a31323a33343a35360207656e61626c656404747275650566616c7365067365637265740a222873656372657429",
    "220a2228736563726574292200",
);
const AUDIT_ACTORS: [&str; 5] = [
    concat!(
        "2ae4bd858ea85e0000076d616c6c6f72790d6465766963652e757064617465066465766963652464656465646564652d",
        "646564652d646564652d646564652d6465646564656465646564651132343a30613a63343a31323a33343a3536000d66",
        "726f6d2031302e302e302e37",
    ),
    concat!(
        "2ae4bd858ea85e01707070707070707070707070707070010263690d6465766963652e75706461746506646576696365",
        "2464656465646564652d646564652d646564652d646564652d6465646564656465646564651132343a30613a63343a31",
        "323a33343a3536000d66726f6d2031302e302e302e37",
    ),
    concat!(
        "2ae4bd858ea85e026a6a6a6a6a6a6a6a6a6a6a6a6a6a6a010d6465766963652e75706461746506646576696365246465",
        "6465646564652d646564652d646564652d646564652d6465646564656465646564651132343a30613a63343a31323a33",
        "343a3536000d66726f6d2031302e302e302e37",
    ),
    concat!(
        "2ae4bd858ea85e031132343a30613a63343a31323a33343a35360d6465766963652e7570646174650664657669636524",
        "64656465646564652d646564652d646564652d646564652d6465646564656465646564651132343a30613a63343a3132",
        "3a33343a3536000d66726f6d2031302e302e302e37",
    ),
    concat!(
        "2ae4bd858ea85e040963616d706169676e730d6465766963652e75706461746506646576696365246465646564656465",
        "2d646564652d646564652d646564652d6465646564656465646564651132343a30613a63343a31323a33343a3536000d",
        "66726f6d2031302e302e302e37",
    ),
];

#[test]
fn audit_entries_are_pinned() {
    let update = AuditEntry {
        id: 42,
        at: at(4_000),
        actor: Actor::User { id: Some(key(0x5e)), name: "alice".into() },
        action: "device.update".into(),
        target_kind: "device".into(),
        target_id: "dededede-dede-dede-dede-dededededede".into(),
        target: "24:0a:c4:12:34:56".into(),
        changes: vec![
            FieldChange { field: "enabled".into(), before: "true".into(), after: "false".into() },
            FieldChange {
                field: "secret".into(),
                before: "\"(secret)\"".into(),
                after: "\"(secret)\"".into(),
            },
        ],
        detail: String::new(),
    };
    let actors = [
        Actor::User { id: None, name: "mallory".into() },
        Actor::Token { id: key(0x70), name: "ci".into() },
        Actor::Gateway { id: key(0x6a) },
        Actor::Device { uid: "24:0a:c4:12:34:56".into() },
        Actor::System { component: "campaigns".into() },
    ];
    assert_pinned("AUDIT_UPDATE", &update, AUDIT_UPDATE);
    for (actor, pinned) in actors.into_iter().zip(AUDIT_ACTORS) {
        let entry =
            AuditEntry { actor, changes: Vec::new(), detail: "from 10.0.0.7".into(), ..update.clone() };
        assert_pinned("AUDIT_ACTORS", &entry, pinned);
    }
}

const BULK_ORDER: &str = concat!(
    "03b4cd858ea85e017070707070707070707070707070700102636904096672657175656e637901033930300b6275696c",
    "64696e6720553403d1d1d1d1d1d1d1d1d1d1d1d1d1d1d101d2d2d2d2d2d2d2d2d2d2d2d2d2d2d201d3d3d3d3d3d3d3d3",
    "d3d3d3d3d3d3d301030102216e6f742073656e743a207468652062726f6b6572206c696e6b20697320646f776e0000",
);
const BULK_OTHER_ACTIONS: [&str; 4] = [
    concat!(
        "03b4cd858ea85e017070707070707070707070707070700102636900202020202020202020202020202020010b627569",
        "6c64696e6720553403d1d1d1d1d1d1d1d1d1d1d1d1d1d1d101d2d2d2d2d2d2d2d2d2d2d2d2d2d2d201d3d3d3d3d3d3d3",
        "d3d3d3d3d3d3d3d301030102216e6f742073656e743a207468652062726f6b6572206c696e6b20697320646f776e0001",
        "84dd858ea85e",
    ),
    concat!(
        "03b4cd858ea85e017070707070707070707070707070700102636901404040404040404040404040404040010b627569",
        "6c64696e6720553403d1d1d1d1d1d1d1d1d1d1d1d1d1d1d101d2d2d2d2d2d2d2d2d2d2d2d2d2d2d201d3d3d3d3d3d3d3",
        "d3d3d3d3d3d3d3d301030102216e6f742073656e743a207468652062726f6b6572206c696e6b20697320646f776e0001",
        "84dd858ea85e",
    ),
    concat!(
        "03b4cd858ea85e017070707070707070707070707070700102636902000b6275696c64696e6720553403d1d1d1d1d1d1",
        "d1d1d1d1d1d1d1d1d101d2d2d2d2d2d2d2d2d2d2d2d2d2d2d201d3d3d3d3d3d3d3d3d3d3d3d3d3d3d301030102216e6f",
        "742073656e743a207468652062726f6b6572206c696e6b20697320646f776e000184dd858ea85e",
    ),
    concat!(
        "03b4cd858ea85e0170707070707070707070707070707001026369030b6275696c64696e6720553403d1d1d1d1d1d1d1",
        "d1d1d1d1d1d1d1d101d2d2d2d2d2d2d2d2d2d2d2d2d2d2d201d3d3d3d3d3d3d3d3d3d3d3d3d3d3d301030102216e6f74",
        "2073656e743a207468652062726f6b6572206c696e6b20697320646f776e000184dd858ea85e",
    ),
];

#[test]
fn bulk_operations_are_pinned() {
    let op = BulkOperation {
        id: 3,
        at: at(5_000),
        by: Actor::Token { id: key(0x70), name: "ci".into() },
        action: BulkAction::Order { order: "frequency".into(), value: Some("900".into()) },
        target: "building U4".into(),
        devices: vec![key(0xd1), key(0xd2), key(0xd3)],
        outcomes: vec![
            BulkOutcome::Done,
            BulkOutcome::Failed("not sent: the broker link is down".into()),
            BulkOutcome::Pending,
        ],
        finished_at: None,
    };
    for (action, pinned) in [
        BulkAction::Move { room: key(0x20) },
        BulkAction::SetType { device_type: key(0x40) },
        BulkAction::SetEnabled { enabled: false },
        BulkAction::ResetCredentials,
    ]
    .into_iter()
    .zip(BULK_OTHER_ACTIONS)
    {
        let other = BulkOperation { action, finished_at: Some(at(6_000)), ..op.clone() };
        assert_pinned("BULK_OTHER_ACTIONS", &other, pinned);
    }
    assert_pinned("BULK_ORDER", &op, BULK_ORDER);
}
