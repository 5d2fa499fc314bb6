//! LoRaWAN sessions of `lorawan` devices: checked, keys sealed at once (they are never shown
//! again), a view without the keys, and the record a gateway receives (keys sealed for it).

use neosens_protocol::DeviceUid;
use neosens_protocol::ids::{DevAddr, DeviceId};
use neosens_runtime::keys::Keys;

use super::RegistryError;
use neosens_protocol::sync::lorawan_key_context as key_context;

use crate::model::{Codec, LorawanSession};

/// A session as an admin gives it (keys in hex, shown nowhere afterwards).
#[derive(Clone)]
pub struct NewLorawanSession {
    /// Device address, 8 hex digits.
    pub dev_addr: String,
    /// NwkSKey, 32 hex digits.
    pub nwk_s_key: String,
    /// AppSKey, 32 hex digits.
    pub app_s_key: String,
    /// `cayenne_lpp` (default), `neocampus_lpp`, `hex`, or `layout` (its device type's payload layout).
    pub codec: Option<Codec>,
    /// Accept a frame counter that went back (nodes resetting it at reboot; default false).
    pub relax_f_cnt: Option<bool>,
    /// Last uplink counter of an imported session (default 0).
    pub f_cnt_up: Option<u32>,
}

impl std::fmt::Debug for NewLorawanSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLorawanSession").field("dev_addr", &self.dev_addr).finish_non_exhaustive()
    }
}

/// A session without its keys.
#[derive(Debug, Clone)]
pub struct LorawanInfo {
    /// Device address.
    pub dev_addr: String,
    /// Payload codec.
    pub codec: Codec,
    /// Whether a counter going back is accepted.
    pub relax_f_cnt: bool,
    /// Last uplink counter known to central.
    pub f_cnt_up: u32,
    /// Always `"sealed"`: keys are not shown after creation.
    pub keys: &'static str,
}

impl From<&LorawanSession> for LorawanInfo {
    fn from(s: &LorawanSession) -> Self {
        LorawanInfo {
            dev_addr: s.dev_addr.to_string(),
            codec: s.codec,
            relax_f_cnt: s.relax_f_cnt,
            f_cnt_up: s.f_cnt_up,
            keys: "sealed",
        }
    }
}

fn key(field: &str, hex: &str) -> Result<[u8; 16], RegistryError> {
    neosens_protocol::hex::decode_array(hex.trim(), "AES-128 key")
        .map_err(|_| RegistryError::invalid(field, "an AES-128 key: 32 hex digits"))
}

/// Checks a session for a device and seals its keys with central's key.
pub(super) fn seal_session(
    keys: &Keys,
    id: DeviceId,
    uid: &DeviceUid,
    input: &NewLorawanSession,
) -> Result<LorawanSession, RegistryError> {
    if !matches!(uid, DeviceUid::Lorawan(_)) {
        return Err(RegistryError::invalid("lorawan", "only LoRaWAN devices (a DevEUI uid) have a session"));
    }
    let dev_addr: DevAddr = input
        .dev_addr
        .trim()
        .parse()
        .map_err(|_| RegistryError::invalid("lorawan.dev_addr", "8 hex digits"))?;
    let nwk = key("lorawan.nwk_s_key", &input.nwk_s_key)?;
    let app = key("lorawan.app_s_key", &input.app_s_key)?;
    let device = id.to_bytes();
    Ok(LorawanSession {
        dev_addr,
        nwk_s_key: keys.seal(&nwk, &key_context(device, "nwk"))?,
        app_s_key: keys.seal(&app, &key_context(device, "app"))?,
        f_cnt_up: input.f_cnt_up.unwrap_or(0),
        relax_f_cnt: input.relax_f_cnt.unwrap_or(false),
        codec: input.codec.unwrap_or(Codec::CayenneLpp),
    })
}

/// The session as a gateway receives it: keys opened with central's key, sealed for the gateway.
pub(super) fn for_gateway(
    session: &LorawanSession,
    id: DeviceId,
    gw: &Keys,
    central: &Keys,
) -> Result<neosens_protocol::sync::LorawanSession, RegistryError> {
    let device = id.to_bytes();
    let reseal = |sealed, which: &str| -> Result<_, RegistryError> {
        let context = key_context(device, which);
        let plain = central.open(sealed, &context)?;
        Ok(gw.seal(&plain, &context)?)
    };
    Ok(neosens_protocol::sync::LorawanSession {
        dev_addr: session.dev_addr,
        nwk_s_key: reseal(&session.nwk_s_key, "nwk")?,
        app_s_key: reseal(&session.app_s_key, "app")?,
        f_cnt_up: session.f_cnt_up,
        relax_f_cnt: session.relax_f_cnt,
        codec: session.codec.as_str().to_owned(),
    })
}
