-- wrk script: starts runs of the `load-noop` template through
-- POST /api/v1/workflow-runs and counts every response that is not 201.
-- The bearer token comes from the command line (-H "Authorization: …").
-- The summary line (parsed by scripts/load.sh) is printed by done().

wrk.method = "POST"
wrk.body = '{"template":"load-noop","inputs":{}}'
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  created = 0
  failed = 0
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    failed = failed + 1
    if failed <= 3 then
      io.stderr:write("non-201 response: " .. status .. " " .. tostring(body) .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local ok, bad = 0, 0
  for _, t in ipairs(threads) do
    ok = ok + t:get("created")
    bad = bad + t:get("failed")
  end
  local e = summary.errors
  io.write(string.format(
    "LOAD_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d ok=%d non_ok=%d socket_errors=%d timeouts=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    ok, bad, e.connect + e.read + e.write, e.timeout))
end
