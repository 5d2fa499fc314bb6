//! The node's side of an OTAA join (LoRaWAN 1.0.x) and of downlinks: the join request (MIC with
//! the AppKey), the join-accept read back (decrypted, MIC checked, session keys derived from it
//! and the DevNonce — what a node's stack does), and data downlinks opened with the session.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use base64::Engine;
use lorawan::creator::JoinRequestCreator;
use lorawan::keys::{AES128, AppKey};
use lorawan::parser::{DataHeader, DataPayload, FRMPayload, JoinAcceptPayload, MHDRAble, MType, PhyPayload};

use crate::Session;

/// What a node joins with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtaaKeys {
    /// DevEUI, big-endian (as printed).
    pub dev_eui: [u8; 8],
    /// JoinEUI (AppEUI), big-endian.
    pub join_eui: [u8; 8],
    /// AppKey.
    pub app_key: [u8; 16],
}

fn little_endian(eui: [u8; 8]) -> [u8; 8] {
    let mut le = eui;
    le.reverse();
    le
}

/// A join request (PHYPayload) with this DevNonce.
pub fn join_request(keys: &OtaaKeys, dev_nonce: u16) -> Vec<u8> {
    let mut phy = JoinRequestCreator::new();
    phy.set_app_eui(&little_endian(keys.join_eui))
        .set_dev_eui(&little_endian(keys.dev_eui))
        .set_dev_nonce(&dev_nonce.to_le_bytes());
    phy.build(&AppKey::from(keys.app_key)).to_vec()
}

/// The session a join-accept gives (decrypted with the AppKey, its MIC checked).
pub fn accept(keys: &OtaaKeys, dev_nonce: u16, phy: &[u8]) -> Result<Session, String> {
    let Ok(PhyPayload::JoinAccept(JoinAcceptPayload::Encrypted(encrypted))) =
        lorawan::parser::parse(phy.to_vec())
    else {
        return Err("not a join-accept".into());
    };
    let app_key = AppKey::from(keys.app_key);
    let decrypted = encrypted.decrypt(&app_key);
    if !decrypted.validate_mic(&app_key) {
        return Err("join-accept MIC invalid".into());
    }
    let nonce_bytes = dev_nonce.to_le_bytes();
    let nonce = lorawan::parser::DevNonce::new(&nonce_bytes[..]).ok_or("DevNonce")?;
    let nwk = decrypted.derive_newskey(&nonce, &app_key);
    let app = decrypted.derive_appskey(&nonce, &app_key);
    let addr = decrypted.dev_addr();
    let a: &[u8] = addr.as_ref();
    let to_key = |k: &[u8]| <[u8; 16]>::try_from(k).map_err(|_| "key length".to_owned());
    Ok(Session {
        dev_addr: u32::from_le_bytes([a[0], a[1], a[2], a[3]]),
        nwk_s_key: to_key(nwk.as_ref())?,
        app_s_key: to_key(app.as_ref())?,
    })
}

/// A data downlink, as the node reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downlink {
    /// Confirmed data down (the node acknowledges it in its next uplink).
    pub confirmed: bool,
    /// FCtrl.ACK: the network acknowledges the node's confirmed uplink.
    pub ack: bool,
    /// Its frame counter (low 16 bits, as carried).
    pub f_cnt: u16,
    /// FPort, if any.
    pub f_port: Option<u8>,
    /// Application payload, clear.
    pub data: Vec<u8>,
    /// MAC commands in FOpts.
    pub f_opts: Vec<u8>,
}

/// A data downlink of `session` (MIC checked with counter `f_cnt_down`), or why not.
pub fn downlink(session: &Session, phy: &[u8], f_cnt_down: u32) -> Result<Downlink, String> {
    let Ok(PhyPayload::Data(DataPayload::Encrypted(down))) = lorawan::parser::parse(phy.to_vec()) else {
        return Err("not a data frame".into());
    };
    if down.is_uplink() {
        return Err("an uplink".into());
    }
    let nwk = AES128(session.nwk_s_key);
    if !down.validate_mic(&nwk, f_cnt_down) {
        return Err("MIC invalid for this session and counter".into());
    }
    let confirmed = down.mhdr().mtype() == MType::ConfirmedDataDown;
    let fhdr = down.fhdr();
    let (ack, f_cnt, f_port) = (fhdr.fctrl().ack(), fhdr.fcnt(), down.f_port());
    let f_opts = phy.get(8..8 + usize::from(phy[5] & 0x0f)).unwrap_or_default().to_vec();
    let plain = down
        .decrypt(Some(&nwk), Some(&AES128(session.app_s_key)), f_cnt_down)
        .map_err(|e| format!("{e:?}"))?;
    let data = match plain.frm_payload() {
        FRMPayload::Data(d) => d.to_vec(),
        _ => Vec::new(),
    };
    Ok(Downlink { confirmed, ack, f_cnt, f_port, data, f_opts })
}

