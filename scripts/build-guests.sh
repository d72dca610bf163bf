#!/usr/bin/env bash
# Builds every guest component (first-party plugins, test fixtures and the
# example plugin) for wasm32-wasip2 and copies them into build/wasm/:
#
#   core.wasm  files.wasm  http.wasm  postgres.wasm  hostile.wasm  bad-schema.wasm  bad-version.wasm  dup-steps.wasm
#   wrong-version.wasm  unknown-world.wasm  hello-plugin.wasm  generator-source.wasm  v0-1-step.wasm
#   hostile-source.wasm
#
# Idempotent: re-running only rebuilds what changed. The three guest
# workspaces share one target directory, $WEFT_GUEST_TARGET_DIR (default
# target/guests), so common dependencies are compiled once.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=wasm32-wasip2
export CARGO_TARGET_DIR="${WEFT_GUEST_TARGET_DIR:-$REPO/target/guests}"
OUT="$REPO/build/wasm"

rustup target list --installed | grep -q "$TARGET" || rustup target add "$TARGET"

# Builds the cargo project in $1, with --locked when it has a lockfile.
build() {
    local dir="$REPO/$1"
    local locked=()
    if [[ -f "$dir/Cargo.lock" ]]; then
        locked=(--locked)
    fi
    echo "building $1" >&2
    (cd "$dir" && cargo build --target "$TARGET" --release "${locked[@]}")
}

build plugins
build tests/components
build examples/hello-plugin
build examples/generator-source

mkdir -p "$OUT"
RELEASE="$CARGO_TARGET_DIR/$TARGET/release"

# artifact name in build/wasm  <-  file cargo produced
ARTIFACTS=(
    "core.wasm:weft_plugin_core.wasm"
    "files.wasm:weft_plugin_files.wasm"
    "http.wasm:weft_plugin_http.wasm"
    "postgres.wasm:weft_plugin_postgres.wasm"
    "hostile.wasm:weft_fixture_hostile.wasm"
    "bad-schema.wasm:weft_fixture_bad_schema.wasm"
    "bad-version.wasm:weft_fixture_bad_version.wasm"
    "dup-steps.wasm:weft_fixture_dup_steps.wasm"
    "wrong-version.wasm:weft_fixture_wrong_version.wasm"
    "unknown-world.wasm:weft_fixture_unknown_world.wasm"
    "hello-plugin.wasm:hello_plugin.wasm"
    "generator-source.wasm:generator_source.wasm"
    "v0-1-step.wasm:weft_fixture_v0_1_step.wasm"
    "hostile-source.wasm:weft_fixture_hostile_source.wasm"
)

for entry in "${ARTIFACTS[@]}"; do
    name="${entry%%:*}"
    source="$RELEASE/${entry#*:}"
    if [[ ! -f "$source" ]]; then
        echo "error: expected build output $source is missing" >&2
        exit 1
    fi
    # Copy via a temporary file so a concurrent reader never sees half a file.
    cp "$source" "$OUT/.$name.tmp"
    mv -f "$OUT/.$name.tmp" "$OUT/$name"
    printf '%-20s %10d bytes\n' "$name" "$(wc -c <"$OUT/$name")"
done
