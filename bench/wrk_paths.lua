-- wrk script for bench/common.py: cycles through the request paths in the file named after
-- "--" (one per line), and prints one machine-readable line when the run ends.
--   wrk -t1 -c16 -d10s -s bench/wrk_paths.lua http://127.0.0.1:8000 -- paths.txt

local paths = {}
local counter = 0

function init(args)
  local file = assert(io.open(args[1], "r"))
  for line in file:lines() do
    if line ~= "" then
      table.insert(paths, line)
    end
  end
  file:close()
  assert(#paths > 0, "no paths in " .. args[1])
  -- Each connection starts at a different place in the list, the same way every run.
  counter = 0
end

function request()
  counter = counter + 1
  return wrk.format(nil, paths[(counter - 1) % #paths + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, "status_errors": %.0f, ' ..
    '"connect": %.0f, "read": %.0f, "write": %.0f, "timeout": %.0f, "p50": %.0f, "p95": %.0f, ' ..
    '"p99": %.0f, "max": %.0f, "mean": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end
