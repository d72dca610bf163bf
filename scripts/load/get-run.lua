-- wrk script for GET of one run (the URL is given on the command line):
-- only a done() summary, parsed by scripts/load.sh, so wrk keeps its fast
-- path (no per-response Lua call). Responses other than 2xx/3xx are in
-- summary.errors.status.

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "LOAD_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d ok=%d non_ok=%d socket_errors=%d timeouts=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    summary.requests - e.status, e.status, e.connect + e.read + e.write, e.timeout))
end
