//! Bulk actions on the registry: one change to many devices in one transaction, each device's
//! outcome decided against the same state (a device whose configuration does not fit its new
//! type or room fails alone; the others change).

use neosens_protocol::ids::{DeviceId, DeviceTypeId, RoomId};

use super::devices::{check_config, new_secret};
use super::{Registry, RegistryError};
use crate::model::{BulkAction, BulkOutcome, Record, Timestamp};
use crate::store::Write;

impl Registry {
    /// Applies a registry action (not an order) to `devices`; returns each device's outcome.
    pub fn apply_bulk(
        &self,
        action: &BulkAction,
        devices: &[[u8; 16]],
    ) -> Result<Vec<BulkOutcome>, RegistryError> {
        let name = match action {
            BulkAction::Move { .. } => "device.bulk_move",
            BulkAction::SetType { .. } => "device.bulk_set_type",
            BulkAction::SetEnabled { .. } => "device.bulk_set_enabled",
            BulkAction::ResetCredentials => "device.bulk_reset_credentials",
            BulkAction::Order { .. } => {
                return Err(RegistryError::invalid(
                    "action",
                    "orders are sent by the bulk sender, not applied",
                ));
            }
        };
        self.mutate_as(Some(name), |state| {
            // Checked again under the writer lock: the room or type may be gone since it was named.
            match action {
                BulkAction::Move { room } if !state.rooms.contains_key(&RoomId::from_bytes(*room)) => {
                    return Err(RegistryError::invalid("room", "the room was deleted"));
                }
                BulkAction::SetType { device_type }
                    if !state.types.contains_key(&DeviceTypeId::from_bytes(*device_type)) =>
                {
                    return Err(RegistryError::invalid("type", "the device type was deleted"));
                }
                _ => {}
            }
            let mut writes = Vec::new();
            let mut outcomes = Vec::with_capacity(devices.len());
            let scope = super::site_rights::current_scope();
            for key in devices {
                let Some(entry) = state.devices.get(&DeviceId::from_bytes(*key)) else {
                    outcomes.push(BulkOutcome::Failed("deleted since".into()));
                    continue;
                };
                let mut d = entry.record.clone();
                match action {
                    BulkAction::Move { room } => d.rooms = vec![RoomId::from_bytes(*room)],
                    BulkAction::SetType { device_type } => {
                        d.device_type = DeviceTypeId::from_bytes(*device_type)
                    }
                    BulkAction::SetEnabled { enabled } => d.enabled = *enabled,
                    BulkAction::ResetCredentials => {
                        d.secret = new_secret(&self.keys, d.id)?;
                        d.credentials_delivered = false;
                    }
                    BulkAction::Order { .. } => unreachable!("refused above"),
                }
                if matches!(action, BulkAction::Move { .. } | BulkAction::SetType { .. }) {
                    let zones = entry.zones();
                    if let Err(e) = check_config(state, d.device_type, &state.device_topics(&d), &zones) {
                        outcomes.push(BulkOutcome::Failed(e.to_string()));
                        continue;
                    }
                }
                // A device partly on a site outside the caller's rights fails alone.
                if let Err(e) = super::site_rights::check_device(state, &scope, Some(&entry.record), Some(&d))
                {
                    outcomes.push(BulkOutcome::Failed(e.to_string()));
                    continue;
                }
                if d != entry.record {
                    d.updated_at = Timestamp::now();
                    writes.push(Write::Put(Record::Device(Box::new(d))));
                }
                outcomes.push(BulkOutcome::Done);
            }
            Ok((writes, outcomes))
        })
    }
}

impl Registry {
    /// The current uid of each device (`None` once deleted).
    pub fn device_uids(&self, devices: &[[u8; 16]]) -> Vec<Option<String>> {
        let state = self.state.read();
        devices
            .iter()
            .map(|d| state.devices.get(&DeviceId::from_bytes(*d)).map(|e| e.record.uid.to_string()))
            .collect()
    }

    /// The id of a room, by id or base topic.
    pub fn room_id(&self, key: &str) -> Option<RoomId> {
        let state = self.state.read();
        let by_id = key.parse::<RoomId>().ok().filter(|id| state.rooms.contains_key(id));
        by_id.or_else(|| {
            state.room_topics.iter().find(|(_, t)| t.eq_ignore_ascii_case(key.trim())).map(|(id, _)| *id)
        })
    }

    /// The id of a device type, by id or name.
    pub fn device_type_id(&self, key: &str) -> Option<DeviceTypeId> {
        super::device_types::resolve_type(&self.state.read(), key).map(|t| t.id)
    }

    /// The device whose MQTT login this is.
    pub fn device_id_by_login(&self, login: &str) -> Option<DeviceId> {
        self.state.read().by_login.get(login).copied()
    }

    /// The name of a device's type.
    pub fn device_type_name(&self, device: DeviceId) -> Option<String> {
        let state = self.state.read();
        let d = state.devices.get(&device)?;
        state.types.get(&d.record.device_type).map(|t| t.record.name.clone())
    }
}
