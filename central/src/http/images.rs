//! `/images/<hardware>/<board>/default.json` and the image files it points to: the update check
//! every neOSensor makes at boot (spec §3.4), answered from the firmware campaigns.
//!
//! - `default.json`: `200 {"revision": N, "image": "<url>"}` while a running campaign targets
//!   that hardware and board, `404` otherwise (harmless to the firmware, which boots on).
//! - the image: `200` with `Content-Length` (the ESP updaters refuse a body without it, and
//!   use HTTP/1.0) and `x-MD5` for a device of a started wave; `304` ("no update", the device
//!   boots on) for the others, decided from `x-ESP32-STA-MAC` / `x-ESP8266-STA-MAC`; `403`
//!   without either header.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use neosens_protocol::legacy::ota;

use super::AppState;
use crate::firmware::Download;
use crate::metrics::ProvisioningLabels;

/// Bytes read from disk per chunk of an image answer: each connection holds about one chunk,
/// so 500 boards downloading at once cost central ~500 × 16 KiB, not 500 images.
const FILE_CHUNK: usize = 16 * 1024;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/images/{hardware}/{board}/{file}", get(image_path))
}

fn count(state: &AppState, path: &'static str, outcome: &'static str) {
    state.metrics.provisioning.get_or_create(&ProvisioningLabels { path, outcome }).inc();
}

async fn image_path(
    State(state): State<AppState>,
    Path((hardware, board, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if file == "default.json" {
        return check(&state, &hardware, &board, &headers);
    }
    let mac = ota::updater_mac(|name| headers.get(name).and_then(|v| v.to_str().ok()));
    let device = mac.and_then(|m| state.registry.device_id(&m.to_string())).map(|id| id.to_bytes());
    let running_md5 = headers.get(ota::SKETCH_MD5_HEADER).and_then(|v| v.to_str().ok());
    match state.firmware.download(&hardware, &board, &file, mac, device, running_md5) {
        Download::Serve { path, size, md5 } => {
            count(&state, "firmware_image", "served");
            tracing::info!(mac = ?mac, hardware, board, file, "firmware image served to a device");
            send_file(&path, size, Some(&md5)).await
        }
        Download::NoUpdate(why) => {
            count(&state, "firmware_image", "no_update");
            tracing::debug!(mac = ?mac, hardware, board, why, "no update for this device");
            StatusCode::NOT_MODIFIED.into_response()
        }
        Download::Forbidden => {
            count(&state, "firmware_image", "forbidden");
            (StatusCode::FORBIDDEN, "images are served to device updaters (x-ESP32-STA-MAC or x-ESP8266-STA-MAC); use /api/v1/firmware/{sha256}/content\n").into_response()
        }
        Download::NotFound => {
            count(&state, "firmware_image", "not_found");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

fn check(state: &AppState, hardware: &str, board: &str, headers: &HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match state.firmware.check(hardware, board, host) {
        Some(body) => {
            count(state, "firmware_check", "served");
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        None => {
            count(state, "firmware_check", "no_campaign");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// Streams a file with its length (never read whole into memory); `md5` adds `x-MD5`.
pub(super) async fn send_file(path: &std::path::Path, size: u64, md5: Option<&str>) -> Response {
    send_file_from(path, size, md5, 0).await
}

/// [`send_file`] from byte `from` on: `206` with `Content-Range` when `from > 0`.
pub(super) async fn send_file_from(
    path: &std::path::Path,
    size: u64,
    md5: Option<&str>,
    from: u64,
) -> Response {
    use tokio::io::AsyncSeekExt as _;
    let opened = async {
        let mut file = tokio::fs::File::open(path).await?;
        if from > 0 {
            file.seek(std::io::SeekFrom::Start(from)).await?;
        }
        Ok::<_, std::io::Error>(file)
    };
    let file = match opened.await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "a firmware image's file cannot be read");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, FILE_CHUNK));
    let mut response = Response::new(body);
    if from > 0 {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let range = format!("bytes {from}-{}/{size}", size - 1);
        if let Ok(v) = HeaderValue::from_str(&range) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size - from));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(md5) = md5.and_then(|m| HeaderValue::from_str(m).ok()) {
        h.insert("x-MD5", md5);
    }
    response
}
