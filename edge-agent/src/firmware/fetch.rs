//! The task that keeps the cache in step with central's manifest, and reports the fetches.

use std::io::Write as _;
use std::time::Duration;

use neosens_protocol::edge_firmware::{
    FirmwareFetches, FirmwareManifest, MAX_REPORTED_FETCHES, ManifestImage,
};
use tokio_util::sync::CancellationToken;

use super::{FirmwareCache, MANIFEST_FILE, valid_sha};
use crate::central::{Central, CentralError};
use crate::update::Updater;

/// Bytes gathered from the network before one write to disk.
const WRITE_CHUNK: usize = 256 * 1024;

/// Why a round did not complete.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Central(#[from] CentralError),
    #[error("image {0}: {1}")]
    Image(String, String),
    #[error("firmware cache on disk: {0}")]
    Disk(#[from] std::io::Error),
}

/// Woken by the `upgrade` order a campaign sends to the gateway's own device when its wave
/// starts: the manifest is read at once rather than at the next poll.
static CHECK_NOW: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Reads central's manifest now (the `upgrade` order).
pub fn check_now() {
    CHECK_NOW.notify_one();
}

/// Follows central's manifest every `[firmware] poll_s`, and at each [`check_now`], until
/// `shutdown`.
pub async fn run(cache: FirmwareCache, central: Central, updater: Updater, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(cache.inner.config.poll_s.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            () = CHECK_NOW.notified() => tick.reset(),
        }
        if let Err(e) = round(&cache, &central, &updater).await {
            // The cache keeps serving what it has.
            tracing::warn!(error = %e, "firmware cache round failed; retrying at the next one");
        }
        report_fetches(&cache, &central).await;
    }
}

/// One round: the manifest, the missing images, then what is served and kept.
async fn round(cache: &FirmwareCache, central: &Central, updater: &Updater) -> Result<(), FetchError> {
    let cached =
        cache.inner.served.read().images.iter().map(|i| i.sha256.as_str()).collect::<Vec<_>>().join(",");
    let raw = central.firmware_manifest(&cached).await?;
    let manifest: FirmwareManifest = serde_json::from_slice(&raw)
        .map_err(|e| CentralError::Protocol(format!("firmware manifest: {e}")))?;
    let mut budget = cache.inner.config.cache_bytes;
    let mut kept = FirmwareManifest::default();
    for image in manifest.images.into_iter().filter(|i| valid_sha(&i.sha256)) {
        if image.size > budget {
            tracing::warn!(sha256 = %image.sha256, size = image.size, "a firmware image does not fit in [firmware] cache_bytes: not cached here");
            continue;
        }
        budget -= image.size;
        if let Err(e) = ensure(cache, central, &image).await {
            tracing::warn!(error = %e, "a firmware image could not be cached; retrying at the next round");
        }
        kept.images.push(image);
    }
    let (c, u) = (cache.clone(), updater.clone());
    let complete = neosens_runtime::blocking::run(move || -> Result<FirmwareManifest, FetchError> {
        let complete = c.settle(kept, &raw)?;
        // This gateway's own build, when a campaign offers one (checked, installed, restart). A
        // failure there (a full disk) leaves the cache serving the boards.
        if let Err(e) = u.consider(&complete.images, &|sha| c.path(sha)) {
            tracing::warn!(error = %e, "a gateway build could not be taken up; retrying at the next round");
        }
        Ok(complete)
    })
    .await?;
    let (images, bytes) = (complete.images.len(), complete.images.iter().map(|i| i.size).sum::<u64>());
    *cache.inner.served.write() = std::sync::Arc::new(complete);
    tracing::debug!(images, bytes, "firmware cache in step with central");
    Ok(())
}

