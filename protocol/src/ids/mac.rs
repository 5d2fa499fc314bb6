//! `Mac`: the EUI-48 station MAC that identifies every neOSensor and Raspberry Pi.
//!
//! Spec: `legacy-sensocampus.md` §3.1 (forms the server accepts, login rule), §4 (`mac4`).

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use super::serde_fixed_bytes;
use crate::{Error, hex};

/// An EUI-48 MAC address.
///
/// Canonical text (what the 2016 server stored and sends as `dest`): `24:0A:C4:12:34:56`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

impl Mac {
    /// The MAC with these bytes, in transmission order.
    pub const fn from_bytes(bytes: [u8; 6]) -> Self {
        Mac(bytes)
    }

    /// The bytes, in transmission order.
    pub const fn to_bytes(self) -> [u8; 6] {
        self.0
    }

    /// Parses a MAC as the legacy server accepted it, and also twelve bare hex digits (handy in the
    /// admin API; the legacy `/device/credentials` path must keep refusing those, so it uses
    /// [`FromStr`]).
    pub fn parse_lenient(s: &str) -> Result<Self, Error> {
        if s.len() == 12 {
            return hex::parse_bytes::<6>(s, "MAC").map(Mac).map_err(|_| Error::InvalidMac);
        }
        s.parse()
    }

    /// The form the firmware prints (`"%02x:%02x:…"`): lowercase with colons. Devices use it as the
    /// `unitID` of their device status and in `/device/credentials?mac=`.
    pub fn to_firmware_string(self) -> String {
        format!("{self:x}")
    }

    /// The legacy MQTT login, `senso_<12 lowercase hex>` (SRV `Device.reset_credentials`).
    pub fn legacy_login(self) -> String {
        let mut login = String::from(LOGIN_PREFIX);
        push_hex_lower(&mut login, &self.0);
        login
    }

    /// The four hex digits the firmware appends to its names (`mac4`): characters 12, 13, 15 and
    /// 16 of the lowercase MAC string, i.e. the last two bytes. `24:0a:c4:12:34:56` → `3456`.
    pub fn mac4(self) -> String {
        let mut s = String::with_capacity(4);
        push_hex_lower(&mut s, &self.0[4..]);
        s
    }

    /// The `unitID` of a firmware module: `<unit>_<mac4>` (`auto_3456` for I2C-scanned sensors,
    /// `pm_sds011_3456` for a configured one).
    pub fn module_unit_id(self, unit: &str) -> String {
        format!("{unit}_{}", self.mac4())
    }
}

/// Prefix of the logins the 2016 server generated (`LOGIN_PREFIX` in its settings).
pub const LOGIN_PREFIX: &str = "senso_";

fn push_hex_lower(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
}

impl FromStr for Mac {
    type Err = Error;

    /// Accepts what the 2016 server accepted and could match: six pairs of hex digits (any case)
    /// separated by `:` or `-` (mixed is fine), where a separator may also arrive percent-encoded
    /// (`%3A`, `%2D`) because the Raspberry Pi client sends the MAC through `requests` params.
    fn from_str(s: &str) -> Result<Self, Error> {
        let mut rest = s.as_bytes();
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            if i > 0 {
                rest = match rest {
                    [b':' | b'-', tail @ ..] => tail,
                    [b'%', b'3', b'a' | b'A', tail @ ..] | [b'%', b'2', b'd' | b'D', tail @ ..] => tail,
                    _ => return Err(Error::InvalidMac),
                };
            }
            let [hi, lo, tail @ ..] = rest else {
                return Err(Error::InvalidMac);
            };
            let (Some(hi), Some(lo)) = (hex::digit(*hi), hex::digit(*lo)) else {
                return Err(Error::InvalidMac);
            };
            *byte = hi << 4 | lo;
            rest = tail;
        }
        if rest.is_empty() { Ok(Mac(out)) } else { Err(Error::InvalidMac) }
    }
}

