//! Serving an axum router with the shared shutdown path, each request in a `tracing` span with
//! a request id.

mod scrape;
mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header::HeaderName};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::build_info::BuildInfo;

pub use scrape::{MIN_SCRAPE_TOKEN, ScrapeToken, guarded};
pub use server::{ConnectionStats, Limits};

/// The request id header, read from trusted proxies and returned on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id kept (a UUID is 36 characters; some proxies prefix them).
pub const MAX_REQUEST_ID: usize = 64;

/// Why a listener stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The server failed or stopped while it should have been serving.
    #[error("{what} stopped unexpectedly: {reason}")]
    Stopped {
        /// Which listener.
        what: &'static str,
        /// What happened.
        reason: String,
    },
}

/// Serves `app` on `listener` within `limits` until `shutdown` is cancelled, then lets in-flight
/// requests finish for at most `deadline`. `what` names the listener in logs and errors;
/// `stats` counts its connections.
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
    deadline: Duration,
) -> Result<(), ServeError> {
    let app = observe(app, what);
    server::accept_loop(what, listener, app, &limits, stats, shutdown, deadline).await;
    Ok(())
}

/// `GET /healthz`: the process is up and its HTTP stack answers (systemd, load balancers), and
/// which build answers: `{"status": "ok", "version": …, "git": …, "target": …}`. Readiness —
/// storage, broker link — is each service's own `/readyz`.
pub fn healthz<S: Clone + Send + Sync + 'static>(build: BuildInfo) -> axum::Router<S> {
    axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || async move {
            // Written by hand rather than with axum's `Json`: the agent then needs neither the
            // `json` nor the `query` feature of axum (the gateway binary's size budget).
            let body = serde_json::json!({
                "status": "ok",
                "version": build.version,
                "git": build.git,
                "target": build.target,
            });
            ([(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string())
        }),
    )
}

/// Puts every request of `app` in an info-level `request` span with `listener`, `method`, the
/// matched `route` and a `request_id`, returns that id in `x-request-id`, and logs each response
/// (status, latency) at debug level. [`serve`] applies it, so every listener of both services has
/// the same layers.
///
/// - The route is the pattern (`/api/v1/devices/{id}`), never the URI: queries carry MAC
///   addresses and tokens (`/device/credentials?mac=…`), and patterns keep the log bounded.
/// - The span is at info level so that warnings and errors of handlers carry the request id with
///   the default filter; it prints nothing by itself. Response lines are at debug level: central
///   answers up to 20k provisioning requests a second, and a line each at info would drown the
///   log (the per-route counts and durations are in `/metrics`). `info,neosens_runtime::http=debug`
///   shows them.
/// - Responses with status 500 (a bug, a failed store) are warnings; other 5xx (`/readyz` says
///   503 while the broker is away) are debug lines, since the handler decided them.
pub fn observe(app: axum::Router, listener: &'static str) -> axum::Router {
    let layers = tower::ServiceBuilder::new()
        .map_request(drop_unusable_request_id)
        .layer(SetRequestIdLayer::new(REQUEST_ID, CounterRequestId))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request| {
                    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
                    let id = request
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok());
                    tracing::info_span!(
                        "request",
                        listener,
                        method = %request.method(),
                        route,
                        request_id = id.unwrap_or("")
                    )
                })
                .on_request(())
                // Here rather than tower-http's default, so the lines are under this module's
                // target (`neosens_runtime::http=debug` turns them on).
                .on_response(|response: &axum::http::Response<_>, latency: Duration, _: &tracing::Span| {
                    tracing::debug!(
                        status = response.status().as_u16(),
                        latency_us = latency.as_micros() as u64,
                        "response"
                    )
                })
                .on_failure(|class: ServerErrorsFailureClass, latency: Duration, _: &tracing::Span| {
                    let latency_us = latency.as_micros() as u64;
                    match class {
                        ServerErrorsFailureClass::StatusCode(status) if status.as_u16() == 500 => {
                            tracing::warn!(status = 500, latency_us, "request failed")
                        }
                        ServerErrorsFailureClass::StatusCode(status) => {
                            tracing::debug!(status = status.as_u16(), latency_us, "server error answered")
                        }
                        ServerErrorsFailureClass::Error(error) => {
                            tracing::warn!(error = %error, latency_us, "request failed")
                        }
                    }
                }),
        );
    app.layer(layers)
}

/// Whether an incoming request id may be kept: short, and only characters that cannot break a
/// log line or pretend to be another field (letters, digits, `-_.:+/=@`). Proxies' UUIDs, hex
/// and base64 ids pass; anything else is replaced, so a client cannot write into the log.
pub fn usable_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID
        && value.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(b))
}

