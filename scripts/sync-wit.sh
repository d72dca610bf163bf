#!/usr/bin/env bash
# Copies the plugin contract the SDK binds from the repository's wit/ (the
# one source of truth) into plugin-sdk/wit/, which the published crate
# needs inside its own directory. A unit test of weft-plugin-sdk fails
# while the two differ.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for version in weft-plugin@0.1.0 weft-plugin@0.2.0; do
    rm -rf "$REPO/plugin-sdk/wit/$version"
    mkdir -p "$REPO/plugin-sdk/wit"
    cp -r "$REPO/wit/$version" "$REPO/plugin-sdk/wit/$version"
done
