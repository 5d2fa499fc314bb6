//! The firmware-update check every neOSensor makes at boot, before provisioning
//! (`neOCampusOTA()`, spec §3.4, client-sequence §B), and the download as the ESP32 updater
//! (`HTTPUpdate`) does it: HTTP/1.0, `x-ESP32-*` headers with the device's MAC, a body that must
//! carry a `Content-Length`, start with `0xE9` and match `x-MD5`. Success means a reboot into
//! the new revision, which the next statuses report.
//!
//! A simulated board has no flash to brick: an image containing [`FAIL_MARKER`] stands for one
//! that does not boot, and the board rolls back to its previous revision, as the ESP boot
//! loader does — so a campaign with such an image fails and halts by itself.

use std::time::Duration;

use anyhow::{Context, bail};
use md5::Digest as _;
use neosens_protocol::ids::Mac;

/// `BOARD_FWREV` of the last public firmware: what a device runs until it updates.
pub const FACTORY_REVISION: u64 = 231_027;

/// Bytes in an image that make the simulated board roll back after flashing it.
pub const FAIL_MARKER: &[u8] = b"NEOSENS-SIM-FAILS-TO-BOOT";

/// What the boot-time check led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `default.json` absent (404) or not newer: boot on.
    NoUpdate,
    /// The updater was told "no update" (304: not in a started wave).
    NotInWave,
    /// Flashed revision `N`: reboot into it.
    Updated(u64),
    /// Flashed, but the image does not boot: the board rolled back.
    RolledBack,
    /// The update failed (status, size, magic byte or MD5); the board boots on its old image.
    Failed(String),
}

/// The check against `base` (`http://neocampus.univ-tlse3.fr`, or central / a gateway);
/// `Err` is a transport failure, after which the firmware reboots without provisioning.
pub async fn boot_check(
    http: &reqwest::Client,
    base: &str,
    mac: Mac,
    running: u64,
) -> anyhow::Result<Outcome> {
    let url = format!("{}/images/esp32/neOSensor/default.json", base.trim_end_matches('/'));
    let response = http
        .get(&url)
        .header("User-Agent", "ESP32HTTPClient")
        .header("Accept-Encoding", "identity;q=1,chunked;q=0.1,*;q=0")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Ok(Outcome::NoUpdate);
    }
    let body = response.bytes().await?;
    // The firmware reads at most 512 bytes and needs both fields.
    let Ok(offer) = serde_json::from_slice::<serde_json::Value>(&body[..body.len().min(512)]) else {
        return Ok(Outcome::NoUpdate);
    };
    let (Some(revision), Some(image)) = (offer["revision"].as_u64(), offer["image"].as_str()) else {
        return Ok(Outcome::NoUpdate);
    };
    if revision <= running {
        return Ok(Outcome::NoUpdate);
    }
    download(http, image, mac, revision).await
}

/// `httpUpdate.update(client, image)` as arduino-esp32 2.0 sends it.
pub async fn download(http: &reqwest::Client, url: &str, mac: Mac, revision: u64) -> anyhow::Result<Outcome> {
    let response = http
        .get(url)
        .version(reqwest::Version::HTTP_10)
        .header("User-Agent", "ESP32-http-Update")
        .header("Cache-Control", "no-cache")
        .header("x-ESP32-STA-MAC", mac.to_string())
        .header("x-ESP32-AP-MAC", mac.to_string())
        .header("x-ESP32-free-space", "1310720")
        .header("x-ESP32-sketch-size", "912384")
        .header("x-ESP32-chip-size", "4194304")
        .header("x-ESP32-sdk-version", "v4.4.5")
        .header("x-ESP32-mode", "sketch")
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    match response.status().as_u16() {
        200 => {}
        304 => return Ok(Outcome::NotInWave),
        other => return Ok(Outcome::Failed(format!("the image answered {other}"))),
    }
    let length = response.content_length().unwrap_or(0);
    let md5 = response.headers().get("x-MD5").and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    let body = response.bytes().await?;
    Ok(check_image(&body, length, md5.as_deref(), revision))
}

/// The updater's checks of a received image, then the simulated boot into it.
pub fn check_image(body: &[u8], length: u64, md5: Option<&str>, revision: u64) -> Outcome {
    if length == 0 {
        return Outcome::Failed("Content-Length was 0 or wasn't set by Server".into());
    }
    if body.len() as u64 != length {
        return Outcome::Failed(format!("{} bytes received of {length}", body.len()));
    }
    if body.first() != Some(&0xE9) {
        return Outcome::Failed("Magic header does not start with 0xE9".into());
    }
    let got = neosens_protocol::hex::encode(&md5::Md5::digest(body));
    if md5.is_some_and(|m| m != got) {
        return Outcome::Failed(format!("MD5 mismatch: expected {}, got {got}", md5.unwrap_or_default()));
    }
    if body.windows(FAIL_MARKER.len()).any(|w| w == FAIL_MARKER) {
        return Outcome::RolledBack;
    }
    Outcome::Updated(revision)
}

/// An image for a test or a demo: `0xE9`, then `size - 1` bytes, with the
/// failure marker when `fails`.
pub fn sim_image(size: usize, fails: bool) -> anyhow::Result<Vec<u8>> {
    if size < 1 + FAIL_MARKER.len() {
        bail!("a simulated image needs at least {} bytes", 1 + FAIL_MARKER.len());
    }
    let mut image: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    image[0] = 0xE9;
    if fails {
        image[1..=FAIL_MARKER.len()].copy_from_slice(FAIL_MARKER);
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_updater_checks_are_the_firmware_s() {
        let good = sim_image(100, false).unwrap();
        let md5 = neosens_protocol::hex::encode(&md5::Md5::digest(&good));
        assert_eq!(check_image(&good, 100, Some(&md5), 240101), Outcome::Updated(240101));
        assert_eq!(check_image(&good, 100, None, 240101), Outcome::Updated(240101));
        assert!(matches!(check_image(&good, 0, None, 1), Outcome::Failed(m) if m.contains("Content-Length")));
        assert!(matches!(check_image(&good, 101, None, 1), Outcome::Failed(_)));
        assert!(matches!(check_image(&good, 100, Some("00"), 1), Outcome::Failed(m) if m.contains("MD5")));
        let mut elf = good.clone();
        elf[0] = 0x7F;
        assert!(matches!(check_image(&elf, 100, None, 1), Outcome::Failed(m) if m.contains("0xE9")));
        let bad = sim_image(100, true).unwrap();
        assert_eq!(check_image(&bad, 100, None, 240101), Outcome::RolledBack);
        assert!(sim_image(3, false).is_err());
    }
}
