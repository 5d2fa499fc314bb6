//! What the benchmarks share: the binary, and a synthetic 2016 export of any size.

#![allow(dead_code)] // each benchmark uses a part

mod export;

#[allow(unused_imports)] // the export is for the benchmarks that import one
pub(crate) use export::*;

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
