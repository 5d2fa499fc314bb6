//! The audit trail: who changed what and when, with the fields before and after.
//!
//! Every registry change is recorded in the same store transaction as the change itself
//! ([`crate::store::RegistryStore::apply`]), so the trail never misses a committed change nor
//! shows one that was rolled back. Orders, sign-ins and firmware work are recorded where they
//! happen ([`crate::store::AuditStore::append_audit`]).
//!
//! Who acts is not a parameter of every registry method: the caller runs the work inside
//! [`acting`] (for async handlers, [`crate::registry::Registry::acting`]), which sets the actor
//! for the current thread until the work returns. Work run outside any actor is recorded as
//! `system/central`.
//!
//! Bounds: at most [`AuditRetention::max_entries`] entries and none older than
//! [`AuditRetention::max_age_days`]; each value kept at most [`MAX_VALUE_CHARS`] characters.

use std::cell::RefCell;

use serde_json::Value;

use crate::model::{Actor, AuditEntry, EntityKind, FieldChange, Record, Timestamp};
use crate::registry::{Credential, Principal};

/// Longest JSON text kept for one field's value; longer values are cut (a device type's
/// schema can be large, and the trail must stay bounded per entry).
pub const MAX_VALUE_CHARS: usize = 2048;

/// What a secret field shows as, before and after.
const SECRET: &str = "\"(secret)\"";

/// How much of the trail is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditRetention {
    /// Entries kept at most; the oldest go first.
    pub max_entries: u64,
    /// Entries older than this are removed.
    pub max_age_days: u32,
}

impl Default for AuditRetention {
    fn default() -> Self {
        AuditRetention { max_entries: 1_000_000, max_age_days: 400 }
    }
}

impl AuditRetention {
    /// The oldest time kept, at `now`.
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        Timestamp(now.0.saturating_sub(i64::from(self.max_age_days) * 86_400_000))
    }
}

thread_local! {
    static ACTOR: RefCell<Option<Actor>> = const { RefCell::new(None) };
}

/// Runs `work` with `actor` as the one acting, for the entries it records on this thread.
pub fn acting<T>(actor: Actor, work: impl FnOnce() -> T) -> T {
    struct Restore(Option<Actor>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            ACTOR.with(|a| *a.borrow_mut() = previous);
        }
    }
    let _restore = Restore(ACTOR.with(|a| a.replace(Some(actor))));
    work()
}

/// The actor set by [`acting`] on this thread, or central itself.
pub fn current_actor() -> Actor {
    ACTOR.with(|a| a.borrow().clone()).unwrap_or_else(|| Actor::System { component: "central".into() })
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        match p.via {
            Credential::Token(id) => Actor::Token { id: id.0.into_bytes(), name: p.name.clone() },
            Credential::Session(id) => Actor::User { id: Some(id.0.into_bytes()), name: p.name.clone() },
        }
    }
}

/// An entry about something other than a registry record (an order, a sign-in, a campaign),
/// by the current actor, now.
pub fn event(
    action: &str,
    target_kind: &str,
    target_id: String,
    target: String,
    detail: String,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at: Timestamp::now(),
        actor: current_actor(),
        action: action.into(),
        target_kind: target_kind.into(),
        target_id,
        target,
        changes: Vec::new(),
        detail: cut(detail),
    }
}

/// The kind's name in entries (`device_type`, `device` …).
pub fn kind_name(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Site => "site",
        EntityKind::Building => "building",
        EntityKind::Room => "room",
        EntityKind::DeviceType => "device_type",
        EntityKind::Device => "device",
        EntityKind::Gateway => "gateway",
        EntityKind::User => "user",
        EntityKind::Token => "token",
    }
}

