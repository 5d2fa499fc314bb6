//! Tests of the redb store: revisions, reopening, migrations, damaged records.
use super::*;
use crate::model::{DeviceStatusRecord, Site, Timestamp};
use neosens_protocol::ids::SiteId;

fn site(n: u8, slug: &str) -> Site {
    Site { id: SiteId::from_bytes([n; 16]), slug: slug.into(), name: slug.to_uppercase(), is_default: n == 1 }
}

#[test]
fn batches_get_consecutive_revisions_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let rev = store
            .apply(
                &[Write::Put(Record::Site(site(1, "ut3"))), Write::Put(Record::Site(site(2, "albi")))],
                &[],
            )
            .unwrap();
        assert_eq!(rev, 2);
        assert_eq!(store.apply(&[Write::Delete(EntityKind::Site, [2; 16])], &[]).unwrap(), 3);
        assert_eq!(store.apply(&[], &[]).unwrap(), 3);
    }
    let store = RedbStore::open(dir.path()).unwrap();
    let snap = store.load().unwrap();
    assert_eq!(snap.revision, 3);
    assert_eq!(snap.sites, vec![site(1, "ut3")]);
    let changes = store.changes_since(1, 10).unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!((changes[0].revision, changes[0].deleted), (2, false));
    assert_eq!((changes[1].revision, changes[1].deleted, changes[1].key), (3, true, [2; 16]));
    assert_eq!(store.changes_since(0, 1).unwrap().len(), 1);
    assert!(store.changes_since(3, 10).unwrap().is_empty());
}

#[test]
fn statuses_and_logs_are_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let status = DeviceStatusRecord {
        last_seen: Some(Timestamp(5)),
        last_status: Some("running".into()),
        last_payload: Some("{}".into()),
    };
    store.put_statuses(&[([7; 16], status.clone())], &[]).unwrap();
    let snap = store.load().unwrap();
    assert_eq!(snap.statuses, vec![([7; 16], status)]);
    assert_eq!(snap.revision, 0, "statuses do not enter the change log");

    for i in 0..3 {
        let record =
            neosens_protocol::legacy::LogRecord { msg: Some(format!("line {i}")), ..Default::default() };
        let entry = DeviceLogEntry {
            device: [7; 16],
            received_at: Timestamp(i),
            remote_addr: "10.0.0.1".into(),
            record,
        };
        store.append_device_log(&entry).unwrap();
    }
    let other = DeviceLogEntry {
        device: [8; 16],
        received_at: Timestamp(9),
        remote_addr: "x".into(),
        record: Default::default(),
    };
    store.append_device_log(&other).unwrap();
    let logs = store.device_logs([7; 16], 2).unwrap();
    assert_eq!(logs.iter().map(|l| l.record.msg.clone().unwrap()).collect::<Vec<_>>(), ["line 2", "line 1"]);
}

/// A device that logs without end keeps only its newest lines; its neighbours keep theirs.
#[test]
fn device_logs_are_capped_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let line = |device: u8, i: usize| DeviceLogEntry {
        device: [device; 16],
        received_at: Timestamp(i as i64),
        remote_addr: "10.0.0.1".into(),
        record: neosens_protocol::legacy::LogRecord { msg: Some(format!("line {i}")), ..Default::default() },
    };
    store.append_device_log(&line(8, 0)).unwrap();
    let flood = crate::store::MAX_LOGS_PER_DEVICE + 50;
    for i in 0..flood {
        store.append_device_log(&line(7, i)).unwrap();
    }
    let kept = store.device_logs([7; 16], usize::MAX).unwrap();
    assert_eq!(kept.len(), crate::store::MAX_LOGS_PER_DEVICE);
    assert_eq!(kept[0].record.msg.as_deref(), Some(format!("line {}", flood - 1).as_str()), "newest kept");
    assert_eq!(store.device_logs([8; 16], usize::MAX).unwrap().len(), 1, "another device's line stays");
}

