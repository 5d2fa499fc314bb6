//! Alert delivery to a webhook: JSON POST, a timeout per attempt, retries with a capped,
//! jittered back-off (a `4xx` other than `429` is not retried: the receiver refused the body),
//! and every outcome counted so a failing receiver shows in `/metrics`.
//!
//! Deliveries go through a bounded queue served by one worker, so a slow receiver never holds up
//! the state tracker; when the queue is full, the alert is dropped and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use neosens_runtime::backoff::Backoff;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The longest pause between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The receiver's URL.
    pub url: String,
    /// Time allowed to each attempt.
    pub timeout: Duration,
    /// Attempts per alert.
    pub attempts: u32,
    /// Delay before the second attempt (jittered); doubles each time, up to [`MAX_BACKOFF`].
    pub first_backoff: Duration,
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Alerts the receiver accepted (2xx).
    pub delivered: AtomicU64,
    /// Failed attempts that were retried.
    pub retried: AtomicU64,
    /// Alerts given up after every attempt failed.
    pub failed: AtomicU64,
    /// Alerts dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The handle: queue an alert for delivery.
#[derive(Debug, Clone)]
pub struct Webhook {
    queue: mpsc::Sender<Value>,
    /// Counters.
    pub stats: Arc<WebhookStats>,
}

impl Webhook {
    /// The handle and its delivery worker, for the caller to run (under the supervisor).
    pub fn new(
        config: WebhookConfig,
        shutdown: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (queue, rx) = mpsc::channel(1_000);
        let stats = Arc::new(WebhookStats::default());
        let worker = worker(config, rx, Arc::clone(&stats), shutdown);
        (Webhook { queue, stats }, worker)
    }

    /// Starts the delivery worker on its own (tests, benchmarks).
    pub fn start(config: WebhookConfig, shutdown: CancellationToken) -> Self {
        let (hook, worker) = Self::new(config, shutdown);
        tokio::spawn(worker);
        hook
    }

    /// Queues `body`; counts it as dropped when the queue is full.
    pub fn send(&self, body: Value) {
        if self.queue.try_send(body).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("alert webhook queue full: alert dropped");
        }
    }
}

async fn worker(
    config: WebhookConfig,
    mut rx: mpsc::Receiver<Value>,
    stats: Arc<WebhookStats>,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "cannot build the webhook client"),
    };
    loop {
        let body = tokio::select! {
            () = shutdown.cancelled() => return,
            body = rx.recv() => match body { Some(b) => b, None => return },
        };
        let mut backoff = Backoff::new(config.first_backoff, MAX_BACKOFF);
        for attempt in 1..=config.attempts {
            let outcome = client.post(&config.url).json(&body).send().await;
            let error = match outcome {
                Ok(r) if r.status().is_success() => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                // The receiver refused this body: sending it again cannot help.
                Ok(r)
                    if r.status().is_client_error()
                        && r.status() != reqwest::StatusCode::TOO_MANY_REQUESTS =>
                {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(url = %config.url, attempts = attempt, status = %r.status(), "alert webhook refused the alert; not retried");
                    break;
                }
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => e.to_string(),
            };
            if attempt == config.attempts {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(url = %config.url, attempts = attempt, error = %error, "alert webhook failed; alert not delivered");
                break;
            }
            stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(url = %config.url, attempt, error = %error, retry_in_ms = backoff.current().as_millis() as u64, "alert webhook attempt failed");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Json;
    use axum::http::StatusCode;
    use axum::routing::post;
    use std::sync::Mutex;

    /// Serves `app` on a free port; the config of a webhook to its `/hook` with `attempts`.
    async fn receiver(app: axum::Router, attempts: u32) -> WebhookConfig {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        WebhookConfig {
            url: format!("http://{addr}/hook"),
            timeout: Duration::from_secs(5),
            attempts,
            first_backoff: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn delivers_json_and_retries_when_the_receiver_first_fails() {
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let calls = Arc::new(AtomicU64::new(0));
        let app = {
            let (received, calls) = (Arc::clone(&received), Arc::clone(&calls));
            axum::Router::new().route(
                "/hook",
                post(move |Json(body): Json<Value>| async move {
                    // The first call fails: the sender must try again.
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    received.lock().unwrap().push(body);
                    StatusCode::NO_CONTENT
                }),
            )
        };
        let shutdown = CancellationToken::new();
        let hook = Webhook::start(receiver(app, 3).await, shutdown.clone());
        hook.send(serde_json::json!({"event": "opened", "alert": {"id": 7}}));
        tokio::time::timeout(Duration::from_secs(10), async {
            while hook.stats.delivered.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("delivered in time");
        assert_eq!(
            received.lock().unwrap().as_slice(),
            &[serde_json::json!({"event": "opened", "alert": {"id": 7}})]
        );
        assert_eq!((hook.stats.retried.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)), (1, 2));

        // A receiver that is gone: every attempt fails, the failure is counted.
        let gone = Webhook::start(
            WebhookConfig {
                url: "http://127.0.0.1:1/hook".into(),
                timeout: Duration::from_secs(1),
                attempts: 2,
                first_backoff: Duration::from_millis(10),
            },
            shutdown.clone(),
        );
        gone.send(serde_json::json!({"event": "opened"}));
        tokio::time::timeout(Duration::from_secs(10), async {
            while gone.stats.failed.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("given up in time");
        assert_eq!(gone.stats.retried.load(Ordering::SeqCst), 1);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_refused_body_is_not_sent_again() {
        let calls = Arc::new(AtomicU64::new(0));
        let app = {
            let calls = Arc::clone(&calls);
            axum::Router::new().route(
                "/hook",
                post(move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    StatusCode::UNPROCESSABLE_ENTITY
                }),
            )
        };
        let shutdown = CancellationToken::new();
        let hook = Webhook::start(receiver(app, 5).await, shutdown.clone());
        hook.send(serde_json::json!({"event": "opened"}));
        tokio::time::timeout(Duration::from_secs(10), async {
            while hook.stats.failed.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("given up in time");
        assert_eq!((calls.load(Ordering::SeqCst), hook.stats.retried.load(Ordering::SeqCst)), (1, 0));
        shutdown.cancel();
    }
}
