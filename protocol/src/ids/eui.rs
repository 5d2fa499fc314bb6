//! LoRaWAN identifiers: EUI-64 (`Eui64`, `DevEui`, `JoinEui`) and `DevAddr`.
//!
//! Values are kept big-endian, as people write them (`70B3D57ED0000001`); LoRaWAN frames carry
//! them little-endian, hence `from_le_bytes`/`to_le_bytes`.

use core::fmt;
use core::str::FromStr;

use super::serde_fixed_bytes;
use crate::{Error, hex};

macro_rules! fixed_hex_id {
    ($(#[$doc:meta])* $ty:ident, $n:expr, $what:expr, $expecting:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty([u8; $n]);

        impl $ty {
            /// The id with these bytes, most significant first.
            pub const fn from_be_bytes(bytes: [u8; $n]) -> Self {
                $ty(bytes)
            }

            /// The id from bytes in LoRaWAN frame order (least significant first).
            pub const fn from_le_bytes(bytes: [u8; $n]) -> Self {
                let mut be = bytes;
                let mut i = 0;
                while i < $n / 2 {
                    let t = be[i];
                    be[i] = be[$n - 1 - i];
                    be[$n - 1 - i] = t;
                    i += 1;
                }
                $ty(be)
            }

            /// The bytes, most significant first.
            pub const fn to_be_bytes(self) -> [u8; $n] {
                self.0
            }

            /// The bytes in LoRaWAN frame order (least significant first).
            pub const fn to_le_bytes(self) -> [u8; $n] {
                Self::from_le_bytes(self.0).0
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            /// Hex digits in either case, optionally with `:`, `-` or `_` between bytes.
            fn from_str(s: &str) -> Result<Self, Error> {
                hex::parse_bytes::<$n>(s, $what).map($ty)
            }
        }

        impl fmt::Display for $ty {
            /// Uppercase hex, no separators.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                hex::write(f, &self.0, true, None)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($ty))
            }
        }

        serde_fixed_bytes!($ty, $n, $expecting);
    };
}

fixed_hex_id!(
    /// Any EUI-64 (a gateway's EUI in Semtech UDP, for instance).
    Eui64, 8, "EUI-64", "16 hex digits"
);
fixed_hex_id!(
    /// The DevEUI of a LoRaWAN end-device: its uid in the registry (uid kind `lorawan`).
    DevEui, 8, "DevEUI", "a DevEUI of 16 hex digits"
);
fixed_hex_id!(
    /// The JoinEUI (AppEUI in LoRaWAN 1.0) of a join request.
    JoinEui, 8, "JoinEUI", "a JoinEUI of 16 hex digits"
);
fixed_hex_id!(
    /// The 32-bit device address of an active LoRaWAN session.
    DevAddr, 4, "DevAddr", "a DevAddr of 8 hex digits"
);

impl DevEui {
    /// The same 64 bits as a plain EUI-64.
    pub const fn as_eui64(self) -> Eui64 {
        Eui64(self.0)
    }
}

impl DevAddr {
    /// The address as a number (what network servers index sessions by).
    pub const fn to_u32(self) -> u32 {
        u32::from_be_bytes(self.0)
    }

    /// The 7-bit NwkID: the most significant bits, which tell the network that assigned it.
    pub const fn nwk_id(self) -> u8 {
        self.0[0] >> 1
    }
}

impl From<u32> for DevAddr {
    fn from(v: u32) -> Self {
        DevAddr(v.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn eui64_text_forms() {
        let eui = DevEui::from_be_bytes([0x70, 0xb3, 0xd5, 0x7e, 0xd0, 0x00, 0x00, 0x01]);
        for input in
            ["70B3D57ED0000001", "70b3d57ed0000001", "70-B3-D5-7E-D0-00-00-01", "70:b3:d5:7e:d0:00:00:01"]
        {
            assert_eq!(input.parse::<DevEui>(), Ok(eui), "input {input:?}");
        }
        assert_eq!(eui.to_string(), "70B3D57ED0000001");
        assert_eq!(format!("{eui:?}"), "DevEui(70B3D57ED0000001)");
        assert_eq!(eui.as_eui64().to_string(), "70B3D57ED0000001");
    }

    #[test]
    fn eui64_refuses_malformed() {
        let cases = [
            ("", Error::InvalidLength { what: "DevEUI", expected: 8 }),
            ("70B3D57ED00000", Error::InvalidLength { what: "DevEUI", expected: 8 }),
            ("70B3D57ED000000102", Error::InvalidLength { what: "DevEUI", expected: 8 }),
            ("70B3D57ED000000G", Error::InvalidHex { what: "DevEUI" }),
            ("70B3D57ED000000", Error::InvalidLength { what: "DevEUI", expected: 8 }),
        ];
        for (input, err) in cases {
            assert_eq!(input.parse::<DevEui>(), Err(err), "input {input:?}");
        }
    }

    #[test]
    fn byte_order() {
        // DevAddr 49be7df1 travels as f1 7d be 49 in the FHDR (lorawan-vectors.md #1).
        let addr = DevAddr::from_le_bytes([0xf1, 0x7d, 0xbe, 0x49]);
        assert_eq!(addr.to_string(), "49BE7DF1");
        assert_eq!(addr.to_le_bytes(), [0xf1, 0x7d, 0xbe, 0x49]);
        assert_eq!(addr.to_u32(), 0x49be_7df1);
        assert_eq!(DevAddr::from(0x49be_7df1), addr);
        assert_eq!(addr.nwk_id(), 0x24);
        let eui = Eui64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(eui.to_be_bytes(), [8, 7, 6, 5, 4, 3, 2, 1]);
    }
}
