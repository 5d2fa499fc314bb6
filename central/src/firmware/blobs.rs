//! Image content on disk, named by its SHA-256: `<firmware_dir>/<sha256>.bin`.
//!
//! An upload is streamed to `incoming/<random>.part` by a blocking-pool thread that writes and
//! hashes each chunk as the request body delivers it (so neither the disk nor the hashing runs
//! on an async worker, and an image is never held whole in memory); once complete it is synced
//! and renamed to its content address. Leftover `.part` files of an interrupted upload are
//! removed at start.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use md5::Digest as _;
use neosens_protocol::hex;
use tokio_stream::StreamExt as _;

/// Chunks in flight between the request and the writer thread.
const CHANNEL_CHUNKS: usize = 8;

/// Why an upload did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// Larger than the limit.
    #[error("the image is larger than the limit of {0} bytes ([firmware] max_image_bytes)")]
    TooLarge(u64),
    /// Nothing was sent.
    #[error("the image is empty")]
    Empty,
    /// The client's body broke off.
    #[error("the upload broke off: {0}")]
    Body(String),
    /// The disk failed.
    #[error("storing the image: {0}")]
    Disk(#[from] std::io::Error),
}

/// What an upload stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Received {
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// MD5 of the content.
    pub md5: [u8; 16],
    /// Bytes.
    pub size: u64,
    /// The first byte (the ESP image magic, for ESP images).
    pub first_byte: u8,
}

/// The directory of image files.
#[derive(Debug, Clone)]
pub(super) struct Blobs {
    dir: PathBuf,
}

enum Chunk {
    Data(Bytes),
    End,
}

