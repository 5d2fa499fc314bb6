//! What a service binary says about its build, in `--version`, `/healthz` and its start log line.
//!
//! The git revision and target triple come from the service's build script
//! (`neosens_build_info::emit`, which sets `NEOSENS_GIT_REVISION` and `NEOSENS_TARGET`); the
//! macros below read them with `env!` where they are expanded, i.e. in the service crate, so this
//! crate needs no build script of its own.

use serde::Serialize;

/// Version, git revision and target of a binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    /// The crate version, `0.1.0`.
    pub version: &'static str,
    /// Short commit hash, `-dirty` when the tree had changes, `unknown` outside git.
    pub git: &'static str,
    /// The target triple, `aarch64-unknown-linux-musl`.
    pub target: &'static str,
}

/// The [`BuildInfo`] of the crate where it is expanded (which must call
/// `neosens_build_info::emit()` in its build script).
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::build_info::BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            git: env!("NEOSENS_GIT_REVISION"),
            target: env!("NEOSENS_TARGET"),
        }
    };
}

/// `0.1.0 (git 7525071, x86_64-unknown-linux-gnu)`: a `&'static str` for clap's
/// `#[command(version = …)]`, so `--version` prints `neosens-central 0.1.0 (git …, …)`.
#[macro_export]
macro_rules! long_version {
    () => {
        concat!(
            env!("CARGO_PKG_VERSION"),
            " (git ",
            env!("NEOSENS_GIT_REVISION"),
            ", ",
            env!("NEOSENS_TARGET"),
            ")"
        )
    };
}
