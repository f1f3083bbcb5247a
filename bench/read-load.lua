-- wrk script of bench:gateway's read scenario: GET /v1/sensors/:id over the bench's sensors,
-- each connection pausing READ_DELAY_MS between a reply and its next request (wrk keeps one
-- request in flight per connection), so that the offered rate is about
-- connections / (delay + latency). wrk times each request in C, from the write of the request to
-- the end of the reply. Prints one JSON line at the end:
--   {"requests","non2xx","errors","seconds","p50","p99","max"}   (latencies in ms)
--
--   READ_REGION=bench READ_SENSORS=10000 READ_DELAY_MS=2 wrk -t2 -c24 -d10s -s bench/read-load.lua http://127.0.0.1:PORT

local region = os.getenv("READ_REGION") or "bench"
local sensors = tonumber(os.getenv("READ_SENSORS") or "10000")
local delayMs = tonumber(os.getenv("READ_DELAY_MS") or "2")
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
  table.insert(threads, thread)
end

local n = 0
function request()
  n = n + 1
  local s = (n + (offset or 0)) % sensors
  return wrk.format("GET", "/v1/sensors/line-" .. (s % 50) .. "%2Fsensor-" .. s .. "?region=" .. region)
end

function delay()
  return delayMs
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format('{"requests":%d,"non2xx":%d,"errors":%d,"seconds":%.3f,"p50":%.3f,"p99":%.3f,"max":%.3f}\n',
    summary.requests, e.status, errors, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
