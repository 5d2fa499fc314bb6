//! The store commands of the command line: `migrate` and `copy-store`.

use std::path::Path;

use crate::config::Config;
use crate::store::{PgOptions, PgStore, RedbStore};

/// The PostgreSQL options of `config`, when it names a database.
pub fn pg_options(config: &Config) -> Option<PgOptions> {
    let url = config.storage.database_url.as_ref()?;
    Some(PgOptions {
        url: url.clone(),
        ca_file: config.storage.database_ca_file.clone(),
        pool_size: config.storage.database_pool_size,
    })
}

/// `neosens-central migrate`: brings the configured store to this build's schema.
pub fn migrate(config: &Config) -> anyhow::Result<()> {
    match pg_options(config) {
        Some(options) => {
            // Connecting migrates (under the advisory lock replicas share).
            let store = PgStore::connect(&options)?;
            println!("PostgreSQL schema at version {}", store.schema_version()?);
            // The keys every replica shares: created here once, before the replicas start.
            let dir = &config.storage.data_dir;
            neosens_runtime::data_dir::prepare(dir, "[storage] data_dir or NEOSENS_DATA_DIR")?;
            crate::open_keys(dir, &store)?;
            println!("server keys in {} (give every replica this folder)", dir.join("keys").display());
        }
        None => {
            let dir = &config.storage.data_dir;
            neosens_runtime::data_dir::prepare(dir, "[storage] data_dir or NEOSENS_DATA_DIR")?;
            let store = RedbStore::open(dir)?;
            println!("{} at schema version {}", dir.join("central.redb").display(), store.schema_version()?);
        }
    }
    Ok(())
}

/// `neosens-central copy-store --from DIR --to URL`: the embedded store of `from` into the
/// empty database at `to`, checked record by record; prints what was copied.
pub fn copy_store(config: &Config, from: &Path, to: &str) -> anyhow::Result<()> {
    if !from.join("central.redb").is_file() {
        anyhow::bail!(
            "{}: no central.redb in this directory (--from names a data directory)",
            from.display()
        );
    }
    let source = RedbStore::open(from)?;
    let options = PgOptions {
        url: to.to_owned(),
        ca_file: config.storage.database_ca_file.clone(),
        pool_size: config.storage.database_pool_size,
    };
    let target = PgStore::connect(&options)?;
    let report = crate::store::pg::copy::copy(&source, &target)?;
    println!("copied and checked, revision {}:", report.revision);
    for (table, rows) in &report.rows {
        println!("  {table:<20} {rows:>10}");
    }
    println!("Give every replica the keys/ folder of {} (not copied).", from.display());
    Ok(())
}
