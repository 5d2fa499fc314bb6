//! The secrets a gateway and central both derive from the gateway's key pair (given at
//! enrolment, kept sealed by central and in `gateway.json` by the gateway), each for one use:
//!
//! | secret | used for | derived |
//! |---|---|---|
//! | API secret (`nsg_…`) | bearer token on `/api/v1/edge/*` | no: random, given at enrolment |
//! | MQTT password (`nsm_…`) | the gateway's broker login `gw-<id>` | [`mqtt_password`] |
//! | forwarding key | stamps on the statuses it relays | [`crate::relay::RelayKey::derive`] |
//!
//! One leaking (an MQTT CONNECT read on an unencrypted link, a bearer token in a proxy's log)
//! gives nothing of the others: each derivation is an HMAC under the pair's hash key with its
//! own label, which cannot be inverted. Deriving rather than storing means no new field in the
//! stored records and nothing more to keep on the gateway.

use base64::Engine;

use crate::keys::Keys;

/// Prefix of gateway MQTT passwords.
pub const MQTT_PASSWORD_PREFIX: &str = "nsm_";

/// The MQTT password of the gateway whose key pair is `gateway_keys`.
pub fn mqtt_password(gateway_keys: &Keys) -> String {
    let raw = gateway_keys.hash(b"neosens gateway mqtt password v1");
    format!("{MQTT_PASSWORD_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_password_per_key_pair_unlike_the_forwarding_key() {
        let keys = |n: u8| Keys::from_bytes(&[n; 32], &[n; 32], ring::rand::SystemRandom::new());
        let p = mqtt_password(&keys(1));
        assert!(p.starts_with(MQTT_PASSWORD_PREFIX) && p.len() == 4 + 43, "{p}");
        assert_eq!(p, mqtt_password(&keys(1)), "central and the gateway derive the same");
        assert_ne!(p, mqtt_password(&keys(2)));
    }
}
