//! HTTP calls to central: enrolment, the sync long-poll, delivery reports, health reports, and
//! forwarding the devices' legacy requests. The JSON bodies are central's own types, shared in
//! [`neosens_protocol::edge`].

use std::time::Duration;

use neosens_protocol::edge::{Deliveries, EnrolmentGrant, EnrolmentRequest, HealthReport, RelayedLogs};
use neosens_protocol::ids::DeviceId;
use reqwest::StatusCode;
use serde::Serialize;

/// Why a call to central failed.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// Central could not be reached (or answered too late).
    #[error("central unreachable: {0}")]
    Unreachable(String),
    /// Central refused the gateway's credentials.
    #[error("central refused the gateway's credentials (enrol again: neosens-edge enroll)")]
    Unauthorized,
    /// Central answered something unexpected.
    #[error("unexpected answer from central: {0}")]
    Protocol(String),
}

fn unreachable(e: reqwest::Error) -> CentralError {
    CentralError::Unreachable(e.to_string())
}

/// The device's request headers a forwarded request carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeviceHeaders<'a> {
    /// `Authorization` (Basic, on `/device/config`).
    pub authorization: Option<&'a str>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `User-Agent` (`ESP32HTTPClient` …).
    pub user_agent: Option<&'a str>,
}

/// A legacy answer from central, passed on byte for byte.
#[derive(Debug, Clone)]
pub struct Forwarded {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Body.
    pub body: bytes::Bytes,
}

