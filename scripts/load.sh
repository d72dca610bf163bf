#!/usr/bin/env bash
# Load test of the REST API (release build, loopback, wrk):
#
#   (a) GET  /api/v1/workflow-runs/{id}   target ≥ 10,000 req/s, p99 ≤ 10 ms
#   (b) POST /api/v1/workflow-runs        target ≥ 1,000 runs/s started, no errors
#       (one-step template `load-noop`: a single core/noop step), then waits
#       until every started run has finished and reports how many succeeded.
#
# Starts its own `weft serve` on a free loopback port with a temporary data
# directory and a durable store (surrealkv), prints a Markdown table and
# stops the server on exit. Idempotent setup: installs wrk (apt) if missing.
#
# Knobs (environment):
#   LOAD_THREADS=2        wrk threads (-t); wrk and the server share the machine
#   LOAD_CONNECTIONS=64   wrk connections (-c)
#   LOAD_DURATION=10s     wrk duration (-d), each phase
#   LOAD_SKIP_BUILD=1     use the existing release binary as is
#   LOAD_STRICT=1         exit 1 when a target is missed
#   LOAD_PERF=<dir>       also record the server with `perf record -g` during
#                         each phase into <dir>/{get,post}.perf.data
#   LOAD_READY_TIMEOUT=120, LOAD_DRAIN_TIMEOUT=300   deadlines (seconds)
#   WEFT_LOG              the server's log filter (default: info, as in production)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"

THREADS="${LOAD_THREADS:-2}"
CONNS="${LOAD_CONNECTIONS:-64}"
DURATION="${LOAD_DURATION:-10s}"
READY_TIMEOUT="${LOAD_READY_TIMEOUT:-120}"
DRAIN_TIMEOUT="${LOAD_DRAIN_TIMEOUT:-300}"

# --- tools --------------------------------------------------------------------
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo "$@"; fi
}
need() { # need <command> <debian package>
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "==> apt-get install -y $2" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" ||
        { as_root apt-get update && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$2"; }
}
need wrk wrk
need curl curl
need jq jq

# --- build --------------------------------------------------------------------
if [[ -z "${LOAD_SKIP_BUILD:-}" ]]; then
    scripts/setup.sh
    scripts/build-guests.sh >/dev/null
    echo "==> cargo build --release -p weft-api --locked" >&2
    cargo build --release -p weft-api --locked
fi
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"
BIN="$TARGET_DIR/release/weft"
[[ -x "$BIN" ]] || { echo "error: $BIN not found (build it or unset LOAD_SKIP_BUILD)" >&2; exit 1; }

# --- server -------------------------------------------------------------------
TMP="$(mktemp -d -t weft-load.XXXXXX)"
SERVER_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -f "$TMP/server.log" ]]; then
        echo "--- last lines of the server log ---" >&2
        tail -n 30 "$TMP/server.log" >&2 || true
    fi
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TOKEN="weft_load_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
AUTH="Authorization: Bearer $TOKEN"

echo "==> weft serve (data in $TMP)" >&2
# Run from the temporary directory so that no ./weft.toml is picked up.
(
    cd "$TMP"
    unset WEFT_CONFIG WEFT_LISTEN WEFT_DB WEFT_DATA_DIR
    WEFT_ADMIN_TOKEN="$TOKEN" WEFT_LOG="${WEFT_LOG:-info}" exec "$BIN" serve \
        --listen 127.0.0.1:0 --data-dir "$TMP/data" --db "surrealkv://$TMP/db"
) >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

# Port 0: the OS picks a free port, and weft serve prints
# `listening on http://ADDR` on stdout once it is bound.
BASE=""
deadline=$((SECONDS + READY_TIMEOUT))
until [[ -n "$BASE" ]] && curl -fsS -o /dev/null "$BASE/ready" 2>/dev/null; do
    if [[ -z "$BASE" ]]; then
        BASE="$(sed -n 's/^listening on //p' "$TMP/server.log" | head -n 1)"
        API="$BASE/api/v1"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "error: the server exited before it was ready" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "error: the server was not ready within ${READY_TIMEOUT}s" >&2
        exit 1
    fi
    sleep 0.1
