//! The stamp a gateway puts on the statuses it relays, so that central trusts their `msg_id`
//! only from the device's own gateway — the one contract both sides sign and check.
//!
//! A gateway numbers everything it relays (`msg_id`, its outbox sequence) so that central can
//! drop a message sent again after a crash. Devices publish on the same room topics, so a device
//! could put a forged `msg_id` (say 2⁶³) in a status naming another device, and central would
//! then drop that device's real statuses as "already seen". The stamp closes that:
//!
//! `"relay": "<gateway id>.<epoch, 16 hex>.<tag, 32 hex>"`, where the epoch is a random number
//! the gateway draws when its outbox is created (a reinstalled gateway starts a new sequence
//! under a new epoch, which central recognises instead of dropping its statuses), and the tag is
//! the first 16 bytes of HMAC-SHA256 over `<gateway id>.<epoch>.<msg_id>.<topic>` with the
//! gateway's **forwarding key**: derived from the gateway's own key pair (which central keeps
//! sealed), distinct from its API/MQTT secret — knowing the broker password does not let anyone
//! stamp.

use ring::hmac;

use crate::keys::Keys;

/// The JSON field of the stamp.
pub const FIELD: &str = "relay";

/// Bytes of HMAC kept in a tag (128 bits: forging one is hopeless).
const TAG_BYTES: usize = 16;

/// A gateway's forwarding key.
pub struct RelayKey(hmac::Key);

impl std::fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayKey(..)")
    }
}

/// A stamp read from a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// The gateway that claims to have relayed it (its id, as central printed it).
    pub gateway: &'a str,
    /// Its outbox epoch.
    pub epoch: u64,
    tag: [u8; TAG_BYTES],
}

fn message(gateway: &str, epoch: u64, msg_id: u64, topic: &str) -> String {
    format!("{gateway}.{epoch:016x}.{msg_id}.{topic}")
}

impl RelayKey {
    /// The forwarding key of the gateway whose key pair is `gateway_keys`.
    pub fn derive(gateway_keys: &Keys) -> Self {
        RelayKey(hmac::Key::new(hmac::HMAC_SHA256, &gateway_keys.hash(b"neosens relay key v1")))
    }

    fn tag(&self, gateway: &str, epoch: u64, msg_id: u64, topic: &str) -> [u8; TAG_BYTES] {
        let full = hmac::sign(&self.0, message(gateway, epoch, msg_id, topic).as_bytes());
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full.as_ref()[..TAG_BYTES]);
        tag
    }

    /// The stamp of message `msg_id` on `topic`, relayed by `gateway` in outbox `epoch`.
    pub fn stamp(&self, gateway: &str, epoch: u64, msg_id: u64, topic: &str) -> String {
        let tag = neosens_protocol::hex::encode(&self.tag(gateway, epoch, msg_id, topic));
        format!("{gateway}.{epoch:016x}.{tag}")
    }

    /// Whether `stamp` was made with this key for `msg_id` on `topic` (constant time).
    pub fn verify(&self, stamp: &Stamp<'_>, msg_id: u64, topic: &str) -> bool {
        let expected = self.tag(stamp.gateway, stamp.epoch, msg_id, topic);
        // Compare HMACs of both (ring has no public constant-time equality for raw bytes).
        let a = hmac::sign(&self.0, &expected);
        hmac::verify(&self.0, &stamp.tag, a.as_ref()).is_ok()
    }
}

/// Reads a stamp (`None` when it is not one).
pub fn parse(text: &str) -> Option<Stamp<'_>> {
    let mut parts = text.rsplitn(3, '.');
    let tag_hex = parts.next()?;
    let epoch_hex = parts.next()?;
    let gateway = parts.next()?;
    if gateway.is_empty() || epoch_hex.len() != 16 || tag_hex.len() != 2 * TAG_BYTES {
        return None;
    }
    let epoch = u64::from_be_bytes(neosens_protocol::hex::decode_array(epoch_hex, "stamp epoch").ok()?);
    let tag = neosens_protocol::hex::decode_array(tag_hex, "stamp tag").ok()?;
    Some(Stamp { gateway, epoch, tag })
}

/// Puts `"relay": <stamp>` first in a JSON object's text (`{…}`), without parsing it: the
/// outbox stamps every status it relays at append time. Anything else is returned unchanged.
pub fn insert_field(payload: Vec<u8>, stamp: &str) -> Vec<u8> {
    if payload.first() != Some(&b'{') {
        return payload;
    }
    let empty = payload[1..].iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
    let mut out = Vec::with_capacity(payload.len() + stamp.len() + 12);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(FIELD.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(stamp.as_bytes());
    out.push(b'"');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&payload[1..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> RelayKey {
        RelayKey::derive(&Keys::from_bytes(&[n; 32], &[n; 32], ring::rand::SystemRandom::new()))
    }

    const GW: &str = "0b5f2a4e-6a7c-4c1e-9d55-1c2f3a4b5c6d";

    #[test]
    fn a_stamp_verifies_for_its_message_only() {
        let k = key(1);
        let text = k.stamp(GW, 0xdead_beef, 42, "u4/302/device");
        let stamp = parse(&text).expect("parses");
        assert_eq!((stamp.gateway, stamp.epoch), (GW, 0xdead_beef));
        assert!(k.verify(&stamp, 42, "u4/302/device"));
        assert!(!k.verify(&stamp, 43, "u4/302/device"), "another msg_id");
        assert!(!k.verify(&stamp, 42, "u4/303/device"), "another topic");
        assert!(!key(2).verify(&stamp, 42, "u4/302/device"), "another gateway's key");
        let other_epoch = Stamp { epoch: 1, ..stamp.clone() };
        assert!(!k.verify(&other_epoch, 42, "u4/302/device"), "another epoch");
    }

    #[test]
    fn malformed_stamps_are_not_stamps() {
        let good = key(1).stamp(GW, 7, 1, "t");
        for bad in [
            "",
            "...",
            "gw.0000000000000007",
            ".0000000000000007.00112233445566778899aabbccddeeff",
            "gw.7.00112233445566778899aabbccddeeff",
            "gw.000000000000000g.00112233445566778899aabbccddeeff",
            "gw.0000000000000007.0011223344556677",
            &good[..good.len() - 1],
            "gw.0000000000000007.00112233445566778899aabbccddeefé",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_field_goes_first_in_the_object() {
        let stamped = insert_field(br#"{"msg_id":3,"status":"running"}"#.to_vec(), "s");
        let v: serde_json::Value = serde_json::from_slice(&stamped).unwrap();
        assert_eq!((v["relay"].as_str(), v["msg_id"].as_u64()), (Some("s"), Some(3)));
        let v: serde_json::Value = serde_json::from_slice(&insert_field(b"{ }".to_vec(), "s")).unwrap();
        assert_eq!(v["relay"], "s");
        assert_eq!(insert_field(b"[1]".to_vec(), "s"), b"[1]", "not an object: unchanged");
    }
}
