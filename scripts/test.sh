#!/usr/bin/env bash
# The whole test suite: builds the guest components (first-party plugins,
# hostile fixtures, the example plugin), starts a throw-away PostgreSQL,
# then runs every test in the workspace against them, and the guest
# crates' own unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-guests.sh
# The postgres connector's tests run against a real PostgreSQL: a
# throw-away cluster on a free loopback port (installed from Debian's
# packages when missing), stopped and removed when the tests end.
echo "==> PostgreSQL for the connector tests"
eval "$(scripts/pg.sh start)"
trap 'scripts/pg.sh stop' EXIT
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test --workspace"
cargo test --workspace --locked
# The guest crates are their own workspaces, outside the one above; their
# unit tests cover pure logic and run natively on the host (the wit-bindgen
# imports they never reach there only work inside a component). They share
# build-guests.sh's target directory; host builds land beside the wasm ones.
echo "==> guest unit tests (plugins/, examples/hello-plugin, examples/generator-source)"
guest_target="${WEFT_GUEST_TARGET_DIR:-$PWD/target/guests}"
CARGO_TARGET_DIR="$guest_target" cargo test --manifest-path plugins/Cargo.toml --locked
CARGO_TARGET_DIR="$guest_target" cargo test --manifest-path examples/hello-plugin/Cargo.toml --locked
CARGO_TARGET_DIR="$guest_target" cargo test --manifest-path examples/generator-source/Cargo.toml --locked
echo "==> cargo clippy (guests)"
for manifest in plugins/Cargo.toml tests/components/Cargo.toml examples/hello-plugin/Cargo.toml examples/generator-source/Cargo.toml; do
    CARGO_TARGET_DIR="$guest_target" cargo clippy --manifest-path "$manifest" --workspace --all-targets --locked -- -D warnings
done
# `cargo test` builds no bench targets; build them (without running them)
# so a change cannot break the benchmarks unnoticed.
echo "==> cargo test --workspace --benches --no-run"
cargo test --workspace --locked --benches --no-run
echo "==> schemathesis"
scripts/schemathesis.sh