done

api() { # api <method> <path> [json body]
    if [[ $# -ge 3 ]]; then
        curl -fsS -X "$1" -H "$AUTH" -H 'content-type: application/json' --data "$3" "$API$2"
    else
        curl -fsS -X "$1" -H "$AUTH" "$API$2"
    fi
}

# --- fixtures: a one-step template and one finished run -------------------------
api POST /workflow-templates \
    '{"name":"load-noop","description":"scripts/load.sh: one core/noop step","steps":[{"id":"noop","uses":"core/noop","with":{}}]}' \
    >/dev/null
RUN="$(api POST /workflow-runs '{"template":"load-noop","inputs":{}}' | jq -r .data.id)"
deadline=$((SECONDS + 60))
while :; do
    status="$(api GET "/workflow-runs/$RUN" | jq -r .data.status)"
    case "$status" in
        SUCCESS) break ;;
        FAILED | CANCELLED)
            echo "error: the warm-up run $RUN ended $status" >&2
            exit 1
            ;;
    esac
    if ((SECONDS >= deadline)); then
        echo "error: the warm-up run $RUN is still $status after 60s" >&2
        exit 1
    fi
    sleep 0.05
done

# runs of load-noop [with a status]
count_runs() {
    api GET "/workflow-runs?template=load-noop&pageSize=1${1:+&status=$1}" | jq -r .meta.pagination.total
}

