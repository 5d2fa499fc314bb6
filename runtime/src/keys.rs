//! Keys and what they protect: device secrets, API tokens, sealed hand-overs.
//!
//! Central's two 32-byte keys live in `<data_dir>/keys/` (mode 0600, created at first start):
//! - `hash.key`: HMAC-SHA-256 key. Device secrets and API tokens are stored only as this keyed
//!   hash: a stolen database alone does not let anyone check guesses offline.
//! - `seal.key`: AES-256-GCM key. A secret that must be handed over later (first delivery to the
//!   device, pushing it to the broker's dynamic security) is kept sealed, bound to its record id.
//!
//! Secrets are server-generated and high-entropy (UUIDv4 for devices, as the 2016 server did;
//! 256 random bits for tokens), which is why a fast keyed hash is the right verifier here; human
//! passwords use argon2id instead (see central's `registry::users`).
//!
//! Each gateway gets a pair of its own at enrolment: central hashes device secrets and seals
//! first-time secrets for it with that pair, so a gateway checks and hands them over offline
//! without ever holding central's keys.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use neosens_protocol::sync::Sealed;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of API tokens, so they are recognisable in a leaked file or a log.
pub const TOKEN_PREFIX: &str = "nst_";

/// Why keys could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("key file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
    /// A sealed value does not open with this key (wrong key, or tampered data).
    #[error("sealed value does not open with this server's key")]
    Unseal,
}

/// A hash key, a sealing key, and the system random generator.
pub struct Keys {
    hash_key: hmac::Key,
    seal_key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys { .. }")
    }
}

impl Keys {
    /// Loads the keys from `<data_dir>/keys/`, creating them (0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let dir = data_dir.join("keys");
        std::fs::create_dir_all(&dir).map_err(|e| file_err(&dir, e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| file_err(&dir, e))?;
        let hash = load_or_create_key(&dir.join("hash.key"), &rng)?;
        let seal = load_or_create_key(&dir.join("seal.key"), &rng)?;
        Ok(Self::from_bytes(&hash, &seal, rng))
    }

    /// Keys from raw bytes (tests, benchmarks).
    pub fn from_bytes(hash: &[u8; 32], seal: &[u8; 32], rng: SystemRandom) -> Self {
        let hash_key = hmac::Key::new(hmac::HMAC_SHA256, hash);
        let seal_key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, seal).expect("AES-256 takes 32-byte keys"));
        Keys { hash_key, seal_key, rng }
    }

    /// The keyed hash of a secret.
    pub fn hash(&self, secret: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.hash_key, secret);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `secret` hashes to `expected` (constant time).
    pub fn verify(&self, secret: &[u8], expected: &[u8; 32]) -> bool {
        hmac::verify(&self.hash_key, secret, expected).is_ok()
    }

    /// Seals `plaintext`, bound to `context` (the record it belongs to): a sealed value moved to
    /// another record does not open.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Sealed, KeyError> {
        let nonce_bytes: [u8; NONCE_LEN] = self.random()?;
        let mut ciphertext = plaintext.to_vec();
        self.seal_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut ciphertext,
            )
            .map_err(|_| KeyError::Random)?;
        Ok(Sealed { nonce: nonce_bytes, ciphertext })
    }

    /// Opens a value sealed by [`seal`](Self::seal) with the same `context`.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut buf = sealed.ciphertext.clone();
        let plain = self
            .seal_key
            .open_in_place(Nonce::assume_unique_for_key(sealed.nonce), Aad::from(context), &mut buf)
            .map_err(|_| KeyError::Unseal)?;
        Ok(plain.to_vec())
    }

    /// `N` random bytes from the system generator.
    pub fn random<const N: usize>(&self) -> Result<[u8; N], KeyError> {
        let mut out = [0u8; N];
        self.rng.fill(&mut out).map_err(|_| KeyError::Random)?;
        Ok(out)
    }

    /// A new device secret: a random UUIDv4, as the 2016 server generated (36 characters, within
    /// the firmware's 63-byte password buffer).
    pub fn new_device_secret(&self) -> Result<String, KeyError> {
        Ok(uuid::Builder::from_random_bytes(self.random()?).into_uuid().hyphenated().to_string())
    }

    /// A new API token: `nst_` and 256 random bits in URL-safe base64.
    pub fn new_token(&self) -> Result<String, KeyError> {
        let bytes: [u8; 32] = self.random()?;
        Ok(format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
    }
}