/// Downloads an image unless it is here already, resuming a broken download.
async fn ensure(cache: &FirmwareCache, central: &Central, image: &ManifestImage) -> Result<(), FetchError> {
    let (path, part) = (cache.path(&image.sha256), cache.inner.dir.join(format!("{}.part", image.sha256)));
    let (p, q, size) = (path.clone(), part.clone(), image.size);
    let from = neosens_runtime::blocking::run(move || -> std::io::Result<Option<u64>> {
        if std::fs::metadata(&p).is_ok_and(|m| m.len() == size) {
            return Ok(None);
        }
        match std::fs::metadata(&q) {
            Ok(m) if m.len() < size => Ok(Some(m.len())),
            Ok(_) => std::fs::remove_file(&q).map(|()| Some(0)),
            Err(_) => Ok(Some(0)),
        }
    })
    .await?;
    let Some(from) = from else { return Ok(()) };
    let mut response = central.firmware_image(&image.sha256, from).await?;
    // A whole answer to a resumed request: start the file again.
    let mut truncate = response.status() == reqwest::StatusCode::OK;
    let mut written = if truncate { 0 } else { from };
    let mut buffer = Vec::with_capacity(WRITE_CHUNK);
    loop {
        let chunk = response.chunk().await.map_err(|e| CentralError::Unreachable(e.to_string()))?;
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            buffer.extend_from_slice(&chunk);
        }
        if buffer.len() >= WRITE_CHUNK || (done && !buffer.is_empty()) {
            written += buffer.len() as u64;
            if written > image.size {
                return Err(FetchError::Image(
                    image.sha256.clone(),
                    "central sent more than its size".into(),
                ));
            }
            let (q, data, t) = (part.clone(), std::mem::take(&mut buffer), truncate);
            neosens_runtime::blocking::run(move || append(&q, &data, t)).await?;
            truncate = false;
        }
        if done {
            break;
        }
    }
    cache.inner.stats.downloads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (c, expected) = (cache.clone(), image.clone());
    neosens_runtime::blocking::run(move || c.install(&part, &path, &expected)).await
}

/// SHA-256 (hex) and length of a file, read in chunks.
fn hash_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
        len += n as u64;
    }
    Ok((neosens_protocol::hex::encode(context.finish().as_ref()), len))
}

fn append(part: &std::path::Path, data: &[u8], truncate: bool) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(!truncate)
        .write(true)
        .truncate(truncate)
        .open(part)?;
    file.write_all(data)
}

impl FirmwareCache {
    /// Checks a complete download against its SHA-256 and size, then names it (blocking).
    fn install(
        &self,
        part: &std::path::Path,
        path: &std::path::Path,
        image: &ManifestImage,
    ) -> Result<(), FetchError> {
        let (sha, len) = hash_file(part)?;
        if len != image.size || sha != image.sha256 {
            std::fs::remove_file(part)?;
            self.inner.stats.corrupt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(FetchError::Image(
                image.sha256.clone(),
                "the download does not match its SHA-256: dropped".into(),
            ));
        }
        std::fs::File::open(part)?.sync_all()?;
        std::fs::rename(part, path)?;
        std::fs::File::open(&self.inner.dir)?.sync_all()?;
        tracing::info!(sha256 = %image.sha256, size = image.size, hardware = %image.hardware, board = %image.board, "firmware image cached");
        Ok(())
    }

    /// Keeps the complete images of `kept`, removes every other file, saves central's manifest
    /// as it came (`raw`: what is complete is decided again when it is read) (blocking).
    /// Returns what is served.
    fn settle(&self, kept: FirmwareManifest, raw: &[u8]) -> Result<FirmwareManifest, FetchError> {
        let offered: Vec<String> = kept.images.iter().map(|i| i.sha256.clone()).collect();
        let complete = self.complete(kept);
        for entry in std::fs::read_dir(&self.inner.dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let sha = name.strip_suffix(".bin").or_else(|| name.strip_suffix(".part"));
            // A broken download of an image still offered is kept, to be resumed.
            let wanted = sha.is_some_and(|s| offered.iter().any(|o| o == s));
            if sha.is_some() && !wanted {
                std::fs::remove_file(&path)?;
                tracing::info!(file = name, "firmware image no longer offered: removed from the cache");
            }
        }
        // Unchanged (the usual round): not written again. A synced write and a rename every
        // poll were most of an idle gateway's CPU, and an SD card's wear.
        let saved = self.inner.dir.join(MANIFEST_FILE);
        if std::fs::read(&saved).ok().as_deref() != Some(raw) {
            let tmp = self.inner.dir.join("manifest.json.tmp");
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(raw)?;
            file.sync_all()?;
            std::fs::rename(&tmp, saved)?;
        }
        Ok(complete)
    }
}

