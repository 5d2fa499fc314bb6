use super::*;
use crate::registry::test_registry;

fn status(at_ms: i64, heap: u32) -> DeviceStatusRecord {
    DeviceStatusRecord {
        last_seen: Some(Timestamp(at_ms)),
        last_status: Some("running".into()),
        last_payload: Some(format!(r#"{{"status":"running","heap":{heap}}}"#)),
    }
}

#[test]
fn statuses_are_kept_per_the_types_retention_and_go_with_their_device() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 2);
    registry.set_history(HistoryConfig {
        max_statuses: 5,
        max_age_days: 1,
        types: BTreeMap::from([("other".into(), HistoryRetention { max_statuses: 1, max_age_days: 1 })]),
    });
    let t0 = 1_800_000_000_000;
    for i in 0..8 {
        registry
            .put_statuses(vec![
                (ids[0], status(t0 + i * 60_000, 1000 + i as u32)),
                (ids[1], status(t0 + i * 60_000, 7)),
            ])
            .unwrap();
        // Another status 10 s later: within the minute, not kept.
        registry.put_statuses(vec![(ids[0], status(t0 + i * 60_000 + 10_000, 1))]).unwrap();
    }
    let kept = registry.status_history(&ids[0].to_string(), i64::MIN, i64::MAX, 100).unwrap();
    assert_eq!(kept.len(), 5, "bounded by count");
    assert_eq!(kept[0], (t0 + 7 * 60_000, r#"{"status":"running","heap":1007}"#.to_owned()));
    // A day and a minute later: everything before goes by age.
    registry.put_statuses(vec![(ids[0], status(t0 + 86_400_000 + 8 * 60_000, 1))]).unwrap();
    assert_eq!(registry.status_history(&ids[0].to_string(), i64::MIN, i64::MAX, 100).unwrap().len(), 1);
    // A huge payload is kept as its status and size.
    let mut big = status(t0 + 86_400_000 + 9 * 60_000, 1);
    big.last_payload = Some(format!(r#"{{"status":"running","pad":"{}"}}"#, "x".repeat(MAX_HISTORY_PAYLOAD)));
    registry.put_statuses(vec![(ids[0], big)]).unwrap();
    let newest = &registry.status_history(&ids[0].to_string(), i64::MIN, i64::MAX, 1).unwrap()[0].1;
    assert!(newest.contains("too_large_for_history"), "{newest}");
    registry.delete_device(&ids[0].to_string()).unwrap();
    assert!(registry.store.status_history(ids[0].to_bytes(), i64::MIN, i64::MAX, 100).unwrap().is_empty());
}

#[test]
fn the_timeline_merges_statuses_orders_changes_and_silences() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _, ids) = test_registry(dir.path(), 1);
    let key = ids[0].to_string();
    let now = Timestamp::now().millis();
    // Two statuses four hours apart (the default threshold is 30 min), the last an hour ago.
    registry.put_statuses(vec![(ids[0], status(now - 5 * 3_600_000, 1))]).unwrap();
    registry.put_statuses(vec![(ids[0], status(now - 3_600_000, 2))]).unwrap();
    registry
        .update_device(
            &key,
            crate::registry::DeviceChanges { description: Some("hall".into()), ..Default::default() },
        )
        .unwrap();
    let events = registry.timeline(&key, 50).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind).collect();
    // The device was registered and changed just now; it was heard 5 h and 1 h ago.
    assert_eq!(kinds, ["change", "change", "silent", "back", "status", "silent", "status"], "{events:#?}");
    assert!(events[0].summary.starts_with("device.update by central: description"), "{}", events[0].summary);
    assert!(
        events[1].summary.starts_with("device.create by central: uid, device_type"),
        "{}",
        events[1].summary
    );
    assert_eq!(events[3].summary, "heard again after 240 min");
    assert_eq!(events[4].detail["heap"], 2);
    assert_eq!(events[2].at_ms - events[4].at_ms, 1_800_000, "silent from its threshold on");
}
