//! Any MQTT payload on a status or reading topic, as central's ingestion reads it: the status
//! (firmware and Raspberry Pi flavours, `unitID` in any case), its MAC, its `msg_id` and relay
//! stamp (parsed and checked against a gateway's forwarding key), and the reading format. Dropped
//! or kept, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use neosens_protocol::legacy::{DeviceStatus, ModuleMessage};
use neosens_runtime::keys::Keys;
use neosens_runtime::relay::{self, RelayKey};

fn key() -> &'static RelayKey {
    static KEY: OnceLock<RelayKey> = OnceLock::new();
    KEY.get_or_init(|| RelayKey::derive(&Keys::from_bytes(&[5; 32], &[6; 32], ring::rand::SystemRandom::new())))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(status) = DeviceStatus::parse(data) {
        let _ = status.mac();
        let msg_id = status.payload.get("msg_id").and_then(|v| v.as_u64()).unwrap_or(0);
        if let Some(stamp) = status.payload.get(relay::FIELD).and_then(|v| v.as_str()).and_then(relay::parse) {
            let _ = key().verify(&stamp, msg_id, "u4/302/device");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(stamp) = relay::parse(text) {
            let _ = key().verify(&stamp, 1, "t");
        }
    }
    let _ = relay::insert_field(data.to_vec(), "s");
    let _ = ModuleMessage::parse(data);
});