impl Blobs {
    /// Creates the directory (and `incoming/`), removing leftovers of interrupted uploads.
    /// Blocking: call at start or from the blocking pool.
    pub(super) fn open(dir: &Path) -> std::io::Result<Self> {
        let incoming = dir.join("incoming");
        std::fs::create_dir_all(&incoming)?;
        for entry in std::fs::read_dir(&incoming)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "part") {
                tracing::info!(file = %path.display(), "removing an interrupted firmware upload");
                std::fs::remove_file(&path)?;
            }
        }
        Ok(Blobs { dir: dir.to_owned() })
    }

    /// The file of an image.
    pub(super) fn path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.bin", hex::encode(sha256)))
    }

    /// The detached signature of a gateway build, beside its file (`<sha256>.sig`, 128 hex
    /// digits): the image's record keeps its stored shape, and replicas sharing the image
    /// directory share the signatures with the files.
    fn signature_path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.sig", hex::encode(sha256)))
    }

    /// Writes a build's signature, whole and durable (blocking).
    pub(super) fn put_signature(&self, sha256: &[u8; 32], signature: &[u8; 64]) -> std::io::Result<()> {
        neosens_runtime::durable::write_private(
            &self.signature_path(sha256),
            hex::encode(signature).as_bytes(),
        )
    }

    /// A build's signature, if one was stored (blocking).
    pub(super) fn signature(&self, sha256: &[u8; 32]) -> std::io::Result<Option<[u8; 64]>> {
        match std::fs::read_to_string(self.signature_path(sha256)) {
            Ok(text) => hex::decode_array(text.trim(), "signature").map(Some).map_err(|_| {
                std::io::Error::other(format!("{}.sig is not 128 hex digits", hex::encode(sha256)))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes an image's file and signature (blocking). Absent already is fine.
    pub(super) fn remove(&self, sha256: &[u8; 32]) -> std::io::Result<()> {
        for path in [self.path(sha256), self.signature_path(sha256)] {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Streams `body` to disk, at most `max` bytes, and names the file by its SHA-256.
    pub(super) async fn receive(&self, body: Body, max: u64) -> Result<Received, ReceiveError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
        let part = self.dir.join("incoming").join(format!("{}.part", uuid::Uuid::new_v4()));
        let blobs = self.clone();
        let writer = neosens_runtime::blocking::run(move || blobs.write(rx, &part));
        let feed = async move {
            let mut stream = body.into_data_stream();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ReceiveError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > max {
                    return Err(ReceiveError::TooLarge(max));
                }
                if tx.send(Chunk::Data(chunk)).await.is_err() {
                    // The writer stopped: its error says why.
                    return Ok(());
                }
            }
            if size == 0 {
                return Err(ReceiveError::Empty);
            }
            let _ = tx.send(Chunk::End).await;
            Ok(())
        };
        // Dropping the sender (on an error) tells the writer to throw the part away.
        let (fed, written) = tokio::join!(feed, writer);
        fed?;
        written
    }

    /// The writer thread: writes and hashes chunks until `End` (then syncs and renames) or the
    /// sender goes away (then removes the part).
    fn write(
        &self,
        mut rx: tokio::sync::mpsc::Receiver<Chunk>,
        part: &Path,
    ) -> Result<Received, ReceiveError> {
        let mut file = std::fs::File::create(part)?;
        let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
        let mut md5 = md5::Md5::new();
        let (mut size, mut first_byte) = (0u64, None);
        let outcome = loop {
            match rx.blocking_recv() {
                Some(Chunk::Data(data)) => {
                    if let Err(e) = file.write_all(&data) {
                        break Err(ReceiveError::Disk(e));
                    }
                    sha.update(&data);
                    md5.update(&data);
                    size += data.len() as u64;
                    first_byte = first_byte.or(data.first().copied());
                }
                Some(Chunk::End) => break Ok(()),
                None => break Err(ReceiveError::Body("the upload was abandoned".into())),
            }
        };
        let finished = outcome.and_then(|()| {
            file.sync_all()?;
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(sha.finish().as_ref());
            let received =
                Received { sha256, md5: md5.finalize().into(), size, first_byte: first_byte.unwrap_or(0) };
            std::fs::rename(part, self.path(&sha256))?;
            std::fs::File::open(&self.dir)?.sync_all()?;
            Ok(received)
        });
        if finished.is_err() {
            let _ = std::fs::remove_file(part);
        }
        finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_upload_is_hashed_and_named_by_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from_static(&[0xE9, 1, 2])), Ok(Bytes::from_static(b"abc"))];
        let got = blobs.receive(Body::from_stream(tokio_stream::iter(chunks)), 100).await.unwrap();
        let content = [0xE9, 1, 2, b'a', b'b', b'c'];
        assert_eq!(got.size, 6);
        assert_eq!(got.first_byte, 0xE9);
        assert_eq!(&got.sha256[..], ring::digest::digest(&ring::digest::SHA256, &content).as_ref());
        assert_eq!(got.md5, <[u8; 16]>::from(md5::Md5::digest(content)));
        assert_eq!(std::fs::read(blobs.path(&got.sha256)).unwrap(), content);
        assert_eq!(std::fs::read_dir(dir.path().join("incoming")).unwrap().count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn too_large_empty_and_broken_uploads_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let big = blobs.receive(Body::from(vec![0u8; 101]), 100).await;
        assert!(matches!(big, Err(ReceiveError::TooLarge(100))), "{big:?}");
        let empty = blobs.receive(Body::empty(), 100).await;
        assert!(matches!(empty, Err(ReceiveError::Empty)), "{empty:?}");
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from_static(b"abc")), Err(std::io::Error::other("reset"))];
        let broken = blobs.receive(Body::from_stream(tokio_stream::iter(chunks)), 100).await;
        assert!(matches!(broken, Err(ReceiveError::Body(_))), "{broken:?}");
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, vec![std::ffi::OsString::from("incoming")]);
        assert_eq!(std::fs::read_dir(dir.path().join("incoming")).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_an_interrupted_upload_are_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("incoming")).unwrap();
        std::fs::write(dir.path().join("incoming/x.part"), b"half").unwrap();
        Blobs::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("incoming")).unwrap().count(), 0);
    }
}
