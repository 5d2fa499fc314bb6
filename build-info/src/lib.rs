//! What a neosens service binary says about its build: the git revision and the target triple,
//! passed to the crate being built as `NEOSENS_GIT_REVISION` and `NEOSENS_TARGET` (read with
//! `env!`, e.g. by `neosens_runtime::build_info!()`).
//!
//! Each service's `build.rs` calls [`emit`]. The revision is the short commit hash, with `-dirty`
//! when tracked files differ from it; `unknown` outside a git checkout (a crates.io tarball, a
//! container build without `.git`) or without `git`. Package builds set `NEOSENS_GIT_REVISION`
//! themselves, which wins.
//!
//! No-op builds stay fast: the build script re-runs only when `.git/HEAD`, the branch it points
//! to, or the index change (a commit, a checkout, a `git add`) — never on a scan of the tree. An
//! edit not yet added to the index therefore shows up as `-dirty` only at the next re-run: the
//! flag is a hint for people, the hash is the fact. The index is watched, so `git status` must
//! not rewrite it: every call uses `--no-optional-locks`, otherwise each build would touch the
//! index and the next one would re-run the script.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable that overrides the revision (package builds from a tarball).
pub const OVERRIDE_VAR: &str = "NEOSENS_GIT_REVISION";

/// Prints the `cargo:` instructions that set `NEOSENS_GIT_REVISION` and `NEOSENS_TARGET` for
/// the crate being built, and the files whose change re-runs the build script.
pub fn emit() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let target = std::env::var("TARGET").expect("set by cargo for build scripts");
    println!("cargo:rerun-if-env-changed={OVERRIDE_VAR}");
    let revision = match std::env::var(OVERRIDE_VAR) {
        Ok(r) if !r.trim().is_empty() => r.trim().to_owned(),
        _ => {
            let git = Git { dir: &manifest_dir };
            for path in git.watched_files() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            git.revision().unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=NEOSENS_GIT_REVISION={revision}");
    println!("cargo:rustc-env=NEOSENS_TARGET={target}");
}

/// `git` run in a directory, its failures meaning "not known".
struct Git<'a> {
    dir: &'a Path,
}

impl Git<'_> {
    /// The trimmed standard output of a successful `git args…`.
    fn run(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("git")
            .arg("--no-optional-locks")
            .args(args)
            .current_dir(self.dir)
            .env_remove("GIT_DIR")
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Whether the crate's own manifest is tracked: a tarball unpacked inside someone else's
    /// repository (a distribution's packaging tree) must not take that repository's revision.
    fn tracks_this_crate(&self) -> bool {
        self.run(&["ls-files", "--error-unmatch", "Cargo.toml"]).is_some()
    }

    /// `7525071` or `7525071-dirty`.
    fn revision(&self) -> Option<String> {
        if !self.tracks_this_crate() {
            return None;
        }
        let hash = self.run(&["rev-parse", "--short=7", "HEAD"])?;
        // Staged or unstaged changes to tracked files; untracked files do not count.
        let status = self.run(&["status", "--porcelain", "--untracked-files=no"])?;
        Some(if status.is_empty() { hash } else { format!("{hash}-dirty") })
    }

    /// HEAD, the ref it points to (or `packed-refs` when that ref is packed), and the index.
    /// Only existing files: cargo re-runs the script at every build for a missing one.
    fn watched_files(&self) -> Vec<PathBuf> {
        // Relative to the directory git ran in (older git has no `--path-format=absolute`).
        let path = |p: &str| self.run(&["rev-parse", "--git-path", p]).map(|g| self.dir.join(g));
        let mut files = Vec::new();
        files.extend(path("HEAD"));
        files.extend(path("index"));
        if let Some(branch) = self.run(&["symbolic-ref", "-q", "HEAD"]) {
            files.extend(path(&branch));
            files.extend(path("packed-refs"));
        }
        files.into_iter().filter(|p| p.is_file()).collect()
    }
}