/// The frame and `txpk` of a `PULL_RESP` datagram.
pub fn pull_resp(datagram: &[u8]) -> Option<(serde_json::Value, Vec<u8>)> {
    if datagram.len() < 4 || datagram[3] != 0x03 {
        return None;
    }
    let txpk = serde_json::from_slice::<serde_json::Value>(&datagram[4..]).ok()?["txpk"].clone();
    let phy = base64::engine::general_purpose::STANDARD.decode(txpk["data"].as_str()?).ok()?;
    Some((txpk, phy))
}

/// The forwarder's keep-alive (`PULL_DATA`): the agent answers downlinks to the socket it
/// comes from.
pub fn pull_data(token: u16, gateway_eui: [u8; 8]) -> Vec<u8> {
    let [hi, lo] = token.to_be_bytes();
    let mut d = vec![2, hi, lo, 0x02];
    d.extend_from_slice(&gateway_eui);
    d
}

/// The forwarder's `TX_ACK` of a `PULL_RESP` (emitted).
pub fn tx_ack(resp: &[u8], gateway_eui: [u8; 8]) -> Vec<u8> {
    let mut d = vec![2, resp[1], resp[2], 0x05];
    d.extend_from_slice(&gateway_eui);
    d
}

/// Joins through the agent at `forwarder`, as a node heard by a forwarder with `gateway_eui`:
/// keep-alive, join request, the join-accept's `PULL_RESP` (answered with a `TX_ACK`), and the
/// session it gives. `socket` is the forwarder's (its downlink path).
pub fn join(
    socket: &UdpSocket,
    forwarder: SocketAddr,
    gateway_eui: [u8; 8],
    keys: &OtaaKeys,
    dev_nonce: u16,
    timeout: Duration,
) -> Result<Session, String> {
    let io = |e: std::io::Error| e.to_string();
    socket.set_read_timeout(Some(timeout)).map_err(io)?;
    socket.send_to(&pull_data(dev_nonce, gateway_eui), forwarder).map_err(io)?;
    let mut buf = [0u8; 2048];
    let phy = join_request(keys, dev_nonce);
    socket.send_to(&crate::push_data(dev_nonce, gateway_eui, &phy, -70, 7.5), forwarder).map_err(io)?;
    loop {
        let (n, _) = socket.recv_from(&mut buf).map_err(|e| format!("waiting for the join-accept: {e}"))?;
        let Some((_, accept_phy)) = pull_resp(&buf[..n]) else { continue };
        socket.send_to(&tx_ack(&buf[..n], gateway_eui), forwarder).map_err(io)?;
        return accept(keys, dev_nonce, &accept_phy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public join-request vector (`spec/lorawan-vectors.md`): MIC `c65b1304`.
    #[test]
    fn builds_the_public_join_request_exactly() {
        let keys = OtaaKeys {
            dev_eui: [0x33, 0x31, 0x38, 0x32, 0x74, 0x35, 0x69, 0x05],
            join_eui: [0xaa, 0x13, 0x69, 0x33, 0x63, 0x34, 0x36, 0x39],
            app_key: crate::key("98929b92c49edba9676d646d3b612456").unwrap(),
        };
        let phy = join_request(&keys, 0x8904);
        assert_eq!(
            neosens_protocol::hex::encode_upper(&phy),
            "0039363463336913AA05693574323831330489C65B1304"
        );
    }

    /// A join-accept built as a network server does is read back into the session whose keys
    /// the server derived; a wrong key is refused.
    #[test]
    fn reads_a_join_accept_and_its_downlinks() {
        let keys = OtaaKeys { dev_eui: [1; 8], join_eui: [2; 8], app_key: [3; 16] };
        let mut creator = lorawan::creator::JoinAcceptCreator::new();
        creator.set_app_nonce(&[1, 2, 3]).set_net_id(&[0, 0, 0]).set_dev_addr(&0x0123_4567u32.to_le_bytes());
        creator.set_dl_settings(0).set_rx_delay(1);
        // Without a CFList the accept is 17 bytes (the creator's buffer holds 33).
        let phy = creator.build(&AES128([3; 16])).unwrap()[..17].to_vec();
        let session = accept(&keys, 7, &phy).unwrap();
        assert_eq!(session.dev_addr, 0x0123_4567);
        assert_ne!(session.nwk_s_key, session.app_s_key);
        assert!(accept(&OtaaKeys { app_key: [4; 16], ..keys }, 7, &phy).is_err());
        assert!(accept(&keys, 7, &[0x20]).is_err());
        // A downlink of that session.
        let mut down = lorawan::creator::DataPayloadCreator::new();
        down.set_uplink(false).set_confirmed(true).set_f_port(9).set_dev_addr(&0x0123_4567u32.to_le_bytes());
        down.set_fctrl(&lorawan::parser::FCtrl::new(0x20, false)).set_fcnt(3);
        let frame = down
            .build(
                b"hi",
                &[],
                &lorawan::keys::NewSKey::from(session.nwk_s_key),
                &lorawan::keys::AppSKey::from(session.app_s_key),
            )
            .unwrap()
            .to_vec();
        let read = downlink(&session, &frame, 3).unwrap();
        assert_eq!(
            (read.confirmed, read.ack, read.f_port, read.data.as_slice()),
            (true, true, Some(9), &b"hi"[..])
        );
        assert!(downlink(&session, &frame, 4).is_err(), "another counter: MIC fails");
    }
}
