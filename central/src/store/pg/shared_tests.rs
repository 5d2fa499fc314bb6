//! Replicas on one database, at the store's level: the leader's lock, statuses ingested by
//! several replicas read back without a gap, items relayed to the leader, acknowledgements
//! kept across the leader's writes. Scenarios of `tests.rs` (its server, a database each).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use neosens_runtime::testing::postgres::Postgres;
use neosens_runtime::testing::wait_until;

use super::super::{PgStore, schema};
use super::options;
use crate::model::{Ack, AlertKind, DeviceStatusRecord, Timestamp};
use crate::store::disk_format_history_tests::pinned_history;
use crate::store::{AlertStore, RELAYED_KEPT, RegistryStore};

fn status(at: i64) -> DeviceStatusRecord {
    DeviceStatusRecord {
        last_seen: Some(Timestamp(at)),
        last_status: Some("running".into()),
        last_payload: Some(format!("{{\"at\":{at}}}")),
    }
}

pub(super) fn one_leader_at_a_time_and_a_dead_session_frees_the_lock(pg: &Postgres, db: &str) {
    let url = pg.database(db);
    let (a, b) =
        (PgStore::connect(&options(url.clone())).unwrap(), PgStore::connect(&options(url.clone())).unwrap());
    let mut first = a.leader_lock().unwrap().expect("a shared store has a leader's lock");
    let mut second = b.leader_lock().unwrap().unwrap();
    assert!(first.try_acquire().unwrap(), "a free lock is taken");
    assert!(!second.try_acquire().unwrap(), "a held lock is not");
    first.check().unwrap();
    assert!(second.check().is_err(), "a session without the lock is told so");

    // The leader's session ends (its process gone): the other takes the lock.
    drop(first);
    wait_until("the lock is free once the leader's session ended", || second.try_acquire().unwrap());
    second.check().unwrap();

    // The database kills the leader's session (a lost link, an operator): the next check fails.
    let mut admin = postgres::Client::connect(&format!("{url}?sslmode=disable"), postgres::NoTls).unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'neosens-central leader'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    assert!(second.check().is_err(), "a leader whose session was killed knows it");
    let mut third = a.leader_lock().unwrap().unwrap();
    assert!(third.try_acquire().unwrap(), "and the lock is free");
}

