//! What the benchmarks share: the binary, and a synthetic 2016 export of any size.

#![allow(dead_code)] // each benchmark uses a part

mod export;

pub(crate) use export::*;

/// The release binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_neosens-central");
