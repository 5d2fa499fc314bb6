//! Matching a received status to the device it belongs to.

use neosens_protocol::DeviceUid;

use super::Registry;
use crate::model::DeviceStatusRecord;
use neosens_protocol::ids::DeviceId;

/// Why a status was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusDrop {
    /// The payload is not a status (not JSON, no `unitID`/`status`).
    Garbage,
    /// Larger than any device sends.
    TooLarge,
    /// `unitID` is not a MAC of a registered device.
    UnknownDevice,
    /// The device is disabled.
    Disabled,
    /// The device exists but the topic is not one of its rooms: stored nowhere rather than
    /// against the wrong device.
    WrongTopic,
    /// Sent again by a gateway's outbox (its `msg_id` was already seen for this device), or by
    /// a local broker's bridge (byte for byte the device's previous status).
    Duplicate,
    /// Retained on the broker: devices never retain statuses (spec: QoS 0, retain false), and
    /// a retained one would come back at every reconnection. Central clears it.
    Retained,
}

impl StatusDrop {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusDrop::Garbage => "garbage",
            StatusDrop::TooLarge => "too_large",
            StatusDrop::UnknownDevice => "unknown_device",
            StatusDrop::Disabled => "disabled",
            StatusDrop::WrongTopic => "wrong_topic",
            StatusDrop::Duplicate => "duplicate",
            StatusDrop::Retained => "retained",
        }
    }
}

/// What a firmware campaign reads of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareReport {
    /// When its last status came.
    pub last_seen: Option<crate::model::Timestamp>,
    /// Its state now.
    pub state: super::DeviceState,
    /// The `firmware` revision of its last status, when it reports one.
    pub firmware: Option<u64>,
    /// Its outdated threshold, in milliseconds.
    pub outdated_after_ms: i64,
}

/// What the census reads of a status.
#[derive(serde::Deserialize)]
struct Reported {
    hardware: Option<String>,
    board: Option<String>,
    firmware: Option<u64>,
}

