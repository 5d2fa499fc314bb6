//! The legacy provisioning paths on the gateway's LAN listener, with the exact legacy behaviour.
//!
//! Online, a request goes to central (naming the gateway and the device's address) and central's
//! answer comes back byte for byte. When central is unreachable or slow (a short timeout), the
//! answer comes from the cache: the configuration of a known, enabled device after checking its
//! Basic credentials against the synced hash; credentials without password for delivered devices;
//! and the first delivery of a staged password, exactly once — recorded on disk before the answer
//! leaves, and reported to central when it is back. After a failure the agent answers from its
//! cache for a few seconds before trying central again, so an outage does not cost every device
//! the forwarding timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use neosens_protocol::legacy::Credentials;
use neosens_runtime::keys::Keys;
use neosens_runtime::legacy_http::{basic_auth, credentials_mac, forbidden, json_body};

use crate::cache::{Cache, CachedDevice, PendingLog};
use crate::central::{Central, DeviceHeaders, Forwarded};
use crate::http::AppState;

/// How long the agent answers from its cache after central failed, before trying it again.
const COOLDOWN: Duration = Duration::from_secs(10);

/// Largest `/device/logger` body accepted (as central).
const MAX_LOGGER_BODY: usize = 16 * 1024;

/// Largest body on the other legacy paths (the firmware sends none), as central.
const MAX_LEGACY_BODY: usize = 1024;

