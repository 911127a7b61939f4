-- wrk script for bench_serve.py: POST the JSON bodies of a file (one per line) in turn,
-- each with a new Idempotency-Key, and print one machine-readable RESULT line at the end.
local bodies = {}
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
local path = os.getenv("WRK_PATH")
local method = os.getenv("WRK_METHOD") or "POST"
local auth = os.getenv("WRK_KEY")
local run = os.getenv("WRK_RUN")  -- a new tag per run: keys never repeat across runs
local n = 0

request = function()
  n = n + 1
  local headers = {["Content-Type"] = "application/json", ["Idempotency-Key"] = run .. "-" .. n}
  if auth and auth ~= "" then headers["Authorization"] = "Bearer " .. auth end
  if method == "GET" then return wrk.format("GET", path, headers) end
  return wrk.format("POST", path, headers, bodies[(n % #bodies) + 1])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
