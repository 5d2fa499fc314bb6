//! Agent updates end to end, with real `neosens-central`, `neosens-edge` and Mosquitto: a signed
//! build rolled out by a campaign is installed and runs; a build whose signature does not check
//! is refused; a build that exits at start is rolled back by the launcher — each outcome
//! recorded in central's campaign. systemd's part (`Restart=always`: the agent exits 75 once a
//! build is installed) is played by [`Service`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use neosens_protocol::agent_build::{AGENT_BOARD, agent_hardware};
use neosens_runtime::testing::{Mosquitto, ServiceProcess, http_json, raw_http, updater, wait_until};
use serde_json::{Value, json};

mod common;

use common::client::ApiClient;
use common::{ADMIN, EDGE, central_binary, enrolled_gateway, start_central_with, start_edge};

const GATEWAY_MAC: &str = "b8:27:eb:00:00:01";

fn api(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    http_json(addr, method, path, Some(ADMIN), body.as_ref())
}

/// `neosens-central agent-key …`: its standard output, trimmed.
fn agent_key(args: &[&str]) -> String {
    let out = Command::new(central_binary()).arg("agent-key").args(args).output().unwrap();
    assert!(out.status.success(), "agent-key {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Uploads `content` as a gateway build of `revision` with `signature`; returns its SHA-256.
fn upload(central: SocketAddr, content: &[u8], revision: u64, signature: &str) -> String {
    let query = format!(
        "hardware={}&board={AGENT_BOARD}&revision={revision}&signature={signature}",
        agent_hardware(std::env::consts::ARCH)
    );
    let uploaded = raw_http(central, &updater::upload(&query, ADMIN, content));
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    serde_json::from_slice::<Value>(&uploaded.body).unwrap()["sha256"].as_str().unwrap().to_owned()
}

/// A campaign of `sha` over the gateway's own device, all in its first wave; returns its id.
fn campaign(central: SocketAddr, name: &str, sha: &str) -> u64 {
    let (status, campaign) = api(
        central,
        "POST",
        "/api/v1/campaigns",
        Some(
            json!({"name": name, "image": sha, "target": {"devices": [GATEWAY_MAC]}, "waves": [{"until_percent": 100}]}),
        ),
    );
    assert_eq!(status, 201, "{campaign}");
    campaign["id"].as_u64().unwrap()
}

fn cancel(central: SocketAddr, id: u64) {
    let (status, body) =
        api(central, "POST", &format!("/api/v1/campaigns/{id}/actions"), Some(json!({"action": "cancel"})));
    assert_eq!(status, 200, "{body}");
}

/// The gateway device's stage in a campaign, and the campaign's events.
fn stage(central: SocketAddr, id: u64) -> (String, String) {
    let (_, devices) = api(central, "GET", &format!("/api/v1/campaigns/{id}/devices"), None);
    let (_, campaign) = api(central, "GET", &format!("/api/v1/campaigns/{id}"), None);
    let stage = devices["items"][0]["stage"].as_str().unwrap_or_default().to_owned();
    (stage, campaign["events"].to_string())
}

/// The agent under systemd: the launcher started again whenever it exits 75.
struct Service {
    data: PathBuf,
    config: PathBuf,
    mqtt: String,
    process: ServiceProcess,
}

impl Service {
    /// Waits for the agent to exit 75 (a build installed), then starts the launcher again.
    fn restarted_after_install(&mut self) {
        let status = self.process.wait();
        assert_eq!(status.code(), Some(75), "the agent exits 75 to be started on its new build: {status}");
        self.process = start_edge(&self.data, &self.config, &self.mqtt);
    }

    /// The executable of the launcher's child (the build it runs).
    fn child_exe(&self) -> PathBuf {
        let pid = self.process.pid();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
        let child = children.split_whitespace().next().expect("the launcher runs a build as its child");
        std::fs::read_link(format!("/proc/{child}/exe")).unwrap()
    }
}

/// The agent's update state (`<data_dir>/agent/update.state`): its record lines.
fn update_state(data: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(data.join("agent/update.state")).unwrap();
    text.lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect()
}

fn has_line(lines: &[String], prefix: &str) -> bool {
    lines.iter().any(|l| l.starts_with(prefix))
}

/// Central (its image limit raised: a debug build of the agent is larger than the default),
/// one building with the gateway's own device, the admins' key, and the gateway enrolled with
/// that key pinned: `(central, its address, the key file, the gateway's data directory)`.
fn site(
    mosquitto: &Mosquitto,
    keys: &Path,
) -> (ServiceProcess, SocketAddr, PathBuf, tempfile::TempDir, tempfile::TempDir) {
    let central_dir = tempfile::tempdir().unwrap();
    let central_config = central_dir.path().join("central.toml");
    std::fs::write(&central_config, "[firmware]\nmax_image_bytes = 1073741824\n").unwrap();
    // Port 0: central's address is read from its log (a port picked beforehand may be taken).
    let port = 0;
    let config = central_config.to_string_lossy().into_owned();
    let central =
        start_central_with(central_dir.path(), port, &mosquitto.url(), &[("NEOSENS_CONFIG", &config)]);
    let c = central.addr("http");
    let admin = ApiClient::admin(c);
    let building = admin.create_building(json!({"name": "CARCA"})).expect("building");
    let room = admin.create_room(json!({"building": building.id, "name": "local technique"})).expect("room");
    admin.create_device_type(json!({"name": "gateway"})).expect("type");
    admin.create_device(json!({"uid": GATEWAY_MAC, "type": "gateway", "rooms": [room.id]})).expect("device");
    // The admins' key, kept apart from central; its public key pinned in the gateway.
    let key = keys.join("agent-builds.pk8");
    let public = agent_key(&["generate", "--out", key.to_str().unwrap()]);
    assert_eq!(public.len(), 64, "{public}");
    let edge_dir = enrolled_gateway(c, "gw-carca", json!({"buildings": [building.id]}));
    std::fs::write(
        edge_dir.path().join("edge.toml"),
        format!(
            "[central]\ntimeout_ms = 500\nsync_wait_s = 2\n[firmware]\npoll_s = 1\n[agent]\nmac = \"{GATEWAY_MAC}\"\n\
             [update]\npublic_key = \"{public}\"\nhealth_deadline_s = 60\n"
        ),
    )
    .unwrap();
    (central, c, key, edge_dir, central_dir)
}

/// The signature of `file` for this target and `revision`, by `agent-key sign`.
fn sign(key: &Path, file: &Path, revision: u64) -> String {
    let hardware = agent_hardware(std::env::consts::ARCH);
    agent_key(&[
        "sign",
        "--key",
        key.to_str().unwrap(),
        "--hardware",
        &hardware,
        "--revision",
        &revision.to_string(),
        file.to_str().unwrap(),
    ])
}

#[test]
fn signed_builds_are_installed_bad_ones_refused_and_failing_ones_rolled_back() {
    let mosquitto = Mosquitto::start("");
    let keys = tempfile::tempdir().unwrap();
    let (_central, c, key, edge_dir, _central_dir) = site(&mosquitto, keys.path());
    let config = edge_dir.path().join("edge.toml");
    let process = start_edge(edge_dir.path(), &config, &mosquitto.url());
    let mut gateway = Service { data: edge_dir.path().to_owned(), config, mqtt: mosquitto.url(), process };
    let builds = edge_dir.path().join("agent/builds");

    // 1. A signed build — this very agent, under the next revision — is installed and runs.
    let revision = neosens_edge::update::packaged_revision() + 1;
    let good = std::fs::read(EDGE).unwrap();
    let good_sha = upload(c, &good, revision, &sign(&key, Path::new(EDGE), revision));
    let first = campaign(c, "agent r+1", &good_sha);
    gateway.restarted_after_install();
    assert_eq!(gateway.child_exe(), builds.join(&good_sha));
    wait_until("central sees the gateway on the new revision", || stage(c, first).0 == "done");
    wait_until("the gateway's report of it", || stage(c, first).1.contains("installed the build"));
    assert!(has_line(&update_state(edge_dir.path()), &format!("running {good_sha} {revision} ")));

    // 2. A build whose signature is another build's: refused, the running build kept. (The
    // first campaign finished by itself: its one device runs its build.)
    let mut forged = good.clone();
    forged.extend_from_slice(b"tampered");
    let forged_sha = upload(c, &forged, revision + 1, &sign(&key, Path::new(EDGE), revision + 1));
    let second = campaign(c, "agent forged", &forged_sha);
    wait_until("central records the refusal", || stage(c, second).0 == "failed_refused");
    assert!(stage(c, second).1.contains("bad signature"), "{}", stage(c, second).1);
    assert_eq!(gateway.child_exe(), builds.join(&good_sha), "still running");

    // 3. A signed build that exits at start: installed, tried, rolled back by the launcher.
    cancel(c, second);
    let broken = keys.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\necho 'this build cannot start' >&2\nexit 3\n").unwrap();
    let broken_sha =
        upload(c, &std::fs::read(&broken).unwrap(), revision + 2, &sign(&key, &broken, revision + 2));
    let third = campaign(c, "agent broken", &broken_sha);
    gateway.restarted_after_install();
    assert_eq!(gateway.child_exe(), builds.join(&good_sha), "the previous build again");
    wait_until("central records the rollback", || stage(c, third).0 == "failed_old_revision");
    let events = stage(c, third).1;
    assert!(events.contains("rolled the build back") && events.contains("exited"), "{events}");
    let state = update_state(edge_dir.path());
    assert!(has_line(&state, &format!("running {good_sha} ")) && !has_line(&state, "trial "), "{state:?}");
    wait_until("the reports were delivered", || !has_line(&update_state(edge_dir.path()), "report "));
    assert!(!builds.join(&broken_sha).exists(), "the rolled-back build is removed");
}

#[test]
fn stopping_the_service_during_a_trial_leaves_the_build_to_be_tried_again() {
    let data = tempfile::tempdir().unwrap();
    let script = b"#!/bin/sh\nexec sleep 60\n";
    let sha = neosens_protocol::hex::encode(ring::digest::digest(&ring::digest::SHA256, script).as_ref());
    std::fs::create_dir_all(data.path().join("agent/builds")).unwrap();
    let build = data.path().join("agent/builds").join(&sha);
    std::fs::write(&build, script).unwrap();
    std::fs::set_permissions(&build, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(data.path().join("agent/update.state"), format!("trial {sha} {} 9 0\n", u64::MAX))
        .unwrap();
    let mut launcher = Command::new(EDGE)
        .env("NEOSENS_EDGE_DATA_DIR", data.path())
        .env("NEOSENS_EDGE_HTTP_BIND", "127.0.0.1:0")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = launcher.id();
    let children = || std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    wait_until("the launcher starts the build on trial", || !children().trim().is_empty());
    let child = children().trim().to_owned();
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    wait_until("the launcher and its build stop", || {
        launcher.try_wait().unwrap().is_some() && !Path::new(&format!("/proc/{child}")).exists()
    });
    let state = update_state(data.path());
    assert_eq!(
        state,
        vec![format!("trial {sha} {} 9 0", u64::MAX)],
        "not judged: the next start tries it again"
    );
}
