//! `neosens-central import-legacy FILE`: brings the devices of the 2016 sensOCampus database
//! into neosens, from a Django `manage.py dumpdata` export.
//!
//! Types, buildings (in the default site), rooms (keeping their stored topics exactly), devices
//! (MAC uppercase, login kept, the old plaintext password hashed and sealed, delivery state,
//! custom broker, `modules` as configuration, enabled, last status). Idempotent: a second run
//! reports everything unchanged. `--dry-run` prints the same report without writing.

pub mod dump;
pub mod progress;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::Config;
use crate::registry::{Counts, ImportReport};
use dump::LegacyExport;
use progress::Progress;

/// Runs an import from the command line and prints its report.
pub fn run(config: &Config, file: &Path, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    eprintln!("import-legacy: read {} ({} bytes)", file.display(), bytes.len());
    let mut progress = Progress::for_stderr();
    let export = LegacyExport::parse(&bytes, |done, total| progress.update("parsing", done, total))
        .with_context(|| format!("parsing {}", file.display()))?;
    eprintln!(
        "import-legacy: {} types, {} buildings, {} locations, {} devices, {} permissions",
        export.types.len(),
        export.buildings.len(),
        export.locations.len(),
        export.devices.len(),
        export.permissions.len()
    );
    let registry = crate::open_registry(config)
        .context("opening the registry (is neosens-central running on this data directory? stop it first)")?;
    let report = registry
        .import_legacy(&export, dry_run, &mut |done, total| progress.update("devices", done, total))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

fn line(out: &mut String, what: &str, c: Counts) {
    let _ = writeln!(
        out,
        "  {what:<12} {:>6} created  {:>6} updated  {:>6} unchanged",
        c.created, c.updated, c.unchanged
    );
}

/// The report as text for people.
pub fn render(report: &ImportReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        if report.dry_run { "Dry run: nothing was written. The import would do:" } else { "Import done:" }
    );
    line(&mut out, "types", report.types);
    line(&mut out, "buildings", report.buildings);
    line(&mut out, "rooms", report.rooms);
    line(&mut out, "devices", report.devices);
    let _ = writeln!(
        out,
        "  permissions  {:>6} standard (derived from rooms by neosens)",
        report.standard_permissions
    );
    let _ = writeln!(out, "  skipped      {:>6} rows of other apps and log messages", report.skipped_rows);
    if report.changes_nothing() {
        let _ = writeln!(out, "Nothing to change: the registry already holds this export.");
    }
    if !report.rejected.is_empty() {
        let _ = writeln!(out, "\nNot imported ({}):", report.rejected.len());
        for (row, why) in &report.rejected {
            let _ = writeln!(out, "  {row}: {why}");
        }
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(out, "\nImported with warnings ({}):", report.warnings.len());
        for (row, why) in &report.warnings {
            let _ = writeln!(out, "  {row}: {why}");
        }
    }
    out
}
