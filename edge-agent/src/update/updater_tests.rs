//! What the agent takes up of a manifest: the checks before a build is installed.

use ring::signature::{Ed25519KeyPair, KeyPair as _};

use super::*;

const MAC: &str = "b8:27:eb:00:00:01";

struct Fixture {
    dir: tempfile::TempDir,
    pair: Ed25519KeyPair,
    updater: Updater,
    shutdown: CancellationToken,
}

fn fixture(pin: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    let key: Option<[u8; 32]> = pin.then(|| pair.public_key().as_ref().try_into().unwrap());
    let shutdown = CancellationToken::new();
    let updater = Updater::new(dir.path(), key, MAC.parse().ok(), shutdown.clone());
    Fixture { dir, pair, updater, shutdown }
}

/// A cached build of `content`, offered for `revision`, signed over `signed_revision`.
fn offer(f: &Fixture, content: &[u8], revision: u64, signed_revision: u64, campaign: u64) -> ManifestImage {
    let sha = hex::encode(ring::digest::digest(&ring::digest::SHA256, content).as_ref());
    std::fs::write(f.dir.path().join(&sha), content).unwrap();
    let signature = f.pair.sign(&signed_message(&own_hardware(), signed_revision, &sha));
    ManifestImage {
        campaign,
        sha256: sha,
        md5: "00".repeat(16),
        size: content.len() as u64,
        hardware: own_hardware(),
        board: AGENT_BOARD.into(),
        revision,
        devices: vec![MAC.parse().unwrap()],
        signature: Some(hex::encode(signature.as_ref())),
    }
}

fn consider(f: &Fixture, images: &[ManifestImage]) -> bool {
    let dir = f.dir.path().to_owned();
    f.updater.consider(images, &|sha| dir.join(sha)).unwrap()
}

fn last_reason(f: &Fixture) -> String {
    BuildDir::new(f.dir.path()).load().unwrap().reports.last().map(|r| r.reason.clone()).unwrap_or_default()
}

#[test]
fn builds_that_do_not_check_are_refused_once_with_the_reason() {
    let next = packaged_revision() + 1;
    let f = fixture(true);
    let wrong_revision = offer(&f, b"build a", next, next + 1, 1);
    assert!(!consider(&f, std::slice::from_ref(&wrong_revision)));
    assert!(last_reason(&f).contains("bad signature"), "{}", last_reason(&f));
    let mut unsigned = offer(&f, b"build b", next, next, 2);
    unsigned.signature = None;
    let mut not_hex = offer(&f, b"build c", next, next, 3);
    not_hex.signature = Some("zz".repeat(64));
    let mut other_content = offer(&f, b"build d", next, next, 4);
    std::fs::write(f.dir.path().join(&other_content.sha256), b"tampered in the cache").unwrap();
    other_content.revision = next;
    for (image, reason) in
        [(unsigned, "no signature"), (not_hex, "not 128 hex digits"), (other_content, "content hashes to")]
    {
        assert!(!consider(&f, &[wrong_revision.clone(), image]));
        assert!(last_reason(&f).contains(reason), "{reason}: {}", last_reason(&f));
    }
    let state = BuildDir::new(f.dir.path()).load().unwrap();
    assert_eq!(state.reports.len(), 4);
    assert_eq!(state.trial, None);
    // Offered again: not checked again while central offers it…
    assert!(!consider(&f, std::slice::from_ref(&wrong_revision)));
    assert_eq!(BuildDir::new(f.dir.path()).load().unwrap().reports.len(), 4);
    // …forgotten once central no longer does (it has the failure), tried again after a resume.
    assert!(!consider(&f, &[]));
    assert!(BuildDir::new(f.dir.path()).load().unwrap().rejected.is_empty());
    assert!(!f.shutdown.is_cancelled());
}

#[test]
fn without_a_pinned_key_nothing_is_installed() {
    let f = fixture(false);
    let next = packaged_revision() + 1;
    assert!(!consider(&f, &[offer(&f, b"build", next, next, 1)]));
    assert!(last_reason(&f).contains("no [update] public_key"), "{}", last_reason(&f));
}

#[test]
fn the_newest_good_build_is_installed_and_the_agent_stops_for_it() {
    let f = fixture(true);
    let next = packaged_revision() + 1;
    let older = offer(&f, b"older build", next, next, 1);
    let refused = offer(&f, b"newer build", next + 1, next + 5, 2);
    let mut elsewhere = offer(&f, b"another gateway's", next + 2, next + 2, 3);
    elsewhere.devices.clear();
    let images = [older.clone(), refused, elsewhere];
    assert!(!consider(&f, &images), "the newest is refused first");
    assert!(consider(&f, &images), "then the next newest is taken");
    let state = BuildDir::new(f.dir.path()).load().unwrap();
    assert_eq!(state.trial.map(|t| (t.sha256, t.revision, t.starts)), Some((older.sha256.clone(), next, 0)));
    let installed = BuildDir::new(f.dir.path()).build_path(&older.sha256);
    assert_eq!(std::fs::read(&installed).unwrap(), b"older build");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(f.shutdown.is_cancelled() && restart_requested());
    assert!(!consider(&f, &images), "one trial at a time");
}