/// Removes an incoming `x-request-id` that is not [`usable_request_id`] (or given twice), so
/// [`SetRequestIdLayer`] makes a new one.
fn drop_unusable_request_id(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let mut values = headers.get_all(&REQUEST_ID).iter();
    let keep = match (values.next(), values.next()) {
        (Some(v), None) => usable_request_id(v.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !keep {
        headers.remove(&REQUEST_ID);
    }
    request
}

/// Request ids `<process>-<n>`: a random 32-bit prefix drawn at start, then a counter. One
/// atomic increment per request instead of a UUID's 16 random bytes (a `getrandom` call each);
/// short in log lines, ordered within a process, and the prefix keeps ids of different
/// processes and restarts apart — unique enough to find a request in a day of logs, which is
/// all they are for.
#[derive(Debug, Clone, Copy)]
struct CounterRequestId;

impl MakeRequestId for CounterRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        static PREFIX: OnceLock<u32> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let prefix = *PREFIX.get_or_init(|| fastrand::u32(..));
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{prefix:08x}-{n}")).ok().map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// `GET /` → `hello`, served on a free loopback port until the token is cancelled.
    async fn serve_hello()
    -> (std::net::SocketAddr, CancellationToken, tokio::task::JoinHandle<Result<(), ServeError>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", get(|| async { "hello" }));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(
            "test listener",
            listener,
            app,
            Limits::default(),
            Arc::default(),
            shutdown.clone(),
            Duration::from_secs(5),
        ));
        (addr, shutdown, task)
    }

    #[tokio::test]
    async fn serves_until_cancelled_then_returns() {
        let (addr, shutdown, task) = serve_hello().await;

        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("hello"), "{response}");

        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed after shutdown");
    }

    /// One raw request with extra header lines, on a real connection.
    async fn fetch(addr: std::net::SocketAddr, path: &str, extra: &[u8]) -> crate::testing::RawResponse {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n").into_bytes();
        request.extend_from_slice(extra);
        request.extend_from_slice(b"\r\n");
        tokio::task::spawn_blocking(move || crate::testing::raw_http(addr, &request)).await.unwrap()
    }

    #[tokio::test]
    async fn every_response_carries_a_request_id_and_only_sane_ones_are_kept() {
        let (addr, shutdown, task) = serve_hello().await;

        let made = fetch(addr, "/", b"").await;
        let first = made.header("x-request-id").expect("an id is made").to_owned();
        assert!(usable_request_id(first.as_bytes()), "{first}");
        let second = fetch(addr, "/nowhere", b"").await;
        assert_eq!(second.status, 404);
        let second = second.header("x-request-id").expect("unmatched routes too").to_owned();
        assert_ne!(first, second, "each request its own id");

        let kept = fetch(addr, "/", b"X-Request-Id: 0f6c1e2a-proxy.example:42\r\n").await;
        assert_eq!(kept.header("x-request-id"), Some("0f6c1e2a-proxy.example:42"), "a proxy's id is echoed");

        let long = "a".repeat(MAX_REQUEST_ID + 1);
        let hostile = [
            format!("x-request-id: {long}\r\n").into_bytes(),
            b"x-request-id: evil message=\"forged\"\r\n".to_vec(),
            b"x-request-id: caf\xc3\xa9\r\n".to_vec(),
            b"x-request-id: a\r\nx-request-id: b\r\n".to_vec(),
        ];
        for header in hostile {
            let replaced = fetch(addr, "/", &header).await;
            assert_eq!(replaced.status, 200);
            let id = replaced.header("x-request-id").expect("an id is made");
            assert!(usable_request_id(id.as_bytes()) && id.contains('-'), "{id}");
            assert!(!id.contains("evil") && !id.contains("caf") && id != "a", "replaced: {id}");
        }
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    /// The log lines of a request carry its span: method, route pattern and id, never the query.
    #[test]
    fn request_lines_name_the_route_and_id_but_not_the_query() {
        use tower::ServiceExt;
        let buffer = crate::testing::LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let app = observe(
            axum::Router::new().route(
                "/device/{mac}",
                get(|| async {
                    tracing::warn!("handler speaking");
                    "ok"
                }),
            ),
            "test listener",
        );
        let request = axum::http::Request::get("/device/aa:bb:cc:dd:ee:ff?token=s3cret")
            .header("x-request-id", "abc-123")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = runtime.block_on(app.oneshot(request)).unwrap();
        assert_eq!(response.headers()["x-request-id"], "abc-123");
        let log = buffer.text();
        let handler = log.lines().find(|l| l.contains("handler speaking")).expect(&log);
        for field in
            ["listener=\"test listener\"", "method=GET", "route=\"/device/{mac}\"", "request_id=\"abc-123\""]
        {
            assert!(handler.contains(field), "{field} missing in {handler}");
        }
        let done = log.lines().find(|l| l.contains("neosens_runtime::http: response")).expect(&log);
        assert!(
            done.contains("DEBUG") && done.contains("status=200") && done.contains("latency_us="),
            "{done}"
        );
        assert!(done.contains("request_id=\"abc-123\""), "{done}");
        assert!(!log.contains("s3cret") && !log.contains("aa:bb"), "no query or raw path in the log: {log}");
    }
}
