//! `neosens-central`: parses the command line, then hands over to the library.
//!
//! Kept thin on purpose: everything past argument parsing lives in `neosens_central`, so tests
//! drive the same code through `neosens_central::run` with a port-0 listener.

use std::process::ExitCode;

use clap::Parser;
use neosens_central::cli::{Cli, execute};

fn main() -> ExitCode {
    match execute(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole context chain: "reading config file x: permission denied".
            eprintln!("neosens-central: {err:#}");
            ExitCode::FAILURE
        }
    }
}
