//! A LoRaWAN sensor node as it runs on an STM32 (Cortex-M4F, `thumbv7em-none-eabihf`), without
//! std or an allocator: readings → neOCampus-LPP payload (`neosens_protocol::lpp`, the format the
//! gateway's `neocampus_lpp` codec decodes) → ABP unconfirmed uplink (MIC with the NwkSKey,
//! FRMPayload encrypted with the AppSKey, frame counter rising) → the `radio tx <hex>` command
//! of a Microchip RN2483 in radio mode, the modem the neosens gateway also speaks.
//!
//! Everything here is plain computation on buffers, so the same code is unit-tested on the host.

#![no_std]

use lorawan::creator::DataPayloadCreator;
use lorawan::keys::{AppSKey, NewSKey};
use lorawan::parser::FCtrl;
use neosens_protocol::lpp::{LppError, LppWriter};

/// Application port of neOCampus-LPP uplinks.
pub const F_PORT: u8 = 2;

/// Largest uplink built (LoRaWAN EU868 at SF12 carries 51 bytes of FRMPayload; 13 bytes of
/// header and MIC around it).
pub const MAX_FRAME: usize = 64;

/// An ABP session, provisioned at flashing time (and registered in neosens-central with the same
/// values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbpSession {
    /// Device address, as printed (`26011BDA`).
    pub dev_addr: u32,
    /// Network session key.
    pub nwk_s_key: [u8; 16],
    /// Application session key.
    pub app_s_key: [u8; 16],
}

/// One round of measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readings {
    /// °C.
    pub temperature: f32,
    /// % relative humidity.
    pub humidity: f32,
    /// lux.
    pub luminosity: u16,
    /// ppm, when a CO₂ sensor is fitted.
    pub co2: Option<u16>,
}

/// Why an uplink was not built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeError {
    /// The payload does not fit.
    Payload(LppError),
    /// The frame could not be built (payload too long for a frame).
    Frame,
    /// The frame counter is exhausted: the session must be renewed.
    CounterExhausted,
}

/// The node: its session and its uplink counter (kept in backup RAM across deep sleep).
#[derive(Debug, Clone)]
pub struct Node {
    session: AbpSession,
    f_cnt_up: u32,
}

impl Node {
    /// A node starting at `f_cnt_up`.
    pub fn new(session: AbpSession, f_cnt_up: u32) -> Self {
        Node { session, f_cnt_up }
    }

    /// The counter the next uplink will carry.
    pub fn f_cnt_up(&self) -> u32 {
        self.f_cnt_up
    }

    /// Builds the next uplink into `out`; returns its length.
    pub fn uplink(&mut self, readings: &Readings, out: &mut [u8; MAX_FRAME]) -> Result<usize, NodeError> {
        let mut payload = [0u8; 32];
        let mut lpp = LppWriter::neocampus(&mut payload).map_err(NodeError::Payload)?;
        lpp.temperature(1, readings.temperature).map_err(NodeError::Payload)?;
        lpp.humidity(1, readings.humidity).map_err(NodeError::Payload)?;
        lpp.luminosity(1, readings.luminosity).map_err(NodeError::Payload)?;
        if let Some(ppm) = readings.co2 {
            lpp.co2(1, ppm).map_err(NodeError::Payload)?;
        }
        let f_cnt = self.f_cnt_up;
        let next = f_cnt.checked_add(1).ok_or(NodeError::CounterExhausted)?;
        let mut phy = DataPayloadCreator::new();
        phy.set_uplink(true)
            .set_confirmed(false)
            .set_f_port(F_PORT)
            .set_dev_addr(&self.session.dev_addr.to_le_bytes())
            .set_fctrl(&FCtrl::new(0, true))
            .set_fcnt(f_cnt);
        let nwk = NewSKey::from(self.session.nwk_s_key);
        let app = AppSKey::from(self.session.app_s_key);
        let frame = phy.build(lpp.as_bytes(), &[], &nwk, &app).map_err(|_| NodeError::Frame)?;
        let target = out.get_mut(..frame.len()).ok_or(NodeError::Frame)?;
        target.copy_from_slice(frame);
        self.f_cnt_up = next;
        Ok(frame.len())
    }
}