pub(super) fn statuses_ingested_by_replicas_are_all_read_back(pg: &Postgres, db: &str) {
    // A database of the first schema with a status in it: the migration numbers it 0.
    let url = pg.database(db);
    let mut admin = postgres::Client::connect(&format!("{url}?sslmode=disable"), postgres::NoTls).unwrap();
    admin.batch_execute(schema::MIGRATIONS[0]).unwrap();
    admin
        .batch_execute(
            "CREATE TABLE neosens_schema (version integer NOT NULL); INSERT INTO neosens_schema VALUES (1);
             INSERT INTO device_statuses (device, body) VALUES \
             ('00000000-0000-0000-0000-000000000001', '{\"last_seen\": 5, \"last_status\": null, \"last_payload\": null}')",
        )
        .unwrap();
    let (a, b) = (PgStore::connect(&options(url.clone())).unwrap(), PgStore::connect(&options(url)).unwrap());
    let first = a.statuses_since(0).unwrap().expect("a shared store has statuses to follow");
    assert_eq!(first.statuses.len(), 1, "the status stored before the migration is read");
    assert_eq!(first.statuses[0].2.last_seen, Some(Timestamp(5)));

    // Two replicas writing batches at once, a third reading: every batch is seen (a batch
    // committing after a later-numbered one would be skipped by the reader's cursor).
    let (a, b) = (Arc::new(a), Arc::new(b));
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [(Arc::clone(&a), 0u8), (Arc::clone(&b), 1u8)]
        .into_iter()
        .map(|(store, half)| {
            std::thread::spawn(move || {
                for n in 0..100u8 {
                    let mut key = [0u8; 16];
                    (key[0], key[1]) = (half + 2, n);
                    store.put_statuses(&[(key, status(i64::from(n) + 10))], &[]).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let (store, done) = (Arc::clone(&a), Arc::clone(&done));
        std::thread::spawn(move || {
            let (mut cursor, mut seen) = (first.cursor, std::collections::HashSet::new());
            loop {
                let last_round = done.load(Ordering::SeqCst);
                let found = store.statuses_since(cursor).unwrap().unwrap();
                assert!(found.cursor >= cursor);
                cursor = found.cursor;
                seen.extend(found.statuses.into_iter().map(|(_, key, _)| key));
                if last_round {
                    return seen;
                }
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    let batches = seen.iter().filter(|key| key[0] >= 2).count();
    assert_eq!(batches, 200, "every batch read back once its commit is visible");

    // A device's newer status comes back alone; nothing new, nothing read.
    let now = a.statuses_since(0).unwrap().unwrap();
    assert_eq!(now.statuses.len(), 201);
    assert!(a.statuses_since(now.cursor).unwrap().unwrap().statuses.is_empty());
    b.put_statuses(&[([9; 16], status(99))], &[]).unwrap();
    let next = a.statuses_since(now.cursor).unwrap().unwrap();
    assert_eq!(next.statuses, vec![(next.cursor, [9; 16], status(99))]);
    // An older status (another replica's batch, committed after) does not replace it.
    a.put_statuses(&[([9; 16], status(50))], &[]).unwrap();
    let stored = a.load().unwrap().statuses.into_iter().find(|(key, _)| *key == [9; 16]).unwrap();
    assert_eq!(stored.1, status(99));
}

pub(super) fn items_relayed_to_the_leader_are_taken_once_in_order_and_bounded(pg: &Postgres, db: &str) {
    let url = pg.database(db);
    let (a, b) = (PgStore::connect(&options(url.clone())).unwrap(), PgStore::connect(&options(url)).unwrap());
    a.relay_to_leader(&["one".into(), "two".into()]).unwrap();
    b.relay_to_leader(&["three".into()]).unwrap();
    assert_eq!(b.take_relayed(2).unwrap(), ["one", "two"]);
    assert_eq!(a.take_relayed(10).unwrap(), ["three"]);
    assert!(a.take_relayed(10).unwrap().is_empty(), "taken once");

    // Nobody takes them (no leader): the newest are kept.
    let flood: Vec<String> = (0..RELAYED_KEPT + 5).map(|n| n.to_string()).collect();
    a.relay_to_leader(&flood).unwrap();
    let kept = b.take_relayed(RELAYED_KEPT + 100).unwrap();
    assert_eq!(kept.len(), RELAYED_KEPT);
    assert_eq!((kept[0].as_str(), kept.last().unwrap().as_str()), ("5", flood.last().unwrap().as_str()));
}

pub(super) fn acknowledgements_survive_the_leaders_writes(pg: &Postgres, db: &str) {
    let url = pg.database(db);
    let (leader, other) =
        (PgStore::connect(&options(url.clone())).unwrap(), PgStore::connect(&options(url)).unwrap());
    let alerts: Vec<_> = pinned_history()
        .alerts
        .into_iter()
        .map(|a| crate::model::AlertRecord { ack: None, resolved_at: None, ..a })
        .collect();
    leader.put_alerts(&alerts, &[]).unwrap();
    let ack = Ack { by: "operator".into(), at: 1_000, silenced_until: Some(2_000) };
    let acked = other.acknowledge(alerts[0].id, &ack).unwrap().expect("a known alert");
    assert_eq!(acked.ack.as_ref(), Some(&ack));
    assert!(other.acknowledge(999_999, &ack).unwrap().is_none(), "an unknown alert");

    // The leader writes its copy (without the acknowledgement): both stay.
    let newer = crate::model::AlertRecord { outdated: 42, ..alerts[0].clone() };
    leader.put_alerts(std::slice::from_ref(&newer), &[]).unwrap();
    let stored = leader.alerts().unwrap().into_iter().find(|a| a.id == newer.id).unwrap();
    assert_eq!((stored.outdated, stored.ack.as_ref()), (42, Some(&ack)));

    // A notice acknowledged through another replica is resolved, and stays so.
    let notice = alerts.iter().find(|a| a.kind == AlertKind::ForeignDelivery).unwrap();
    other.acknowledge(notice.id, &ack).unwrap();
    leader.put_alerts(std::slice::from_ref(notice), &[]).unwrap();
    let stored = leader.alerts().unwrap().into_iter().find(|a| a.id == notice.id).unwrap();
    assert_eq!(stored.resolved_at, Some(1_000));
}

pub(super) fn replicas_must_share_the_server_keys(pg: &Postgres, db: &str) {
    let url = pg.database(db);
    let (a, b) = (PgStore::connect(&options(url.clone())).unwrap(), PgStore::connect(&options(url)).unwrap());
    assert!(a.check_keys(&[1; 32]).unwrap(), "the first keys are recorded");
    assert!(b.check_keys(&[1; 32]).unwrap(), "the same keys match");
    assert!(!b.check_keys(&[2; 32]).unwrap(), "other keys do not");
    assert!(a.check_keys(&[1; 32]).unwrap(), "and did not replace the first");
}

pub(super) fn sessions_and_throttles_are_bounded(pg: &Postgres, db: &str) {
    use crate::store::{SessionStore, StoredSession, ThrottleRule};
    let store = PgStore::connect(&options(pg.database(db))).unwrap();
    let session = |n: u8| StoredSession { user: [n; 16], csrf: format!("csrf{n}") };
    // At most 3 sessions: the least recently used goes; an idle one is gone.
    for n in 0..5u8 {
        store.put_session(&[n; 32], &session(n), 1_000 + i64::from(n), 60_000, 3).unwrap();
    }
    assert_eq!(store.touch_session(&[0; 32], 2_000, 60_000, 60_000).unwrap(), None, "beyond the bound");
    assert_eq!(store.touch_session(&[4; 32], 2_000, 60_000, 60_000).unwrap(), Some(session(4)));
    assert_eq!(store.touch_session(&[4; 32], 70_000, 60_000, 60_000).unwrap(), None, "idle too long");
    store.delete_sessions(None, Some([3; 16])).unwrap();
    assert_eq!(
        store.touch_session(&[3; 32], 2_000, 60_000, 60_000).unwrap(),
        None,
        "the user's sessions ended"
    );

    // A spray of user names never grows a throttle past its bound; the locks hold.
    let rule = ThrottleRule { free_failures: 2, window_ms: 900_000, max_lock_ms: 60_000, max_keys: 10 };
    for _ in 0..3 {
        store.throttle_failed("users", "alice", 1_000, &rule).unwrap();
    }
    assert_eq!(
        store.throttle_locked_until("users", "alice", 1_000).unwrap(),
        Some(2_000),
        "1 s after the free two"
    );
    for n in 0..100 {
        store.throttle_failed("users", &format!("spray{n}"), 1_001 + n, &rule).unwrap();
    }
    let mut admin =
        postgres::Client::connect(&format!("{}?sslmode=disable", pg.url(db)), postgres::NoTls).unwrap();
    let kept: i64 = admin.query_one("SELECT count(*) FROM sign_in_throttle", &[]).unwrap().get(0);
    assert_eq!(kept, 10);
    store.throttle_forget("users", "spray99").unwrap();
    assert_eq!(store.throttle_locked_until("users", "spray99", 1_100).unwrap(), None);
}
