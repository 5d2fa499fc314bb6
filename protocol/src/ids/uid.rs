//! A device's identity in the registry: `(uid_kind, uid)` (DESIGN.md §3).

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use uuid::Uuid;

use super::{DevEui, Mac};
use crate::Error;

/// How a device is identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum UidKind {
    /// By its Ethernet/WiFi MAC (neOSensors, Raspberry Pi, Jetson).
    Ethernet,
    /// By its LoRaWAN DevEUI.
    Lorawan,
    /// By a UUID (devices with neither).
    Uuid,
}

impl UidKind {
    /// The name used in the API and the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            UidKind::Ethernet => "ethernet",
            UidKind::Lorawan => "lorawan",
            UidKind::Uuid => "uuid",
        }
    }
}

impl FromStr for UidKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "ethernet" => Ok(UidKind::Ethernet),
            "lorawan" => Ok(UidKind::Lorawan),
            "uuid" => Ok(UidKind::Uuid),
            _ => Err(Error::UnknownUidKind),
        }
    }
}

impl fmt::Display for UidKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device uid of a known kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceUid {
    /// A MAC (uid kind `ethernet`).
    Ethernet(Mac),
    /// A DevEUI (uid kind `lorawan`).
    Lorawan(DevEui),
    /// A UUID (uid kind `uuid`).
    Uuid(Uuid),
}

impl DeviceUid {
    /// Its kind.
    pub const fn kind(&self) -> UidKind {
        match self {
            DeviceUid::Ethernet(_) => UidKind::Ethernet,
            DeviceUid::Lorawan(_) => UidKind::Lorawan,
            DeviceUid::Uuid(_) => UidKind::Uuid,
        }
    }

    /// Parses `s` as a uid of the given kind (MACs leniently: bare hex is fine here).
    pub fn parse(kind: UidKind, s: &str) -> Result<Self, Error> {
        match kind {
            UidKind::Ethernet => Mac::parse_lenient(s).map(DeviceUid::Ethernet),
            UidKind::Lorawan => s.parse().map(DeviceUid::Lorawan),
            UidKind::Uuid => Uuid::try_parse(s).map(DeviceUid::Uuid).map_err(|_| Error::InvalidUuid),
        }
    }

    /// Guesses the kind from the text alone, for paths such as `/api/v1/devices/{id}`:
    /// a separated MAC or 12 hex digits → ethernet, 16 hex digits → lorawan, a UUID → uuid.
    pub fn guess(s: &str) -> Option<Self> {
        if let Ok(mac) = Mac::parse_lenient(s) {
            return Some(DeviceUid::Ethernet(mac));
        }
        if let Ok(eui) = s.parse() {
            return Some(DeviceUid::Lorawan(eui));
        }
        Uuid::try_parse(s).ok().map(DeviceUid::Uuid)
    }

    /// The canonical text of the uid (what is stored and indexed).
    pub fn canonical(&self) -> String {
        use alloc::string::ToString;
        self.to_string()
    }
}

impl fmt::Display for DeviceUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceUid::Ethernet(mac) => fmt::Display::fmt(mac, f),
            DeviceUid::Lorawan(eui) => fmt::Display::fmt(eui, f),
            DeviceUid::Uuid(uuid) => fmt::Display::fmt(&uuid.hyphenated(), f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print() {
        for kind in [UidKind::Ethernet, UidKind::Lorawan, UidKind::Uuid] {
            assert_eq!(kind.as_str().parse::<UidKind>(), Ok(kind));
        }
        assert_eq!("Ethernet".parse::<UidKind>(), Err(Error::UnknownUidKind));
        assert_eq!("".parse::<UidKind>(), Err(Error::UnknownUidKind));
    }

    #[test]
    fn guesses_the_kind() {
        let cases: &[(&str, Option<UidKind>)] = &[
            ("24:0a:c4:12:34:56", Some(UidKind::Ethernet)),
            ("240AC4123456", Some(UidKind::Ethernet)),
            ("70B3D57ED0000001", Some(UidKind::Lorawan)),
            ("0f8e6b0a-2c1d-4e8f-9a7b-3c2d1e0f4a5b", Some(UidKind::Uuid)),
            ("", None),
            ("senso_240ac4123456", None),
            ("70B3D57ED000000", None),
        ];
        for (input, kind) in cases {
            assert_eq!(DeviceUid::guess(input).map(|u| u.kind()), *kind, "input {input:?}");
        }
        assert_eq!(DeviceUid::guess("24-0a-c4-12-34-56").unwrap().canonical(), "24:0A:C4:12:34:56");
    }

    #[test]
    fn parse_by_kind_reports_the_kind_error() {
        assert_eq!(DeviceUid::parse(UidKind::Ethernet, "xx"), Err(Error::InvalidMac));
        assert_eq!(
            DeviceUid::parse(UidKind::Lorawan, "12"),
            Err(Error::InvalidLength { what: "DevEUI", expected: 8 })
        );
        assert_eq!(DeviceUid::parse(UidKind::Uuid, "12"), Err(Error::InvalidUuid));
    }
}
