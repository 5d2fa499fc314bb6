//! Embeds the dashboard (`dashboard/dist`, built by `scripts/build-dashboard`) into the binary:
//! one static table of (path, bytes, its gzip and brotli copies, content type), so central serves
//! `/` with no files next to it. The compressed copies are made by the dashboard build
//! (`dashboard/precompress.ts`). Without a build, the table holds a page that says how to make one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The file's bytes as a Rust expression: `Some(include_bytes!(…))` when it exists.
fn include_if_exists(path: &Path) -> String {
    if path.is_file() {
        format!("Some(include_bytes!({:?}))", path.display().to_string())
    } else {
        "None".into()
    }
}

fn main() {
    // `--version`, `/healthz`: the git revision and target triple (NEOSENS_GIT_REVISION, NEOSENS_TARGET).
    neosens_build_info::emit();
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = manifest.join("dashboard/dist");
    // A directory is watched as a whole (any file in it changing). A path that does not exist
    // makes cargo re-run this script, and re-link central, at every build: so an empty `dist`
    // stands in until the dashboard is built into it (it is git-ignored). Cargo compares against
    // the time this script started, so the new directory gets an old modification time: otherwise
    // the next build would see it as changed and re-run once more.
    if !dist.exists() && std::fs::create_dir_all(&dist).is_ok() {
        let _ = std::fs::File::open(&dist).and_then(|dir| dir.set_modified(std::time::UNIX_EPOCH));
    }
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut found = Vec::new();
    files(&dist, &mut found);
    // Compressed copies travel with their original, not as files of their own.
    found.retain(|p| !matches!(p.extension().and_then(|e| e.to_str()), Some("gz" | "br")));
    found.sort();
    let mut table = String::from("&[\n");
    let built = found.iter().any(|p| p.ends_with("index.html"));
    if built {
        for path in &found {
            let rel = path.strip_prefix(&dist).expect("under dist").to_string_lossy().replace('\\', "/");
            let sibling = |ext: &str| {
                let mut name = path.as_os_str().to_owned();
                name.push(ext);
                include_if_exists(Path::new(&name))
            };
            writeln!(
                table,
                "    DashboardFile {{ path: {:?}, bytes: include_bytes!({:?}), gzip: {}, brotli: {}, content_type: {:?} }},",
                format!("/{rel}"),
                path.display().to_string(),
                sibling(".gz"),
                sibling(".br"),
                content_type(path)
            )
            .expect("write to a String");
        }
    } else {
        println!(
            "cargo:warning=the dashboard is not built (central/dashboard/dist is missing): run scripts/build-dashboard, then build again"
        );
    }
    table.push(']');
    let code = format!(
        "/// Whether the real dashboard is embedded (false: only the page saying how to build it).\n\
         pub(crate) const DASHBOARD_BUILT: bool = {built};\n\
         /// The dashboard's files.\n\
         pub(crate) static DASHBOARD_FILES: &[DashboardFile] = {table};\n"
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("dashboard_files.rs");
    std::fs::write(&out, code).expect("writing the dashboard table into OUT_DIR");
}