impl fmt::Display for Mac {
    /// `AA:BB:CC:DD:EE:FF`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex::write(f, &self.0, true, Some(':'))
    }
}

impl fmt::LowerHex for Mac {
    /// `aa:bb:cc:dd:ee:ff`, the firmware's form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        hex::write(f, &self.0, false, Some(':'))
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

serde_fixed_bytes!(Mac, 6, "a MAC address such as 24:0A:C4:12:34:56");

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const EXAMPLE: Mac = Mac::from_bytes([0x24, 0x0a, 0xc4, 0x12, 0x34, 0x56]);

    #[test]
    fn parses_every_form_devices_send() {
        let accepted = [
            "24:0a:c4:12:34:56",           // ESP firmware: lowercase, colons, raw in the query
            "24:0A:C4:12:34:56",           // stored form, FW-EXP uppercase
            "24-0A-C4-12-34-56",           // dashes
            "24-0a:c4-12:34-56",           // mixed separators (the legacy regex allows it)
            "24%3A0a%3Ac4%3A12%3A34%3A56", // RPi client through `requests` params
            "24%3a0a%3ac4%3a12%3a34%3a56",
            "24%2D0a%2dc4-12:34%3A56",
        ];
        for input in accepted {
            assert_eq!(input.parse::<Mac>(), Ok(EXAMPLE), "input {input:?}");
        }
    }

    #[test]
    fn refuses_what_the_legacy_server_could_never_match() {
        let refused = [
            "",
            "240ac4123456", // no separators: passed the 2016 regex but matched nothing → 403
            "240a:c4:12:34:56",
            "24:0a:c4:12:34",
            "24:0a:c4:12:34:56:78",
            "24:0a:c4:12:34:5",
            "24:0a:c4:12:34:5g",
            "24::0a:c4:12:34:56",
            "24.0a.c4.12.34.56",
            "24:0a:c4:12:34:56 ",
            " 24:0a:c4:12:34:56",
            "24%3A0a%3Ac4%3A12%3A34%3",
            "24%3B0a:c4:12:34:56",
            "２4:0a:c4:12:34:56",
        ];
        for input in refused {
            assert_eq!(input.parse::<Mac>(), Err(Error::InvalidMac), "input {input:?}");
        }
    }

    #[test]
    fn lenient_parse_also_takes_bare_hex() {
        assert_eq!(Mac::parse_lenient("240AC4123456"), Ok(EXAMPLE));
        assert_eq!(Mac::parse_lenient("24:0a:c4:12:34:56"), Ok(EXAMPLE));
        assert_eq!(Mac::parse_lenient("240AC412345"), Err(Error::InvalidMac));
        assert_eq!(Mac::parse_lenient("240AC412345Z"), Err(Error::InvalidMac));
    }

    #[test]
    fn prints_the_canonical_and_firmware_forms() {
        assert_eq!(EXAMPLE.to_string(), "24:0A:C4:12:34:56");
        assert_eq!(EXAMPLE.to_firmware_string(), "24:0a:c4:12:34:56");
        assert_eq!(format!("{EXAMPLE:?}"), "Mac(24:0A:C4:12:34:56)");
    }

    #[test]
    fn derives_the_legacy_names() {
        assert_eq!(EXAMPLE.legacy_login(), "senso_240ac4123456");
        assert_eq!(EXAMPLE.mac4(), "3456");
        assert_eq!(EXAMPLE.module_unit_id("auto"), "auto_3456");
        assert_eq!(EXAMPLE.module_unit_id("pm_sds011"), "pm_sds011_3456");
        let abcd = Mac::from_bytes([0xb8, 0x27, 0xeb, 0x00, 0xab, 0x0c]);
        assert_eq!(abcd.mac4(), "ab0c");
        assert_eq!(abcd.legacy_login(), "senso_b827eb00ab0c");
    }
}
