//! A slow disk must not stall central: with one async worker (the worst case) and every commit
//! taking 1.5 s, `/healthz` and the broker-auth answers Mosquitto waits on keep coming while
//! device updates queue for the disk. Before storage work moved to the blocking pool, each of
//! them waited for the commit in progress on the worker.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::client::wire::BrokerAnswer;
use common::client::{ApiClient, parse_raw};
use common::{ADMIN, LOGIN, MAC, first_password, register_example};
use neosens_central::audit::AuditRetention;
use neosens_central::model::{
    AlertRecord, AuditEntry, BulkOperation, Campaign, DeviceStatusRecord, FirmwareImage, OrderRecord,
    RevisionCount,
};
use neosens_central::store::{
    AlertStore, AuditPage, AuditStore, BulkStore, CampaignProgress, ChangeEntry, CommitSnapshot,
    DeviceHistory, DeviceLogEntry, FirmwareStore, RedbStore, RegistryStore, SettingsStore, Snapshot,
    StatusHistoryEntry, StatusHistoryStore, StoreError, StoreStats, Write,
};
use neosens_runtime::testing::raw_http;
use serde_json::json;

/// The commit time of the slow disk (a tired SD card, a saturated SAN).
const COMMIT: Duration = Duration::from_millis(1500);
/// Far below one commit: an answer that waited for the disk cannot come in under it.
const ANSWER_BOUND: Duration = Duration::from_millis(500);

/// The embedded store, with commits made slow on demand; counts the commits in progress.
struct SlowStore {
    inner: RedbStore,
    delay_ms: Arc<AtomicU64>,
    committing: Arc<AtomicU64>,
}

impl SlowStore {
    fn slow<T>(&self, commit: impl FnOnce() -> T) -> T {
        self.committing.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
        let out = commit();
        self.committing.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

impl RegistryStore for SlowStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.inner.load()
    }
    fn apply(&self, writes: &[Write], audit: &[AuditEntry]) -> Result<u64, StoreError> {
        self.slow(|| self.inner.apply(writes, audit))
    }
    fn put_statuses(
        &self,
        statuses: &[([u8; 16], DeviceStatusRecord)],
        history: &[StatusHistoryEntry],
    ) -> Result<(), StoreError> {
        self.slow(|| self.inner.put_statuses(statuses, history))
    }
    fn changes_since(&self, revision: u64, limit: usize) -> Result<Vec<ChangeEntry>, StoreError> {
        self.inner.changes_since(revision, limit)
    }
    fn apply_at(&self, expected: u64, writes: &[Write], audit: &[AuditEntry]) -> Result<u64, StoreError> {
        self.slow(|| self.inner.apply_at(expected, writes, audit))
    }
    fn records(
        &self,
        keys: &[(neosens_central::model::EntityKind, [u8; 16])],
    ) -> Result<Vec<neosens_central::model::Record>, StoreError> {
        self.inner.records(keys)
    }
    fn changed_since(&self, revision: u64) -> Result<neosens_central::store::CaughtUp, StoreError> {
        self.inner.changed_since(revision)
    }
    fn listen(&self) -> Result<Option<Box<dyn neosens_central::store::ChangeListener>>, StoreError> {
        self.inner.listen()
    }
}

impl DeviceHistory for SlowStore {
    fn append_device_log(&self, entry: &DeviceLogEntry) -> Result<(), StoreError> {
        self.slow(|| self.inner.append_device_log(entry))
    }
    fn device_logs(&self, device: [u8; 16], limit: usize) -> Result<Vec<DeviceLogEntry>, StoreError> {
        self.inner.device_logs(device, limit)
    }
    fn append_order(&self, device: [u8; 16], order: &OrderRecord) -> Result<(), StoreError> {
        self.slow(|| self.inner.append_order(device, order))
    }
    fn device_orders(&self, device: [u8; 16], limit: usize) -> Result<Vec<OrderRecord>, StoreError> {
        self.inner.device_orders(device, limit)
    }
}

impl AlertStore for SlowStore {
    fn put_alerts(&self, alerts: &[AlertRecord], forget: &[u64]) -> Result<(), StoreError> {
        self.slow(|| self.inner.put_alerts(alerts, forget))
    }
    fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        self.inner.alerts()
    }
}

impl SettingsStore for SlowStore {
    fn user_settings(&self, user: [u8; 16]) -> Result<Option<String>, StoreError> {
        self.inner.user_settings(user)
    }
    fn put_user_settings(&self, user: [u8; 16], settings: Option<&str>) -> Result<(), StoreError> {
        self.slow(|| self.inner.put_user_settings(user, settings))
    }
}

