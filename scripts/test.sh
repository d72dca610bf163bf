#!/usr/bin/env bash
# The whole test suite: builds the guest components (first-party plugins,
# hostile fixtures, the example plugin), then runs every test in the
# workspace against them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-guests.sh
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test --workspace"
cargo test --workspace --locked
# `cargo test` builds no bench targets; build them (without running them)
# so a change cannot break the benchmarks unnoticed.
echo "==> cargo test --workspace --benches --no-run"
cargo test --workspace --locked --benches --no-run
echo "==> schemathesis"
scripts/schemathesis.sh
