//! The PostgreSQL store against a real server (`initdb` into a temporary directory, a free
//! port): one server for the whole test, one database per scenario.

use std::sync::Arc;

use neosens_runtime::testing::postgres::Postgres;

use super::{PgOptions, PgStore, schema};
use crate::model::{
    Campaign, CampaignEvent, CampaignState, DeviceProgress, DeviceStatusRecord, EntityKind, FirmwareImage,
    Record, RevisionCount, Site, Stage, Timestamp, Wave,
};
use crate::store::disk_format_history_tests::pinned_history;
use crate::store::disk_format_tests::pinned_records;
use crate::store::{
    AlertStore, AuditStore, BulkStore, DeviceHistory, DeviceLogEntry, FirmwareStore, HistoryRetention,
    RegistryStore, SettingsStore, StatusHistoryEntry, StatusHistoryStore, StoreError, StoreStats, Write,
};

#[path = "shared_tests.rs"]
mod shared;

/// The test server's certificate is issued for `localhost` by its own authority.
fn options(url: String) -> PgOptions {
    PgOptions { url, ca_file: CA.get().cloned(), pool_size: 4 }
}

static CA: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

fn site(n: u8) -> Site {
    Site {
        id: neosens_protocol::ids::SiteId::from_bytes([n; 16]),
        slug: format!("s{n}"),
        name: format!("Site {n}"),
        is_default: n == 1,
    }
}

/// One part of the contract, run on a database of its own (named after it).
type Scenario = fn(&Postgres, &str);

#[test]
fn the_postgresql_store_keeps_the_store_contract() {
    let pg = Postgres::start();
    CA.set(pg.ca_file()).unwrap();
    let scenarios: [(&str, Scenario); 16] = [
        ("an_embedded_store_is_copied_whole_and_checked", an_embedded_store_is_copied_whole_and_checked),
        ("every_pinned_record_comes_back_unchanged", every_pinned_record_comes_back_unchanged),
        (
            "revisions_are_consecutive_and_survive_reconnecting",
            revisions_are_consecutive_and_survive_reconnecting,
        ),
        ("two_replicas_writing_at_once_lose_nothing", two_replicas_writing_at_once_lose_nothing),
        (
            "device_histories_are_bounded_and_go_with_the_device",
            device_histories_are_bounded_and_go_with_the_device,
        ),
        ("status_histories_are_pruned_to_their_retention", status_histories_are_pruned_to_their_retention),
        ("alerts_settings_and_bulk_operations", alerts_settings_and_bulk_operations),
        ("the_audit_trail_is_numbered_paged_and_bounded", the_audit_trail_is_numbered_paged_and_bounded),
        ("firmware_records_and_campaigns", firmware_records_and_campaigns),
        (
            "migrations_run_once_and_a_newer_schema_is_refused",
            migrations_run_once_and_a_newer_schema_is_refused,
        ),
        ("one_leader_at_a_time", shared::one_leader_at_a_time_and_a_dead_session_frees_the_lock),
        ("statuses_read_back", shared::statuses_ingested_by_replicas_are_all_read_back),
        ("relayed_to_the_leader", shared::items_relayed_to_the_leader_are_taken_once_in_order_and_bounded),
        ("acknowledgements_kept", shared::acknowledgements_survive_the_leaders_writes),
        ("server_keys", shared::replicas_must_share_the_server_keys),
        ("sessions_and_throttles", shared::sessions_and_throttles_are_bounded),
    ];
    for (name, scenario) in scenarios {
        scenario(&pg, name);
    }
    tls_is_verified_against_the_configured_authority(&pg);
}

