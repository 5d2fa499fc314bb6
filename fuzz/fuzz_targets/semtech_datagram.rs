//! Any datagram on the packet-forwarder port: parsed (UDP header, JSON, base64) without a panic,
//! and any application payload through the codecs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neosens_edge::lorawan::{codec, semtech};

fuzz_target!(|data: &[u8]| {
    if let Ok(semtech::Datagram::Push { packets, .. }) = semtech::parse(data) {
        for p in packets {
            let _ = codec::cayenne_lpp(&p.phy);
            let _ = codec::neocampus_lpp(&p.phy);
        }
    }
    let _ = codec::cayenne_lpp(data);
    let _ = codec::neocampus_lpp(data);
});
