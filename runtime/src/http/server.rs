//! The accept loop of every HTTP listener, bounded by construction (docs/security.md): a cap on
//! open connections and on connections per client address, a deadline for each request's head,
//! a cap on its size, and a graceful drain on shutdown. `axum::serve` has none of the bounds, so
//! connections are served here with hyper's HTTP/1 builder, the one axum uses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The bounds of one HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once. Beyond, new ones wait in the kernel's accept queue until one
    /// closes (the process's file descriptors stay within what the unit allows).
    pub max_connections: usize,
    /// Connections one client address may hold at once; more are closed at once and counted.
    /// Raise it when a reverse proxy on one address relays every client.
    pub max_connections_per_client: usize,
    /// Time a client has to send a request's head (request line and headers), from the
    /// connection or from the previous response on a kept-alive one.
    pub header_timeout: Duration,
    /// Time a client may leave a request body without sending more of it.
    pub body_idle_timeout: Duration,
    /// Time a request may take in all, answered `408` past it. Above the longest legitimate
    /// request (a gateway's 60 s long poll for registry changes).
    pub request_timeout: Duration,
    /// Largest request head in bytes (hyper's read buffer); a bigger one is answered `431`.
    pub max_head_bytes: usize,
}

impl Limits {
    /// The default bounds with these connection caps and overall request deadline (what the
    /// services' `[http]` sections set).
    pub fn with_caps(
        max_connections: usize,
        max_connections_per_client: usize,
        request_timeout: Duration,
    ) -> Self {
        Limits { max_connections, max_connections_per_client, request_timeout, ..Limits::default() }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_connections_per_client: 256,
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(75),
            max_head_bytes: 16 * 1024,
        }
    }
}

/// Counters of a listener's connections, for metrics.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl ConnectionStats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
    /// Connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Connections closed at once because their client address held too many.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Open connections per client address. Bounded: an address is in the map only while it holds
/// a connection, so it never has more than `max_connections` entries.
#[derive(Debug, Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One connection of a client address, given back when dropped.
struct ClientSlot {
    counts: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn enter(counts: &Arc<PerClient>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut map = counts.0.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                map.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(ClientSlot { counts: Arc::clone(counts), ip })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Accepts and serves connections until `shutdown`, then stops accepting and lets open
/// connections finish their requests for at most `deadline` (kept-alive idle ones close at once).
/// The service of one connection: each request gets the peer's address, an idle timeout on its
/// body and a timeout on the whole answer (`408`). Applied here, once per request, rather than
/// as tower layers around the router, which would compile every route again inside them.
fn connection_service(
    app: axum::Router,
    peer: SocketAddr,
    body_idle: Duration,
    request_timeout: Duration,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(ConnectInfo::<SocketAddr>(peer));
        let body = axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_idle, body));
        let call = tower::ServiceExt::oneshot(app.clone(), axum::http::Request::from_parts(parts, body));
        async move {
            match tokio::time::timeout(request_timeout, call).await {
                Ok(answer) => answer,
                Err(_) => {
                    Ok(axum::response::IntoResponse::into_response(axum::http::StatusCode::REQUEST_TIMEOUT))
                }
            }
        }
    })
}

pub(super) async fn accept_loop(
    what: &'static str,
    listener: TcpListener,
    app: axum::Router,
    limits: &Limits,
    stats: Arc<ConnectionStats>,
    shutdown: CancellationToken,
    deadline: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let clients = Arc::new(PerClient::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_head_bytes.max(8192));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin, then go on.
                    tracing::warn!(listener = what, error = %e, "accepting a connection failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            },
        };
        let Some(client) = PerClient::enter(&clients, peer.ip(), limits.max_connections_per_client) else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = what, client = %peer.ip(), "too many connections from one client: closed");
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let service = connection_service(app.clone(), peer, limits.body_idle_timeout, limits.request_timeout);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(listener = what, client = %peer, error = %e, "connection ended with an error");
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop((permit, client));
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(deadline) => {
            tracing::warn!(listener = what, deadline_s = deadline.as_secs(), "requests still running at the end of the drain: abandoned");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Serves a small app within `limits` on a free port; cancel the token to stop.
    fn start(
        limits: Limits,
    ) -> (SocketAddr, Arc<ConnectionStats>, CancellationToken, tokio::runtime::Runtime) {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "hello" }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "late"
                }),
            )
            .route(
                "/echo",
                axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            );
        let stats = Arc::new(ConnectionStats::default());
        let shutdown = CancellationToken::new();
        runtime.spawn(super::super::serve(
            "test",
            listener,
            app,
            limits,
            Arc::clone(&stats),
            shutdown.clone(),
            Duration::from_secs(1),
        ));
        (addr, stats, shutdown, runtime)
    }

    /// Writes `bytes`, then reads until the server closes; what it answered.
    fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(crate::testing::DEADLINE)).unwrap();
        stream.write_all(bytes).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    fn quick() -> Limits {
        Limits {
            header_timeout: Duration::from_millis(200),
            body_idle_timeout: Duration::from_millis(200),
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        }
    }

    #[test]
    fn slow_heads_bodies_and_requests_are_cut_off() {
        let (addr, _, shutdown, _rt) = start(quick());
        // Slowloris: a head that never ends. The server closes the connection.
        let answer = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n");
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        // A body that stops coming.
        let answer =
            exchange(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer:?}");
        // A handler that never answers.
        let answer = exchange(addr, b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        // A healthy request still works.
        let answer = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"), "{answer:?}");
        shutdown.cancel();
    }

    #[test]
    fn oversized_heads_are_refused() {
        let (addr, _, shutdown, _rt) = start(Limits::default());
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let answer = exchange(addr, big.as_bytes());
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{:?}",
            &answer[..answer.len().min(80)]
        );
        shutdown.cancel();
    }

    #[test]
    fn one_client_cannot_hold_every_connection() {
        let limits = Limits { max_connections_per_client: 3, ..Limits::default() };
        let (addr, stats, shutdown, _rt) = start(limits);
        // Three idle connections are held open …
        let held: Vec<std::net::TcpStream> =
            (0..3).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        crate::testing::wait_until("three connections open", || stats.open() == 3);
        // … a fourth from the same address is closed at once and counted.
        let answer = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(answer, "", "refused without an answer");
        assert_eq!(stats.refused(), 1);
        drop(held);
        crate::testing::wait_until("slots given back", || stats.open() == 0);
        let answer = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        shutdown.cancel();
    }

    #[test]
    fn client_slots_are_capped_and_given_back() {
        let counts = Arc::new(PerClient::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = PerClient::enter(&counts, ip, 2).unwrap();
        let b = PerClient::enter(&counts, ip, 2).unwrap();
        assert!(PerClient::enter(&counts, ip, 2).is_none(), "a third one is refused");
        assert!(PerClient::enter(&counts, "192.0.2.2".parse().unwrap(), 2).is_some(), "per address");
        drop(a);
        let c = PerClient::enter(&counts, ip, 2).expect("a slot was given back");
        drop((b, c));
        assert!(counts.0.lock().is_empty(), "no entry is left for an address without connections");
        assert!(PerClient::enter(&counts, ip, 0).is_none());
        assert!(counts.0.lock().is_empty(), "a refusal leaves no entry");
    }
}
