//! Data survives a `kill -9` in the middle of a burst of writes: every write the API
//! acknowledged is there after the restart, and the store opens and serves consistently.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::client::ApiClient;
use common::start;
use neosens_runtime::testing::{DEADLINE, raw_http};
use serde_json::json;

fn mac(i: usize) -> String {
    format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256)
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    let b = admin.create_building(json!({"name": "U4"})).expect("building U4");
    let room = admin.create_room(json!({"building": b.id, "name": "302"})).expect("room 302");
    admin.create_device_type(json!({"name": "esp32"})).expect("type esp32");

    // Two writers create devices as fast as they can until the server dies under them.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let (acked, next, room_id, admin) =
                (Arc::clone(&acked), Arc::clone(&next), room.id.clone(), admin.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let body = json!({"uid": mac(i), "type": "esp32", "rooms": [room_id], "description": format!("burst {i}")});
                    match admin.try_create_device(body) {
                        Ok(Ok(_)) => acked.lock().unwrap().push(i),
                        Ok(Err(refused)) => panic!("device {i}: {refused}"),
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
    let admin = ApiClient::admin(addr);
    let page = admin.devices("limit=1000").expect("devices");
    let stored: Vec<String> = page.items.into_iter().map(|d| d.uid).collect();
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
    let room_after = admin.room(&room.id).expect("the room");
    assert_eq!(room_after.devices, stored.len() as u64);
}
