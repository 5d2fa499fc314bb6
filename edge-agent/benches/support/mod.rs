//! What the agent's benchmarks share: the release binaries, central with a synthetic fleet
//! imported, an enrolled gateway scoped to the whole site, and readings of `/proc`.

#![allow(dead_code)] // each benchmark uses a part

#[path = "../../../central/benches/support/export.rs"]
pub(crate) mod export;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use neosens_runtime::testing::{ServiceProcess, http_json};
use serde_json::json;

/// The agent under test (release).
pub(crate) const EDGE: &str = env!("CARGO_BIN_EXE_neosens-edge");
/// Central's admin token in the benchmarks.
pub(crate) const ADMIN: &str = "bench-admin-token-0123456789";

/// The release `neosens-central` next to the agent, brought up to date (cargo builds it only if
/// it changed); `BENCH_CENTRAL_BIN=<path>` names one instead (`cargo bench` and `cargo build`
/// unify features differently, so each rebuilds central after the other: minutes per run).
pub(crate) fn central_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("BENCH_CENTRAL_BIN") {
        return PathBuf::from(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "neosens-central", "--bin", "neosens-central"])
        .status()
        .expect("building neosens-central");
    assert!(ok.success());
    Path::new(EDGE).with_file_name("neosens-central")
}

/// Central serving `n` synthetic devices (a 2016 export imported, site `ut3`), with its
/// embedded broker; its data directory lives as long as this.
pub(crate) struct Fleet {
    /// The running central.
    pub(crate) central: ServiceProcess,
    _dir: tempfile::TempDir,
}

impl Fleet {
    /// Imports `n` devices and starts central on loopback.
    pub(crate) fn start(n: u64) -> Self {
        Self::start_with(n, &[])
    }

