//! For the microcontroller build, puts `memory.x` (the STM32L476's flash and RAM) where the
//! linker script of cortex-m-rt (`link.x`) looks for it. Host builds need nothing.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=memory.x");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("copying memory.x into OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
