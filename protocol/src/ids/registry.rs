//! Registry ids: one UUID newtype per kind of record, so a room id can't be passed as a site id.

use core::fmt;
use core::str::FromStr;

use uuid::Uuid;

use crate::Error;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        pub struct $ty(Uuid);

        impl $ty {
            /// Wraps a UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                $ty(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 bytes, for storage keys.
            pub const fn to_bytes(self) -> [u8; 16] {
                *self.0.as_bytes()
            }

            /// From the 16 bytes of a storage key.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                $ty(Uuid::from_bytes(bytes))
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                Uuid::try_parse(s).map($ty).map_err(|_| Error::InvalidUuid)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.0.hyphenated())
            }
        }
    };
}

uuid_id!(
    /// A site: the default campus (`ut3`) or one "abroad".
    SiteId
);
uuid_id!(
    /// A building of a site (including the special `outside` building).
    BuildingId
);
uuid_id!(
    /// A room of a building (or an outdoor area).
    RoomId
);
uuid_id!(
    /// A device type (`esp32`, `lorawan_node` …).
    DeviceTypeId
);
uuid_id!(
    /// A device's internal id (its uid — MAC, DevEUI — may change; this never does).
    DeviceId
);
uuid_id!(
    /// An edge gateway.
    GatewayId
);

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn uuid_ids_round_trip() {
        let s = "0f8e6b0a-2c1d-4e8f-9a7b-3c2d1e0f4a5b";
        let id: DeviceId = s.parse().unwrap();
        assert_eq!(id.to_string(), s);
        assert_eq!(DeviceId::from_bytes(id.to_bytes()), id);
        assert_eq!("0F8E6B0A2C1D4E8F9A7B3C2D1E0F4A5B".parse::<DeviceId>(), Ok(id));
        assert_eq!("not-a-uuid".parse::<SiteId>(), Err(Error::InvalidUuid));
        assert_eq!("".parse::<SiteId>(), Err(Error::InvalidUuid));
    }
}