/// The RN2483 radio-mode command sending `frame`: `radio tx <HEX>\r\n`, into `out`; returns
/// its length.
pub fn rn2483_tx(frame: &[u8], out: &mut [u8]) -> Option<usize> {
    const PREFIX: &[u8] = b"radio tx ";
    let len = PREFIX.len() + 2 * frame.len() + 2;
    let out = out.get_mut(..len)?;
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    neosens_protocol::hex::encode_into(frame, &mut out[PREFIX.len()..], neosens_protocol::hex::Case::Upper)?;
    out[len - 2..].copy_from_slice(b"\r\n");
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: AbpSession = AbpSession {
        dev_addr: 0x49BE_7DF1,
        nwk_s_key: [
            0x44, 0x02, 0x42, 0x41, 0xed, 0x4c, 0xe9, 0xa6, 0x8c, 0x6a, 0x8b, 0xc0, 0x55, 0x23, 0x3f, 0xd3,
        ],
        app_s_key: [
            0xec, 0x92, 0x58, 0x02, 0xae, 0x43, 0x0c, 0xa7, 0x7f, 0xd3, 0xdd, 0x73, 0xcb, 0x2c, 0xc5, 0x88,
        ],
    };

    #[test]
    fn uplinks_carry_rising_counters_and_verify_with_the_session_keys() {
        let mut node = Node::new(SESSION, 7);
        let readings = Readings { temperature: 21.5, humidity: 45.5, luminosity: 0x0234, co2: Some(812) };
        let mut frame = [0u8; MAX_FRAME];
        let n = node.uplink(&readings, &mut frame).unwrap();
        assert_eq!(node.f_cnt_up(), 8);
        // MHDR unconfirmed up, DevAddr little-endian, FCtrl 0 (no ADR, no FOpts), FCnt 7, FPort 2.
        assert_eq!(frame[..9], [0x40, 0xF1, 0x7D, 0xBE, 0x49, 0x00, 0x07, 0x00, F_PORT]);
        let parsed = lorawan::parser::parse(&mut frame[..n]).unwrap();
        let lorawan::parser::PhyPayload::Data(lorawan::parser::DataPayload::Encrypted(enc)) = parsed else {
            panic!("not an encrypted data frame")
        };
        assert!(enc.validate_mic(&lorawan::keys::AES128::from(SESSION.nwk_s_key), 7));
        let plain = enc.decrypt(None, Some(&lorawan::keys::AES128::from(SESSION.app_s_key)), 7).unwrap();
        let lorawan::parser::FRMPayload::Data(data) = plain.frm_payload() else { panic!("no data") };
        assert_eq!(data, [0x01, 0x00, 8, 1, 6, 9, 1, 91, 5, 1, 0x34, 0x02, 10, 1, 0x2c, 0x03]);
        let mut again = [0u8; MAX_FRAME];
        node.uplink(&readings, &mut again).unwrap();
        assert_ne!(frame[..n], again[..n], "a new counter changes the frame");
    }

    #[test]
    fn the_counter_never_wraps() {
        let mut node = Node::new(SESSION, u32::MAX);
        let readings = Readings { temperature: 20.0, humidity: 50.0, luminosity: 1, co2: None };
        assert_eq!(node.uplink(&readings, &mut [0; MAX_FRAME]), Err(NodeError::CounterExhausted));
    }

    #[test]
    fn rn2483_command_is_uppercase_hex_with_crlf() {
        let mut out = [0u8; 32];
        let n = rn2483_tx(&[0x40, 0xf1, 0x0a], &mut out).unwrap();
        assert_eq!(&out[..n], b"radio tx 40F10A\r\n");
        assert_eq!(rn2483_tx(&[0; 20], &mut [0u8; 10]), None, "too small an output buffer");
    }
}
