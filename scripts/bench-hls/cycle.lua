-- wrk script of scripts/bench-hls.sh: cycle through the request paths listed in a file.
--   wrk ... -s cycle.lua URL -- PATHS_FILE THREADS
-- Every thread walks the whole list in order (from its own offset), so over a run each path is
-- requested about equally often. done() prints one "WRK_JSON {...}" line for bench_hls.py,
-- including the non-2xx/3xx count (summary.errors.status) and socket errors.
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local paths = {}
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  assert(#paths > 0, "no paths in " .. args[1])
  reqs = {}
  for i, p in ipairs(paths) do reqs[i] = wrk.format("GET", p) end
  local threads = tonumber(args[2] or "1")
  i = math.floor(id * #reqs / threads) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "bytes": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
