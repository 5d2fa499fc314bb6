//! Serving an axum router with the shared shutdown path.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets in-flight requests finish
/// for at most `deadline`. `what` names the listener in logs and errors.
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    app: axum::Router,
    shutdown: CancellationToken,
    deadline: Duration,
) -> Result<(), ServeError> {
    let stopped = |reason: String| ServeError::Stopped { what, reason };
    // With the peer address, so handlers can log and record who called.
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        joined = &mut server => {
            return match joined {
                // Graceful shutdown finished before this branch saw the cancellation: normal.
                Ok(Ok(())) if shutdown.is_cancelled() => Ok(()),
                // axum only returns by itself on a fatal error.
                Ok(Ok(())) => Err(stopped("it returned without a shutdown request".into())),
                Ok(Err(e)) => Err(stopped(e.to_string())),
                Err(e) => Err(stopped(e.to_string())),
            };
        }
        () = shutdown.cancelled() => {}
    }
    match crate::shutdown::drain(what, deadline, server).await {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(e))) => Err(stopped(e.to_string())),
        Some(Err(e)) => Err(stopped(e.to_string())),
    }
}

/// `GET /healthz`: the process is up and its HTTP stack answers (systemd, load balancers).
/// Readiness — storage, broker link — is each service's own `/readyz`.
pub fn healthz<S: Clone + Send + Sync + 'static>(version: &'static str) -> axum::Router<S> {
    axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || async move {
            axum::Json(serde_json::json!({"status": "ok", "version": version}))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_until_cancelled_then_returns() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", get(|| async { "hello" }));
        let shutdown = CancellationToken::new();
        let task =
            tokio::spawn(serve("test listener", listener, app, shutdown.clone(), Duration::from_secs(5)));

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
}
