//! Typed identifiers: never pass a MAC, an EUI or a registry id around as a bare `String`.
//!
//! Each id is a fixed-size byte array with a canonical text form (`Display`) and a tolerant
//! parser (`FromStr`). With serde, ids are strings in human-readable formats (JSON, TOML) and raw
//! bytes in postcard, so a 100k-device sync snapshot stays small.

mod eui;
mod mac;
mod registry;
mod uid;

pub use eui::{DevAddr, DevEui, Eui64, JoinEui};
pub use mac::{LOGIN_PREFIX, Mac};
pub use registry::{BuildingId, DeviceId, DeviceTypeId, GatewayId, RoomId, SiteId};
pub use uid::{DeviceUid, UidKind};

/// Implements serde for a `[u8; N]` newtype that has `Display`, `FromStr` and `from_bytes`:
/// text for human-readable formats, the bytes themselves otherwise.
macro_rules! serde_fixed_bytes {
    ($ty:ident, $n:expr, $expecting:expr) => {
        #[cfg(feature = "serde")]
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    serde::Serialize::serialize(&self.0, s)
                }
            }
        }

        #[cfg(feature = "serde")]
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    struct Visitor;
                    impl serde::de::Visitor<'_> for Visitor {
                        type Value = $ty;
                        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                            f.write_str($expecting)
                        }
                        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                            v.parse().map_err(E::custom)
                        }
                    }
                    d.deserialize_str(Visitor)
                } else {
                    let bytes: [u8; $n] = serde::Deserialize::deserialize(d)?;
                    Ok($ty(bytes))
                }
            }
        }
    };
}
pub(crate) use serde_fixed_bytes;
