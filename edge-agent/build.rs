//! `--version` and `/healthz` name the git revision and target triple of the build
//! (`NEOSENS_GIT_REVISION`, `NEOSENS_TARGET`; see `neosens-build-info`).

fn main() {
    neosens_build_info::emit();
}