#[test]
fn version_1_device_types_are_migrated_to_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = crate::model::DeviceTypeV1 {
        id: neosens_protocol::ids::DeviceTypeId::from_bytes([4; 16]),
        name: "esp32".into(),
        description: String::new(),
        config_schema: None,
        status_period_s: 1800,
        outdated_after_s: 3600,
    };
    {
        // A store as version 1 left it.
        let db = Database::create(dir.path().join("central.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(META_SCHEMA, 1).unwrap();
            meta.insert(META_REVISION, 1).unwrap();
            meta.insert(META_LOG_SEQ, 0).unwrap();
            txn.open_table(DEVICE_TYPES).unwrap().insert([4; 16], encode(&v1).unwrap().as_slice()).unwrap();
            let gateway = crate::model::GatewayV2 {
                id: neosens_protocol::ids::GatewayId::from_bytes([5; 16]),
                name: "gw-u4".into(),
                scope: crate::model::GatewayScope::Buildings(vec![]),
                created_at: Timestamp(1),
            };
            txn.open_table(GATEWAYS).unwrap().insert([5; 16], encode(&gateway).unwrap().as_slice()).unwrap();
            for t in [SITES, BUILDINGS, ROOMS, DEVICES, USERS, TOKENS, STATUSES] {
                txn.open_table(t).unwrap();
            }
            txn.open_table(CHANGELOG).unwrap();
            txn.open_table(DEVICE_LOGS).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let snap = store.load().unwrap();
    assert_eq!(snap.device_types.len(), 1);
    let t = &snap.device_types[0];
    assert_eq!((t.name.as_str(), t.outdated_after_s), ("esp32", 3600));
    assert_eq!(t.orders, crate::model::firmware_orders());
    assert!(t.status_rules.is_empty());
    assert_eq!(snap.gateways.len(), 1);
    assert_eq!((snap.gateways[0].name.as_str(), &snap.gateways[0].credentials), ("gw-u4", &None));
    assert!(store.device_orders([1; 16], 10).unwrap().is_empty(), "the order table exists");
    assert!(store.alerts().unwrap().is_empty(), "the alert table exists");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        let txn = store.db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(META_SCHEMA, 99).unwrap();
        txn.commit().unwrap();
    }
    let err = RedbStore::open(dir.path()).err().unwrap();
    assert!(matches!(err, StoreError::TooNew { found: 99, supported: SCHEMA_VERSION }), "{err}");
}

#[test]
fn a_damaged_record_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let txn = store.db.begin_write().unwrap();
    txn.open_table(SITES).unwrap().insert([1; 16], &[0xff, 0xff, 0xff][..]).unwrap();
    txn.commit().unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { kind: EntityKind::Site, .. }), "{err}");
}

/// Version 4 devices (before OTAA credentials) are read and re-encoded by the step to 5: their
/// sessions kept, no credentials.
#[test]
fn version_4_devices_are_migrated_to_the_current_schema() {
    use neosens_protocol::ids::{DevAddr, DeviceId, DeviceTypeId};
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    let sealed = |b: u8| neosens_protocol::sync::Sealed { nonce: [b; 12], ciphertext: vec![b; 3] };
    let v3 = crate::model::DeviceV3 {
        id: DeviceId::from_bytes([6; 16]),
        uid: neosens_protocol::DeviceUid::Lorawan(neosens_protocol::DevEui::from_be_bytes([
            0x70, 0xb3, 0, 0, 0, 0, 0, 6,
        ])),
        device_type: DeviceTypeId::from_bytes([4; 16]),
        description: "node".into(),
        rooms: vec![],
        enabled: true,
        config: "[]".into(),
        mqtt: None,
        login: "lora_6".into(),
        secret: crate::model::DeviceSecret { hash: [1; 32], sealed: sealed(2) },
        credentials_delivered: true,
        outdated_after_s: None,
        created_at: Timestamp(1),
        updated_at: Timestamp(2),
        lorawan: Some(crate::model::LorawanSession {
            dev_addr: DevAddr::from_be_bytes([0x26, 0, 0, 6]),
            nwk_s_key: sealed(3),
            app_s_key: sealed(4),
            f_cnt_up: 9,
            relax_f_cnt: false,
            codec: crate::model::Codec::Hex,
        }),
    };
    {
        let db = Database::create(dir.path().join("central.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            txn.open_table(META).unwrap().insert(META_SCHEMA, 4).unwrap();
            txn.open_table(DEVICES).unwrap().insert([6; 16], encode(&v3).unwrap().as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let snap = store.load().unwrap();
    assert_eq!(snap.devices.len(), 1);
    let d = &snap.devices[0];
    assert_eq!(
        (d.login.as_str(), d.lorawan.as_ref().map(|l| l.f_cnt_up), &d.otaa),
        ("lora_6", Some(9), &None)
    );
}

/// Version 7 users and tokens (before rights per site) are re-encoded by the step to 8, with the
/// whole campus as their reach, as before.
#[test]
fn version_7_users_and_tokens_are_migrated_campus_wide() {
    use crate::model::{ApiTokenV7, Role, TokenId, UserId, UserV7};
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    let user = UserV7 {
        id: UserId(uuid::Uuid::from_bytes([5; 16])),
        username: "alice".into(),
        password_hash: "$argon2id$x".into(),
        role: Role::Operator,
        created_at: Timestamp(1),
    };
    let token = ApiTokenV7 {
        id: TokenId(uuid::Uuid::from_bytes([7; 16])),
        name: "ci".into(),
        role: Role::Viewer,
        hash: [1; 32],
        created_at: Timestamp(2),
    };
    {
        let db = Database::create(dir.path().join("central.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            txn.open_table(META).unwrap().insert(META_SCHEMA, 7).unwrap();
            txn.open_table(USERS).unwrap().insert([5; 16], encode(&user).unwrap().as_slice()).unwrap();
            txn.open_table(TOKENS).unwrap().insert([7; 16], encode(&token).unwrap().as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = RedbStore::open(dir.path()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let snap = store.load().unwrap();
    assert_eq!((snap.users[0].username.as_str(), snap.users[0].role), ("alice", Role::Operator));
    assert!(snap.users[0].scope().is_campus() && snap.tokens[0].sites.is_empty());
}
