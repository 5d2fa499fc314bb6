//! The update path on the gateway's LAN: `/images/<hardware>/<board>/default.json` and the
//! image, answered from the cache exactly as central answers them (central's
//! `http/images.rs` documents the status codes the ESP updaters expect): `default.json` while
//! an image for that hardware and board is cached; the image with `Content-Length` and `x-MD5`
//! to a device of a started wave; `304` to the others; `403` without a MAC header.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use neosens_protocol::edge_firmware::ManifestImage;
use neosens_protocol::legacy::ota;

use super::FirmwareCache;
use crate::http::AppState;

/// Bytes read from disk per chunk of an image answer.
const CHUNK: usize = 64 * 1024;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/images/{hardware}/{board}/{file}", axum::routing::get(image_path))
}

async fn image_path(
    State(state): State<AppState>,
    Path((hardware, board, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let cache = &state.firmware;
    if file == "default.json" {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).filter(|h| ota::valid_host(h));
        return match (cache.offer(&hardware, &board), host) {
            (Some(image), Some(host)) => check_answer(&image, host),
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    let mac = ota::updater_mac(|name| headers.get(name).and_then(|v| v.to_str().ok()));
    let Some((image, in_wave)) = cache.lookup(&hardware, &board, &file, mac) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(mac) = mac else {
        return (
            StatusCode::FORBIDDEN,
            "images are served to device updaters (x-ESP32-STA-MAC or x-ESP8266-STA-MAC)\n",
        )
            .into_response();
    };
    let running = headers.get(ota::SKETCH_MD5_HEADER).and_then(|v| v.to_str().ok());
    if !in_wave || running.is_some_and(|m| m.eq_ignore_ascii_case(&image.md5)) {
        FirmwareCache::count(&cache.inner.stats.no_update);
        return StatusCode::NOT_MODIFIED.into_response();
    }
    match send(cache, &image).await {
        Ok(response) => {
            FirmwareCache::count(&cache.inner.stats.served);
            cache.note_fetch(image.campaign, mac);
            tracing::info!(%mac, hardware, board, "firmware image served to a device from the gateway's cache");
            response
        }
        Err(e) => {
            tracing::error!(error = %e, sha256 = %image.sha256, "a cached firmware image cannot be read");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `{"revision": N, "image": "http://<host>/images/…"}`: the host the device asked (the site's
/// DNS sends `neocampus.univ-tlse3.fr` to the gateway); within the firmware's 511 bytes.
fn check_answer(image: &ManifestImage, host: &str) -> Response {
    let url = format!("http://{host}{}", ota::image_path(&image.hardware, &image.board, &image.sha256));
    match ota::check_body(image.revision, &url) {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The image, read from disk chunk by chunk as the device takes it (never whole in memory, no
/// thread held by a slow device, no task of its own: the body's stream reads the next chunk
/// when the connection asks for it).
async fn send(cache: &FirmwareCache, image: &ManifestImage) -> std::io::Result<Response> {
    let path = cache.path(&image.sha256);
    let file = Arc::new(neosens_runtime::blocking::run(move || std::fs::File::open(path)).await?);
    let chunks = Chunks { file, offset: 0, size: image.size, reading: None };
    let mut response = Response::new(axum::body::Body::from_stream(chunks));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(image.size));
    if let Ok(md5) = HeaderValue::from_str(&image.md5) {
        h.insert("x-MD5", md5);
    }
    Ok(response)
}

type Reading = Pin<Box<dyn std::future::Future<Output = std::io::Result<Bytes>> + Send>>;

/// A file as a body stream: one chunk read on the blocking pool at a time.
struct Chunks {
    file: Arc<std::fs::File>,
    offset: u64,
    size: u64,
    reading: Option<Reading>,
}

impl futures_core::Stream for Chunks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.offset >= self.size {
            return Poll::Ready(None);
        }
        if self.reading.is_none() {
            let (file, offset) = (Arc::clone(&self.file), self.offset);
            let len = CHUNK.min((self.size - offset) as usize);
            self.reading = Some(Box::pin(neosens_runtime::blocking::run(move || {
                use std::os::unix::fs::FileExt as _;
                let mut buf = vec![0u8; len];
                let n = file.read_at(&mut buf, offset)?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the cached image is shorter than its size",
                    ));
                }
                buf.truncate(n);
                Ok(Bytes::from(buf))
            })));
        }
        let Some(reading) = self.reading.as_mut() else { return Poll::Ready(None) };
        let chunk = std::task::ready!(reading.as_mut().poll(cx));
        self.reading = None;
        if let Ok(b) = &chunk {
            self.offset += b.len() as u64;
        } else {
            // Nothing follows an error.
            self.offset = self.size;
        }
        Poll::Ready(Some(chunk))
    }
}

/// Counter reads for `/metrics`.
impl FirmwareCache {
    /// (downloads from central, served to devices, no-update answers, corrupt downloads).
    pub fn counters(&self) -> (u64, u64, u64, u64) {
        let s = &self.inner.stats;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        (load(&s.downloads), load(&s.served), load(&s.no_update), load(&s.corrupt))
    }
}
