//! What the neosens services (`neosens-central`, `neosens-edge`) share at run time.
//!
//! `neosens-protocol` holds wire formats and must stay `no_std` for the firmware examples; this
//! crate holds the std-only pieces both services run the same way, so they behave alike for an
//! operator (same signals, same log options, same data-directory checks).
//!
//! | module | role |
//! |---|---|
//! | [`backoff`] | capped, jittered exponential back-off for every retry loop |
//! | [`supervisor`] | the long-lived tasks of a process: critical ones stop it, others restart |
//! | [`blocking`] | the one path from async code to the disk: the blocking pool, checked in debug builds |
//! | [`shutdown`] | SIGINT/SIGTERM → one `CancellationToken`; drain with a deadline |
//! | [`build_info`] | version, git revision and target for `--version`, `/healthz` and logs |
//! | [`systemd`] | `sd_notify`: READY, WATCHDOG pings, STOPPING |
//! | [`telemetry`] | `tracing` to stderr as text or JSON; a filter swapped on SIGHUP |
//! | [`config_file`] | TOML files over defaults, errors naming file and line, template quoting |
//! | [`data_dir`] | create and check a data directory at start |
//! | [`http`] | serve an axum router with that shutdown path, request spans and ids |
//! | [`legacy_http`] | the legacy device paths' request reading and answers (central, gateways) |
//! | [`keys`] | HMAC-SHA-256 verifiers and AES-256-GCM sealing (central's keys, each gateway's pair) |
//! | [`mqtt`] | the MQTT link: handle + event loop, back-off, re-subscribe, online/offline state |
//! | [`service`] | start a service process: logs, runtime, listener, signals (SIGHUP reloads logs) |
//! | `testing` (feature) | run a service binary in tests and talk raw HTTP to it |

pub mod backoff;
pub mod blocking;
pub mod build_info;
pub mod config_file;
pub mod data_dir;
pub mod durable;
pub mod gateway_secrets;
pub mod http;
pub mod keys;
pub mod legacy_http;
pub mod mqtt;
pub mod relay;
pub mod service;
pub mod shutdown;
pub mod supervisor;
pub mod systemd;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod workers;
