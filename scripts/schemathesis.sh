#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against a live `weft serve` (in-memory
# store) with all its checks, stateful phase included (it follows the
# document's OpenAPI links), a bounded number of examples per operation so
# CI stays fast. scripts/schemathesis.toml lists the few operations whose
# validation goes beyond what a schema can say, and why.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
if ! command -v st >/dev/null 2>&1; then
  echo "==> pip install schemathesis"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
st_bin="$(command -v st || echo "$HOME/.local/bin/st")"
data="$(mktemp -d)"
# Port 0: the OS picks a free port, and weft serve prints
# `listening on http://ADDR` on stdout once it is bound.
WEFT_ADMIN_TOKEN=schemathesis WEFT_LOG=warn "$target/debug/weft" serve --db mem:// --listen 127.0.0.1:0 --data-dir "$data" >"$data/stdout" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
base=""
deadline=$((SECONDS + 60))
until [[ -n "$base" ]] && curl -fsS "$base/ready" >/dev/null 2>&1; do
  base="$(sed -n 's/^listening on //p' "$data/stdout" | head -n 1)"
  if ! kill -0 "$server" 2>/dev/null; then
    echo "error: weft serve exited before it was ready" >&2
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    echo "error: weft serve was not ready within 60 s" >&2
    exit 1
  fi
  sleep 0.1
done
# Templates that exist from the start, so the stateful phase can follow
# listTemplates -> startRun -> the run's operations with real ids (the
# templates schemathesis makes up itself are never valid).
for t in examples/hello.yaml examples/approval.yaml; do
  curl -fsS -o /dev/null -H "Authorization: Bearer schemathesis" \
    -H "content-type: application/yaml" --data-binary "@$t" "$base/api/v1/workflow-templates"
done
echo "==> schemathesis against $base"
"$st_bin" --config-file scripts/schemathesis.toml run "$base/api/v1/openapi.json" \
  -H "Authorization: Bearer schemathesis" \
  --max-examples "${WEFT_SCHEMATHESIS_EXAMPLES:-10}" \
  --seed 1