/// Sends the fetches noted since the last report; kept for the next one if central is away.
async fn report_fetches(cache: &FirmwareCache, central: &Central) {
    let batch: Vec<_> = {
        let mut fetches = cache.inner.fetches.lock();
        let n = fetches.len().min(MAX_REPORTED_FETCHES);
        fetches.drain(..n).collect()
    };
    if batch.is_empty() {
        return;
    }
    let body = FirmwareFetches { fetches: batch };
    if let Err(e) = central.report_fetches(&body).await {
        tracing::debug!(error = %e, "firmware fetches not reported yet");
        let mut fetches = cache.inner.fetches.lock();
        for fetch in body.fetches.into_iter().rev() {
            if fetches.len() < super::MAX_PENDING_FETCHES {
                fetches.push_front(fetch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::FirmwareConfig;

    fn image(content: &[u8], campaign: u64) -> ManifestImage {
        ManifestImage {
            campaign,
            sha256: neosens_protocol::hex::encode(
                ring::digest::digest(&ring::digest::SHA256, content).as_ref(),
            ),
            md5: "00".repeat(16),
            size: content.len() as u64,
            hardware: "esp32".into(),
            board: "neOSensor".into(),
            revision: 240101,
            devices: vec![],
            signature: None,
        }
    }

    #[test]
    fn a_download_is_installed_only_when_its_sha256_matches() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FirmwareCache::open(dir.path(), FirmwareConfig::default()).unwrap();
        let good = image(b"\xe9 the image", 1);
        let part = dir.path().join("x.part");
        std::fs::write(&part, b"\xe9 the image").unwrap();
        cache.install(&part, &cache.path(&good.sha256), &good).unwrap();
        assert!(cache.path(&good.sha256).exists());
        std::fs::write(&part, b"\xe9 tampered!").unwrap();
        let tampered = image(b"\xe9 other bytes", 2);
        let refused = cache.install(&part, &cache.path(&tampered.sha256), &tampered);
        assert!(matches!(refused, Err(FetchError::Image(_, _))), "{refused:?}");
        assert!(!part.exists() && !cache.path(&tampered.sha256).exists());
        assert_eq!(cache.counters().3, 1, "counted as corrupt");
    }

    #[test]
    fn fetches_kept_for_central_are_bounded_the_oldest_going_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FirmwareCache::open(dir.path(), FirmwareConfig::default()).unwrap();
        let mac: neosens_protocol::ids::Mac = "24:0a:c4:00:00:01".parse().unwrap();
        for campaign in 0..(crate::firmware::MAX_PENDING_FETCHES as u64 + 3) {
            cache.note_fetch(campaign, mac);
        }
        let fetches = cache.inner.fetches.lock();
        assert_eq!(fetches.len(), crate::firmware::MAX_PENDING_FETCHES);
        assert_eq!(fetches.front().map(|f| f.campaign), Some(3));
    }

    #[test]
    fn settling_keeps_what_is_offered_and_survives_a_restart() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = FirmwareCache::open(dir.path(), FirmwareConfig::default()).unwrap();
        let (kept, gone) = (image(b"\xe9 kept", 1), image(b"\xe9 gone", 2));
        let resuming = image(b"\xe9 half downloaded", 3);
        std::fs::write(cache.path(&kept.sha256), b"\xe9 kept").unwrap();
        std::fs::write(cache.path(&gone.sha256), b"\xe9 gone").unwrap();
        std::fs::write(dir.path().join(format!("{}.part", resuming.sha256)), b"\xe9 half").unwrap();
        std::fs::write(dir.path().join(format!("{}.part", gone.sha256)), b"\xe9").unwrap();
        let offered = FirmwareManifest { images: vec![kept.clone(), resuming.clone()] };
        let raw = serde_json::to_vec(&offered).unwrap();
        let served = cache.settle(offered, &raw).unwrap();
        assert_eq!(served.images, vec![kept.clone()], "only complete images are served");
        assert!(!cache.path(&gone.sha256).exists(), "no longer offered: removed");
        assert!(!dir.path().join(format!("{}.part", gone.sha256)).exists());
        assert!(dir.path().join(format!("{}.part", resuming.sha256)).exists(), "kept to be resumed");
        let written = std::fs::metadata(dir.path().join(MANIFEST_FILE)).unwrap().ino();
        let again = FirmwareManifest { images: vec![kept.clone(), resuming.clone()] };
        assert_eq!(cache.settle(again, &raw).unwrap().images, vec![kept.clone()]);
        let kept_file = std::fs::metadata(dir.path().join(MANIFEST_FILE)).unwrap().ino();
        assert_eq!(kept_file, written, "the same manifest again: the file is not rewritten");
        let reopened = FirmwareCache::open(dir.path(), FirmwareConfig::default()).unwrap();
        assert_eq!(reopened.cached().0, 1);
        // A damaged manifest on disk: the cache starts empty instead of failing.
        std::fs::write(dir.path().join(MANIFEST_FILE), b"{not json").unwrap();
        assert_eq!(FirmwareCache::open(dir.path(), FirmwareConfig::default()).unwrap().cached().0, 0);
    }
}
