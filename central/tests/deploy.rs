//! The operations files in `deploy/` against a real scrape of central: `promtool` checks the
//! scrape, the configuration and the rules, runs the rules' unit tests, and every `neosens_*`
//! metric the rules and the Grafana dashboard use must exist in `/metrics`.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::client::ApiClient;
use common::{register_example, start};
use serde_json::json;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Runs promtool; its output on failure.
fn promtool(args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: scripts/install-deps --test installs Debian's prometheus package");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `neosens_*` names in a text (rule expressions, dashboard queries).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("neosens_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        // `neosens_*` in comments is not a name.
        if end > "neosens_".len() {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Series names a scrape (classic text format) holds, from its samples and its families (a
/// labelled family without samples yet still counts: its series appear with traffic).
fn scraped_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            let mut parts = family.split(' ');
            let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            // Classic text format: counters are already named `…_total`.
            let suffixes: &[&str] = match kind {
                "histogram" => &["_bucket", "_count", "_sum"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

#[test]
fn prometheus_rules_and_grafana_dashboard_hold_on_a_real_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let central = start(dir.path());
    let addr = central.addr("http");
    let admin = ApiClient::admin(addr);
    register_example(addr);
    admin.create_gateway(json!({"name": "gw-u4", "scope": {"site": "ut3"}})).expect("gateway");
    // Some HTTP traffic, so that the latency histogram has series.
    admin.devices("").expect("devices");

    let scrape = neosens_runtime::testing::http_get(addr, "/metrics").text();
    assert!(
        scrape.contains("neosens_gateway_up{gateway=\"gw-u4\"} 0"),
        "a silent gateway is down:\n{scrape}"
    );
    promtool(&["check", "metrics"], Some(&scrape));
    promtool(&["check", "config", "prometheus.yml"], None);
    promtool(&["check", "rules", "neosens.rules.yml"], None);
    promtool(&["test", "rules", "neosens.rules.test.yml"], None);

    let exposed = scraped_names(&scrape);
    let rules = std::fs::read_to_string(deploy().join("prometheus/neosens.rules.yml")).unwrap();
    let dashboard = std::fs::read_to_string(deploy().join("grafana/neosens.json")).unwrap();
    // The dashboard is a file of the repository, not an answer: read loosely, only its shape.
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    for (file, text) in [("neosens.rules.yml", &rules), ("neosens.json", &dashboard)] {
        let used = metric_names(text);
        assert!(!used.is_empty(), "{file} uses no neosens metric");
        let missing: Vec<&String> = used.iter().filter(|m| !exposed.contains(*m)).collect();
        assert!(missing.is_empty(), "{file} uses metrics central does not expose: {missing:?}");
    }
}

/// The load balancer of deploy/ha is valid HAProxy configuration, and what it sends to the
/// leading replica is exactly what central serves only there.
#[test]
fn the_replicas_load_balancer_sends_the_leaders_paths_to_the_leader() {
    let config = deploy().join("ha/haproxy.cfg");
    let out = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(&config)
        .output()
        .expect("haproxy not found: scripts/install-deps --test installs Debian's haproxy package");
    assert!(
        out.status.success(),
        "haproxy -c {}:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let prefixes: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("acl leader_path path_beg "))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(!prefixes.is_empty(), "no leader_path acl in {}", config.display());
    for prefix in &prefixes {
        assert!(neosens_central::http::leader_path(&format!("{prefix}x")), "{prefix} is not a leader path");
    }
    let routed = |path: &str| {
        prefixes.iter().any(|p| path.starts_with(p))
            || (path.starts_with("/api/v1/devices/")
                && path.ends_with("/firmware")
                && text.contains("/firmware$"))
    };
    for path in [
        "/api/v1/firmware",
        "/api/v1/firmware/ab12/content",
        "/api/v1/campaigns/3/actions",
        "/api/v1/bulk-operations/preview",
        "/api/v1/edge/firmware/fetches",
        "/api/v1/edge/health",
        "/api/v1/gateways/3f2a",
        "/api/v1/fleet",
        "/images/esp32/neOSensor/default.json",
        "/api/v1/devices/24:0a:c4:12:34:56/firmware",
    ] {
        assert!(neosens_central::http::leader_path(path), "{path}");
        assert!(
            routed(path),
            "{path} is served by the leader only but the load balancer does not send it there"
        );
    }
    for path in ["/api/v1/devices", "/device/config", "/api/v1/alerts", "/mqtt/auth"] {
        assert!(!neosens_central::http::leader_path(path), "{path} is served by every replica");
    }
}
