#!/usr/bin/env bash
# Sets up and runs Weft: builds the first-party plugins and the `weft`
# binary (release), then starts the server with the embedded store in
# ./weft-data and the core plugin installed. Ctrl-C stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-guests.sh
echo "==> cargo build --release -p weft-api"
cargo build --release --locked -p weft-api
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/weft" serve "$@"
