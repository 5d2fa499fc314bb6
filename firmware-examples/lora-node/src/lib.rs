//! A simulated ABP LoRaWAN node and the packet forwarder that hears it: real frames (MIC with the
//! NwkSKey, FRMPayload encrypted with the AppSKey, counters rising) carried in Semtech UDP
//! `PUSH_DATA` datagrams to a neosens edge agent — for the demo and as a load generator.
//!
//! Payloads are written with `neosens_protocol::lpp`, the encoder the STM32 node uses and the
//! decoder the agent uses. A node may also join by OTAA and read its downlinks ([`otaa`]).

pub mod otaa;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use base64::Engine;
use lorawan::creator::DataPayloadCreator;
use lorawan::keys::{AppSKey, NewSKey};
use lorawan::parser::FCtrl;
use neosens_protocol::lpp::LppWriter;

/// A session (given by ABP, or by an OTAA join).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// Device address (as printed: `49BE7DF1`).
    pub dev_addr: u32,
    /// NwkSKey.
    pub nwk_s_key: [u8; 16],
    /// AppSKey.
    pub app_s_key: [u8; 16],
}

/// Parses 32 hex digits.
pub fn key(hex: &str) -> Result<[u8; 16], String> {
    let hex = hex.trim();
    neosens_protocol::hex::decode_array(hex, "AES-128 key")
        .map_err(|_| format!("{hex:?}: an AES-128 key is 32 hex digits"))
}

/// An unconfirmed data uplink (PHYPayload) with this counter, port and plaintext.
pub fn uplink(session: &Session, f_cnt: u32, f_port: u8, payload: &[u8]) -> Vec<u8> {
    let mut phy = DataPayloadCreator::new();
    phy.set_uplink(true)
        .set_confirmed(false)
        .set_f_port(f_port)
        .set_dev_addr(&session.dev_addr.to_le_bytes())
        .set_fctrl(&FCtrl::new(0, true))
        .set_fcnt(f_cnt);
    let nwk = NewSKey::from(session.nwk_s_key);
    let app = AppSKey::from(session.app_s_key);
    phy.build(payload, &[], &nwk, &app).map(<[u8]>::to_vec).unwrap_or_default()
}

/// A Cayenne LPP payload: temperature (°C) on channel 1, relative humidity (%) on channel 2.
pub fn cayenne(temperature: f32, humidity: f32) -> Vec<u8> {
    let mut buf = [0u8; 7];
    let mut w = LppWriter::cayenne(&mut buf);
    // Two entries of 4 and 3 bytes: they fit the buffer, so neither write can fail.
    let _ = w.temperature(1, temperature).and_then(|w| w.humidity(2, humidity));
    w.as_bytes().to_vec()
}

/// A `PUSH_DATA` datagram (protocol v2) carrying one frame, with its radio metadata.
pub fn push_data(token: u16, gateway_eui: [u8; 8], phy: &[u8], rssi: i32, snr: f64) -> Vec<u8> {
    let [hi, lo] = token.to_be_bytes();
    let mut d = vec![2, hi, lo, 0x00];
    d.extend_from_slice(&gateway_eui);
    let rxpk = serde_json::json!({"rxpk": [{
        "tmst": u32::from(token) * 1000, "chan": 0, "rfch": 0, "freq": 868.1, "stat": 1, "modu": "LORA",
        "datr": "SF7BW125", "codr": "4/5", "rssi": rssi, "lsnr": snr, "size": phy.len(),
        "data": base64::engine::general_purpose::STANDARD.encode(phy)}]});
    d.extend_from_slice(rxpk.to_string().as_bytes());
    d
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Uplinks sent.
    pub sent: u64,
    /// `PUSH_ACK`s received with the right token.
    pub acknowledged: u64,
}

/// Sends `count` uplinks to the agent at `forwarder`, `interval` apart, counters from `f_cnt`;
/// waits up to `ack_timeout` for each `PUSH_ACK`. Values drift like a real room's.
pub fn run(
    session: &Session,
    forwarder: SocketAddr,
    gateway_eui: [u8; 8],
    mut f_cnt: u32,
    count: u64,
    interval: Duration,
    ack_timeout: Duration,
) -> std::io::Result<Report> {
    let socket = UdpSocket::bind(if forwarder.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    socket.set_read_timeout(Some(ack_timeout))?;
    let mut report = Report::default();
    let mut ack = [0u8; 64];
    for i in 0..count {
        let temperature = 21.0 + (i as f32 / 10.0).sin() * 2.0;
        let humidity = 45.0 + (i as f32 / 7.0).cos() * 5.0;
        let phy = uplink(session, f_cnt, 2, &cayenne(temperature, humidity));
        let token = (i & 0xffff) as u16;
        socket.send_to(&push_data(token, gateway_eui, &phy, -70, 7.5), forwarder)?;
        report.sent += 1;
        if let Ok((n, _)) = socket.recv_from(&mut ack) {
            if ack[..n] == [2, (token >> 8) as u8, token as u8, 0x01] {
                report.acknowledged += 1;
            }
        }
        f_cnt = f_cnt.wrapping_add(1);
        if i + 1 < count {
            // Pacing the simulated node is the point of this wait.
            std::thread::sleep(interval);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_public_vector_exactly() {
        // spec/lorawan-vectors.md, vector 1: FCnt 2, port 1, "test".
        let session = Session {
            dev_addr: 0x49be_7df1,
            nwk_s_key: key("44024241ed4ce9a68c6a8bc055233fd3").unwrap(),
            app_s_key: key("ec925802ae430ca77fd3dd73cb2cc588").unwrap(),
        };
        let phy = uplink(&session, 2, 1, b"test");
        assert_eq!(neosens_protocol::hex::encode_upper(&phy), "40F17DBE4900020001954378762B11FF0D");
    }

    #[test]
    fn cayenne_and_keys() {
        assert_eq!(cayenne(27.2, 45.0), [0x01, 0x67, 0x01, 0x10, 0x02, 0x68, 90]);
        assert_eq!(cayenne(-4.1, 0.0)[2..4], [0xff, 0xd7]);
        assert!(key("zz").is_err());
        assert!(key(&"0".repeat(31)).is_err());
        assert_eq!(key(" 44024241ed4ce9a68c6a8bc055233fd3\n").unwrap()[..2], [0x44, 0x02]);
        // What the agent reads back (its Cayenne codec is this decoder).
        use neosens_protocol::lpp::{Format, Value::Number, decode};
        let payload = cayenne(21.3, 47.5);
        let values: Vec<_> =
            decode(Format::Cayenne, &payload).map(|r| r.map(|r| (r.kind, r.channel, r.value))).collect();
        assert_eq!(values, [Ok(("temperature", 1, Number(21.3))), Ok(("humidity", 2, Number(47.5)))]);
        let d = push_data(0x1234, [1; 8], &[0x40], -70, 7.5);
        assert_eq!(&d[..4], &[2, 0x12, 0x34, 0]);
        assert!(String::from_utf8_lossy(&d[12..]).contains("\"data\":\"QA==\""));
    }
}