    /// [`Self::start`] with more environment (e.g. `NEOSENS_MQTT_URL` for an outside broker).
    pub(crate) fn start_with(n: u64, more_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let export_file = dir.path().join("export.json");
        std::fs::write(&export_file, export::synthetic_export(n)).unwrap();
        let bin = central_binary();
        if n > 0 {
            let imported = std::process::Command::new(&bin)
                .args(["import-legacy", export_file.to_str().unwrap()])
                .env("NEOSENS_DATA_DIR", dir.path())
                .output()
                .unwrap();
            assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
        }
        let mut env = HashMap::from([
            ("NEOSENS_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
            ("NEOSENS_DATA_DIR".to_owned(), dir.path().to_string_lossy().into_owned()),
            ("NEOSENS_ADMIN_TOKEN".to_owned(), ADMIN.to_owned()),
            ("NEOSENS_EMBEDDED_MQTT_BIND".to_owned(), "127.0.0.1:0".to_owned()),
            // Info for its "serving" line; refusals under load are debug lines.
            // (and the sync benchmark reads the "sync batch" debug lines).
            (
                "NEOSENS_LOG".to_owned(),
                "warn,neosens_central=info,neosens_central::http::api::edge=debug".to_owned(),
            ),
        ]);
        env.extend(more_env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Fleet { central: ServiceProcess::spawn(&bin, &[], &env), _dir: dir }
    }

    /// A gateway named `name`, scoped to site `ut3`, enrolled through the agent's command line
    /// and started (LAN listener and packet-forwarder port on loopback); its data directory.
    pub(crate) fn gateway(&self, name: &str) -> (ServiceProcess, tempfile::TempDir) {
        self.gateway_with(Path::new(EDGE), name)
    }

    /// [`Self::gateway`] with the agent binary `bin`.
    pub(crate) fn gateway_with(&self, bin: &Path, name: &str) -> (ServiceProcess, tempfile::TempDir) {
        self.gateway_scoped(bin, name, json!({"site": "ut3"}), &[])
    }

    /// A gateway named `name` with this scope, started by `bin` with more environment.
    pub(crate) fn gateway_scoped(
        &self,
        bin: &Path,
        name: &str,
        scope: serde_json::Value,
        more_env: &[(&str, &str)],
    ) -> (ServiceProcess, tempfile::TempDir) {
        self.gateway_created(bin, json!({"name": name, "scope": scope}), more_env)
    }

    /// A gateway created with this body (`POST /api/v1/gateways`), enrolled and started by `bin`
    /// with more environment.
    pub(crate) fn gateway_created(
        &self,
        bin: &Path,
        body: serde_json::Value,
        more_env: &[(&str, &str)],
    ) -> (ServiceProcess, tempfile::TempDir) {
        let c = self.central.addr("http");
        let (status, gw) = http_json(c, "POST", "/api/v1/gateways", Some(ADMIN), Some(&body));
        assert_eq!(status, 201, "{gw}");
        let (_, token) = http_json(
            c,
            "POST",
            &format!("/api/v1/gateways/{}/enrolment", gw["id"].as_str().unwrap()),
            Some(ADMIN),
            None,
        );
        let dir = tempfile::tempdir().unwrap();
        let enrolled = std::process::Command::new(bin)
            .args([
                "enroll",
                "--central",
                &format!("http://{c}"),
                "--token",
                token["token"].as_str().unwrap(),
            ])
            // Central on this host, over loopback.
            .arg("--insecure")
            .env("NEOSENS_EDGE_DATA_DIR", dir.path())
            .output()
            .unwrap();
        assert!(enrolled.status.success(), "{}", String::from_utf8_lossy(&enrolled.stderr));
        let mut env = HashMap::from([
            ("NEOSENS_EDGE_HTTP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
            ("NEOSENS_EDGE_UDP_BIND".to_owned(), "127.0.0.1:0".to_owned()),
            ("NEOSENS_EDGE_DATA_DIR".to_owned(), dir.path().to_string_lossy().into_owned()),
            ("NEOSENS_LOG".to_owned(), "warn,neosens_edge=info".to_owned()),
        ]);
        env.extend(more_env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        (ServiceProcess::spawn(bin, &[], &env), dir)
    }
}

/// A field of `/proc/<pid>/status`, in its unit (kB for memory).
pub(crate) fn proc_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A sample of the text exposition (`-1` when absent).
pub(crate) fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    neosens_runtime::testing::http_get(addr, "/metrics")
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.parse().ok()))
        .unwrap_or(-1.0)
}

/// The NwkSKey of benchmark node `n` (its AppSKey: [`app`]): distinct per node, known to the
/// load generator.
pub(crate) fn nwk(n: u32) -> [u8; 16] {
    let mut k = [0x11; 16];
    k[..4].copy_from_slice(&n.to_be_bytes());
    k
}

/// The AppSKey of benchmark node `n`.
pub(crate) fn app(n: u32) -> [u8; 16] {
    let mut k = [0x22; 16];
    k[..4].copy_from_slice(&n.to_be_bytes());
    k
}

/// An unconfirmed uplink of benchmark node `n` (DevAddr `0x26000000 + n`) on port 2, MIC and
/// encryption with its keys, as the node would send it.
pub(crate) fn abp_frame(n: u32, f_cnt: u32, payload: &[u8]) -> Vec<u8> {
    abp_frame_confirmed(n, f_cnt, payload, false)
}

/// [`abp_frame`], confirmed or not.
pub(crate) fn abp_frame_confirmed(n: u32, f_cnt: u32, payload: &[u8], confirmed: bool) -> Vec<u8> {
    frame_with(n, f_cnt, payload, confirmed, true)
}

/// [`abp_frame`] of a node with ADR off (FCtrl.ADR clear): a node the agent sends no
/// `LinkADRReq`, as a fixed node at the fastest data rate, or one whose ADR has settled.
/// (Simulated nodes cannot answer a `LinkADRReq`; with ADR on, the agent asks again and again.)
pub(crate) fn abp_frame_without_adr(n: u32, f_cnt: u32, payload: &[u8]) -> Vec<u8> {
    frame_with(n, f_cnt, payload, false, false)
}

fn frame_with(n: u32, f_cnt: u32, payload: &[u8], confirmed: bool, adr: bool) -> Vec<u8> {
    use lorawan::keys::{AppSKey, NewSKey};
    let mut phy = lorawan::creator::DataPayloadCreator::new();
    phy.set_uplink(true)
        .set_confirmed(confirmed)
        .set_f_port(2)
        .set_dev_addr(&(0x2600_0000 + n).to_le_bytes())
        .set_fctrl(&lorawan::parser::FCtrl::new(if adr { 0x80 } else { 0 }, true))
        .set_fcnt(f_cnt);
    phy.build(payload, &[], &NewSKey::from(nwk(n)), &AppSKey::from(app(n))).expect("a frame").to_vec()
}
