//! One shutdown path: the first SIGINT or SIGTERM cancels the token every task watches; the
//! service then drains for a bounded time.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Cancels `token` on SIGINT (Ctrl-C) or SIGTERM (systemd, container runtimes).
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                std::future::pending::<()>().await;
            }
        }
    };
    let signalled = tokio::select! {
        _ = ctrl_c => {
            tracing::info!(signal = "SIGINT", "stop requested");
            true
        }
        () = term => {
            tracing::info!(signal = "SIGTERM", "stop requested");
            true
        }
        () = token.cancelled() => false,
    };
    if signalled {
        // Said here, synchronously, so systemd hears it whatever happens during the drain.
        crate::systemd::Notifier::from_env().notify("STOPPING=1");
    }
    token.cancel();
}

/// Awaits `task` for at most `deadline`; says so in the log when the deadline cuts it short.
/// Returns `None` when it did not finish in time.
pub async fn drain<T>(what: &str, deadline: Duration, task: impl Future<Output = T>) -> Option<T> {
    tracing::info!(deadline_s = deadline.as_secs_f32(), "draining {what}");
    match tokio::time::timeout(deadline, task).await {
        Ok(out) => Some(out),
        Err(_) => {
            tracing::warn!(
                deadline_s = deadline.as_secs_f32(),
                "{what} did not finish before the drain deadline"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_stops_at_the_deadline() {
        let slow =
            drain("slow task", Duration::from_secs(5), tokio::time::sleep(Duration::from_secs(60))).await;
        assert!(slow.is_none());
        let quick = drain("quick task", Duration::from_secs(5), async { 7 }).await;
        assert_eq!(quick, Some(7));
    }

    #[tokio::test]
    async fn an_already_cancelled_token_returns_at_once() {
        let token = CancellationToken::new();
        token.cancel();
        cancel_on_signal(token.clone()).await;
        assert!(token.is_cancelled());
    }
}