impl FirmwareStore for SlowStore {
    fn firmware_images(&self) -> Result<Vec<FirmwareImage>, StoreError> {
        self.inner.firmware_images()
    }
    fn put_firmware_image(&self, image: &FirmwareImage) -> Result<(), StoreError> {
        self.slow(|| self.inner.put_firmware_image(image))
    }
    fn delete_firmware_image(&self, sha256: [u8; 32]) -> Result<(), StoreError> {
        self.slow(|| self.inner.delete_firmware_image(sha256))
    }
    fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.inner.campaigns()
    }
    fn put_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        self.slow(|| self.inner.put_campaign(campaign))
    }
    fn campaign_progress(&self) -> Result<Vec<CampaignProgress>, StoreError> {
        self.inner.campaign_progress()
    }
    fn put_campaign_progress(&self, progress: &[CampaignProgress]) -> Result<(), StoreError> {
        self.slow(|| self.inner.put_campaign_progress(progress))
    }
    fn firmware_census(&self) -> Result<Vec<(i64, Vec<RevisionCount>)>, StoreError> {
        self.inner.firmware_census()
    }
    fn put_firmware_census(
        &self,
        at: i64,
        counts: &[RevisionCount],
        forget_before: i64,
    ) -> Result<(), StoreError> {
        self.slow(|| self.inner.put_firmware_census(at, counts, forget_before))
    }
}

impl AuditStore for SlowStore {
    fn set_audit_retention(&self, retention: AuditRetention) {
        self.inner.set_audit_retention(retention);
    }
    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        self.slow(|| self.inner.append_audit(entries))
    }
    fn last_audit_id(&self) -> Result<u64, StoreError> {
        self.inner.last_audit_id()
    }
    fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: &dyn Fn(&AuditEntry) -> bool,
    ) -> Result<AuditPage, StoreError> {
        self.inner.audit_page(before, limit, keep)
    }
}

impl BulkStore for SlowStore {
    fn bulk_operations(&self) -> Result<Vec<BulkOperation>, StoreError> {
        self.inner.bulk_operations()
    }
    fn put_bulk_operation(&self, operation: &BulkOperation) -> Result<(), StoreError> {
        self.slow(|| self.inner.put_bulk_operation(operation))
    }
}

impl StatusHistoryStore for SlowStore {
    fn status_history(
        &self,
        device: [u8; 16],
        since_ms: i64,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        self.inner.status_history(device, since_ms, before_ms, limit)
    }
}

impl neosens_central::store::SessionStore for SlowStore {}

impl StoreStats for SlowStore {
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }
    fn commit_times(&self) -> Option<CommitSnapshot> {
        self.inner.commit_times()
    }
}

/// Polls `done` until it holds or 20 s pass.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn health_and_broker_auth_answer_while_the_disk_is_slow() {
    let dir = tempfile::tempdir().unwrap();
    let (delay_ms, committing) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let store = SlowStore {
        inner: RedbStore::open(dir.path()).unwrap(),
        delay_ms: Arc::clone(&delay_ms),
        committing: Arc::clone(&committing),
    };
    let mut config = neosens_central::Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.auth.admin_token = Some(ADMIN.into());
    config.mqtt.embedded_bind = "127.0.0.1:0".parse().unwrap();
    // One async worker: whatever blocks it stalls every connection.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server =
        runtime.spawn(neosens_central::run_on(Arc::new(config), Arc::new(store), listener, shutdown.clone()));
    wait_for("central to answer", || {
        std::net::TcpStream::connect(addr).is_ok()
            && raw_http(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status == 200
    });
    let (_, device) = register_example(addr);
    let password = first_password(addr, MAC);

    // The disk turns slow; operators keep editing the device (each edit one 1.5 s commit).
    delay_ms.store(COMMIT.as_millis() as u64, Ordering::SeqCst);
    let writers: Vec<_> = (0..3)
        .map(|i| {
            let (admin, device) = (ApiClient::admin(addr), device.clone());
            std::thread::spawn(move || {
                let edited = admin.patch_device(&device, json!({"description": format!("edit {i}")}));
                edited.map(|_| ())
            })
        })
        .collect();
    wait_for("a commit in progress", || committing.load(Ordering::SeqCst) > 0);

    let auth =
        json!({"username": LOGIN, "password": password, "clientid": "neOSensor_3456_8f1c"}).to_string();
    let auth_request = format!(
        "POST /mqtt/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{auth}",
        auth.len()
    );
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(raw_http(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
        let answer = raw_http(addr, auth_request.as_bytes());
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(parse_raw::<BrokerAnswer>("/mqtt/auth", &answer).ok, "{}", answer.text());
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        committing.load(Ordering::SeqCst) > 0,
        "the answers were measured while commits were still in progress"
    );
    assert!(slowest < ANSWER_BOUND, "health + broker auth took {slowest:?} behind a {COMMIT:?} commit");

    // The edits were not lost: each one landed, in turn.
    for writer in writers {
        writer.join().unwrap().expect("the edit landed");
    }
    shutdown.cancel();
    runtime.block_on(server).unwrap().unwrap();
}