fn file_err(path: &Path, e: std::io::Error) -> KeyError {
    KeyError::File { path: path.to_owned(), reason: e.to_string() }
}

fn load_or_create_key(path: &Path, rng: &SystemRandom) -> Result<[u8; 32], KeyError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(path).map_err(|e| file_err(path, e))?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "key file is readable by others; chmod 600 it");
            }
            bytes.try_into().map_err(|b: Vec<u8>| KeyError::File {
                path: path.to_owned(),
                reason: format!("expected 32 bytes, found {} (restore it from a backup)", b.len()),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rng.fill(&mut key).map_err(|_| KeyError::Random)?;
            // Whole and durable, or not there: a crash never leaves a truncated or lost key.
            crate::durable::write_private(path, &key).map_err(|e| file_err(path, e))?;
            tracing::info!(path = %path.display(), "created server key");
            Ok(key)
        }
        Err(e) => Err(file_err(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_bytes(&[1; 32], &[2; 32], SystemRandom::new())
    }

    #[test]
    fn hashes_verify_and_differ_by_key() {
        let k = keys();
        let h = k.hash(b"0f8e6b0a-2c1d-4e8f-9a7b-3c2d1e0f4a5b");
        assert!(k.verify(b"0f8e6b0a-2c1d-4e8f-9a7b-3c2d1e0f4a5b", &h));
        assert!(!k.verify(b"0f8e6b0a-2c1d-4e8f-9a7b-3c2d1e0f4a5c", &h));
        let other = Keys::from_bytes(&[3; 32], &[2; 32], SystemRandom::new());
        assert!(!other.verify(b"0f8e6b0a-2c1d-4e8f-9a7b-3c2d1e0f4a5b", &h));
    }

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let k = keys();
        let sealed = k.seal(b"secret", b"device-1").unwrap();
        assert_ne!(sealed.ciphertext[..6], *b"secret");
        assert_eq!(k.open(&sealed, b"device-1").unwrap(), b"secret");
        assert!(matches!(k.open(&sealed, b"device-2"), Err(KeyError::Unseal)));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(k.open(&tampered, b"device-1"), Err(KeyError::Unseal)));
        assert_ne!(k.seal(b"secret", b"device-1").unwrap().nonce, sealed.nonce, "fresh nonce each time");
    }

    #[test]
    fn generated_secrets_have_the_legacy_shape() {
        let k = keys();
        let s = k.new_device_secret().unwrap();
        let uuid = uuid::Uuid::parse_str(&s).unwrap();
        assert_eq!((s.len(), uuid.get_version_num()), (36, 4));
        let t = k.new_token().unwrap();
        assert!(t.starts_with(TOKEN_PREFIX) && t.len() == 4 + 43, "{t}");
        assert_ne!(k.new_token().unwrap(), t);
    }

    #[test]
    fn key_files_are_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keys::load_or_create(dir.path()).unwrap();
        let h = a.hash(b"x");
        for name in ["hash.key", "seal.key"] {
            let meta = std::fs::metadata(dir.path().join("keys").join(name)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
            assert_eq!(meta.len(), 32);
        }
        let b = Keys::load_or_create(dir.path()).unwrap();
        assert!(b.verify(b"x", &h), "same keys after a restart");
        std::fs::write(dir.path().join("keys/seal.key"), b"short").unwrap();
        let err = Keys::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("seal.key") && err.contains("32 bytes"), "{err}");
    }
}