# Parses the LOAD_RESULT line the wrk scripts print into R_<key> variables.
parse_result() {
    local line kv
    line="$(grep '^LOAD_RESULT ' "$1" | tail -n 1)"
    [[ -n "$line" ]] || { echo "error: no LOAD_RESULT line in $1" >&2; cat "$1" >&2; exit 1; }
    for kv in ${line#LOAD_RESULT }; do
        printf -v "R_${kv%%=*}" '%s' "${kv#*=}"
    done
}
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
per_s() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.0f", n / (us / 1e6) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

# The command as one can paste it (the token stays a variable).
show() {
    local a out=""
    for a in "$@"; do
        if [[ "$a" == "$AUTH" ]]; then
            a='"Authorization: Bearer $TOKEN"'
        elif [[ "$a" == *" "* ]]; then
            a="'$a'"
        fi
        out+="${out:+ }$a"
    done
    echo "$out"
}

# Runs a wrk phase, with `perf record` on the server when LOAD_PERF is set.
phase() { # phase <name> <wrk args…>
    local name="$1" perf_pid=""
    shift
    echo "==> $(show "$@")" >&2
    if [[ -n "${LOAD_PERF:-}" ]]; then
        mkdir -p "$LOAD_PERF"
        perf record -g -o "$LOAD_PERF/$name.perf.data" -p "$SERVER_PID" 2>"$LOAD_PERF/$name.perf.log" &
        perf_pid=$!
    fi
    "$@" | tee "$TMP/$name.txt" >&2
    if [[ -n "$perf_pid" ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        echo "==> profile: perf report -i $LOAD_PERF/$name.perf.data --no-children --sort sym" >&2
    fi
}

CPUS="$(nproc)"
echo "==> machine: $CPUS CPUs; $(uptime)" >&2

# --- (a) GET one run ----------------------------------------------------------
GET_CMD=(wrk "-t$THREADS" "-c$CONNS" "-d$DURATION" --latency -H "$AUTH"
    -s scripts/load/get-run.lua "$API/workflow-runs/$RUN")
phase get "${GET_CMD[@]}"
parse_result "$TMP/get.txt"
GET_RPS="$(per_s "$R_requests" "$R_duration_us")"
GET_P50="$R_p50_us" GET_P99="$R_p99_us"
GET_ERR=$((R_non_ok + R_socket_errors + R_timeouts))

# --- (b) POST: start runs -------------------------------------------------------
BEFORE="$(count_runs)"
POST_CMD=(wrk "-t$THREADS" "-c$CONNS" "-d$DURATION" --latency -H "$AUTH"
    -s scripts/load/start-run.lua "$API/workflow-runs")
t0="$(date +%s.%N)"
phase post "${POST_CMD[@]}"
parse_result "$TMP/post.txt"
POST_RPS="$(per_s "$R_ok" "$R_duration_us")"
POST_P50="$R_p50_us" POST_P99="$R_p99_us"
POST_ERR=$((R_non_ok + R_socket_errors + R_timeouts))
POST_CREATED="$R_ok"

# Wait until every run the server created has finished.
echo "==> waiting for the started runs to finish (up to ${DRAIN_TIMEOUT}s)" >&2
deadline=$((SECONDS + DRAIN_TIMEOUT))
while :; do
    # Terminal counts first, then the total: the total only grows, so
    # terminal >= total means every run counted had finished.
    success=$(($(count_runs SUCCESS) - BEFORE))
    failed="$(count_runs FAILED)"
    cancelled="$(count_runs CANCELLED)"
    total=$(($(count_runs) - BEFORE))
    if ((success + failed + cancelled >= total)); then
        break
    fi
    if ((SECONDS >= deadline)); then
        echo "warning: $((total - success - failed - cancelled)) run(s) unfinished after ${DRAIN_TIMEOUT}s" >&2
        break
    fi
    sleep 0.1
done
t2="$(date +%s.%N)"
unfinished=$((total - success - failed - cancelled))
DONE_S="$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')"
DONE_RPS="$(awk -v n="$success" -v s="$DONE_S" 'BEGIN { printf "%.0f", n / s }')"

# --- report ---------------------------------------------------------------------
missed=0
mark() { if "$@"; then echo "✅"; else echo "❌"; fi; }
get_ok() { ge "$GET_RPS" 10000 && ((GET_P99 <= 10000)) && ((GET_ERR == 0)); }
post_ok() { ge "$POST_RPS" 1000 && ((POST_ERR == 0)); }
done_ok() { ((success == total && unfinished == 0 && success >= POST_CREATED)); }
GET_MARK="$(mark get_ok)"
POST_MARK="$(mark post_ok)"
DONE_MARK="$(mark done_ok)"
[[ "$GET_MARK$POST_MARK$DONE_MARK" == *❌* ]] && missed=1

cat <<EOF

## Weft load test

\`scripts/load.sh\` (release, loopback, wrk -t$THREADS -c$CONNS -d$DURATION; server and wrk share $CPUS CPUs)
$(uptime)

| endpoint | req/s | p50 | p99 | errors | target | |
|---|---:|---:|---:|---:|---|---|
| \`GET /api/v1/workflow-runs/{id}\` | $GET_RPS | $(ms "$GET_P50") | $(ms "$GET_P99") | $GET_ERR | ≥ 10,000 req/s, p99 ≤ 10 ms | $GET_MARK |
| \`POST /api/v1/workflow-runs\` (runs started) | $POST_RPS | $(ms "$POST_P50") | $(ms "$POST_P99") | $POST_ERR | ≥ 1,000 runs/s, no errors | $POST_MARK |
| runs completed (SUCCESS) | $DONE_RPS | – | – | $((total - success)) | every started run succeeds | $DONE_MARK |

- POST: $POST_CREATED runs acknowledged (201) in $(awk -v us="$R_duration_us" 'BEGIN { printf "%.2f", us / 1e6 }') s; the server created $total
  (requests in flight when wrk stopped are created but not counted); $success SUCCESS, $failed FAILED,
  $cancelled CANCELLED, $unfinished unfinished; all had finished $DONE_S s after the load started
  (polled every 0.1 s; completed runs/s = SUCCESS / that time).
- Commands: \`$(show "${GET_CMD[@]}")\` and \`$(show "${POST_CMD[@]}")\`.
EOF

if [[ -n "${LOAD_STRICT:-}" && $missed -ne 0 ]]; then
    exit 1
fi
