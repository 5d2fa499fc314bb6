//! `neosens-edge`: parses the command line, then hands over to the library.
//!
//! Kept thin on purpose: everything past argument parsing lives in `neosens_edge`, so tests
//! drive the same code through `neosens_edge::run` with port-0 listeners.

use std::process::ExitCode;

use clap::Parser;
use neosens_edge::cli::{Cli, execute};

fn main() -> ExitCode {
    match execute(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("neosens-edge: {err:#}");
            ExitCode::FAILURE
        }
    }
}