fn every_pinned_record_comes_back_unchanged(pg: &Postgres, db: &str) {
    let store = PgStore::connect(&options(pg.database(db))).unwrap();
    for record in pinned_records() {
        store.apply(&[Write::Put(record.clone())], &[]).unwrap();
        let snap = store.load().unwrap();
        let back = match record.kind() {
            EntityKind::Site => snap.sites.into_iter().map(Record::Site).collect::<Vec<_>>(),
            EntityKind::Building => snap.buildings.into_iter().map(Record::Building).collect(),
            EntityKind::Room => snap.rooms.into_iter().map(Record::Room).collect(),
            EntityKind::DeviceType => snap.device_types.into_iter().map(Record::DeviceType).collect(),
            EntityKind::Device => snap.devices.into_iter().map(|d| Record::Device(Box::new(d))).collect(),
            EntityKind::Gateway => snap.gateways.into_iter().map(|g| Record::Gateway(Box::new(g))).collect(),
            EntityKind::User => snap.users.into_iter().map(Record::User).collect(),
            EntityKind::Token => snap.tokens.into_iter().map(Record::Token).collect(),
        };
        assert!(back.contains(&record), "{:?} {:?} did not come back unchanged", record.kind(), record.key());
    }
    let history = pinned_history();
    let device = history.log.device;
    for status in &history.statuses {
        store.put_statuses(&[(device, status.clone())], &[]).unwrap();
        assert_eq!(store.load().unwrap().statuses, vec![(device, status.clone())]);
    }
    store.append_device_log(&history.log).unwrap();
    assert_eq!(store.device_logs(device, 10).unwrap(), vec![history.log.clone()]);
    store.append_order(device, &history.order).unwrap();
    assert_eq!(store.device_orders(device, 10).unwrap(), vec![history.order.clone()]);
    store.put_alerts(&history.alerts, &[]).unwrap();
    assert_eq!(store.alerts().unwrap(), history.alerts);
    for operation in &history.bulk {
        store.put_bulk_operation(operation).unwrap();
        assert!(store.bulk_operations().unwrap().contains(operation));
    }
    // Dated today: the pinned ones are older than the default retention.
    let audit: Vec<_> = history
        .audit
        .iter()
        .map(|e| crate::model::AuditEntry { at: Timestamp::now(), ..e.clone() })
        .collect();
    store.append_audit(&audit).unwrap();
    let page = store.audit_page(None, 100, &|_| true).unwrap();
    let mut numbered: Vec<_> =
        audit.iter().zip(1..).map(|(e, id)| crate::model::AuditEntry { id, ..e.clone() }).collect();
    numbered.reverse();
    assert_eq!(page.entries, numbered);
    // A NUL a device put in its log line is a character like any other.
    let nul = DeviceLogEntry {
        record: neosens_protocol::legacy::LogRecord { msg: Some("a\u{0}b".into()), ..Default::default() },
        ..history.log.clone()
    };
    store.append_device_log(&nul).unwrap();
    assert_eq!(store.device_logs(device, 1).unwrap(), vec![nul]);
}

fn revisions_are_consecutive_and_survive_reconnecting(pg: &Postgres, db: &str) {
    let url = pg.database(db);
    {
        let store = PgStore::connect(&options(url.clone())).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::version());
        let rev = store
            .apply(&[Write::Put(Record::Site(site(1))), Write::Put(Record::Site(site(2)))], &[])
            .unwrap();
        assert_eq!(rev, 2);
        assert_eq!(store.apply(&[Write::Delete(EntityKind::Site, [2; 16])], &[]).unwrap(), 3);
        assert_eq!(store.apply(&[], &[]).unwrap(), 3);
        // Put, delete and put again in one batch: the last state stays, every step is logged.
        let twice = [
            Write::Put(Record::Site(site(3))),
            Write::Delete(EntityKind::Site, [3; 16]),
            Write::Put(Record::Site(Site { name: "again".into(), ..site(3) })),
        ];
        assert_eq!(store.apply(&twice, &[]).unwrap(), 6);
    }
    let store = PgStore::connect(&options(url)).unwrap();
    let snap = store.load().unwrap();
    assert_eq!(snap.revision, 6);
    assert_eq!(snap.sites, vec![site(1), Site { name: "again".into(), ..site(3) }]);
    let changes = store.changes_since(1, 10).unwrap();
    let seen: Vec<_> = changes.iter().map(|c| (c.revision, c.kind, c.key[0], c.deleted)).collect();
    assert_eq!(
        seen,
        [
            (2, EntityKind::Site, 2, false),
            (3, EntityKind::Site, 2, true),
            (4, EntityKind::Site, 3, false),
            (5, EntityKind::Site, 3, true),
            (6, EntityKind::Site, 3, false),
        ]
    );
    assert_eq!(store.changes_since(0, 1).unwrap().len(), 1);
    assert!(store.changes_since(6, 10).unwrap().is_empty());
}

