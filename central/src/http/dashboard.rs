//! `/`, `/api/docs` and `/assets/*`: the React dashboard and the API reference, embedded in the
//! binary at build time (see `build.rs`). Hashed assets are cached for a year; the pages are
//! revalidated each time so a new release is picked up at the next load. Every answer carries a
//! strict Content Security Policy: the app loads nothing from elsewhere and runs no inline script.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::AppState;

/// One embedded file.
pub(crate) struct DashboardFile {
    path: &'static str,
    bytes: &'static [u8],
    /// The gzip copy, when the build made one (it is only kept when smaller).
    gzip: Option<&'static [u8]>,
    /// The brotli copy, likewise.
    brotli: Option<&'static [u8]>,
    content_type: &'static str,
}

impl DashboardFile {
    /// The answer for a request with these headers: the smallest copy the client accepts.
    fn respond(&self, request: &HeaderMap, cache_control: &'static str) -> Response {
        let accept = request.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (encoding, bytes) = match (self.brotli, self.gzip) {
            (Some(br), _) if accepts(accept, "br") => (Some("br"), br),
            (_, Some(gz)) if accepts(accept, "gzip") => (Some("gzip"), gz),
            _ => (None, self.bytes),
        };
        let mut response =
            ([(header::CONTENT_TYPE, self.content_type), (header::CACHE_CONTROL, cache_control)], bytes)
                .into_response();
        let h = response.headers_mut();
        if self.gzip.is_some() || self.brotli.is_some() {
            // Caches must keep one copy per encoding.
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        if let Some(encoding) = encoding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        response
    }
}

/// Whether an `Accept-Encoding` value accepts `coding`: listed (or `*`) without `q=0`
/// (RFC 9110 §12.5.3). Codings are case-insensitive; a malformed entry counts as absent.
fn accepts(accept_encoding: &str, coding: &str) -> bool {
    let mut star = None;
    for entry in accept_encoding.split(',') {
        let mut parts = entry.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            let p = p.trim();
            let q = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="));
            q.is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        if name.eq_ignore_ascii_case(coding) {
            return !refused;
        }
        if name == "*" {
            star = Some(!refused);
        }
    }
    star.unwrap_or(false)
}

include!(concat!(env!("OUT_DIR"), "/dashboard_files.rs"));

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The API reference's CSP: the dashboard's, plus one allowance. Redoc styles itself with
/// styled-components, which adds an *empty* `<style>` element and fills it through the CSSOM
/// (`insertRule`, which CSP does not govern); the hash of the empty string lets that one element
/// in and nothing else: inline styles with content and `style` attributes stay refused.
const API_DOCS_CSP: &str = "default-src 'self'; script-src 'self'; \
                            style-src 'self' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='; \
                            img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                            base-uri 'none'; form-action 'self'";

const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>neosens</title></head>\
<body><h1>neosens-central</h1><p>This binary was built without the dashboard. Run \
<code>scripts/build-dashboard</code> (or <code>scripts/run</code>, which does it) and build again. \
The API is served at <a href=\"/api/v1/openapi.json\">/api/v1</a>.</p></body></html>";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{*file}", get(asset))
        .route("/api/docs", get(api_docs))
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

async fn index(request: HeaderMap) -> Response {
    let response = match find("/index.html") {
        Some(f) if DASHBOARD_BUILT => f.respond(&request, "no-cache"),
        _ => Html(NOT_BUILT).into_response(),
    };
    secured(response)
}

/// `GET /api/docs`: the API reference (Redoc, built from `dashboard/api-docs.html`), which
/// renders `/api/v1/openapi.json`. Public like the document itself: no session needed.
async fn api_docs(request: HeaderMap) -> Response {
    let response = match find("/api-docs.html") {
        Some(f) if DASHBOARD_BUILT => f.respond(&request, "no-cache"),
        _ => Html(NOT_BUILT).into_response(),
    };
    let mut response = secured(response);
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_DOCS_CSP));
    response
}

async fn asset(Path(file): Path<String>, request: HeaderMap) -> Response {
    let response = match find(&format!("/assets/{file}")) {
        Some(f) => f.respond(&request, "public, max-age=31536000, immutable"),
        None => (StatusCode::NOT_FOUND, "no such dashboard asset").into_response(),
    };
    secured(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        assert!(accepts("gzip, deflate, br, zstd", "br"));
        assert!(accepts("gzip, deflate, br, zstd", "gzip"));
        assert!(accepts("GZIP", "gzip"));
        assert!(accepts("br;q=0.5, gzip;q=1.0", "br"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(!accepts("br; q=0.000", "br"));
        assert!(accepts("*", "br"));
        assert!(!accepts("*;q=0", "gzip"));
        assert!(!accepts("*, br;q=0", "br"), "an explicit refusal beats the wildcard");
        assert!(!accepts("identity", "gzip"));
        assert!(!accepts("", "gzip"));
        assert!(!accepts("gzipx, xbr", "br"));
        assert!(accepts(";;, ,br;q=abc", "br"), "an unreadable weight is no refusal");
    }

    /// A file with both copies, standing in for a built asset (the tests do not need the build).
    static FILE: DashboardFile = DashboardFile {
        path: "/assets/app.js",
        bytes: b"plain",
        gzip: Some(b"gz"),
        brotli: Some(b"br"),
        content_type: "text/javascript; charset=utf-8",
    };

    fn answer(accept: Option<&str>) -> (Option<String>, Option<String>) {
        let mut request = HeaderMap::new();
        if let Some(a) = accept {
            request.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(a).unwrap());
        }
        let response = FILE.respond(&request, "no-cache");
        let h = response.headers();
        let get = |name| h.get(name).map(|v: &HeaderValue| v.to_str().unwrap().to_owned());
        (get(header::CONTENT_ENCODING), get(header::VARY))
    }

    #[test]
    fn the_smallest_accepted_copy_is_served() {
        assert_eq!(answer(Some("gzip, br")), (Some("br".into()), Some("accept-encoding".into())));
        assert_eq!(answer(Some("gzip")), (Some("gzip".into()), Some("accept-encoding".into())));
        assert_eq!(answer(None), (None, Some("accept-encoding".into())));
        assert_eq!(answer(Some("br;q=0, gzip;q=0")), (None, Some("accept-encoding".into())));
    }
}
