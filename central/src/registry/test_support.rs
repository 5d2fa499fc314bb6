//! What the registry's unit tests share: a [`Fingerprint`] of everything the registry holds in
//! memory and on disk (so a refused change can be shown to have changed neither), a reopen that
//! proves what was committed is what is in memory, the assertions on its error kinds, and the
//! fixture's device and room.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use neosens_protocol::ids::RoomId;

use super::*;

/// Everything a registry holds — revision, records and indexes in memory, and the store's
/// snapshot — in a form two registries can be compared by.
#[derive(Debug, PartialEq)]
pub(in crate::registry) struct Fingerprint {
    revision: u64,
    memory: Vec<String>,
    stored: String,
}

/// The fingerprint of `registry` now.
pub(in crate::registry) fn fingerprint(registry: &Registry) -> Fingerprint {
    let state = registry.state.read();
    let mut memory: Vec<String> = Vec::new();
    memory.extend(state.sites.values().map(|v| format!("{v:?}")));
    memory.extend(state.buildings.values().map(|v| format!("{v:?}")));
    memory.extend(state.rooms.values().map(|v| format!("{v:?}")));
    memory.extend(state.room_topics.iter().map(|v| format!("topic {v:?}")));
    memory.extend(state.types.values().map(|v| format!("{:?}", v.record)));
    memory.extend(state.devices.values().map(|v| format!("{:?}", v.record)));
    memory.extend(state.statuses.iter().map(|v| format!("status {v:?}")));
    memory.extend(state.by_uid.iter().map(|v| format!("uid {v:?}")));
    memory.extend(state.by_login.iter().map(|v| format!("login {v:?}")));
    // An emptied room set and no set say the same thing.
    memory.extend(state.by_room.iter().filter(|(_, s)| !s.is_empty()).map(|v| format!("in room {v:?}")));
    memory.extend(state.gateways.values().map(|v| format!("{v:?}")));
    memory.sort();
    let stored = format!("{:?}", registry.store.load().expect("the store loads"));
    Fingerprint { revision: state.revision, memory, stored }
}

/// Closes `registry` and opens the store in `dir` again: what comes back is what was committed.
pub(in crate::registry) fn reopen(dir: &Path, registry: Arc<Registry>) -> Arc<Registry> {
    let registry = Arc::into_inner(registry).expect("no other handle on the registry");
    drop(registry);
    let keys = Arc::new(crate::secrets::ServerKeys::load_or_create(dir).unwrap());
    let store = Arc::new(crate::store::RedbStore::open(dir).unwrap());
    Arc::new(Registry::open(store, keys).unwrap())
}

/// Asserts that `registry` still holds exactly `before`, in memory and in its store, and that a
/// reopened registry holds it too; returns the reopened one.
#[track_caller]
pub(in crate::registry) fn assert_unchanged(
    dir: &Path,
    registry: Arc<Registry>,
    before: &Fingerprint,
) -> Arc<Registry> {
    assert_eq!(&fingerprint(&registry), before, "a refused change left a trace");
    let registry = reopen(dir, registry);
    assert_eq!(&fingerprint(&registry), before, "the reopened registry differs");
    registry
}

/// Asserts `result` is `Invalid` on `field`.
#[track_caller]
pub(in crate::registry) fn assert_invalid<T: Debug>(result: Result<T, RegistryError>, field: &str) {
    match result {
        Err(RegistryError::Invalid { field: f, .. }) if f == field => {}
        other => panic!("expected Invalid on {field:?}, got {other:?}"),
    }
}

/// Asserts `result` is a `Conflict` whose message mentions `needle`.
#[track_caller]
pub(in crate::registry) fn assert_conflict<T: Debug>(result: Result<T, RegistryError>, needle: &str) {
    match result {
        Err(RegistryError::Conflict { message }) if message.contains(needle) => {}
        other => panic!("expected a Conflict mentioning {needle:?}, got {other:?}"),
    }
}

/// Asserts `result` is `NotFound`.
#[track_caller]
pub(in crate::registry) fn assert_not_found<T: Debug>(result: Result<T, RegistryError>) {
    assert!(matches!(result, Err(RegistryError::NotFound { .. })), "expected NotFound, got {result:?}");
}

/// A new `esp32` in `rooms`, everything else by default.
pub(in crate::registry) fn device_input(uid: &str, rooms: Vec<RoomId>) -> NewDevice {
    NewDevice {
        uid: uid.into(),
        uid_kind: None,
        device_type: "esp32".into(),
        description: String::new(),
        rooms,
        enabled: None,
        config: None,
        mqtt: None,
        login: None,
        outdated_after_s: None,
        lorawan: None,
        otaa: None,
    }
}

/// The fixture's room `302`.
pub(in crate::registry) fn room_302(registry: &Registry) -> RoomId {
    registry.rooms(None).into_iter().find(|r| r.name == "302").expect("the fixture's room").id
}
