//! The bytes of earlier schemas' records, pinned: what `RedbStore::migrate` reads from old
//! databases. The why and what to do when one fails: the note at the top of
//! `disk_format_tests.rs`, whose helpers these tests use.

use neosens_protocol::DeviceUid;
use neosens_protocol::ids::{DevAddr, DevEui, DeviceTypeId, GatewayId, Mac, SiteId};

use super::disk_format_tests::{assert_pinned, at, device, key, sealed};
use crate::model::{
    Codec, DeviceTypeV1, DeviceTypeV2, DeviceV2, DeviceV3, GatewayScope, GatewayV2, LorawanSession,
};

const DEVICE_TYPE_V1: &str = "10d7d7d7d7d7d7d7d7d7d7d7d7d7d7d70104727069330000880e901c";
const DEVICE_TYPE_V2: &str = "10d7d7d7d7d7d7d7d7d7d7d7d7d7d7d70104727069330001027b7d880e901c0106737461747573";
const GATEWAY_V2: &str =
    "109a9a9a9a9a9a9a9a9a9a9a9a9a9a9a010567772d7534001051515151515151515151515151515101a4ff848ea85e";
const DEVICE_V3: &str = concat!(
    "10dedededededededededededededede010170b3d57ed000000110d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7010b68616c6c",
    "2073656e736f720210707070707070707070707070707070011071717171717171717171717171717101012a5b7b226d",
    "6f64756c65223a2274656d7065726174757265222c22756e6974223a226175746f5f30227d5d00166e656f73656e736f",
    "725f3234306163343132333435365a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5e5e",
    "5e5e5e5e5e5e5e5e5e5e035e5f5c0000a4ff848ea85ef48e858ea85e0126011bda4e4e4e4e4e4e4e4e4e4e4e4e034e4f",
    "4ca9a9a9a9a9a9a9a9a9a9a9a903a9a8ab92210101",
);
const DEVICE_V2: &str = concat!(
    "10dedededededededededededededede0100240ac412345610d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7010b68616c6c2073",
    "656e736f720210707070707070707070707070707070011071717171717171717171717171717101012a5b7b226d6f64",
    "756c65223a2274656d7065726174757265222c22756e6974223a226175746f5f30227d5d00166e656f73656e736f725f",
    "3234306163343132333435365a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5e5e5e5e",
    "5e5e5e5e5e5e5e5e035e5f5c0000a4ff848ea85ef48e858ea85e",
);

#[test]
fn earlier_schemas_still_read() {
    let v1 = DeviceTypeV1 {
        id: DeviceTypeId::from_bytes(key(0xd7)),
        name: "rpi3".into(),
        description: String::new(),
        config_schema: None,
        status_period_s: 1800,
        outdated_after_s: 3600,
    };
    assert_pinned("DEVICE_TYPE_V1", &v1, DEVICE_TYPE_V1);
    let v2 = DeviceTypeV2 {
        id: v1.id,
        name: v1.name.clone(),
        description: v1.description.clone(),
        config_schema: Some("{}".into()),
        status_period_s: v1.status_period_s,
        outdated_after_s: v1.outdated_after_s,
        orders: vec!["status".into()],
    };
    assert_pinned("DEVICE_TYPE_V2", &v2, DEVICE_TYPE_V2);
    let gateway = GatewayV2 {
        id: GatewayId::from_bytes(key(0x9a)),
        name: "gw-u4".into(),
        scope: GatewayScope::Site(SiteId::from_bytes(key(0x51))),
        created_at: at(0),
    };
    assert_pinned("GATEWAY_V2", &gateway, GATEWAY_V2);
    let d = device(DeviceUid::Ethernet(Mac::from_bytes([0x24, 0x0a, 0xc4, 0x12, 0x34, 0x56])));
    let device = DeviceV2 {
        id: d.id,
        uid: d.uid,
        device_type: d.device_type,
        description: d.description,
        rooms: d.rooms,
        enabled: d.enabled,
        config: d.config,
        mqtt: d.mqtt,
        login: d.login,
        secret: d.secret,
        credentials_delivered: d.credentials_delivered,
        outdated_after_s: d.outdated_after_s,
        created_at: d.created_at,
        updated_at: d.updated_at,
    };
    assert_pinned("DEVICE_V2", &device, DEVICE_V2);
    let v3 = DeviceV3 {
        lorawan: Some(LorawanSession {
            dev_addr: DevAddr::from_be_bytes([0x26, 0x01, 0x1b, 0xda]),
            nwk_s_key: sealed(0x4e, 3),
            app_s_key: sealed(0xa9, 3),
            f_cnt_up: 4242,
            relax_f_cnt: true,
            codec: Codec::NeocampusLpp,
        }),
        ..DeviceV3::from(DeviceV2 {
            uid: DeviceUid::Lorawan(DevEui::from_be_bytes([0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0, 0, 1])),
            ..device
        })
    };
    assert_pinned("DEVICE_V3", &v3, DEVICE_V3);
}
