//! The MAC commands the gateway handles (LoRaWAN 1.0.x): a node's `LinkCheckReq` is answered
//! with `LinkCheckAns` (its link margin and how many forwarders heard it) in the receive windows
//! of that uplink; a `DevStatusReq` goes to each node at most once per [`DEV_STATUS_EVERY`], and
//! the `DevStatusAns` it sends back (battery, margin) goes into the node's status; a
//! `LinkADRAns` settles the node's ADR request ([`super::adr`]).

use std::time::Duration;

/// How often a node is asked for its status (battery, margin): ChirpStack's default device
/// profile asks once a day; each request costs a downlink.
pub const DEV_STATUS_EVERY: Duration = Duration::from_secs(24 * 3600);

/// What an uplink's MAC commands (FOpts, or a port-0 payload) ask or say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UplinkMac {
    /// A `LinkCheckReq`.
    pub link_check: bool,
    /// A `DevStatusAns`.
    pub dev_status: Option<DevStatus>,
    /// A `LinkADRAns`'s status byte (the last one, when several answer one request).
    pub link_adr: Option<u8>,
}

impl UplinkMac {
    /// What both sets of commands ask or say (the first `DevStatusAns` wins).
    pub fn and(self, other: UplinkMac) -> UplinkMac {
        UplinkMac {
            link_check: self.link_check || other.link_check,
            dev_status: self.dev_status.or(other.dev_status),
            link_adr: other.link_adr.or(self.link_adr),
        }
    }
}

/// A node's `DevStatusAns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevStatus {
    /// 0: external power; 1–254: level; 255: unknown.
    pub battery: u8,
    /// SNR margin of the node's last `DevStatusReq`, dB (−32 to 31).
    pub margin: i8,
}

impl DevStatus {
    /// The fields it adds to the node's status: `battery` (percent, `null` when external or
    /// unknown), `external_power`, `margin` (dB).
    pub fn status_fields(&self) -> [(&'static str, serde_json::Value); 3] {
        let level = match self.battery {
            1..=254 => serde_json::json!((f64::from(self.battery) * 10_000.0 / 254.0).round() / 100.0),
            _ => serde_json::Value::Null,
        };
        [("battery", level), ("external_power", (self.battery == 0).into()), ("margin", self.margin.into())]
    }
}

/// Payload length of each uplink MAC command of LoRaWAN 1.0.x (after its CID); `None` for a CID
/// this gateway does not know (its length is unknown: the rest cannot be read).
fn uplink_payload_len(cid: u8) -> Option<usize> {
    match cid {
        // LinkCheckReq, DutyCycleAns, RXTimingSetupAns, TxParamSetupAns, DeviceTimeReq.
        0x02 | 0x04 | 0x08 | 0x09 | 0x0d => Some(0),
        // LinkADRAns, RXParamSetupAns, NewChannelAns, DlChannelAns.
        0x03 | 0x05 | 0x07 | 0x0a => Some(1),
        // DevStatusAns.
        0x06 => Some(2),
        _ => None,
    }
}

/// Reads an uplink's MAC commands, up to the end or the first unknown or truncated one.
pub fn parse_uplink(commands: &[u8]) -> UplinkMac {
    let mut out = UplinkMac::default();
    let mut i = 0;
    while let Some(&cid) = commands.get(i) {
        let Some(len) = uplink_payload_len(cid) else { break };
        let Some(payload) = commands.get(i + 1..i + 1 + len) else { break };
        match cid {
            0x02 => out.link_check = true,
            0x03 => out.link_adr = Some(payload[0]),
            0x06 => {
                // Margin: 6-bit two's complement.
                let raw = payload[1] & 0x3f;
                let margin = if raw & 0x20 != 0 { raw as i8 - 64 } else { raw as i8 };
                out.dev_status = Some(DevStatus { battery: payload[0], margin });
            }
            _ => {}
        }
        i += 1 + len;
    }
    out
}

/// The link margin a `LinkCheckAns` reports: the uplink's SNR above the demodulation floor of
/// its spreading factor (SX1276: SF7 −7.5 dB … SF12 −20 dB), in whole dB, 0 to 254.
pub fn link_margin(snr: Option<f64>, datarate: Option<&str>) -> u8 {
    let floor = match datarate.and_then(|d| d.strip_prefix("SF")).and_then(|d| d.split("BW").next()) {
        Some("7") => -7.5,
        Some("8") => -10.0,
        Some("9") => -12.5,
        Some("10") => -15.0,
        Some("11") => -17.5,
        Some("12") => -20.0,
        _ => return 0,
    };
    match snr.filter(|s| s.is_finite()) {
        Some(snr) => (snr - floor).floor().clamp(0.0, 254.0) as u8,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplink_commands_are_read_until_an_unknown_one() {
        assert_eq!(parse_uplink(&[0x02]), UplinkMac { link_check: true, ..UplinkMac::default() });
        // LinkADRAns (1 byte), DevStatusAns (battery 200, margin −3 = 0x3d), LinkCheckReq.
        let mac = parse_uplink(&[0x03, 0x07, 0x06, 200, 0x3d, 0x02]);
        assert_eq!(
            mac,
            UplinkMac {
                link_check: true,
                dev_status: Some(DevStatus { battery: 200, margin: -3 }),
                link_adr: Some(0x07)
            }
        );
        assert_eq!(parse_uplink(&[0x06, 0, 0x1f]).dev_status, Some(DevStatus { battery: 0, margin: 31 }));
        assert_eq!(
            parse_uplink(&[0x06, 255, 0x20]).dev_status,
            Some(DevStatus { battery: 255, margin: -32 })
        );
        assert_eq!(parse_uplink(&[0x06, 200]), UplinkMac::default(), "truncated");
        assert_eq!(parse_uplink(&[0x7f, 0x02]), UplinkMac::default(), "an unknown CID ends the reading");
        assert_eq!(parse_uplink(&[]), UplinkMac::default());
        for n in 0..=255u8 {
            let _ = parse_uplink(&[n, n, n, n]);
        }
    }

    #[test]
    fn battery_and_margin_in_the_status() {
        let fields = |battery| DevStatus { battery, margin: 5 }.status_fields();
        assert_eq!(fields(254)[0].1, serde_json::json!(100.0));
        assert_eq!(fields(127)[0].1, serde_json::json!(50.0));
        assert_eq!(
            (fields(0)[0].1.clone(), fields(0)[1].1.clone()),
            (serde_json::Value::Null, serde_json::json!(true))
        );
        assert_eq!(
            (fields(255)[0].1.clone(), fields(255)[2].1.clone()),
            (serde_json::Value::Null, serde_json::json!(5))
        );
    }

    #[test]
    fn margins_above_the_demodulation_floor() {
        assert_eq!(link_margin(Some(9.5), Some("SF7BW125")), 17);
        assert_eq!(link_margin(Some(-18.0), Some("SF12BW125")), 2);
        assert_eq!(link_margin(Some(-30.0), Some("SF12BW125")), 0);
        assert_eq!(link_margin(Some(f64::NAN), Some("SF7BW125")), 0);
        assert_eq!(link_margin(Some(5.0), Some("50000")), 0, "FSK: no floor known");
        assert_eq!(link_margin(None, Some("SF9BW125")), 0);
    }
}
