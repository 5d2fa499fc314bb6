//! `/` and `/assets/*`: the React dashboard, embedded in the binary at build time (see
//! `build.rs`). Hashed assets are cached for a year; `index.html` is revalidated each time so a
//! new release is picked up at the next load. Every answer carries a strict Content Security
//! Policy: the app loads nothing from elsewhere and runs no inline script.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// One embedded file.
pub(crate) struct DashboardFile {
    path: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/dashboard_files.rs"));

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>neosens</title></head>\
<body><h1>neosens-central</h1><p>This binary was built without the dashboard. Run \
<code>scripts/build-dashboard</code> (or <code>scripts/run</code>, which does it) and build again. \
The API is served at <a href=\"/api/v1/openapi.json\">/api/v1</a>.</p></body></html>";

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/index.html", get(index)).route("/assets/{*file}", get(asset))
}

fn find(path: &str) -> Option<&'static DashboardFile> {
    DASHBOARD_FILES.iter().find(|f| f.path == path)
}

fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

async fn index() -> Response {
    let response = match find("/index.html") {
        Some(f) if DASHBOARD_BUILT => {
            ([(header::CONTENT_TYPE, f.content_type), (header::CACHE_CONTROL, "no-cache")], f.bytes)
                .into_response()
        }
        _ => Html(NOT_BUILT).into_response(),
    };
    secured(response)
}

async fn asset(Path(file): Path<String>) -> Response {
    let response = match find(&format!("/assets/{file}")) {
        Some(f) => (
            [
                (header::CONTENT_TYPE, f.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            f.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such dashboard asset").into_response(),
    };
    secured(response)
}
