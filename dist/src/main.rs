//! `neosens-gen-dist`: writes the man pages, shell completions, default configuration files and
//! packaged systemd units of the Debian packages (see the library's documentation), for
//! `scripts/package-deb`.

use std::path::PathBuf;

use clap::Parser;
use neosens_gen_dist::{Package, generate};

/// Generates the files the Debian packages ship besides the binaries.
#[derive(Debug, Parser)]
#[command(name = "neosens-gen-dist", version, about)]
struct Args {
    /// Output directory; each package gets `<out>/<package>/`.
    #[arg(long, default_value = "target/dist", value_name = "DIR")]
    out: PathBuf,

    /// Packages to generate (default: all).
    #[arg(value_enum)]
    packages: Vec<Package>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    let args = Args::parse();
    let packages = if args.packages.is_empty() { Package::ALL.to_vec() } else { args.packages };
    for package in packages {
        let files = generate(package, &args.out)?;
        tracing::info!(package = package.name(), out = %args.out.join(package.name()).display(), files = files.len(), "generated");
        for file in files {
            tracing::debug!(file = %file.display(), "written");
        }
    }
    Ok(())
}