/// The client.
#[derive(Debug, Clone)]
pub struct Central {
    http: reqwest::Client,
    base: String,
    secret: Option<String>,
    forward_timeout: Duration,
    /// Central refused `ext=1` (a version before OTAA and layouts): sync without it.
    no_ext: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// A sync body as central sent it (`neosens_protocol::sync::SyncBatch::decode` reads it).
#[derive(Debug)]
pub struct Fetched {
    /// The postcard body.
    pub body: bytes::Bytes,
    /// From the request to the last byte of the answer (long-poll wait included).
    pub took: Duration,
}

impl Central {
    /// A client of central at `base` (`https://neosens.example.org`), authenticated with the
    /// gateway's `secret` once enrolled.
    pub fn new(base: &str, secret: Option<String>, forward_timeout: Duration) -> Result<Self, CentralError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("neosens-edge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CentralError::Protocol(e.to_string()))?;
        Ok(Central {
            http,
            base: base.trim_end_matches('/').to_owned(),
            secret,
            forward_timeout,
            no_ext: std::sync::Arc::default(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.secret {
            Some(s) => request.bearer_auth(s),
            None => request,
        }
    }

    /// Exchanges a one-time enrolment token for the gateway's credentials.
    pub async fn enroll(&self, token: &str) -> Result<EnrolmentGrant, CentralError> {
        let response = self
            .http
            .post(self.url("/api/v1/edge/enroll"))
            .timeout(Duration::from_secs(30))
            .json(&EnrolmentRequest { token: token.to_owned() })
            .send()
            .await
            .map_err(unreachable)?;
        match response.status() {
            StatusCode::OK => response.json().await.map_err(|e| CentralError::Protocol(e.to_string())),
            StatusCode::UNAUTHORIZED => Err(CentralError::Protocol(
                "central refused the enrolment token: unknown, already used or expired (ask an admin for a new one)"
                    .into(),
            )),
            other => Err(CentralError::Protocol(format!("enrolment answered {other}"))),
        }
    }

    /// The changes since `since`, waiting up to `wait` for one; `None` when nothing changed.
    /// `after` asks for the next page of a snapshot instead. The body is decoded by the caller,
    /// off the async workers (a snapshot page is megabytes).
    pub async fn sync(
        &self,
        since: u64,
        after: Option<DeviceId>,
        wait: Duration,
    ) -> Result<Option<Fetched>, CentralError> {
        let started = std::time::Instant::now();
        let mut query = vec![("since", since.to_string()), ("wait", wait.as_secs().to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        // `ext=3`: this agent answers joins and decodes payload layouts, reads OTAA
        // credentials and layouts in the batches, its settings and local broker accounts, and
        // its agent settings (a central that predates `ext` refuses the parameter: asked
        // without it from then on; one that knows a lower level sends what it knows).
        let ext = !self.no_ext.load(std::sync::atomic::Ordering::Relaxed);
        if ext {
            query.push(("ext", "3".to_owned()));
        }
        let response = self
            .authed(self.http.get(self.url("/api/v1/edge/sync")))
            .query(&query)
            .timeout(wait + Duration::from_secs(30))
            .send()
            .await
            .map_err(unreachable)?;
        if ext && response.status() == StatusCode::BAD_REQUEST {
            tracing::warn!(
                "central does not sync OTAA credentials nor payload layouts (older version): joins are not answered"
            );
            self.no_ext.store(true, std::sync::atomic::Ordering::Relaxed);
            return Box::pin(self.sync(since, after, wait)).await;
        }
        match response.status() {
            StatusCode::OK => {
                let body = response.bytes().await.map_err(unreachable)?;
                Ok(Some(Fetched { body, took: started.elapsed() }))
            }
            StatusCode::NO_CONTENT => Ok(None),
            StatusCode::UNAUTHORIZED => Err(CentralError::Unauthorized),
            other => Err(CentralError::Protocol(format!("sync answered {other}"))),
        }
    }

    /// Reports first-time credentials delivered here.
    pub async fn report_deliveries(&self, devices: &[DeviceId]) -> Result<(), CentralError> {
        self.post_json("/api/v1/edge/deliveries", &Deliveries { devices: devices.to_vec() }).await
    }

    /// Reports the sessions of OTAA joins answered here, once their nodes used them.
    pub async fn report_joins(
        &self,
        joins: &neosens_protocol::edge::JoinReports,
    ) -> Result<(), CentralError> {
        self.post_json("/api/v1/edge/joins", joins).await
    }

    /// Relays device log lines accepted offline (central stores those of its enabled devices
    /// in this gateway's scope and counts the others as refused).
    pub async fn relay_logs(&self, logs: &RelayedLogs) -> Result<(), CentralError> {
        self.post_json("/api/v1/edge/logs", logs).await
    }

    /// The running campaigns' images for this gateway's scope, as central wrote them (JSON,
    /// `neosens_protocol::edge_firmware::FirmwareManifest`; kept as is on disk); `cached` are
    /// the SHA-256 of the images served here, comma-separated.
    pub async fn firmware_manifest(&self, cached: &str) -> Result<bytes::Bytes, CentralError> {
        let response = self
            .authed(self.http.get(self.url(&format!("/api/v1/edge/firmware?cached={cached}"))))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(unreachable)?;
        match response.status() {
            StatusCode::OK => response.bytes().await.map_err(unreachable),
            StatusCode::UNAUTHORIZED => Err(CentralError::Unauthorized),
            other => Err(CentralError::Protocol(format!("/api/v1/edge/firmware answered {other}"))),
        }
    }

    /// An image's content from byte `from` on (the caller reads the body in chunks).
    pub async fn firmware_image(&self, sha256: &str, from: u64) -> Result<reqwest::Response, CentralError> {
        let mut request = self
            .authed(self.http.get(self.url(&format!("/api/v1/edge/firmware/{sha256}"))))
            .timeout(Duration::from_secs(1800));
        if from > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let response = request.send().await.map_err(unreachable)?;
        match response.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => Ok(response),
            StatusCode::UNAUTHORIZED => Err(CentralError::Unauthorized),
            other => Err(CentralError::Protocol(format!("image {sha256} answered {other}"))),
        }
    }

    /// Reports the image fetches the gateway's devices made.
    pub async fn report_fetches(
        &self,
        fetches: &neosens_protocol::edge_firmware::FirmwareFetches,
    ) -> Result<(), CentralError> {
        self.post_json("/api/v1/edge/firmware/fetches", fetches).await
    }

    /// `POST /api/v1/edge/agent-update`: what became of a build offered to this gateway.
    /// `Ok(false)`: central refused it for good (a 4xx other than 401, 408 and 429: an older
    /// central without the path, a report it cannot read), so it is not sent again.
    pub async fn agent_update(
        &self,
        report: &neosens_protocol::agent_build::AgentUpdateReport,
    ) -> Result<bool, CentralError> {
        let path = "/api/v1/edge/agent-update";
        match self.post_status(path, report).await? {
            s if s.is_success() => Ok(true),
            StatusCode::UNAUTHORIZED => Err(CentralError::Unauthorized),
            s @ (StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS) => {
                Err(CentralError::Protocol(format!("{path} answered {s}")))
            }
            s if s.is_client_error() => Ok(false),
            other => Err(CentralError::Protocol(format!("{path} answered {other}"))),
        }
    }

    /// Reports the gateway's figures.
    pub async fn report_health(&self, report: &HealthReport) -> Result<(), CentralError> {
        self.post_json("/api/v1/edge/health", report).await
    }

    async fn post_json(&self, path: &str, body: &impl Serialize) -> Result<(), CentralError> {
        match self.post_status(path, body).await? {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => Err(CentralError::Unauthorized),
            other => Err(CentralError::Protocol(format!("{path} answered {other}"))),
        }
    }

    /// Posts `body` as JSON with the gateway's secret; the answer's status.
    async fn post_status(&self, path: &str, body: &impl Serialize) -> Result<StatusCode, CentralError> {
        let response = self
            .authed(self.http.post(self.url(path)))
            .timeout(Duration::from_secs(15))
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        Ok(response.status())
    }

    /// Forwards a device's legacy request (`path_and_query` as the device sent it), naming the
    /// gateway and the device's address; a short timeout, so a slow central means an answer
    /// from the cache instead.
    pub async fn forward(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        headers: DeviceHeaders<'_>,
        body: bytes::Bytes,
        device_addr: &str,
    ) -> Result<Forwarded, CentralError> {
        let mut request = self
            .http
            .request(method, self.url(path_and_query))
            .timeout(self.forward_timeout)
            .header("X-Forwarded-For", device_addr)
            .body(body);
        if let Some(secret) = &self.secret {
            request = request.header("X-Neosens-Gateway", secret.as_str());
        }
        if let Some(a) = headers.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, a);
        }
        if let Some(c) = headers.content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, c);
        }
        if let Some(ua) = headers.user_agent {
            // The device's, not the agent's: central's adoption inbox tells boards apart by it.
            request = request.header(reqwest::header::USER_AGENT, ua);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        // Central answering 5xx is central not able to answer: the cache does better.
        if status >= 500 {
            return Err(CentralError::Unreachable(format!("central answered {status}")));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(unreachable)?;
        Ok(Forwarded { status, content_type, body })
    }
}

#[cfg(test)]
mod host_name_tests {
    /// Host names are parsed without Unicode tables (idna_adapter 1.0, see Cargo.toml): ASCII
    /// names and their xn-- forms work; a name in Unicode is refused rather than misread.
    #[test]
    fn ascii_and_punycode_host_names_parse_unicode_ones_are_refused() {
        for ok in
            ["https://neosens.univ-tlse3.fr:8443/", "http://127.0.0.1:8080", "https://xn--bcher-kva.example/"]
        {
            assert!(reqwest::Url::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            reqwest::Url::parse("https://NeoSens.Example/").unwrap().host_str(),
            Some("neosens.example"),
            "ASCII names are still lowercased"
        );
        assert!(reqwest::Url::parse("https://bücher.example/").is_err());
    }
}
