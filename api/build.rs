//! Bundles the first-party plugins (built into `build/wasm/` by
//! `scripts/build-guests.sh`) into the binary, so a fresh `weft serve`
//! has them installed without any extra step.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../build/wasm/core.wasm");
    println!("cargo:rerun-if-changed={}", src.display());
    let bytes = match std::fs::read(&src) {
        Ok(b) => b,
        Err(_) => {
            println!(
                "cargo:warning=build/wasm/core.wasm is missing: run scripts/build-guests.sh; the binary will have no bundled plugins"
            );
            Vec::new()
        }
    };
    std::fs::write(out.join("core.wasm"), bytes)?;
    Ok(())
}
