//! Simulated neOSensors, following the firmware step by step (`spec/client-sequence.md`):
//! `GET /device/credentials` then `/device/config` (Basic auth), one MQTT connection per module
//! (device, temperature, humidity) with the firmware's client ids and subscriptions, a status on
//! `<room>/device` at start and every `frequency` seconds, readings when values move, and the
//! orders a device obeys (`status`, `frequency`, `reboot`/`restart` — which goes back through
//! provisioning, as a real reboot does, and so picks up a reinstall's new password — and
//! `upgrade`), and the firmware-update check at each boot ([`ota`]).
//!
//! [`Pace::Realistic`] keeps the firmware's timing (statuses every 30 min, sensor cooldowns);
//! [`Pace::Fast`] sends at a fixed short period for load tests.

pub mod device;
pub mod ota;
pub mod provisioning;
pub mod register;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How fast simulated devices talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// The firmware's timing: first status at once, then every `frequency` s (1800 by default);
    /// sensors after about 9 s, then on change (at most once a minute) or every 30 min.
    Realistic,
    /// A status and readings every `period`, reboots without the firmware's 2–12 s pause.
    Fast {
        /// Interval between two rounds of messages.
        period: Duration,
    },
}

/// What the whole simulated fleet did (shared by every device task).
#[derive(Debug, Default)]
pub struct FleetStats {
    /// Devices provisioned and connected now.
    pub online: AtomicU64,
    /// Statuses published.
    pub statuses: AtomicU64,
    /// Sensor readings published.
    pub readings: AtomicU64,
    /// Orders received and obeyed.
    pub orders: AtomicU64,
    /// Provisioning attempts refused or failed.
    pub provisioning_failures: AtomicU64,
    /// MQTT connection errors.
    pub mqtt_errors: AtomicU64,
    /// Reboots done (orders).
    pub reboots: AtomicU64,
    /// Firmware updates flashed and booted.
    pub updates: AtomicU64,
    /// Updates that failed or rolled back.
    pub update_failures: AtomicU64,
    /// Boot-time checks told "no update" by the image path (not in a started wave).
    pub not_in_wave: AtomicU64,
}

impl FleetStats {
    /// One line for progress output.
    pub fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "online {}, statuses {}, readings {}, orders {}, reboots {}, updates {} (failed {}, not in wave {}), provisioning failures {}, MQTT errors {}",
            g(&self.online),
            g(&self.statuses),
            g(&self.readings),
            g(&self.orders),
            g(&self.reboots),
            g(&self.updates),
            g(&self.update_failures),
            g(&self.not_in_wave),
            g(&self.provisioning_failures),
            g(&self.mqtt_errors)
        )
    }
}
