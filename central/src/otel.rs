//! OpenTelemetry export of central's spans (cargo feature `otel`): every `tracing` span the log
//! filter lets through — HTTP requests with their ids, MQTT status batches — goes to a collector
//! over OTLP/HTTP with protobuf bodies.
//!
//! - Endpoint: the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` added), else `[telemetry] otlp_endpoint` (a base
//!   URL too). None of them: no export, and nothing of the SDK runs.
//! - Service name: `OTEL_SERVICE_NAME`, else `neosens-central`; `OTEL_RESOURCE_ATTRIBUTES` adds
//!   attributes; the version and git revision are attributes of their own.
//! - Spans leave in batches from a thread of the SDK, through a blocking HTTP client with its
//!   own small runtime (that is what the SDK's batch processor drives): the export never runs on
//!   the service's runtime. [`Export::shutdown`] sends what is left when the service stops.

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;

use crate::config::TelemetryConfig;

/// The environment variables that choose the endpoint, most specific first.
const ENDPOINT_VARS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// Where spans go, if anywhere: the environment's endpoint, else the configured one.
pub fn endpoint(config: &TelemetryConfig) -> Option<String> {
    let from_env = ENDPOINT_VARS.iter().find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()));
    match (from_env, &config.otlp_endpoint) {
        (Some(env), _) => Some(env),
        (None, Some(base)) => Some(traces_url(base)),
        (None, None) => None,
    }
}

/// The traces path under a base URL, as the SDK does with `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// A running export.
#[derive(Debug)]
pub struct Export {
    provider: SdkTracerProvider,
}

impl Export {
    /// Starts the export when an endpoint is configured. Call it before the async runtime
    /// starts (the HTTP client is a blocking one).
    pub fn start(config: &TelemetryConfig) -> anyhow::Result<Option<Export>> {
        let from_env = ENDPOINT_VARS.iter().any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        let configured = config.otlp_endpoint.as_deref().map(traces_url);
        if !from_env && configured.is_none() {
            return Ok(None);
        }
        // Without an explicit endpoint the exporter reads the environment itself.
        Export::to(if from_env { None } else { configured }).map(Some)
    }

    /// An export to `traces_url` (`http://host:4318/v1/traces`), or to the environment's
    /// endpoint when `None`.
    pub fn to(traces_url: Option<String>) -> anyhow::Result<Export> {
        let mut exporter =
            opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
        if let Some(url) = &traces_url {
            exporter = exporter.with_endpoint(url);
        }
        let exporter = exporter.build().with_context(|| {
            format!(
                "the OTLP exporter ([telemetry] otlp_endpoint or OTEL_EXPORTER_OTLP_ENDPOINT {})",
                traces_url.as_deref().unwrap_or("from the environment")
            )
        })?;
        let build = neosens_runtime::build_info!();
        let mut resource = Resource::builder().with_attributes([
            KeyValue::new("service.version", build.version),
            KeyValue::new("vcs.ref.head.revision", build.git),
        ]);
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("neosens-central");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        Ok(Export { provider })
    }

    /// The `tracing` layer that hands spans to the export.
    pub fn layer(&self) -> neosens_runtime::telemetry::ExtraLayer {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("neosens-central")).boxed()
    }

    /// Sends the spans still waiting and stops the export (bounded by the SDK's export timeout).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "the last spans could not be exported");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// One HTTP request as a collector received it.
    struct Received {
        head: String,
        body: Vec<u8>,
    }

    /// A collector on a port-0 socket that answers 200 to each request and hands it over.
    fn collector() -> (String, std::sync::mpsc::Receiver<Received>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut head = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 2 {
                        head.push_str(&line);
                        line.clear();
                    }
                    if head.is_empty() {
                        break;
                    }
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
                    let _ = tx.send(Received { head, body });
                }
            }
        });
        (url, rx)
    }

    #[test]
    fn spans_reach_a_collector_over_http_and_the_rest_leaves_at_shutdown() {
        let (url, received) = collector();
        let export = Export::to(Some(url)).unwrap();
        let subscriber = tracing_subscriber::registry().with(export.layer());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("status_batch", batch = 7u64, statuses = 12usize);
            span.in_scope(|| tracing::info!("inside the batch"));
        });
        // Still in the batch processor's queue: only the shutdown sends it.
        export.shutdown();
        let request = received.recv_timeout(std::time::Duration::from_secs(30)).expect("an OTLP request");
        assert!(request.head.starts_with("POST /v1/traces HTTP/1.1"), "{}", request.head);
        assert!(
            request.head.to_ascii_lowercase().contains("content-type: application/x-protobuf"),
            "{}",
            request.head
        );
        let body = String::from_utf8_lossy(&request.body);
        for needle in ["status_batch", "neosens-central", "service.version", "batch", "statuses"] {
            assert!(body.contains(needle), "{needle} not in the exported protobuf: {body:?}");
        }
    }

    #[test]
    fn the_configured_endpoint_is_a_base_url() {
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
    }
}
