//! Data survives a `kill -9` in the middle of a burst of writes: every write the API
//! acknowledged is there after the restart, and the store opens and serves consistently.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ADMIN, start};
use neosens_runtime::testing::{DEADLINE, http_json, raw_http, try_http_json};
use serde_json::json;

fn mac(i: usize) -> String {
    format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut central = start(dir.path());
    let addr = central.addr("http");
    let (_, b) = http_json(addr, "POST", "/api/v1/buildings", Some(ADMIN), Some(&json!({"name": "U4"})));
    let (_, room) = http_json(
        addr,
        "POST",
        "/api/v1/rooms",
        Some(ADMIN),
        Some(&json!({"building": b["id"], "name": "302"})),
    );
    http_json(addr, "POST", "/api/v1/device-types", Some(ADMIN), Some(&json!({"name": "esp32"})));

    // Two writers create devices as fast as they can until the server dies under them.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (acked, next, room_id) = (Arc::clone(&acked), Arc::clone(&next), room["id"].clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let body = json!({"uid": mac(i), "type": "esp32", "rooms": [room_id], "description": format!("burst {i}")});
                    match try_http_json(addr, "POST", "/api/v1/devices", Some(ADMIN), Some(&body)) {
                        Ok((201, _)) => acked.lock().unwrap().push(i),
                        Ok((status, body)) => panic!("device {i}: {status} {body}"),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    while acked.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "writers too slow");
        std::thread::park_timeout(Duration::from_millis(2));
    }
    central.signal_and_wait("KILL");
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let attempted = next.load(Ordering::SeqCst);

    let central = start(dir.path());
    let addr = central.addr("http");
    let (status, page) = http_json(addr, "GET", "/api/v1/devices?limit=1000", Some(ADMIN), None);
    assert_eq!(status, 200);
    let stored: Vec<String> =
        page["items"].as_array().unwrap().iter().map(|d| d["uid"].as_str().unwrap().to_owned()).collect();
    for i in &acked {
        assert!(
            stored.contains(&mac(*i).to_uppercase()),
            "acknowledged device {} lost after kill -9",
            mac(*i)
        );
    }
    assert!(stored.len() <= attempted, "{} stored, {attempted} attempted", stored.len());
    // Indexes were rebuilt consistently: every stored device answers on the legacy path.
    for uid in &stored {
        let r = raw_http(
            addr,
            format!("GET /device/credentials?mac={uid} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 200, "{uid}");
    }
    let (_, room_after) =
        http_json(addr, "GET", &format!("/api/v1/rooms/{}", room["id"].as_str().unwrap()), Some(ADMIN), None);
    assert_eq!(room_after["devices"].as_u64(), Some(stored.len() as u64));
}
