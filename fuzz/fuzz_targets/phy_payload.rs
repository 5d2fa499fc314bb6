//! Any PHYPayload bytes through the frame decoder (parse, counter, MIC, decryption) against a
//! node session with the address of the public vectors: an answer or a rejection, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use neosens_edge::lorawan::frame::{self, Candidate, NodeSession};
use neosens_protocol::ids::{DeviceId, DeviceTypeId, RoomId};
use neosens_protocol::sync::{DeviceRecord, LorawanSession, WireUid};
use neosens_runtime::keys::Keys;

fn session() -> &'static Arc<NodeSession> {
    static SESSION: OnceLock<Arc<NodeSession>> = OnceLock::new();
    SESSION.get_or_init(|| {
        let keys = Keys::from_bytes(&[7; 32], &[8; 32], ring::rand::SystemRandom::new());
        let id = DeviceId::from_bytes([1; 16]);
        let seal = |k: [u8; 16], which: &str| {
            keys.seal(&k, &neosens_protocol::sync::lorawan_key_context(id.to_bytes(), which)).unwrap()
        };
        let record = DeviceRecord {
            id,
            uid: WireUid::Lorawan("70B3D57ED0000001".parse().unwrap()),
            device_type: DeviceTypeId::from_bytes([2; 16]),
            rooms: vec![RoomId::from_bytes([3; 16])],
            enabled: true,
            config_body: "{}".into(),
            mqtt: None,
            login: "lorawan".into(),
            secret_hash: [0; 32],
            credentials_delivered: true,
            staged_secret: None,
            lorawan: Some(LorawanSession {
                dev_addr: "49BE7DF1".parse().unwrap(),
                nwk_s_key: seal([0x44; 16], "nwk"),
                app_s_key: seal([0xec; 16], "app"),
                f_cnt_up: 0,
                relax_f_cnt: true,
                codec: "cayenne_lpp".into(),
            }),
        };
        Arc::new(
            NodeSession::open(&record, Some("u4/302".into()), frame::DEFAULT_STATUS_EVERY, &keys).unwrap(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let node = Arc::clone(session());
    let _ = frame::decode(data, |_| Ok(frame::Candidates::from_iter([Candidate { node, last: Some(7) }])));
});
