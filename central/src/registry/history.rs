//! Each device's history: its statuses (kept per its type's retention), and one timeline that
//! merges them with the orders sent, the changes and provisioning recorded in the audit trail,
//! the log lines it sent, and the times it went silent past its threshold and came back.

use std::collections::BTreeMap;

use neosens_protocol::ids::DeviceId;
use serde::{Deserialize, Serialize};

use super::devices::{resolve_device, threshold};
use super::{Registry, RegistryError};
use crate::model::{DeviceStatusRecord, Timestamp};
use crate::store::{HistoryRetention, StatusHistoryEntry};

/// Longest status payload kept whole in a history; a longer one is kept as its status and size.
pub const MAX_HISTORY_PAYLOAD: usize = 4096;

/// A device's statuses closer than this to the last one kept are not kept again: the history
/// holds one status a minute at most (a board answering orders, or a load generator, does not
/// fill it in an hour), and ingestion at tens of thousands of statuses a second pays for the
/// history only once per device and minute. A firmware's periodic status (every 15 min to 6 h)
/// is always kept.
pub const HISTORY_MIN_INTERVAL_MS: i64 = 60_000;

/// `[history]`: how much of each device's status history is kept, by default and per type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Statuses kept per device at most, for types not listed in `types`.
    pub max_statuses: u32,
    /// Days of statuses kept per device, for types not listed in `types`.
    pub max_age_days: u32,
    /// Per device type, by name (`[history.types.esp32]`).
    pub types: BTreeMap<String, HistoryRetention>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        let d = HistoryRetention::default();
        HistoryConfig { max_statuses: d.max_statuses, max_age_days: d.max_age_days, types: BTreeMap::new() }
    }
}

/// One event of a device's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEvent {
    /// When (ms).
    pub at_ms: i64,
    /// `status`, `order`, `change`, `log`, `silent` or `back`.
    pub kind: &'static str,
    /// One line to show.
    pub summary: String,
    /// The status payload, the order's payload, the fields changed, the log line.
    pub detail: serde_json::Value,
}

fn history_payload(status: &DeviceStatusRecord) -> Option<String> {
    let payload = status.last_payload.as_ref()?;
    if payload.len() <= MAX_HISTORY_PAYLOAD {
        return Some(payload.clone());
    }
    let status = status.last_status.as_deref().unwrap_or("unknown");
    Some(serde_json::json!({"status": status, "too_large_for_history": payload.len()}).to_string())
}

impl Registry {
    /// Sets the history retention (from the configuration, at start).
    pub fn set_history(&self, config: HistoryConfig) {
        *self.history.write() = config;
    }

    /// The history entries of statuses about to be stored, each with its device's retention.
    pub(super) fn history_entries(
        &self,
        statuses: &[(DeviceId, DeviceStatusRecord)],
    ) -> Vec<StatusHistoryEntry> {
        let config = self.history.read();
        let state = self.state.read();
        let mut last_kept = self.history_last.lock();
        statuses
            .iter()
            .filter_map(|(id, status)| {
                let at = status.last_seen?;
                let device = state.devices.get(id)?;
                let payload = history_payload(status)?;
                let last = last_kept.get(id).copied();
                if last.is_some_and(|last| (at.millis() - last).abs() < HISTORY_MIN_INTERVAL_MS) {
                    return None;
                }
                last_kept.insert(*id, last.map_or(at.millis(), |last| last.max(at.millis())));
                let keep = state
                    .types
                    .get(&device.record.device_type)
                    .and_then(|t| config.types.get(&t.record.name))
                    .copied()
                    .unwrap_or(HistoryRetention {
                        max_statuses: config.max_statuses,
                        max_age_days: config.max_age_days,
                    });
                Some(StatusHistoryEntry { device: id.to_bytes(), at_ms: at.millis(), payload, keep })
            })
            .collect()
    }

