//! The fleet's firmware revisions over time: every hour, the devices per hardware, board and
//! revision their statuses report, kept 90 days (2,160 samples, each a few dozen rows) in the
//! store and in memory, for the dashboard's chart.

use std::collections::VecDeque;

use super::{Firmware, FirmwareError};
use crate::model::{RevisionCount, Timestamp};
use crate::registry::Registry;

/// Time between two samples.
pub const CENSUS_PERIOD_MS: i64 = 3_600_000;

/// How long samples are kept.
pub const CENSUS_KEPT_MS: i64 = 90 * 24 * CENSUS_PERIOD_MS;

/// Rows kept per sample at most (hardware × board × revision groups; the largest kept).
pub const MAX_CENSUS_ROWS: usize = 200;

/// Samples, oldest first.
pub(super) type History = VecDeque<(i64, Vec<RevisionCount>)>;

impl Firmware {
    /// Takes a sample when the last one is an hour old (blocking). Returns whether it did.
    pub fn sample_census(&self, registry: &Registry, now: Timestamp) -> Result<bool, FirmwareError> {
        let due = self.inner.census.lock().back().is_none_or(|(at, _)| now.millis() - at >= CENSUS_PERIOD_MS);
        if !due {
            return Ok(false);
        }
        let mut counts = registry.firmware_census();
        if counts.len() > MAX_CENSUS_ROWS {
            counts.sort_by_key(|c| std::cmp::Reverse(c.devices));
            counts.truncate(MAX_CENSUS_ROWS);
            counts.sort();
        }
        let forget_before = now.millis() - CENSUS_KEPT_MS;
        self.inner.store.put_firmware_census(now.millis(), &counts, forget_before)?;
        let mut history = self.inner.census.lock();
        history.push_back((now.millis(), counts));
        while history.front().is_some_and(|(at, _)| *at < forget_before) {
            history.pop_front();
        }
        Ok(true)
    }

    /// The samples, oldest first.
    pub fn census_history(&self) -> Vec<(i64, Vec<RevisionCount>)> {
        self.inner.census.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::firmware::FirmwareConfig;
    use crate::model::DeviceStatusRecord;

    #[test]
    fn samples_are_hourly_counted_by_revision_and_kept_90_days() {
        let dir = tempfile::tempdir().unwrap();
        let (registry, _, ids) = crate::registry::test_registry(dir.path(), 3);
        let firmware = Firmware::open(
            &dir.path().join("firmware"),
            Arc::clone(&registry).shared_store(),
            FirmwareConfig::default(),
        )
        .unwrap();
        let status = |rev: &str| DeviceStatusRecord {
            last_seen: Some(Timestamp(1)),
            last_status: Some("running".into()),
            last_payload: Some(format!(r#"{{"hardware":"esp32","board":"neOSensor","firmware":{rev}}}"#)),
        };
        registry
            .put_statuses(vec![
                (ids[0], status("231027")),
                (ids[1], status("231027")),
                (ids[2], status("\"x\"")),
            ])
            .unwrap();
        let t0 = Timestamp(1_000_000_000_000);
        assert!(firmware.sample_census(&registry, t0).unwrap());
        assert!(
            !firmware.sample_census(&registry, Timestamp(t0.millis() + 60_000)).unwrap(),
            "an hour apart"
        );
        let history = firmware.census_history();
        assert_eq!(history.len(), 1);
        assert_eq!(
            history[0].1,
            vec![RevisionCount {
                hardware: "esp32".into(),
                board: "neOSensor".into(),
                revision: 231027,
                devices: 2
            }]
        );
        let later = Timestamp(t0.millis() + CENSUS_KEPT_MS + CENSUS_PERIOD_MS);
        assert!(firmware.sample_census(&registry, later).unwrap());
        assert_eq!(firmware.census_history().len(), 1, "the 90-day-old sample went");
        drop(firmware);
        let reopened =
            Firmware::open(&dir.path().join("firmware"), registry.shared_store(), FirmwareConfig::default())
                .unwrap();
        assert_eq!(reopened.census_history().len(), 1, "and from the store too");
    }
}
