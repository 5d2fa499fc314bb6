//! A firmware campaign over 30 simulated neOSensors, end to end with the real binaries and a
//! real Mosquitto: 20 boards talk to central, 10 sit behind a remote site's gateway whose link
//! to central is cut during the rollout. The image is uploaded; a 3-wave campaign starts; the
//! boards outside the started wave are told "no update" at boot; the canary wave is done; the
//! later waves go out as `upgrade` orders; the gateway's boards update from its cache, with
//! exactly one download of the image from central; then a failing image halts its campaign by
//! itself.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use neosens_runtime::testing::{
    Mosquitto, ServiceProcess, free_port, http_get, http_json, raw_http, updater, wait_until,
};
use neosens_sim_device::ota::sim_image;
use neosens_sim_device::register::mac;
use serde_json::{Value, json};

const SIM: &str = env!("CARGO_BIN_EXE_sim-device");
const ADMIN: &str = "sim-test-admin-token-0123456789";

fn binary(name: &str) -> PathBuf {
    let bin = Path::new(SIM).with_file_name(name);
    assert!(bin.exists(), "{} not found: run the workspace tests (cargo test --workspace)", bin.display());
    bin
}

struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP link from the gateway to central that the test can cut (the site's WAN).
struct Wan {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Wan {
    fn to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, open) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (c, o) = (Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the gateway sees its connection closed
                }
                let Ok(server) = TcpStream::connect(target) else { continue };
                let mut streams = o.lock().unwrap();
                streams.push(client.try_clone().unwrap());
                streams.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Wan { addr, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_json(addr, method, path, Some(ADMIN), body.as_ref())
}

fn metric(addr: SocketAddr, line_start: &str) -> f64 {
    let text = raw_http(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").text();
    text.lines().find_map(|l| l.strip_prefix(line_start).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

fn upload(addr: SocketAddr, revision: u64, content: &[u8]) -> String {
    let query = format!("hardware=esp32&board=neOSensor&revision={revision}");
    let answer = raw_http(addr, &updater::upload(&query, ADMIN, content));
    assert_eq!(answer.status, 201, "{}", answer.text());
    serde_json::from_slice::<Value>(&answer.body).unwrap()["sha256"].as_str().unwrap().to_owned()
}

fn campaign(addr: SocketAddr, id: u64) -> Value {
    api(addr, "GET", &format!("/api/v1/campaigns/{id}"), None).1
}

fn sim(central: &str, images: &str, mqtt: SocketAddr, first: u32, state: &Path) -> Sim {
    Sim(Command::new(SIM)
        .args(["--central", central, "--images", images, "--mqtt", &mqtt.to_string()])
        .args(["--first", &first.to_string(), "--count", if first == 0 { "20" } else { "10" }])
        .args(["--pace", "fast", "--period-ms", "500", "--ramp-s", "1"])
        .arg("--state")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap())
}

#[test]
fn a_campaign_rolls_out_in_waves_through_central_and_a_cut_off_gateway_and_a_bad_image_halts() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start("");
    let mut env: HashMap<String, String> =
        neosens_runtime::testing::postgres::central_store_env(&dir.path().join("central"))
            .into_iter()
            .collect();
    env.extend([
        ("NEOSENS_HTTP_BIND".to_owned(), format!("127.0.0.1:{}", free_port())),
        ("NEOSENS_DATA_DIR".to_owned(), dir.path().join("central").to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        ("NEOSENS_MQTT_URL".to_owned(), mosquitto.url()),
    ]);
    let central = ServiceProcess::spawn(&binary("neosens-central"), &[], &env);
    let c = central.addr("http");

    // Two buildings: 20 boards in A (through central), 10 in B (through B's gateway).
    let (_, t) = api(c, "POST", "/api/v1/device-types", Some(json!({"name": "esp32"})));
    assert!(t["id"].is_string(), "{t}");
    let mut rooms = Vec::new();
    for name in ["A", "B"] {
        let (_, b) = api(c, "POST", "/api/v1/buildings", Some(json!({"name": name})));
        let (_, r) = api(c, "POST", "/api/v1/rooms", Some(json!({"building": b["id"], "name": "101"})));
        rooms.push((b["id"].as_str().unwrap().to_owned(), r["id"].as_str().unwrap().to_owned()));
    }
    for n in 0..30 {
        let room = &rooms[usize::from(n >= 20)].1;
        let (s, d) = api(
            c,
            "POST",
            "/api/v1/devices",
            Some(json!({"uid": format!("{:x}", mac(n)), "type": "esp32", "rooms": [room]})),
        );
        assert_eq!(s, 201, "{d}");
    }

    // The gateway of building B, reaching central through a WAN the test can cut.
    let wan = Wan::to(c);
    let (_, gw) = api(
        c,
        "POST",
        "/api/v1/gateways",
        Some(json!({"name": "gw-b", "scope": {"buildings": [rooms[1].0]}})),
    );
    let (_, token) =
        api(c, "POST", &format!("/api/v1/gateways/{}/enrolment", gw["id"].as_str().unwrap()), None);
    let edge_dir = dir.path().join("edge");
    let out = Command::new(binary("neosens-edge"))
        .args([
            "enroll",
            "--central",
            &format!("http://{}", wan.addr),
            "--token",
            token["token"].as_str().unwrap(),
            "--insecure",
        ])
        .env("NEOSENS_EDGE_DATA_DIR", &edge_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = edge_dir.join("edge.toml");
    std::fs::write(&config, "[central]\ntimeout_ms = 500\nsync_wait_s = 2\n[firmware]\npoll_s = 1\n")
        .unwrap();
    let edge_env = HashMap::from([
        ("NEOSENS_EDGE_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_EDGE_UDP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_EDGE_DATA_DIR".to_owned(), edge_dir.to_string_lossy().into_owned()),
        ("NEOSENS_EDGE_MQTT_URL".to_owned(), mosquitto.url()),
    ]);
    let edge =
        ServiceProcess::spawn(&binary("neosens-edge"), &["--config", config.to_str().unwrap()], &edge_env);
    let e = edge.addr("http");

    // The image and a campaign in three waves (3, 15, then 30 boards).
    let good = upload(c, 240101, &sim_image(150_000, false).unwrap());
    let (s, first) = api(
        c,
        "POST",
        "/api/v1/campaigns",
        Some(json!({"name": "spring", "image": good, "target": {"type": "esp32"},
        "waves": [{"until_percent": 10}, {"until_percent": 50}, {"until_percent": 100}]})),
    );
    assert_eq!(s, 201, "{first}");
    let id = first["id"].as_u64().unwrap();
    wait_until("the gateway cached the image ahead of its waves", || {
        metric(e, "neosens_edge_firmware_images ") == 1.0
    });

    // The boards boot: the canary wave updates, the others are told "no update".
    let _a =
        sim(&format!("http://{c}"), &format!("http://{c}"), mosquitto.addr(), 0, &dir.path().join("a.json"));
    let _b =
        sim(&format!("http://{e}"), &format!("http://{e}"), mosquitto.addr(), 20, &dir.path().join("b.json"));
    wait_until("the canary wave is done", || campaign(c, id)["waves"][0]["progress"]["done"] == 3);
    wait_until("the 27 other boards were told no update at boot", || {
        let central_said =
            metric(c, "neosens_provisioning_requests_total{path=\"firmware_image\",outcome=\"no_update\"}");
        central_said + metric(e, "neosens_edge_firmware_no_update_total ") >= 27.0
    });
    assert_eq!(campaign(c, id)["progress"]["done"], 3, "nobody outside the canary wave updated");

    // The next waves by hand; once the gateway serves them, its WAN is cut.
    for _ in 0..2 {
        let (s, v) =
            api(c, "POST", &format!("/api/v1/campaigns/{id}/actions"), Some(json!({"action": "advance"})));
        assert_eq!(s, 200, "{v}");
    }
    wait_until("the gateway knows its 10 boards are in started waves", || {
        metric(e, "neosens_edge_firmware_devices ") == 10.0
    });
    wan.cut();
    wait_until("every board runs the new image; the campaign finished", || {
        let now = campaign(c, id);
        now["state"] == "finished" && now["progress"]["done"] == 30
    });
    assert_eq!(
        metric(c, "neosens_firmware_gateway_downloads_total "),
        1.0,
        "one copy of the image for the site"
    );
    assert!(
        metric(e, "neosens_edge_firmware_served_total ") >= 10.0,
        "the site's boards updated from the gateway"
    );
    let (_, b_board) = api(c, "GET", &format!("/api/v1/devices/{:x}", mac(25)), None);
    assert_eq!(b_board["last_payload"]["firmware"], 240101, "{b_board}");
    wan.restore();

    // A failing image: its canary boards roll back, the campaign halts by itself.
    let bad = upload(c, 240102, &sim_image(150_000, true).unwrap());
    let (s, second) = api(
        c,
        "POST",
        "/api/v1/campaigns",
        Some(json!({"name": "bad", "image": bad, "target": {"type": "esp32"},
        "waves": [{"until_percent": 10}, {"until_percent": 100}], "failure_threshold_percent": 20})),
    );
    assert_eq!(s, 201, "{second}");
    let bad_id = second["id"].as_u64().unwrap();
    wait_until("the failing campaign halted by itself", || campaign(c, bad_id)["state"] == "halted");
    let halted = campaign(c, bad_id);
    let last = halted["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["by"], "schedule", "{halted}");
    assert!(last["what"].as_str().unwrap().starts_with("halted: "), "{last}");
    assert_eq!(halted["waves"][1]["started_at"], Value::Null, "the second wave never started");
    assert_eq!(halted["progress"]["done"], 0, "{halted}");
    let (_, failed) = api(c, "GET", &format!("/api/v1/campaigns/{bad_id}/devices?stage=failed"), None);
    assert!(failed["total"].as_u64().unwrap() >= 1, "{failed}");
    assert_eq!(failed["items"][0]["stage"], "failed_old_revision", "{failed}");
    assert_eq!(
        http_get(c, "/images/esp32/neOSensor/default.json").status,
        404,
        "a halted campaign is not offered"
    );
}
