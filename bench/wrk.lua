-- Send every pre-signed request of a file exactly once, then stop: a bounded wrk run with no replays.
-- wrk -t T -c C -d MAX -s bench/wrk.lua URL -- REQUESTS_FILE MARKER_PREFIX RESULT_FILE T
-- REQUESTS_FILE holds one "signature<TAB>form body" a line; thread k sends lines k, k+T, k+2T...
-- Each thread touches MARKER_PREFIX.k when its share is answered; done() writes RESULT_FILE (JSON).
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]])
local timespec = ffi.new("bench_timespec")
local CLOCK_MONOTONIC = 1

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) / 1e9
end

-- Main state: one handle per thread, to read their counters in done().
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

-- Thread states. Globals so that done() can read them with thread:get().
first, last, sent, answered, non200 = 0, 0, 0, 0, 0
local requests, limit, marker, started, granted = {}, 0, nil, false, 0

function init(args)
  local path, count = args[1], tonumber(args[4])
  marker, result_path = args[2] .. "." .. id, args[3]
  local n = 0
  for line in io.lines(path) do
    if n % count == id then
      local signature, body = line:match("^([^\t]*)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/sms/inbound", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = signature,
      }, body)
    end
    n = n + 1
  end
  limit = #requests
end

function delay()
  started = true
  -- Park a connection once this thread's share is handed out, so no request goes twice.
  -- Counted here, not in request(): several connections can pass delay() before any request().
  if granted >= limit then return 3600000 end
  granted = granted + 1
  return 0
end

function request()
  -- wrk calls request() once on thread 0 before running, to check it; that one is never sent.
  -- Every real request follows a delay() call.
  if not started then return requests[1] end
  sent = sent + 1
  if sent == 1 then first = now() end
  -- Only after a socket error can wrk ask for more; make that visible instead of replaying.
  return requests[sent] or wrk.format("GET", "/bench-overflow")
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then non200 = non200 + 1 end
  if answered == limit then
    last = now()
    io.open(marker, "w"):close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local t_first, t_last, total_sent, total_non200, path = math.huge, 0, 0, 0, nil
  for _, thread in ipairs(threads) do
    t_first = math.min(t_first, thread:get("first"))
    t_last = math.max(t_last, thread:get("last"))
    total_sent = total_sent + thread:get("sent")
    total_non200 = total_non200 + thread:get("non200")
    path = thread:get("result_path")
  end
  local e = summary.errors
  local out = io.open(path, "w")
  out:write(string.format(
    '{"answered": %d, "sent": %d, "non200": %d, "first": %.6f, "last": %.6f, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "mean": %.1f, "max": %d}}\n',
    summary.requests, total_sent, total_non200, t_first, t_last,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
  out:close()
end
