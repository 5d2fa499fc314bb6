//! Benchmark of the status history's size (issue 19): `BENCH_DEVICES` (1,000) neOSensors, each
//! sending the firmware's periodic status (spec §5.4) every 30 min for 30 days — 1,440 statuses
//! a device, stored as central's ingestion does (one batch per round, the last statuses and the
//! history in one transaction). Reported: the bytes the store grew by per device, the time per
//! batch, and that the retention holds the count.
//!
//! Run: `cargo bench -p neosens-central --bench history`. Options (environment):
//! `BENCH_DEVICES` (1000), `BENCH_DAYS` (30).

use std::sync::Arc;
use std::time::Instant;

use neosens_central::model::{DeviceStatusRecord, Timestamp};
use neosens_central::registry::{DeviceRow, HistoryConfig, NewBuilding, NewDeviceType, NewRoom, Registry};
use neosens_central::secrets::ServerKeys;
use neosens_central::store::RedbStore;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let devices = env_or("BENCH_DEVICES", 1000) as usize;
    let days = env_or("BENCH_DAYS", 30);
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(ServerKeys::load_or_create(dir.path()).unwrap());
    let registry = Registry::open(Arc::new(RedbStore::open(dir.path()).unwrap()), keys).unwrap();
    registry.set_history(HistoryConfig::default());
    let b = registry
        .create_building(NewBuilding { site: None, name: "U4".into(), description: String::new() })
        .unwrap();
    registry
        .create_room(NewRoom { building: b.id, name: "302".into(), description: String::new(), topic: None })
        .unwrap();
    registry
        .create_device_type(NewDeviceType {
            name: "esp32".into(),
            description: String::new(),
            config_schema: None,
            status_period_s: None,
            outdated_after_s: None,
            orders: None,
            status_rules: Vec::new(),
            payload_layout: None,
        })
        .unwrap();
    let rows: Vec<DeviceRow> = (0..devices)
        .map(|i| DeviceRow {
            uid: format!("24:0a:c4:00:{:02x}:{:02x}", i >> 8, i & 0xff),
            device_type: Some("esp32".into()),
            rooms: Some(vec!["u4/302".into()]),
            ..DeviceRow::default()
        })
        .collect();
    registry.import_devices(&rows, false).unwrap();
    let ids: Vec<_> = rows.iter().map(|r| registry.device_id(&r.uid).unwrap()).collect();
    let file = dir.path().join("central.redb");
    let before = std::fs::metadata(&file).unwrap().len();
    let rounds = days * 48;
    let t0 = Timestamp::now().millis() - i64::try_from(rounds).unwrap() * 1_800_000;
    let started = Instant::now();
    for round in 0..rounds {
        let at = t0 + i64::try_from(round).unwrap() * 1_800_000;
        let batch = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let payload = format!(
                    r#"{{"frequency":1800,"time":"2026-11-05 10:15:02 +0100","status":"running","modules":4,"heap":{},"hardware":"esp32","firmware":231027,"board":"neOSensor","board_rev":1.2,"unitID":"{}"}}"#,
                    160_000 + (round as usize * 7 + i) % 20_000,
                    rows[i].uid
                );
                (*id, DeviceStatusRecord { last_seen: Some(Timestamp(at)), last_status: Some("running".into()), last_payload: Some(payload) })
            })
            .collect();
        registry.put_statuses(batch).unwrap();
        if (round + 1) % 480 == 0 {
            println!(
                "  day {}: {:.1} MB",
                (round + 1) / 48,
                std::fs::metadata(&file).unwrap().len() as f64 / 1e6
            );
        }
    }
    let took = started.elapsed();
    let after = std::fs::metadata(&file).unwrap().len();
    let kept = registry.status_history(&ids[0].to_string(), i64::MIN, i64::MAX, 10_000).unwrap().len();
    println!(
        "{devices} devices × {rounds} statuses ({days} days at one per 30 min): store +{:.1} MB, {:.0} bytes per device ({:.0} per status); {kept} statuses kept per device; {:.2} ms per batch of {devices}",
        (after - before) as f64 / 1e6,
        (after - before) as f64 / devices as f64,
        (after - before) as f64 / (devices as f64 * rounds as f64),
        took.as_secs_f64() * 1e3 / rounds as f64
    );
}