    /// A device's statuses seen in `since..until` (ms), newest first, at most `limit`.
    pub fn status_history(
        &self,
        key: &str,
        since_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, RegistryError> {
        let device = self.device_id(key).ok_or_else(|| RegistryError::not_found(format!("device {key}")))?;
        Ok(self.store.status_history(device.to_bytes(), since_ms, until_ms, limit)?)
    }

    /// The device's last `limit` events, newest first.
    pub fn timeline(&self, key: &str, limit: usize) -> Result<Vec<TimelineEvent>, RegistryError> {
        let (id, threshold_ms) = {
            let state = self.state.read();
            let entry = resolve_device(&state, key)
                .ok_or_else(|| RegistryError::not_found(format!("device {key}")))?;
            (entry.record.id, i64::from(threshold(&state, &entry.record)) * 1000)
        };
        let mut events = Vec::new();
        let statuses = self.store.status_history(id.to_bytes(), i64::MIN, i64::MAX, limit)?;
        events.extend(silences(&statuses, threshold_ms, Timestamp::now().millis()));

        for (at, payload) in statuses {
            let detail: serde_json::Value =
                serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload));
            let status = detail.get("status").and_then(|s| s.as_str()).unwrap_or("status").to_owned();
            events.push(TimelineEvent { at_ms: at, kind: "status", summary: status, detail });
        }
        for o in self.store.device_orders(id.to_bytes(), limit)? {
            let value = o.value.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
            let summary = format!("{}{value} by {}: {}", o.order, o.by, o.outcome);
            events.push(TimelineEvent {
                at_ms: o.at.millis(),
                kind: "order",
                summary,
                detail: serde_json::json!({"topic": o.topic, "payload": o.payload}),
            });
        }
        let target = id.to_string();
        // Orders have their own events (with their outcomes); the trail's copies are left out.
        let page =
            self.store.audit_page(None, limit, &|e| e.target_id == target && e.action != "order.send")?;
        for e in page.entries {
            let fields: Vec<&str> = e.changes.iter().map(|c| c.field.as_str()).collect();
            let summary = format!(
                "{} by {}{}",
                e.action,
                e.actor.name(),
                if fields.is_empty() { String::new() } else { format!(": {}", fields.join(", ")) }
            );
            let detail = serde_json::json!({"actor": e.actor.kind(), "changes": e.changes.iter().map(|c| serde_json::json!({"field": c.field, "before": c.before, "after": c.after})).collect::<Vec<_>>(), "detail": e.detail});
            events.push(TimelineEvent { at_ms: e.at.millis(), kind: "change", summary, detail });
        }
        for l in self.store.device_logs(id.to_bytes(), limit)? {
            let level = l.record.levelname.clone().unwrap_or_default();
            let summary = format!("{level} {}", l.record.msg.clone().unwrap_or_default()).trim().to_owned();
            events.push(TimelineEvent {
                at_ms: l.received_at.millis(),
                kind: "log",
                summary,
                detail: serde_json::json!({"from": l.remote_addr}),
            });
        }
        events.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
        events.truncate(limit);
        Ok(events)
    }
}

/// The times a device went silent past its threshold (from its statuses, newest first) and came
/// back: silence begins `threshold` after a status with no next one within it. The history keeps
/// a status a minute at most, so a gap counts only past the threshold plus that spacing (a device
/// sending every 30 s with a 60 s threshold never went silent).
fn silences(statuses: &[(i64, String)], threshold_ms: i64, now_ms: i64) -> Vec<TimelineEvent> {
    let gap_ms = threshold_ms + HISTORY_MIN_INTERVAL_MS;
    let mut events = Vec::new();
    let event = |at_ms, kind, summary: String| TimelineEvent {
        at_ms,
        kind,
        summary,
        detail: serde_json::Value::Null,
    };
    if let Some((newest, _)) = statuses.first()
        && now_ms - newest > gap_ms
    {
        events.push(event(
            newest + threshold_ms,
            "silent",
            format!("silent for more than {} s", threshold_ms / 1000),
        ));
    }
    for pair in statuses.windows(2) {
        let (newer, older) = (pair[0].0, pair[1].0);
        if newer - older > gap_ms {
            events.push(event(
                older + threshold_ms,
                "silent",
                format!("silent for more than {} s", threshold_ms / 1000),
            ));
            events.push(event(newer, "back", format!("heard again after {} min", (newer - older) / 60_000)));
        }
    }
    events
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