/// Two stores on one database (two central replicas), each writing batches from several
/// threads at once: every revision is given once, none is skipped, and every record is there.
fn two_replicas_writing_at_once_lose_nothing(pg: &Postgres, db: &str) {
    let url = pg.database(db);
    let replicas = [
        Arc::new(PgStore::connect(&options(url.clone())).unwrap()),
        Arc::new(PgStore::connect(&options(url)).unwrap()),
    ];
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let store = replicas[usize::from(t % 2)].clone();
            std::thread::spawn(move || {
                for i in 0..25u8 {
                    let mut a = site(0);
                    a.id = neosens_protocol::ids::SiteId::from_bytes([
                        t, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                    ]);
                    let mut b = a.clone();
                    b.id = neosens_protocol::ids::SiteId::from_bytes([
                        t, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
                    ]);
                    store.apply(&[Write::Put(Record::Site(a)), Write::Put(Record::Site(b))], &[]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let changes = replicas[1].changes_since(0, 1000).unwrap();
    let revisions: Vec<u64> = changes.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, (1..=200).collect::<Vec<_>>());
    // A batch's two records got neighbouring revisions (batches are never interleaved).
    for pair in changes.chunks(2) {
        assert_eq!(pair[0].key[..2], pair[1].key[..2], "a batch was split: {pair:?}");
    }
    let snap = replicas[0].load().unwrap();
    assert_eq!((snap.revision, snap.sites.len()), (200, 200));

    // A batch decided at an old revision is refused whole; the changes since are readable in
    // one consistent view, deletions included.
    let [a, b] = replicas;
    assert_eq!(a.apply_at(200, &[Write::Put(Record::Site(site(7)))], &[]).unwrap(), 201);
    assert_eq!(
        a.apply_at(201, &[Write::Delete(EntityKind::Site, snap.sites[0].id.to_bytes())], &[]).unwrap(),
        202
    );
    match b.apply_at(200, &[Write::Put(Record::Site(site(8)))], &[]) {
        Err(StoreError::Stale { expected: 200, current: 202 }) => {}
        other => panic!("expected Stale, got {other:?}"),
    }
    let caught = b.changed_since(200).unwrap();
    assert_eq!(caught.revision, 202);
    assert_eq!(caught.changed.len(), 2);
    assert_eq!(caught.changed[0].2, Some(Record::Site(site(7))));
    assert_eq!(caught.changed[1].2, None, "the deleted site comes as a deletion");
    assert_eq!(b.load().unwrap().sites.len(), 200, "the refused batch wrote nothing");
    // Each replica is notified of the other's commits.
    let mut listener = b.listener().unwrap();
    a.apply(&[Write::Put(Record::Site(site(9)))], &[]).unwrap();
    use crate::store::ChangeListener;
    assert_eq!(
        listener.wait(std::time::Duration::from_secs(10)).unwrap(),
        Some(203),
        "the commit's revision"
    );
    assert_eq!(
        listener.wait(std::time::Duration::from_millis(50)).unwrap(),
        None,
        "a notification without a commit"
    );
}

fn device_histories_are_bounded_and_go_with_the_device(pg: &Postgres, db: &str) {
    let store = PgStore::connect(&options(pg.database(db))).unwrap();
    let device = pinned_records().into_iter().find(|r| r.kind() == EntityKind::Device).unwrap();
    let key = device.key();
    store.apply(&[Write::Put(device)], &[]).unwrap();
    let line = |device: [u8; 16], i: usize| DeviceLogEntry {
        device,
        received_at: Timestamp(i as i64),
        remote_addr: "10.0.0.1".into(),
        record: neosens_protocol::legacy::LogRecord { msg: Some(format!("line {i}")), ..Default::default() },
    };
    store.append_device_log(&line([8; 16], 0)).unwrap();
    let flood = crate::store::MAX_LOGS_PER_DEVICE + 20;
    for i in 0..flood {
        store.append_device_log(&line(key, i)).unwrap();
    }
    let kept = store.device_logs(key, usize::MAX).unwrap();
    assert_eq!(kept.len(), crate::store::MAX_LOGS_PER_DEVICE);
    assert_eq!(kept[0].record.msg, Some(format!("line {}", flood - 1)), "newest first");
    assert_eq!(store.device_logs([8; 16], usize::MAX).unwrap().len(), 1, "another device keeps its line");
    let order = pinned_history().order;
    for _ in 0..crate::store::MAX_ORDERS_PER_DEVICE + 3 {
        store.append_order(key, &order).unwrap();
    }
    assert_eq!(store.device_orders(key, usize::MAX).unwrap().len(), crate::store::MAX_ORDERS_PER_DEVICE);
    let status = DeviceStatusRecord { last_seen: Some(Timestamp(5)), ..Default::default() };
    let entry =
        StatusHistoryEntry { device: key, at_ms: 5, payload: "{}".into(), keep: HistoryRetention::default() };
    store.put_statuses(&[(key, status)], &[entry]).unwrap();
    store.apply(&[Write::Delete(EntityKind::Device, key)], &[]).unwrap();
    assert!(store.load().unwrap().statuses.is_empty());
    assert!(store.device_logs(key, 10).unwrap().is_empty());
    assert!(store.device_orders(key, 10).unwrap().is_empty());
    assert!(store.status_history(key, i64::MIN, i64::MAX, 10).unwrap().is_empty());
    assert_eq!(store.device_logs([8; 16], 10).unwrap().len(), 1);
}

fn status_histories_are_pruned_to_their_retention(pg: &Postgres, db: &str) {
    let store = PgStore::connect(&options(pg.database(db))).unwrap();
    let keep = HistoryRetention { max_statuses: 5, max_age_days: 1 };
    let entry = |device: u8, at_ms: i64| StatusHistoryEntry {
        device: [device; 16],
        at_ms,
        payload: format!("{{\"at\":{at_ms}}}"),
        keep,
    };
    // Eight statuses in one batch, two of them at the same time (the last payload stays).
    let mut batch: Vec<_> = (1..=8).map(|i| entry(1, i * 1000)).collect();
    batch.push(StatusHistoryEntry { payload: "again".into(), ..entry(1, 8000) });
    batch.push(entry(2, 1000));
    store.put_statuses(&[], &batch).unwrap();
    let held = store.status_history([1; 16], i64::MIN, i64::MAX, 100).unwrap();
    let times: Vec<i64> = held.iter().map(|(t, _)| *t).collect();
    assert_eq!(times, [8000, 7000, 6000, 5000, 4000], "the five newest, newest first");
    assert_eq!(held[0].1, "again");
    assert_eq!(store.status_history([1; 16], 5000, 7000, 100).unwrap().len(), 2, "since..before");
    // A status two days later leaves only itself (the others are older than a day before it).
    store.put_statuses(&[], &[entry(1, 2 * 86_400_000)]).unwrap();
    assert_eq!(store.status_history([1; 16], i64::MIN, i64::MAX, 100).unwrap().len(), 1);
    assert_eq!(store.status_history([2; 16], i64::MIN, i64::MAX, 100).unwrap().len(), 1, "another device");
}

fn alerts_settings_and_bulk_operations(pg: &Postgres, db: &str) {
    let store = PgStore::connect(&options(pg.database(db))).unwrap();
    let alerts = pinned_history().alerts;
    store.put_alerts(&alerts, &[]).unwrap();
    let resolved = crate::model::AlertRecord { resolved_at: Some(42), ..alerts[0].clone() };
    store.put_alerts(std::slice::from_ref(&resolved), &[alerts[1].id]).unwrap();
    assert_eq!(store.alerts().unwrap(), vec![resolved, alerts[2].clone()]);

    assert_eq!(store.user_settings([1; 16]).unwrap(), None);
    store.put_user_settings([1; 16], Some(r#"{"columns":["heap"]}"#)).unwrap();
    store.put_user_settings([1; 16], Some(r#"{"columns":[]}"#)).unwrap();
    store.put_user_settings([2; 16], Some("{}")).unwrap();
    store.put_user_settings([2; 16], None).unwrap();
    assert_eq!(store.user_settings([1; 16]).unwrap().as_deref(), Some(r#"{"columns":[]}"#));
    assert_eq!(store.user_settings([2; 16]).unwrap(), None);

    let operation = pinned_history().bulk[0].clone();
    for id in 1..=crate::store::KEPT_BULK_OPERATIONS + 5 {
        store.put_bulk_operation(&crate::model::BulkOperation { id, ..operation.clone() }).unwrap();
    }
    let kept: Vec<u64> = store.bulk_operations().unwrap().iter().map(|o| o.id).collect();
    assert_eq!(kept, (6..=crate::store::KEPT_BULK_OPERATIONS + 5).collect::<Vec<_>>());
}

fn the_audit_trail_is_numbered_paged_and_bounded(pg: &Postgres, db: &str) {
    let store = PgStore::connect(&options(pg.database(db))).unwrap();
    let now = Timestamp::now().0;
    let entry = |action: &str, at: i64| crate::model::AuditEntry {
        action: action.into(),
        at: Timestamp(at),
        ..pinned_history().audit[0].clone()
    };
    let batch: Vec<_> =
        (0..10).map(|i| entry(if i % 2 == 0 { "device.update" } else { "order.send" }, now)).collect();
    store.append_audit(&batch).unwrap();
    let ids = |page: &crate::store::AuditPage| page.entries.iter().map(|e| e.id).collect::<Vec<_>>();
    let page = store.audit_page(None, 3, &|_| true).unwrap();
    assert_eq!((ids(&page), page.next_before, page.total), (vec![10, 9, 8], Some(8), 10));
    assert_eq!(ids(&store.audit_page(page.next_before, 3, &|_| true).unwrap()), [7, 6, 5]);
    let orders = store.audit_page(None, 50, &|e| e.action == "order.send").unwrap();
    assert_eq!((ids(&orders), orders.next_before), (vec![10, 8, 6, 4, 2], None));
    // Registry changes are numbered in the same sequence, in their own transaction.
    store.apply(&[], &[entry("site.update", now)]).unwrap();
    assert_eq!(ids(&store.audit_page(None, 1, &|_| true).unwrap()), [11]);
    // Bounded by count, then by age.
    store.set_audit_retention(crate::audit::AuditRetention { max_entries: 100, max_age_days: 1 });
    for _ in 0..7 {
        store.append_audit(&(0..40).map(|_| entry("device.update", now)).collect::<Vec<_>>()).unwrap();
        assert!(store.audit_page(None, 500, &|_| true).unwrap().total <= 100);
    }
    let page = store.audit_page(None, 500, &|_| true).unwrap();
    assert_eq!((page.entries.len(), page.entries[0].id, page.entries[99].id), (100, 291, 192));
    // By age from the front, as the embedded store: two-day-old entries go at the next append.
    let store = PgStore::connect(&options(pg.database(&format!("{db}_age")))).unwrap();
    store.set_audit_retention(crate::audit::AuditRetention { max_entries: 100, max_age_days: 1 });
    store
        .append_audit(&(0..5).map(|_| entry("device.update", now - 2 * 86_400_000)).collect::<Vec<_>>())
        .unwrap();
    store.append_audit(&[entry("device.delete", now)]).unwrap();
    let page = store.audit_page(None, 500, &|_| true).unwrap();
    assert_eq!((ids(&page), page.total), (vec![6], 1));
    assert_eq!(store.last_audit_id().unwrap(), 6);
}

fn firmware_records_and_campaigns(pg: &Postgres, db: &str) {
    let store = PgStore::connect(&options(pg.database(db))).unwrap();
    let image = FirmwareImage {
        sha256: [0xa1; 32],
        md5: [0xb2; 16],
        size: 1_048_576,
        hardware: "esp32".into(),
        board: "neosensor".into(),
        revision: 42,
        notes: "sensor fix".into(),
        uploaded_at: Timestamp(1000),
        uploaded_by: "admin".into(),
    };
    store.put_firmware_image(&image).unwrap();
    store.put_firmware_image(&FirmwareImage { sha256: [0xa2; 32], ..image.clone() }).unwrap();
    store.delete_firmware_image([0xa2; 32]).unwrap();
    assert_eq!(store.firmware_images().unwrap(), vec![image]);
    let campaign = Campaign {
        id: 7,
        name: "spring".into(),
        image: [0xa1; 32],
        devices: vec![[1; 16], [2; 16]],
        waves: vec![
            Wave { until_percent: 50, soak_s: Some(3600) },
            Wave { until_percent: 100, soak_s: None },
        ],
        failure_threshold_percent: 10,
        state: CampaignState::Running,
        wave_started_at: vec![Timestamp(5)],
        events: vec![CampaignEvent { at: Timestamp(5), by: "admin".into(), what: "created".into() }],
        deadline_s: 86_400,
        resumed_at: None,
    };
    store.put_campaign(&campaign).unwrap();
    store.put_campaign(&Campaign { state: CampaignState::Paused, ..campaign.clone() }).unwrap();
    assert_eq!(store.campaigns().unwrap(), vec![Campaign { state: CampaignState::Paused, ..campaign }]);
    let progress = |stage| DeviceProgress {
        stage,
        since: Timestamp(9),
        fetched_at: None,
        reported: Some(41),
        checked_seen: None,
    };
    store
        .put_campaign_progress(&[
            (7, [1; 16], progress(Stage::Pending)),
            (7, [2; 16], progress(Stage::Pending)),
        ])
        .unwrap();
    store.put_campaign_progress(&[(7, [1; 16], progress(Stage::Done))]).unwrap();
    assert_eq!(
        store.campaign_progress().unwrap(),
        vec![(7, [1; 16], progress(Stage::Done)), (7, [2; 16], progress(Stage::Pending))]
    );
    let counts =
        vec![RevisionCount { hardware: "esp32".into(), board: "neosensor".into(), revision: 42, devices: 3 }];
    store.put_firmware_census(1000, &counts, 0).unwrap();
    store.put_firmware_census(2000, &counts, 1500).unwrap();
    assert_eq!(store.firmware_census().unwrap(), vec![(2000, counts)]);
    assert!(store.size_bytes() > 0);
    assert!(store.commit_times().unwrap().count > 0);
}

fn migrations_run_once_and_a_newer_schema_is_refused(pg: &Postgres, db: &str) {
    let url = pg.database(db);
    let store = PgStore::connect(&options(url.clone())).unwrap();
    assert_eq!(store.migrate().unwrap(), 0, "nothing left to run");
    // Two replicas starting together: the advisory lock lets one migrate, the other finds it done.
    let fresh = pg.database(&format!("{db}_fresh"));
    let both: Vec<_> = (0..2)
        .map(|_| {
            let u = fresh.clone();
            std::thread::spawn(move || PgStore::connect(&options(u)).map(|_| ()))
        })
        .collect();
    for t in both {
        t.join().unwrap().unwrap();
    }
    let mut client = postgres::Client::connect(&format!("{url}?sslmode=disable"), postgres::NoTls).unwrap();
    client.execute("UPDATE neosens_schema SET version = 99", &[]).unwrap();
    match PgStore::connect(&options(url)) {
        Err(StoreError::TooNew { found: 99, supported }) => assert_eq!(supported, schema::version()),
        Err(e) => panic!("expected TooNew, got {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

fn tls_is_verified_against_the_configured_authority(pg: &Postgres) {
    let url = format!("{}?sslmode=require", pg.database("tls"));
    let store = PgStore::connect(&options(url.clone())).unwrap();
    store.apply(&[Write::Put(Record::Site(site(1)))], &[]).unwrap();
    // The system's roots do not know the test authority: refused, with a reason.
    let untrusted = PgOptions { ca_file: None, ..options(url.clone()) };
    let err = PgStore::connect(&untrusted).err().expect("an unknown certificate was accepted");
    assert!(err.to_string().contains("TLS"), "{err}");
    // Nor is the certificate good for another name.
    let other_name = options(url.replace("localhost", "127.0.0.1"));
    assert!(PgStore::connect(&other_name).is_err(), "a certificate for localhost was accepted for 127.0.0.1");
}

/// A redb store holding some of everything, copied: the copy reads back the same through every
/// method (`copy` compares them itself), keeps revisions and audit numbers, and a second copy
/// into the now full database is refused.
fn an_embedded_store_is_copied_whole_and_checked(pg: &Postgres, db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let source = crate::store::RedbStore::open(dir.path()).unwrap();
    let records = pinned_records();
    for record in &records {
        source.apply(&[Write::Put(record.clone())], &[]).unwrap();
    }
    let history = pinned_history();
    let device = records.iter().find(|r| r.kind() == EntityKind::Device).unwrap().key();
    let entry = |at_ms| StatusHistoryEntry {
        device,
        at_ms,
        payload: format!("{{\"at\":{at_ms}}}"),
        keep: HistoryRetention::default(),
    };
    source.put_statuses(&[(device, history.statuses[0].clone())], &[entry(1), entry(2)]).unwrap();
    for i in 0..3 {
        source
            .append_device_log(&DeviceLogEntry { device, received_at: Timestamp(i), ..history.log.clone() })
            .unwrap();
        source.append_order(device, &history.order).unwrap();
    }
    source.put_alerts(&history.alerts, &[]).unwrap();
    let user = records.iter().find(|r| r.kind() == EntityKind::User).unwrap().key();
    source.put_user_settings(user, Some("{\"columns\":[]}")).unwrap();
    let audit: Vec<_> = history
        .audit
        .iter()
        .map(|e| crate::model::AuditEntry { at: Timestamp::now(), ..e.clone() })
        .collect();
    source.append_audit(&audit).unwrap();
    for op in &history.bulk {
        source.put_bulk_operation(op).unwrap();
    }
    let target = PgStore::connect(&options(pg.database(db))).unwrap();
    let report = super::copy::copy(&source, &target).unwrap();
    assert_eq!(report.revision, records.len() as u64);
    assert_eq!(report.rows["device_logs"], 3);
    assert_eq!(report.rows["audit"], audit.len() as u64);
    // Writing goes on from where the source was.
    assert_eq!(target.apply(&[Write::Put(Record::Site(site(9)))], &[]).unwrap(), records.len() as u64 + 1);
    target.append_audit(&audit[..1]).unwrap();
    assert_eq!(target.audit_page(None, 1, &|_| true).unwrap().entries[0].id, audit.len() as u64 + 1);
    let again = super::copy::copy(&source, &target).unwrap_err().to_string();
    assert!(again.contains("not empty"), "{again}");
}
