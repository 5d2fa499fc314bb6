//! The JSON bodies, answers and query strings of `/api/v1`, with their OpenAPI schemas.
//!
//! The registry takes and returns plain values; each type here is the wire form of one of them,
//! converted with `From` at the handler. So the API's names, defaults and `null` rules live in
//! one place, and a serde attribute added for a client cannot change what the registry decides
//! or what the store writes (whose bytes `store::disk_format_tests` pins).

pub(crate) mod device_types;
pub(crate) mod devices;
pub(crate) mod fleet;
pub(crate) mod gateways;
pub(crate) mod locations;
pub(crate) mod orders;
pub(crate) mod users;

use serde::Deserialize;

/// Distinguishes an absent field (`None`: unchanged) from an explicit `null` (`Some(None)`:
/// cleared) in a patch.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