/// Request counts by (path, source: `central` or `cache`, outcome).
pub type Counts =
    parking_lot::Mutex<std::collections::BTreeMap<(&'static str, &'static str, &'static str), u64>>;

/// What the proxy needs.
#[derive(Clone)]
pub struct Proxy {
    /// The cache.
    pub cache: Cache,
    /// Central, once enrolled.
    pub central: Option<Central>,
    /// The gateway's key pair, once enrolled.
    pub keys: Option<Arc<Keys>>,
    /// Until when (ms since start) central is skipped after a failure.
    skip_until_ms: Arc<AtomicU64>,
    started: std::time::Instant,
    /// Counters: (path, source, outcome).
    pub counts: Arc<Counts>,
    /// Unregistered MACs that asked while central was out of reach, for its adoption inbox.
    pub unclaimed: Arc<crate::unclaimed::UnclaimedHere>,
    /// Local-broker mode: the broker devices are given when they have none of their own.
    pub local_broker: Arc<crate::local_broker::LocalBroker>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").field("enrolled", &self.central.is_some()).finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy over this cache; without `central` and `keys` (not enrolled) it answers from the
    /// cache alone, which is empty until the first sync.
    pub fn new(cache: Cache, central: Option<Central>, keys: Option<Arc<Keys>>) -> Self {
        Proxy {
            cache,
            central,
            keys,
            skip_until_ms: Arc::default(),
            started: std::time::Instant::now(),
            counts: Arc::default(),
            unclaimed: Arc::default(),
            local_broker: Arc::default(),
        }
    }

    /// This proxy, keeping unregistered MACs in `unclaimed` (shared with the health reports).
    pub fn with_unclaimed(mut self, unclaimed: Arc<crate::unclaimed::UnclaimedHere>) -> Self {
        self.unclaimed = unclaimed;
        self
    }

    /// This proxy, giving devices the gateway's local broker when that mode is on.
    pub fn with_local_broker(mut self, local_broker: Arc<crate::local_broker::LocalBroker>) -> Self {
        self.local_broker = local_broker;
        self
    }

    fn count(&self, path: &'static str, source: &'static str, outcome: &'static str) {
        *self.counts.lock().entry((path, source, outcome)).or_default() += 1;
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Central's answer, or `None` when the cache must answer (not enrolled, down, slow, 5xx).
    async fn try_central(
        &self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
        peer: SocketAddr,
    ) -> Option<Forwarded> {
        let central = self.central.as_ref()?;
        if self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        let device_headers = DeviceHeaders {
            authorization: header(AUTHORIZATION),
            content_type: header(CONTENT_TYPE),
            user_agent: header(USER_AGENT),
        };
        match central.forward(method, path, device_headers, body, &peer.ip().to_string()).await {
            Ok(answer) => Some(answer),
            Err(e) => {
                tracing::warn!(error = %e, path, "central did not answer: serving from the cache");
                self.skip_until_ms.store(self.now_ms() + COOLDOWN.as_millis() as u64, Ordering::Relaxed);
                None
            }
        }
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/device/credentials", any(credentials))
        .route("/device/credentials/", any(credentials))
        .route("/device/config", any(config))
        .route("/device/config/", any(config))
        // The handlers read the body (to forward it), so the extractor's limit is the bound.
        .route_layer(DefaultBodyLimit::max(MAX_LEGACY_BODY))
        .route("/device/logger", post(logger).layer(DefaultBodyLimit::max(MAX_LOGGER_BODY)))
        .route("/device/logger/", post(logger).layer(DefaultBodyLimit::max(MAX_LOGGER_BODY)))
}

fn passthrough(answer: Forwarded) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (status, answer.body).into_response();
    if let Some(ct) = answer.content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    response
}

/// Central's credentials for a device of this gateway's scope, naming the local broker while
/// it serves (central learns it from the gateway's reports, up to 30 s later): the device keeps
/// the broker it is given. A device with a broker of its own keeps that one.
fn with_local_broker(p: &Proxy, cached: Option<&CachedDevice>, mut answer: Forwarded) -> Forwarded {
    let Some(device) = cached else { return answer };
    let Some((host, port)) = local_broker_for(p, device) else { return answer };
    if answer.status != 200 {
        return answer;
    }
    let Ok(mut creds) = Credentials::parse(&answer.body) else { return answer };
    if creds.login != device.record.login {
        return answer;
    }
    creds.server = Some(host);
    creds.port = Some(port);
    answer.body = Bytes::from(creds.to_legacy_json());
    answer
}

/// The local broker a device is given: while it serves, to a device without a broker of its
/// own whose main room is of this gateway's scope (a device of several rooms may be cached for
/// another one; its statuses would not cross the bridge).
fn local_broker_for(p: &Proxy, device: &CachedDevice) -> Option<(String, u16)> {
    if device.record.mqtt.is_some() {
        return None;
    }
    // The cheap check first: most gateways serve no local broker, and need no database read.
    let serving = p.local_broker.serving()?;
    let main = *device.record.rooms.first()?;
    let in_scope = p.cache.room(main).is_ok_and(|r| r.is_some_and(|r| !r.base_topic.is_empty()));
    in_scope.then_some(serving)
}

fn internal(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "{what}");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// `/device/credentials` (§3.1).
async fn credentials(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = &s.proxy;
    let mac = credentials_mac(&method, uri.query(), &body);
    let cached = match mac.map(|m| p.cache.device_by_mac(m)).transpose() {
        Ok(d) => d.flatten(),
        Err(e) => return internal("reading the cache", e),
    };
    // Delivered here and not yet reported: central would hand the password out a second time.
    if !cached.as_ref().is_some_and(|d| d.delivered_here) {
        if let Some(answer) = p.try_central(method, &uri, &headers, body, peer).await {
            p.count("credentials", "central", if answer.status == 200 { "served" } else { "refused" });
            return passthrough(with_local_broker(p, cached.as_ref(), answer));
        }
    }
    let Some(device) = cached else {
        p.count("credentials", "cache", if mac.is_some() { "unknown_mac" } else { "invalid_mac" });
        if let Some(mac) = mac {
            // Central did not see this one: kept for its adoption inbox, reported later.
            let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
            p.unclaimed.asked(
                mac,
                &peer.ip().to_canonical().to_string(),
                user_agent,
                std::time::Instant::now(),
            );
        }
        return forbidden();
    };
    local_credentials(p, device).await
}

async fn local_credentials(p: &Proxy, device: CachedDevice) -> Response {
    let d = &device.record;
    // The device's own broker, else the gateway's in local-broker mode (as central answers).
    let mqtt = d.mqtt.as_ref().map(|m| (m.server.clone(), m.port)).or_else(|| local_broker_for(p, &device));
    let without_password =
        || json_body(Credentials::new(d.login.clone(), None, mqtt.clone()).to_legacy_json());
    let (Some(staged), false) = (&d.staged_secret, device.delivered()) else {
        p.count("credentials", "cache", "served");
        return without_password();
    };
    let Some(keys) = &p.keys else { return without_password() };
    let secret = match keys.open(staged, &d.id.to_bytes()).map(String::from_utf8) {
        Ok(Ok(s)) => s,
        _ => return internal("a staged secret does not open with this gateway's keys", d.id),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_millis() as u64);
    let (cache, id) = (p.cache.clone(), d.id);
    match neosens_runtime::blocking::run(move || cache.record_local_delivery(id, now)).await {
        Ok(true) => {
            tracing::info!(device = %d.id, login = %d.login, "first credentials delivered by the gateway (central unreachable)");
            p.count("credentials", "cache", "delivered");
            json_body(Credentials::new(d.login.clone(), Some(secret), mqtt).to_legacy_json())
        }
        Ok(false) => {
            p.count("credentials", "cache", "served");
            without_password()
        }
        Err(e) => internal("recording a delivery", e),
    }
}

/// Checks Basic credentials against the cache: the device, if known, enabled and right.
fn authenticate(p: &Proxy, headers: &HeaderMap) -> Result<Option<CachedDevice>, crate::cache::CacheError> {
    let Some((login, password)) = basic_auth(headers) else { return Ok(None) };
    let Some(device) = p.cache.device_by_login(&login)? else { return Ok(None) };
    let ok = p.keys.as_ref().is_some_and(|k| k.verify(password.as_bytes(), &device.record.secret_hash));
    Ok((ok && device.record.enabled).then_some(device))
}

/// `/device/config` (§3.2).
async fn config(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = &s.proxy;
    if let Some(answer) = p.try_central(method, &uri, &headers, body, peer).await {
        p.count("config", "central", if answer.status == 200 { "served" } else { "refused" });
        return passthrough(answer);
    }
    match authenticate(p, &headers) {
        Ok(Some(device)) => {
            p.count("config", "cache", "served");
            json_body(device.record.config_body)
        }
        Ok(None) => {
            p.count("config", "cache", "refused");
            forbidden()
        }
        Err(e) => internal("reading the cache", e),
    }
}

/// `/device/logger` (§3.5): stored by central; kept and forwarded later while it is unreachable.
async fn logger(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = &s.proxy;
    if let Some(answer) = p.try_central(Method::POST, &uri, &headers, body.clone(), peer).await {
        p.count("logger", "central", if answer.status == 200 { "served" } else { "refused" });
        return passthrough(answer);
    }
    match authenticate(p, &headers) {
        Ok(Some(device)) => {
            let log = PendingLog {
                device: device.record.id,
                received_at_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
                body: body.to_vec(),
                device_addr: peer.ip().to_string(),
            };
            let cache = p.cache.clone();
            match neosens_runtime::blocking::run(move || cache.queue_log(&log)).await {
                Ok(true) => {
                    p.count("logger", "cache", "queued");
                    StatusCode::OK.into_response()
                }
                // The queue is full: the line is lost, the device is not told (as 2016's server
                // never failed a log line either).
                Ok(false) => {
                    p.count("logger", "cache", "queue_full");
                    StatusCode::OK.into_response()
                }
                Err(e) => internal("queueing a device log", e),
            }
        }
        Ok(None) => {
            p.count("logger", "cache", "refused");
            forbidden()
        }
        Err(e) => internal("reading the cache", e),
    }
}