/// The entry for one registry write: `before` is the record as it was (none on creation),
/// `after` as it will be (none on deletion). `action` names the operation when the caller
/// knows better than create/update/delete (`device.reset_credentials`).
pub fn record_entry(
    kind: EntityKind,
    key: [u8; 16],
    before: Option<&Record>,
    after: Option<&Record>,
    action: Option<&str>,
    at: Timestamp,
    actor: &Actor,
) -> AuditEntry {
    let verb = match (before, after) {
        (None, Some(_)) => "create",
        (Some(_), None) | (None, None) => "delete",
        (Some(_), Some(_)) => "update",
    };
    let action = match action {
        Some(a)
            if a.starts_with(kind_name(kind)) && a.as_bytes().get(kind_name(kind).len()) == Some(&b'.') =>
        {
            a.to_owned()
        }
        _ => format!("{}.{verb}", kind_name(kind)),
    };
    AuditEntry {
        id: 0,
        at,
        actor: actor.clone(),
        action,
        target_kind: kind_name(kind).into(),
        target_id: uuid::Uuid::from_bytes(key).to_string(),
        target: after.or(before).map(label).unwrap_or_default(),
        changes: changes(kind, before, after),
        detail: String::new(),
    }
}

/// A record's readable name.
fn label(record: &Record) -> String {
    match record {
        Record::Site(s) => s.slug.clone(),
        Record::Building(b) => b.name.clone(),
        Record::Room(r) => r.name.clone(),
        Record::DeviceType(t) => t.name.clone(),
        Record::Device(d) => d.uid.to_string(),
        Record::Gateway(g) => g.name.clone(),
        Record::User(u) => u.username.clone(),
        Record::Token(t) => t.name.clone(),
    }
}

/// Fields never shown: their hashes, sealed values and keys.
fn is_secret(kind: EntityKind, field: &str) -> bool {
    match kind {
        EntityKind::Device => matches!(field, "secret" | "lorawan" | "otaa"),
        EntityKind::User => field == "password_hash",
        EntityKind::Token => field == "hash",
        EntityKind::Gateway => matches!(field, "credentials" | "enrolment"),
        _ => false,
    }
}

/// Fields that say nothing the entry does not: the time of the write, and the record's id and
/// creation time (the entry's target and its own time).
fn is_noise(field: &str) -> bool {
    matches!(field, "updated_at" | "created_at" | "id")
}

fn fields(record: Option<&Record>) -> serde_json::Map<String, Value> {
    let value = match record {
        None => return serde_json::Map::new(),
        Some(Record::Site(r)) => serde_json::to_value(r),
        Some(Record::Building(r)) => serde_json::to_value(r),
        Some(Record::Room(r)) => serde_json::to_value(r),
        Some(Record::DeviceType(r)) => serde_json::to_value(r),
        Some(Record::Device(r)) => serde_json::to_value(r.as_ref()),
        Some(Record::Gateway(r)) => serde_json::to_value(r.as_ref()),
        Some(Record::User(r)) => serde_json::to_value(r),
        Some(Record::Token(r)) => serde_json::to_value(r),
    };
    match value {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// The fields that differ between `before` and `after`, in the record's field order.
fn changes(kind: EntityKind, before: Option<&Record>, after: Option<&Record>) -> Vec<FieldChange> {
    let old = fields(before);
    let new = fields(after);
    let mut names: Vec<&String> = new.keys().collect();
    names.extend(old.keys().filter(|k| !new.contains_key(*k)));
    let mut out = Vec::new();
    for name in names {
        let (b, a) = (old.get(name).unwrap_or(&Value::Null), new.get(name).unwrap_or(&Value::Null));
        if b == a || is_noise(name) {
            continue;
        }
        let (before, after) = if is_secret(kind, name) {
            (shown_secret(b), shown_secret(a))
        } else {
            (json_text(b), json_text(a))
        };
        out.push(FieldChange { field: name.clone(), before, after });
    }
    out
}

fn shown_secret(v: &Value) -> String {
    if v.is_null() { "null".into() } else { SECRET.into() }
}

/// A value's JSON text, cut to [`MAX_VALUE_CHARS`] (then as a JSON string ending in `…`, so it
/// still parses).
pub fn json_text(v: &Value) -> String {
    let text = v.to_string();
    if text.len() <= MAX_VALUE_CHARS {
        return text;
    }
    Value::String(format!("{}…", truncate(&text, MAX_VALUE_CHARS - 64))).to_string()
}

fn cut(text: String) -> String {
    if text.len() <= MAX_VALUE_CHARS { text } else { format!("{}…", truncate(&text, MAX_VALUE_CHARS)) }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
