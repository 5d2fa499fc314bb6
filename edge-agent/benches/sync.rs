//! The gateway sync at campus scale (DESIGN.md §6: a 100k-device snapshot < 2 s, one change
//! < 500 ms): a synthetic 2016 export of N devices imported into central, a gateway scoped to the
//! whole site enrolled, and timed from the agent's start until its last snapshot page is
//! committed; then one change (a device disabled, then enabled again) timed from the API request
//! until the gateway has committed it. Prints where the snapshot's time goes, from the
//! two processes' own log lines: central building and encoding pages, the transfer, the agent's
//! decoding, its redb writes and its commits. Real binaries (release), real sockets.
//!
//! `cargo bench -p neosens-edge --bench sync` — `BENCH_SYNC_SIZES=10000,100000` (the default)
//! sets the fleets; `BENCH_EDGE_BINS=<path>,…` adds agent builds to compare, e.g. the static
//! musl one from `cross/build --target x86_64 --no-smoke`
//! (`target/x86_64-unknown-linux-musl/min-size/neosens-edge`), which it picks up by itself when
//! it exists.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use neosens_runtime::testing::{ServiceProcess, http_json};
use serde_json::{Value, json};
use support::{ADMIN, EDGE, Fleet, proc_field};

const SNAPSHOT_BUDGET: Duration = Duration::from_secs(2);
const CHANGE_BUDGET: Duration = Duration::from_millis(500);
const RSS_BUDGET_KIB: u64 = 12 * 1024;
/// Changes timed per agent build (the median is printed).
const CHANGES: usize = 7;

fn field(line: &Value, name: &str) -> f64 {
    line.get(name).and_then(Value::as_f64).unwrap_or(0.0)
}

fn message(line: &Value) -> &str {
    line.get("message").and_then(Value::as_str).unwrap_or("")
}

/// The agent builds to compare: the release one, and the static musl one when it was built.
fn agent_builds() -> Vec<(String, PathBuf)> {
    let mut builds = vec![("release (glibc)".to_owned(), PathBuf::from(EDGE))];
    let target = Path::new(EDGE).ancestors().nth(2).map(Path::to_path_buf).unwrap_or_default();
    let musl = target.join("x86_64-unknown-linux-musl/min-size/neosens-edge");
    match std::env::var("BENCH_EDGE_BINS") {
        Ok(list) => {
            builds.extend(list.split(',').filter(|p| !p.is_empty()).map(|p| (p.to_owned(), p.into())))
        }
        Err(_) if musl.exists() => builds.push(("static musl (min-size)".to_owned(), musl)),
        Err(_) => println!(
            "(no static musl build at {}: `cross/build --target x86_64 --no-smoke` adds it)",
            musl.display()
        ),
    }
    builds
}

/// Where a snapshot's time went, summed over its pages (milliseconds).
#[derive(Default, Debug)]
struct Breakdown {
    pages: usize,
    bytes: f64,
    central_build: f64,
    central_encode: f64,
    fetch: f64,
    decode: f64,
    write: f64,
    commit: f64,
}

impl Breakdown {
    fn print(&self) {
        let transfer = (self.fetch - self.central_build - self.central_encode).max(0.0);
        println!(
            "    {} pages, {:.1} MB: central builds {:.0} ms, encodes {:.0} ms; transfer {:.0} ms; agent decodes {:.0} ms, writes {:.0} ms, commits {:.0} ms",
            self.pages,
            self.bytes / 1e6,
            self.central_build,
            self.central_encode,
            transfer,
            self.decode,
            self.write,
            self.commit
        );
    }
}

/// Starts the agent `bin` for a new gateway and waits for its snapshot of `n` devices.
fn snapshot(
    fleet: &mut Fleet,
    bin: &Path,
    name: &str,
    n: u64,
) -> (ServiceProcess, tempfile::TempDir, Duration) {
    let started = Instant::now();
    let (mut edge, dir) = fleet.gateway_with(bin, name);
    let last = edge.wait_for_log(|l| message(l) == "registry synced" && l["more"] == json!(false));
    let took = started.elapsed();
    assert_eq!(field(&last, "cached") as u64, n, "every device of the scope cached: {last}");
    (edge, dir, took)
}

