//! systemd service notifications (`sd_notify`), without libsystemd: one datagram per state to the
//! socket systemd names in `NOTIFY_SOCKET`.
//!
//! With `Type=notify`, systemd considers the unit started only once `READY=1` arrives (after the
//! listeners are bound), and with `WatchdogSec=` it restarts the service when `WATCHDOG=1` stops
//! coming. The pings come from a task of the async runtime, so a runtime that hangs stops them.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Where notifications go, if anywhere.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<SocketName>,
    watchdog: Option<Duration>,
}

#[derive(Debug, Clone)]
enum SocketName {
    Path(PathBuf),
    /// Linux abstract namespace (`@name` in `NOTIFY_SOCKET`).
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (the watchdog applies only if it
    /// names this process, or no process). Without `NOTIFY_SOCKET`, notifications go nowhere.
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").map(|s| {
            let bytes = std::os::unix::ffi::OsStrExt::as_bytes(s.as_os_str()).to_vec();
            match bytes.strip_prefix(b"@") {
                Some(name) => SocketName::Abstract(name.to_vec()),
                None => SocketName::Path(PathBuf::from(s)),
            }
        });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// Sends `state` (`READY=1`, `STOPPING=1` …). Failures are logged, never fatal: a service
    /// must run the same without systemd.
    pub fn notify(&self, state: &str) {
        let Some(name) = &self.socket else { return };
        let result = UnixDatagram::unbound().and_then(|s| match name {
            SocketName::Path(p) => s.send_to(state.as_bytes(), p),
            SocketName::Abstract(n) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(n)?;
                s.send_to_addr(state.as_bytes(), &addr)
            }
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, state, "cannot notify systemd");
        }
    }

    /// Tells systemd the service is ready, and starts the watchdog pings (every half period)
    /// until `shutdown`. (`STOPPING=1` is sent by the signal handler, before anything stops.)
    pub fn ready(&self, shutdown: CancellationToken) {
        self.notify("READY=1");
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = this.watchdog.map(|period| tokio::time::interval(period / 2));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                        this.notify("WATCHDOG=1");
                    }
                }
            }
        });
    }
}
