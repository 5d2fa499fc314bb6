//! A remote site in local-broker mode, end to end with real binaries and two real Mosquittos:
//! `neosens-central` and its broker; a gateway (`neosens-edge`) whose own Mosquitto serves the
//! site, bridged to central's broker through a WAN link the test can cut; a simulated neOSensor
//! provisioned through the gateway.
//!
//! - The device is given the gateway's broker in `/device/credentials` and reports through it.
//! - An order sent through central's API reaches the device through the bridge.
//! - With the WAN cut, the device's statuses wait on the gateway; once it is back, every one
//!   reaches central's broker, in order, exactly once, and no outage alert is raised.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use neosens_protocol::legacy::FirmwareStatus;
use neosens_runtime::testing::{
    Mosquitto, MqttWitness, ServiceProcess, TcpLink, free_port, http_json, wait_until,
};
use serde_json::{Value, json};

const SIM: &str = env!("CARGO_BIN_EXE_sim-device");
const ADMIN: &str = "sim-test-admin-token-0123456789";
const MAC: &str = "02:5e:00:00:00:00";
/// A device registered later.
const SECOND: &str = "02:5e:00:00:00:01";
/// Statuses published during the outage.
const DURING_OUTAGE: u32 = 40;

/// A binary built next to this one by `cargo test --workspace`.
fn sibling(name: &str) -> PathBuf {
    let bin = Path::new(SIM).with_file_name(name);
    assert!(bin.exists(), "{} not found: run the workspace tests (cargo test --workspace)", bin.display());
    bin
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pid in the gateway's Mosquitto's `pid_file`, if it names a running Mosquitto.
fn local_broker_pid(pid_file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let command = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&command).contains("mosquitto").then_some(pid)
}

/// Stops the gateway's Mosquitto when the test ends, however it ends: an agent killed outright
/// (a failed assertion drops it) cannot stop its child, which would outlive the test.
struct LocalBrokerStopped(PathBuf);

