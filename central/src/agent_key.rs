//! `neosens-central agent-key`: the admins' signing key of gateway builds
//! ([`neosens_protocol::agent_build`]). Run it where the key lives — a workstation, not
//! necessarily central's host: it needs no configuration, data directory or network.
//!
//! The private key is a PKCS#8 document (what `ring` reads and writes), written 0600; the public
//! key, 64 hex digits, is what every gateway pins (`[update] public_key`).

use std::path::Path;

use anyhow::Context;
use neosens_protocol::agent_build::{AGENT_HARDWARE_PREFIX, signed_message};
use neosens_protocol::hex;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// Creates a key pair in `out` (refusing to overwrite one) and returns its public key, hex.
pub fn generate(out: &Path) -> anyhow::Result<String> {
    if out.exists() {
        anyhow::bail!(
            "{} exists: a signing key is never overwritten (the gateways pin its public key)",
            out.display()
        );
    }
    let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    neosens_runtime::durable::write_private(out, document.as_ref())
        .with_context(|| format!("writing {}", out.display()))?;
    public_key(out)
}

/// The public key of the key pair in `key`, hex.
pub fn public_key(key: &Path) -> anyhow::Result<String> {
    Ok(hex::encode(load(key)?.public_key().as_ref()))
}

/// The signature (hex) of the build in `build` for `hardware` and `revision`: what
/// `POST /api/v1/firmware?signature=` takes.
pub fn sign(key: &Path, hardware: &str, revision: u64, build: &Path) -> anyhow::Result<String> {
    if !hardware.starts_with(AGENT_HARDWARE_PREFIX) {
        anyhow::bail!(
            "{hardware:?} is not a gateway build's hardware (neosens-edge-aarch64, neosens-edge-armv7 …)"
        );
    }
    let pair = load(key)?;
    let content = std::fs::read(build).with_context(|| format!("reading {}", build.display()))?;
    let sha = ring::digest::digest(&ring::digest::SHA256, &content);
    let signature = pair.sign(&signed_message(hardware, revision, &hex::encode(sha.as_ref())));
    Ok(hex::encode(signature.as_ref()))
}

fn load(key: &Path) -> anyhow::Result<Ed25519KeyPair> {
    let document =
        std::fs::read(key).with_context(|| format!("reading the signing key {}", key.display()))?;
    Ed25519KeyPair::from_pkcs8(&document).map_err(|e| {
        anyhow::anyhow!("{} is not an ed25519 key written by `agent-key generate`: {e}", key.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ED25519, UnparsedPublicKey};

    #[test]
    fn a_signature_checks_with_the_public_key_and_binds_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        let (key, build) = (dir.path().join("k.pk8"), dir.path().join("b"));
        let public = generate(&key).unwrap();
        assert!(generate(&key).unwrap_err().to_string().contains("never overwritten"));
        assert_eq!(public, public_key(&key).unwrap());
        std::fs::write(&build, b"a build").unwrap();
        let signature =
            hex::decode_array::<64>(&sign(&key, "neosens-edge-aarch64", 7, &build).unwrap(), "s").unwrap();
        let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, b"a build").as_ref());
        let verifier = UnparsedPublicKey::new(&ED25519, hex::decode_array::<32>(&public, "p").unwrap());
        assert!(verifier.verify(&signed_message("neosens-edge-aarch64", 7, &sha), &signature).is_ok());
        assert!(verifier.verify(&signed_message("neosens-edge-aarch64", 8, &sha), &signature).is_err());
        assert!(sign(&key, "esp32", 7, &build).is_err());
        std::fs::write(&key, b"junk").unwrap();
        assert!(
            sign(&key, "neosens-edge-aarch64", 7, &build)
                .unwrap_err()
                .to_string()
                .contains("not an ed25519 key")
        );
    }
}
