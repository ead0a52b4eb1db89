-- wrk script: POST the JSON body in $BENCH_BODY_FILE (bench_inference.py; the gateway loadtest,
-- artpulse_dev.gateway_load).
--
-- With $BENCH_SUMMARY_FILE set it also counts, per 2xx answer, the model version in the body
-- (`"model": {"name": ..., "version": "2"}` of /predict; "?" when there is none) and, when
-- wrk is done, writes its summary there as one JSON object: requests, duration, errors,
-- latency percentiles (microseconds) and the versions that answered. Without it wrk runs as
-- before (no response() hook: wrk then skips parsing the bodies).
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local summary_file = os.getenv("BENCH_SUMMARY_FILE")
if summary_file and summary_file ~= "" then
  local threads = {}
  versions = {} -- a global: done() reads each thread's copy with thread:get

  function setup(thread)
    table.insert(threads, thread)
  end

  function response(status, headers, body)
    if status >= 200 and status < 300 then
      local v = body and body:match('"version"%s*:%s*"([^"]*)"') or "?"
      versions[v] = (versions[v] or 0) + 1
    end
  end

  function done(summary, latency, requests)
    local counts = {}
    for _, thread in ipairs(threads) do
      for v, n in pairs(thread:get("versions") or {}) do
        counts[v] = (counts[v] or 0) + n
      end
    end
    local parts = {}
    for v, n in pairs(counts) do
      -- Only characters that need no JSON escaping.
      table.insert(parts, string.format('"%s":%d', (v:gsub("[^%w%.%-_]", "?")), n))
    end
    local e = summary.errors
    local lat = "null"
    if summary.requests > 0 then
      lat = string.format(
        '{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p95":%d,"p99":%d}',
        latency.min, latency.max, latency.mean, latency.stdev, latency:percentile(50),
        latency:percentile(90), latency:percentile(95), latency:percentile(99))
    end
    local out = assert(io.open(summary_file, "w"))
    out:write(string.format(
      '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":%s,"versions":{%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout, lat, table.concat(parts, ",")))
    out:close()
  end
end