impl Drop for LocalBrokerStopped {
    fn drop(&mut self) {
        if let Some(pid) = local_broker_pid(&self.0) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_json(addr, method, path, Some(ADMIN), body.as_ref())
}

fn created(addr: SocketAddr, path: &str, body: Value) -> Value {
    let (status, v) = api(addr, "POST", path, Some(body));
    assert_eq!(status, 201, "POST {path}: {v}");
    v
}

fn device(addr: SocketAddr) -> Value {
    api(addr, "GET", &format!("/api/v1/devices/{MAC}"), None).1
}

/// Central on its own Mosquitto, with one building, one room and the simulated device, and a
/// gateway of that building in local-broker mode (its broker on `local_port`), enrolled:
/// `(central, its address, the gateway's data directory)`.
fn central_and_gateway(
    dir: &Path,
    broker: &Mosquitto,
    local_port: u16,
) -> (ServiceProcess, SocketAddr, PathBuf) {
    let data = dir.join("central");
    let mut env: HashMap<String, String> =
        neosens_runtime::testing::postgres::central_store_env(&data).into_iter().collect();
    env.extend([
        ("NEOSENS_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_DATA_DIR".to_owned(), data.to_string_lossy().into_owned()),
        ("NEOSENS_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
        ("NEOSENS_MQTT_URL".to_owned(), broker.url()),
        ("NEOSENS_EMBEDDED_MQTT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
    ]);
    let central = ServiceProcess::spawn(&sibling("neosens-central"), &[], &env);
    let addr = central.addr("http");
    let building = created(addr, "/api/v1/buildings", json!({"name": "Carcassonne"}));
    let room = created(addr, "/api/v1/rooms", json!({"building": building["id"], "name": "101"}));
    created(addr, "/api/v1/device-types", json!({"name": "esp32"}));
    created(addr, "/api/v1/devices", json!({"uid": MAC, "type": "esp32", "rooms": [room["id"]]}));
    let gateway = created(
        addr,
        "/api/v1/gateways",
        json!({"name": "carcassonne-gw", "scope": {"buildings": [building["id"]]},
               "local_broker": {"host": "127.0.0.1", "port": local_port}}),
    );
    assert_eq!(gateway["local_broker"]["port"], local_port, "{gateway}");
    let token =
        created(addr, &format!("/api/v1/gateways/{}/enrolment", gateway["id"].as_str().unwrap()), json!({}));
    let gw_data = dir.join("gateway");
    let out = Command::new(sibling("neosens-edge"))
        .args(["enroll", "--central", &format!("http://{addr}"), "--insecure"])
        .args(["--token", token["token"].as_str().unwrap()])
        .env("NEOSENS_EDGE_DATA_DIR", &gw_data)
        .output()
        .unwrap();
    assert!(out.status.success(), "enrol: {}", String::from_utf8_lossy(&out.stderr));
    (central, addr, gw_data)
}

/// The simulated device's stored credentials (its "flash").
fn stored(state: &Path) -> Value {
    let text = std::fs::read_to_string(state).unwrap_or_default();
    serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)[MAC].clone()
}

/// A status in the firmware's format, sent now, whose `heap` numbers it (the simulator's are
/// 160,000 and more).
fn numbered_status(n: u32) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    FirmwareStatus {
        frequency: 1800,
        time: time::OffsetDateTime::now_utc().format(&format).unwrap(),
        status: "running".into(),
        modules: 3,
        heap: n,
        hardware: "esp32".into(),
        firmware: 231027,
        board: "neOSensor".into(),
        board_rev: 1.2,
        unit_id: MAC.into(),
    }
    .to_json()
}

/// The device's MQTT connection, as the firmware makes it (QoS 0, its login).
fn device_client(port: u16, login: &str, password: &str) -> rumqttc::Client {
    let mut options = rumqttc::MqttOptions::new("neOSensor_test_numbered", "127.0.0.1", port);
    options.set_credentials(login, password);
    options.set_keep_alive(Duration::from_secs(60));
    let (client, mut connection) = rumqttc::Client::new(options, 100);
    std::thread::spawn(move || {
        for event in connection.iter() {
            if event.is_err() {
                std::thread::park_timeout(Duration::from_millis(100));
            }
        }
    });
    client
}

#[test]
fn a_remote_site_keeps_every_status_through_a_wan_outage() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start("");
    let wan = TcpLink::start(broker.addr());
    let local_port = free_port();
    let (_central, central, gw_data) = central_and_gateway(dir.path(), &broker, local_port);
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        format!("[local_broker]\nlisten = \"127.0.0.1:{local_port}\"\nmosquitto = \"mosquitto\"\nautosave_interval_s = 1\n"),
    )
    .unwrap();
    let env = HashMap::from([
        ("NEOSENS_EDGE_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("NEOSENS_EDGE_DATA_DIR".to_owned(), gw_data.to_string_lossy().into_owned()),
        ("NEOSENS_EDGE_MQTT_URL".to_owned(), format!("mqtt://{}", wan.addr())),
    ]);
    let pid_file = gw_data.join("broker/mosquitto.pid");
    let _local_broker = LocalBrokerStopped(pid_file.clone());
    let mut edge =
        ServiceProcess::spawn(&sibling("neosens-edge"), &["--config", config.to_str().unwrap()], &env);
    wait_until_or_logs(&edge, "the gateway's local broker listening", || {
        TcpStream::connect(("127.0.0.1", local_port)).is_ok()
    });
    let witness = MqttWitness::subscribe(broker.addr(), "#");

    // The device provisions through the gateway (its default broker a dead port: only the one
    // the credentials name works) and reports through the local broker and the bridge.
    let state = dir.path().join("sim-state.json");
    let sim = Killed(
        Command::new(SIM)
            .args(["--central", &format!("http://{}", edge.addr("http")), "--mqtt", "127.0.0.1:9"])
            .args(["--count", "1", "--pace", "fast", "--period-ms", "300", "--ramp-s", "0"])
            .arg("--state")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_until("the device's status at central, through the bridge", || {
        let d = device(central);
        d["credentials_delivered"] == true && d["last_payload"]["board"] == "neOSensor"
    });
    let creds = stored(&state);
    assert_eq!(creds["server"], "127.0.0.1", "the gateway's broker in the credentials: {creds}");
    assert_eq!(creds["port"], local_port, "{creds}");

    // An order through central's API reaches the device through the bridge; its answer comes back.
    let (status, order) = api(
        central,
        "POST",
        &format!("/api/v1/devices/{MAC}/orders"),
        Some(json!({"order": "frequency", "value": 3600})),
    );
    assert_eq!(status, 202, "{order}");
    wait_until("the device's answer to the order at central", || {
        device(central)["last_payload"]["frequency"] == 3600
    });
    drop(sim);

    // The WAN goes down while the device publishes.
    let login = creds["login"].as_str().unwrap().to_owned();
    let client = device_client(local_port, &login, creds["password"].as_str().unwrap());
    wan.cut();
    let topic = format!("{}/device", device(central)["base_topic"].as_str().expect("the room's base topic"));
    // Paced as a device does (not a wait for anything): the outage lasts a while.
    for n in 1..=DURING_OUTAGE {
        client.publish(topic.as_str(), rumqttc::QoS::AtMostOnce, false, numbered_status(n)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    wan.restore();
    client
        .publish(topic.as_str(), rumqttc::QoS::AtMostOnce, false, numbered_status(DURING_OUTAGE + 1))
        .unwrap();

    // Every status, in order, exactly once: nothing lost, nothing repeated.
    let mut seen = Vec::new();
    let next = |seen: &mut Vec<u32>| {
        let payload = witness
            .next_within(neosens_runtime::testing::DEADLINE, |t, p| {
                t == topic && heap(p).is_some_and(|h| h <= DURING_OUTAGE + 1)
            })
            .unwrap_or_else(|| {
                panic!("statuses at central: {seen:?}, then nothing; gateway log: {:#?}", edge.logs())
            });
        seen.push(heap(&payload).unwrap());
    };
    while seen.last() != Some(&(DURING_OUTAGE + 1)) {
        next(&mut seen);
    }
    assert_eq!(seen, (1..=DURING_OUTAGE + 1).collect::<Vec<_>>());
    wait_until("the last status ingested by central", || {
        device(central)["last_payload"]["heap"] == DURING_OUTAGE + 1
    });
    let (_, alerts) = api(central, "GET", "/api/v1/alerts", None);
    assert_eq!(alerts["items"].as_array().map_or(0, Vec::len), 0, "no alert: {alerts}");

    // The local broker's accounts follow sync: a device registered now can connect (Mosquitto
    // reloaded, not restarted: the connected client stays), and a disabled one no longer can.
    let room = device(central)["rooms"][0]["id"].clone();
    created(central, "/api/v1/devices", json!({"uid": SECOND, "type": "esp32", "rooms": [room]}));
    let passwd = gw_data.join("broker/passwd");
    let login = wait_for_account(&edge, &passwd, true);
    let (status, creds) =
        http_json(edge.addr("http"), "GET", &format!("/device/credentials?mac={SECOND}"), None, None);
    assert_eq!(status, 200, "{creds}");
    assert_eq!(
        (creds["login"].as_str(), creds["port"].as_u64()),
        (Some(login.as_str()), Some(u64::from(local_port)))
    );
    let password = creds["password"].as_str().expect("first delivery").to_owned();
    assert!(connects(local_port, &login, &password), "the new device is accepted by the local broker");
    let (status, body) =
        api(central, "PATCH", &format!("/api/v1/devices/{SECOND}"), Some(json!({"enabled": false})));
    assert_eq!(status, 200, "{body}");
    wait_for_account(&edge, &passwd, false);
    assert!(!connects(local_port, &login, &password), "a disabled device is refused");
    client
        .publish(topic.as_str(), rumqttc::QoS::AtMostOnce, false, numbered_status(DURING_OUTAGE + 2))
        .unwrap();
    witness.next(|t, p| t == topic && heap(p) == Some(DURING_OUTAGE + 2));

    // The agent stopped (systemd's SIGTERM): its Mosquitto stops with it.
    let mosquitto = local_broker_pid(&pid_file).expect("the local broker's pid file");
    assert!(edge.signal_and_wait("TERM").success());
    wait_until("the local broker stopped with the agent", || {
        !Path::new(&format!("/proc/{mosquitto}")).exists()
            || std::fs::read_to_string(format!("/proc/{mosquitto}/stat")).is_ok_and(|s| s.contains(") Z "))
    });
}

/// Waits until the local broker's password file has (or no longer has) the second device's
/// account; returns its login.
fn wait_for_account(edge: &ServiceProcess, passwd: &Path, present: bool) -> String {
    let login = format!("senso_{}", SECOND.replace(':', ""));
    wait_until_or_logs(edge, "the local broker's accounts following sync", || {
        std::fs::read_to_string(passwd)
            .is_ok_and(|t| t.lines().any(|l| l.starts_with(&format!("{login}:"))) == present)
    });
    login
}

/// Whether the local broker accepts these credentials (a CONNACK without error).
fn connects(port: u16, login: &str, password: &str) -> bool {
    let mut options = rumqttc::MqttOptions::new(format!("check-{}", free_port()), "127.0.0.1", port);
    options.set_credentials(login, password);
    let (_client, mut connection) = rumqttc::Client::new(options, 10);
    for event in connection.iter() {
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                return ack.code == rumqttc::ConnectReturnCode::Success;
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// The `heap` of a status payload.
fn heap(payload: &[u8]) -> Option<u32> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v["heap"].as_u64().and_then(|h| u32::try_from(h).ok())
}

/// [`wait_until`], showing the gateway's log when the condition never comes.
fn wait_until_or_logs(edge: &ServiceProcess, what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + neosens_runtime::testing::DEADLINE;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within the deadline: {what}; gateway log: {:#?}",
            edge.logs()
        );
        std::thread::park_timeout(Duration::from_millis(50));
    }
}