impl Registry {
    /// Devices per (hardware, board, firmware revision) their last statuses report (devices
    /// whose statuses carry no `firmware` are left out). Names are cut to 32 characters, so a
    /// device cannot grow the census.
    pub fn firmware_census(&self) -> Vec<crate::model::RevisionCount> {
        let state = self.state.read();
        let mut counts: std::collections::BTreeMap<(String, String, u64), u64> =
            std::collections::BTreeMap::new();
        let cut = |s: Option<String>| s.unwrap_or_default().chars().take(32).collect::<String>();
        for status in state.statuses.values() {
            let Some(payload) = status.last_payload.as_deref() else { continue };
            let Ok(r) = serde_json::from_str::<Reported>(payload) else { continue };
            if let Some(revision) = r.firmware {
                *counts.entry((cut(r.hardware), cut(r.board), revision)).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|((hardware, board, revision), devices)| crate::model::RevisionCount {
                hardware,
                board,
                revision,
                devices,
            })
            .collect()
    }

    /// A device's last reported firmware revision and state, for campaigns following devices in
    /// bulk; the status is parsed only when it is newer than `seen_after`.
    pub fn firmware_report(
        &self,
        id: DeviceId,
        seen_after: Option<crate::model::Timestamp>,
    ) -> Option<FirmwareReport> {
        let state = self.state.read();
        let entry = state.devices.get(&id)?;
        let status = state.statuses.get(&id);
        let now = crate::model::Timestamp::now();
        let threshold_s = super::devices::threshold(&state, &entry.record);
        let device_state = super::devices::state_of(&entry.record, status, threshold_s, now);
        let last_seen = status.and_then(|s| s.last_seen);
        let firmware = match (status, last_seen) {
            (Some(s), Some(seen)) if seen_after.is_none_or(|after| seen > after) => s
                .last_payload
                .as_deref()
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                .and_then(|v| v.get("firmware").and_then(serde_json::Value::as_u64)),
            _ => None,
        };
        Some(FirmwareReport {
            last_seen,
            state: device_state,
            firmware,
            outdated_after_ms: i64::from(threshold_s) * 1000,
        })
    }

    /// The device a status on `<base>/device` with this `unitID` (a MAC, or a node's DevEUI)
    /// belongs to: registered, enabled, and in a room whose topic is `base`.
    pub fn status_target(&self, uid: DeviceUid, base: &str) -> Result<DeviceId, StatusDrop> {
        let state = self.state.read();
        let entry =
            state.by_uid.get(&uid).and_then(|id| state.devices.get(id)).ok_or(StatusDrop::UnknownDevice)?;
        if !entry.record.enabled {
            return Err(StatusDrop::Disabled);
        }
        let in_room = entry.record.rooms.iter().any(|r| state.room_topics.get(r).is_some_and(|t| t == base));
        if in_room { Ok(entry.record.id) } else { Err(StatusDrop::WrongTopic) }
    }

    /// The number of levels of every room topic in use, so the status subscriptions cover them all
    /// (`#` may only end a filter, so each depth needs its own `+/…/+/device`).
    pub fn topic_depths(&self) -> std::collections::BTreeSet<usize> {
        self.state.read().room_topics.values().map(|t| t.split('/').count()).collect()
    }

    /// What the monitor is told of a device's status: when, and which of its rules hold.
    pub fn seen(&self, id: DeviceId, status: &DeviceStatusRecord) -> crate::monitor::Seen {
        crate::monitor::Seen {
            device: id,
            at: status.last_seen.map_or(0, |t| t.millis()),
            failing: status.last_payload.as_deref().map(|p| self.failing_rules(id, p)).unwrap_or_default(),
        }
    }

    /// The failure-state rules of its type that hold for this status payload (parsed only when
    /// the type has rules: most statuses cost nothing here).
    pub fn failing_rules(&self, id: DeviceId, payload: &str) -> Vec<crate::monitor::Failing> {
        let (rules, building) = {
            let state = self.state.read();
            let Some(entry) = state.devices.get(&id) else { return Vec::new() };
            let rules = match state.types.get(&entry.record.device_type) {
                Some(t) if !t.record.status_rules.is_empty() => t.record.status_rules.clone(),
                _ => return Vec::new(),
            };
            let building = entry.record.rooms.first().and_then(|r| state.rooms.get(r)).map(|r| r.building);
            (rules, building)
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(payload) else { return Vec::new() };
        rules
            .iter()
            .filter_map(|r| {
                r.fires(&value).map(|detail| crate::monitor::Failing {
                    rule: r.name.clone(),
                    detail,
                    building,
                })
            })
            .collect()
    }

    /// Whether the device exists, is enabled, and its type still has this rule.
    pub fn has_status_rule(&self, id: DeviceId, rule: &str) -> bool {
        let state = self.state.read();
        state
            .devices
            .get(&id)
            .filter(|e| e.record.enabled)
            .and_then(|e| state.types.get(&e.record.device_type))
            .is_some_and(|t| t.record.status_rules.iter().any(|r| r.name == rule))
    }

    /// The last status of a device.
    pub fn last_status(&self, id: DeviceId) -> Option<DeviceStatusRecord> {
        self.state.read().statuses.get(&id).cloned()
    }
}

impl Registry {
    /// What the state tracker watches of each enabled device: the building of its main room, its
    /// threshold, its last status.
    pub fn watch_list(
        &self,
        only: Option<&std::collections::HashSet<DeviceId>>,
    ) -> Vec<(DeviceId, Option<crate::monitor::tracker::Watched>)> {
        let state = self.state.read();
        let ids: Vec<DeviceId> = match only {
            Some(set) => set.iter().copied().collect(),
            None => state.devices.keys().copied().collect(),
        };
        ids.into_iter()
            .map(|id| {
                let watched = state.devices.get(&id).filter(|e| e.record.enabled).map(|e| {
                    let d = &e.record;
                    let threshold_s = d
                        .outdated_after_s
                        .or_else(|| state.types.get(&d.device_type).map(|t| t.record.outdated_after_s))
                        .unwrap_or(crate::model::DEFAULT_STATUS_PERIOD_S);
                    crate::monitor::tracker::Watched {
                        building: d.rooms.first().and_then(|r| state.rooms.get(r)).map(|r| r.building),
                        threshold_ms: i64::from(threshold_s) * 1000,
                        last_seen: state.statuses.get(&id).and_then(|s| s.last_seen).map(|t| t.millis()),
                    }
                });
                (id, watched)
            })
            .collect()
    }
}

impl Registry {
    /// Devices counted by (state, type name, site slug) — bounded labels for metrics. `outdated`
    /// tells whether a seen device is past its threshold (the monitor knows).
    pub fn state_counts(
        &self,
        outdated: impl Fn(DeviceId) -> bool,
    ) -> std::collections::BTreeMap<(&'static str, String, String), usize> {
        let state = self.state.read();
        let mut out = std::collections::BTreeMap::new();
        for entry in state.devices.values() {
            let d = &entry.record;
            let s = if !d.enabled {
                "disabled"
            } else if state.statuses.get(&d.id).and_then(|s| s.last_seen).is_none() {
                "never_seen"
            } else if outdated(d.id) {
                "outdated"
            } else {
                "ok"
            };
            let device_type =
                state.types.get(&d.device_type).map(|t| t.record.name.clone()).unwrap_or_default();
            let site = d
                .rooms
                .first()
                .and_then(|r| state.rooms.get(r))
                .and_then(|r| state.buildings.get(&r.building))
                .and_then(|b| state.sites.get(&b.site))
                .map(|s| s.slug.clone())
                .unwrap_or_default();
            *out.entry((s, device_type, site)).or_insert(0) += 1;
        }
        out
    }
}
