//! Tests of the cache's own parts: key forms, the bounded log queue, old tables dropped.

use super::*;

fn line(device: u8, n: usize) -> PendingLog {
    PendingLog {
        device: DeviceId::from_bytes([device; 16]),
        received_at_ms: n as i64,
        body: format!("msg={n}").into_bytes(),
        device_addr: "10.0.0.9".into(),
    }
}

#[test]
fn the_mac_key_is_the_canonical_text() {
    for text in ["24:0A:C4:12:34:56", "00:00:00:00:00:00", "FF:FE:0A:B0:C9:1D"] {
        let mac: Mac = text.parse().unwrap();
        assert_eq!((mac_text(mac), mac.to_string()), (text.to_owned(), text.to_owned()));
    }
}

/// One chatty device keeps only its newest lines; all devices together cannot grow the
/// queue past its cap, and what is relayed goes away.
#[test]
fn the_log_queue_is_bounded_per_device_and_in_all() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    for n in 0..MAX_PENDING_LOGS_PER_DEVICE + 20 {
        assert!(cache.queue_log(&line(1, n)).unwrap());
    }
    let held = cache.pending_logs(usize::MAX).unwrap();
    assert_eq!(held.len(), MAX_PENDING_LOGS_PER_DEVICE);
    assert_eq!(held[0].1.received_at_ms, 20, "the oldest went");

    let mut device = 2u8;
    let mut queued = held.len();
    while queued < MAX_PENDING_LOGS {
        for n in 0..MAX_PENDING_LOGS_PER_DEVICE.min(MAX_PENDING_LOGS - queued) {
            assert!(cache.queue_log(&line(device, n)).unwrap());
            queued += 1;
        }
        device += 1;
    }
    assert!(!cache.queue_log(&line(device, 0)).unwrap(), "a full queue refuses a new device's line");
    assert!(cache.queue_log(&line(1, 999)).unwrap(), "a device at its own cap replaces its oldest");
    assert_eq!(cache.pending_logs(usize::MAX).unwrap().len(), MAX_PENDING_LOGS);

    let first: Vec<LogKey> = cache.pending_logs(100).unwrap().into_iter().map(|(k, _)| k).collect();
    cache.drop_logs(&first).unwrap();
    assert_eq!(cache.pending_logs(usize::MAX).unwrap().len(), MAX_PENDING_LOGS - 100);
}

/// The first queue kept devices' passwords: it is deleted when the cache opens.
#[test]
fn the_old_queue_with_credentials_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join("edge.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(PENDING_LOGS_V1).unwrap().insert(1, b"Basic c2VjcmV0".as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let cache = Cache::open(dir.path()).unwrap();
    let txn = cache.db.begin_read().unwrap();
    assert!(txn.open_table(PENDING_LOGS_V1).is_err(), "the table is gone");
}
