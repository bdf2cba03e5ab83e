-- wrk script for bench/compare.sh and bench/scale.sh: one of four requests, cycling over
-- the first WORKING_SET credentials of the seeder's files (pre-formatted once per thread,
-- so the cost per request is the same for every workload and server), and a summary line
-- for the scripts (latencies in microseconds; `bad_status` counts answers above 399).
--
-- Environment:
--   WORKLOAD      token | introspect | exchange | me
--   CLIENTS       clients.tsv (token: client_id, secret, Basic header)
--   TOKENS        one access token per line (introspect)
--   API_KEYS      one API key per line (exchange, me)
--   CALLER_BASIC  the introspecting client's Basic header (introspect)
--   WORKING_SET   how many lines to use (default: all)

local workload = os.getenv("WORKLOAD") or "token"
local limit = tonumber(os.getenv("WORKING_SET") or "") or math.huge
local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }

local function lines(path, pick)
  local out = {}
  local file = assert(io.open(assert(path, "a file is required for " .. workload), "r"))
  for line in file:lines() do
    if #out >= limit then break end
    if line ~= "" then out[#out + 1] = pick and pick(line) or line end
  end
  file:close()
  assert(#out > 0, path .. " is empty")
  return out
end

local function basic(line)
  return (assert(line:match("^[^\t]+\t[^\t]+\t(.+)$"), "malformed clients line"))
end

local function with(headers, name, value)
  local copy = {}
  for k, v in pairs(headers) do copy[k] = v end
  copy[name] = value
  return copy
end

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local requests, index = {}, 1

function init(args)
  if workload == "token" then
    for _, header in ipairs(lines(os.getenv("CLIENTS"), basic)) do
      requests[#requests + 1] = wrk.format("POST", "/oauth/token",
        with(form, "Authorization", header), "grant_type=client_credentials")
    end
  elseif workload == "introspect" then
    local caller = assert(os.getenv("CALLER_BASIC"), "CALLER_BASIC is required")
    for _, token in ipairs(lines(os.getenv("TOKENS"))) do
      requests[#requests + 1] = wrk.format("POST", "/oauth/introspect",
        with(form, "Authorization", caller), "token=" .. token)
    end
  elseif workload == "exchange" then
    for _, key in ipairs(lines(os.getenv("API_KEYS"))) do
      requests[#requests + 1] = wrk.format("POST", "/oauth/token", form,
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
        .. "&subject_token=" .. key
        .. "&subject_token_type=urn%3Atollgate%3Aparams%3Aoauth%3Atoken-type%3Aapi_key")
    end
  elseif workload == "bare" then
    -- The ceiling's empty 200: what this machine serves of any request at all.
    requests[1] = wrk.format("GET", "/health/ready", {}, nil)
  elseif workload == "me" then
    for _, key in ipairs(lines(os.getenv("API_KEYS"))) do
      requests[#requests + 1] = wrk.format("GET", "/api/v1/me",
        { ["Authorization"] = "Bearer " .. key }, nil)
    end
  else
    error("unknown WORKLOAD " .. workload)
  end
  -- Threads start at different places in the list.
  index = ((id or 0) * 7919) % #requests + 1
end

function request()
  local r = requests[index]
  index = index + 1
  if index > #requests then index = 1 end
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d bad_status=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