/// Sums the figures of the snapshot the agent just applied, from both processes' log lines.
fn breakdown(fleet: &Fleet, edge: &ServiceProcess) -> Breakdown {
    let mut b = Breakdown::default();
    for l in edge.logs().iter().filter(|l| message(l) == "registry synced") {
        b.pages += 1;
        b.fetch += field(l, "fetch_ms");
        b.decode += field(l, "decode_ms");
        b.write += field(l, "write_ms");
        b.commit += field(l, "commit_ms");
    }
    let central: Vec<Value> =
        fleet.central.logs().into_iter().filter(|l| message(l) == "sync batch").collect();
    for l in central.iter().rev().take(b.pages) {
        b.bytes += field(l, "bytes");
        b.central_build += field(l, "build_ms");
        b.central_encode += field(l, "encode_ms");
    }
    b
}

/// Times `CHANGES` single-device changes from the API request (its answer included, so an upper
/// bound) to their commit at the gateway.
fn changes(fleet: &Fleet, edge: &mut ServiceProcess) -> Vec<Duration> {
    let c = fleet.central.addr("http");
    let (status, page) = http_json(c, "GET", "/api/v1/devices?limit=1", Some(ADMIN), None);
    assert_eq!(status, 200, "{page}");
    let id = page["items"][0]["id"].as_str().expect("a device id").to_owned();
    let mut times = Vec::new();
    for i in 0..CHANGES {
        let enabled = i % 2 == 1;
        let sent = Instant::now();
        let (status, answer) = http_json(
            c,
            "PATCH",
            &format!("/api/v1/devices/{id}"),
            Some(ADMIN),
            Some(&json!({ "enabled": enabled })),
        );
        assert_eq!(status, 200, "{answer}");
        edge.wait_for_log(|l| message(l) == "registry synced" && l["kind"] == json!("delta"));
        times.push(sent.elapsed());
    }
    times.sort();
    times
}

fn main() {
    let sizes: Vec<u64> = std::env::var("BENCH_SYNC_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let builds = agent_builds();
    println!(
        "neosens gateway sync benchmark (this machine: {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for n in sizes {
        let t0 = Instant::now();
        let mut fleet = Fleet::start(n);
        println!("{n} devices (central ready in {:.1} s):", t0.elapsed().as_secs_f64());
        for (i, (label, bin)) in builds.iter().enumerate() {
            let (mut edge, dir, took) = snapshot(&mut fleet, bin, &format!("gw-{n}-{i}"), n);
            let rss = proc_field(edge.pid(), "VmRSS:");
            let hwm = proc_field(edge.pid(), "VmHWM:");
            let b = breakdown(&fleet, &edge);
            let times = changes(&fleet, &mut edge);
            let median = times[times.len() / 2];
            let db: u64 = ["registry.redb", "edge.redb"]
                .iter()
                .map(|f| std::fs::metadata(dir.path().join(f)).map_or(0, |m| m.len()))
                .sum();
            edge.signal_and_wait("TERM");
            println!(
                "  {label}: snapshot {:.2} s (budget {} s: {}); one change {:.0} ms median, {:.0}–{:.0} ms (budget {} ms: {}); RSS {:.1} MB, peak {:.1} MB (budget {} MB: {}); databases {:.1} MB",
                took.as_secs_f64(),
                SNAPSHOT_BUDGET.as_secs(),
                if took < SNAPSHOT_BUDGET { "ok" } else { "OVER" },
                median.as_secs_f64() * 1e3,
                times[0].as_secs_f64() * 1e3,
                times[times.len() - 1].as_secs_f64() * 1e3,
                CHANGE_BUDGET.as_millis(),
                if median < CHANGE_BUDGET { "ok" } else { "OVER" },
                rss as f64 / 1024.0,
                hwm as f64 / 1024.0,
                RSS_BUDGET_KIB / 1024,
                if rss < RSS_BUDGET_KIB { "ok" } else { "OVER" },
                db as f64 / 1e6,
            );
            b.print();
        }
        fleet.central.signal_and_wait("TERM");
    }
}
