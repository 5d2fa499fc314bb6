//! What the benchmarks share: the binary, and a synthetic 2016 export of any size.

#![allow(dead_code)] // each benchmark uses a part

mod export;

#[allow(unused_imports)] // the export is for the benchmarks that import one
pub(crate) use export::*;

/// The environment that puts central on the store the benchmark runs against:
/// `NEOSENS_TEST_STORE=postgres` for PostgreSQL (a server the benchmark starts, as the tests do),
/// the embedded redb file otherwise.
pub(crate) fn store_env(data: &std::path::Path) -> Vec<(String, String)> {
    neosens_runtime::testing::postgres::central_store_env(data)
}

/// Which store [`store_env`] chose, for the report.
pub(crate) fn store_label() -> &'static str {
    match std::env::var("NEOSENS_TEST_STORE").as_deref() {
        Ok("postgres") => "PostgreSQL (local server, loopback)",
        _ => "redb (embedded)",
    }
}

/// The release binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_neosens-central");

/// A process's resident memory, in KiB (0 once it is gone).
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
