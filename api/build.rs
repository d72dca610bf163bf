//! Bundles the first-party plugins (built into `build/wasm/` by
//! `scripts/build-guests.sh`) into the binary, so a fresh `weft serve`
//! has them installed without any extra step.

use std::path::PathBuf;

/// The bundled plugins, by file name in `build/wasm/`.
const BUNDLED: &[&str] = &["core.wasm", "files.wasm", "http.wasm", "postgres.wasm"];

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../build/wasm");
    for name in BUNDLED {
        let src = dir.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let bytes = match std::fs::read(&src) {
            Ok(b) => b,
            Err(_) => {
                println!(
                    "cargo:warning=build/wasm/{name} is missing: run scripts/build-guests.sh; the binary will not bundle it"
                );
                Vec::new()
            }
        };
        std::fs::write(out.join(name), bytes)?;
    }
    Ok(())
}
