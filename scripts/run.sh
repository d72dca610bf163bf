#!/usr/bin/env bash
# Sets up and runs Weft. Until `weft serve` lands (see the issues), this
# builds the first-party plugins and the `weft` binary and shows the core
# plugin's validated manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-guests.sh
echo "==> cargo build --release -p weft-api"
cargo build --release --locked -p weft-api
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/weft" plugin inspect build/wasm/core.wasm
