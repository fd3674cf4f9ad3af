-- Issue 14, a rate limit shared by the workers: panels limit a key, not an nginx worker. Four
-- workers (helpers/nginx.lua, reuseport) each with their own client, made on the first
-- request as users make them, call the sandbox panel at once; the sandbox counts what reached
-- it in each second (stats.per_second). With `shared_dict` the account's one bucket holds over
-- all of them; without it each worker has its own and together they go past it.
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local eval = require "helpers.nginx_eval"
local cjson = require "cjson"

local available, missing = nginx.available()

-- 10 requests a second, with a burst of 2: a burst small beside the rate keeps a second's
-- bound tight (12 here, against about 40 for four workers' own buckets).
local REQUESTS, PER = 2, 200
local RATE = REQUESTS * 1000 / PER -- per second
-- The token bucket's own allowance: within any span under a second (a calendar second, as the
-- sandbox counts) it lets through its burst plus what refills meanwhile, at most
-- REQUESTS + RATE. (Within one second it is 11 at most: the 1 left over is for an answer's
-- arrival drifting into the next second.)
local PER_SECOND = REQUESTS + RATE
local RUN_MS = 3000
-- Connections opened at once: the kernel spreads them over the workers (reuseport); all twelve
-- landing on one worker is a chance of 4^-11.
local CONNECTIONS = 12
local TAKES = 3000 -- per connection, in the atomicity check
local OTHER_KEY = "OTHER-ACCOUNT-KEY-51d0"

-- /calls?ms=N[&dict=NAME][&key=other]: balance calls for N ms through this worker's client
-- (one per dict and key, kept for the worker's life), -> which worker, how many calls, failures
local LOCATIONS = eval.LOCATION .. ([[
        location = /calls {
            content_by_lua_block {
                local a = ngx.req.get_uri_args()
                local clients = package.loaded.t23_clients or {}
                package.loaded.t23_clients = clients
                local key = a.key == "other" and "%s" or os.getenv("SMM_API_KEY")
                local name = (a.dict or "(own bucket)") .. " " .. (a.key or "")
                local c = clients[name]
                if not c then
                    c = require("smm").new{ url = os.getenv("SMM_API_URL"), key = key, retries = 0,
                        rate_limit = { requests = %d, per = %d }, shared_dict = a.dict }
                    clients[name] = c
                end
                ngx.update_time()
                local deadline = ngx.now() + tonumber(a.ms) / 1000
                local calls, failed, first = 0, 0, nil
                repeat
                    local b, err = c:balance()
                    calls = calls + 1
                    if not b then failed, first = failed + 1, first or tostring(err) end
                    ngx.update_time()
                until ngx.now() >= deadline
                local body = require("cjson").encode{ worker = ngx.worker.id(), calls = calls,
                                                      failed = failed, error = first }
                ngx.header.content_length = #body -- not chunked: ng:burst reads raw bytes
                ngx.print(body)
            }
        }
        # ?n= takes of one token from the shared bucket named t23:atomic, as fast as they go
        location = /takes {
            content_by_lua_block {
                local clock = { sleep = function(_, ms) ngx.sleep(ms / 1000) end }
                local bucket = require("smm.ratelimit").shared({ requests = 1e6, per = 1e9 }, clock,
                    ngx.shared.t23_rate, "t23:atomic")
                local n = tonumber(ngx.var.arg_n)
                for _ = 1, n do bucket:take() end
                local body = require("cjson").encode{ worker = ngx.worker.id(), took = n }
                ngx.header.content_length = #body
                ngx.print(body)
            }
        }
]]):format(OTHER_KEY, REQUESTS, PER)

describe("a rate limit shared by the nginx workers", function()
  if not available then
    it("needs nginx and its lua module", function()
      error(missing .. " (this spec installs nothing; CI installs them)")
    end)
    return
  end

  local ng, sb
  setup(function()
    sb = env.sandbox{ key = env.KEY .. "," .. OTHER_KEY }
    ng = nginx.start{ workers = 4, locations = LOCATIONS, http = "    lua_shared_dict t23_rate 1m;",
                      env = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY } }
  end)
  teardown(function()
    if ng then ng:stop() end
    if sb then sb:stop() end
  end)

  -- The names in the dict, read by a worker.
  local function dict_keys()
    return (eval.run(ng, "return ngx.shared.t23_rate:get_keys(0)"))
  end

  -- Every connection calls for RUN_MS at once. -> the sandbox's stats, how many workers
  -- answered, how many calls they made.
  local function run(query)
    sb:reset()
    local answers = ng:burst(CONNECTIONS, "/calls?ms=" .. RUN_MS .. (query or ""))
    local workers, n_workers, calls = {}, 0, 0
    for _, a in ipairs(answers) do
      assert.equal(200, a.status, tostring(a.body) .. " " .. tostring(a.err))
      local v = cjson.decode(a.body)
      assert.equal(0, v.failed, v.error)
      if not workers[v.worker] then workers[v.worker], n_workers = true, n_workers + 1 end
      calls = calls + v.calls
    end
    local st = sb:stats()
    assert.equal(calls, st.actions.balance)
    return st, n_workers, calls
  end

  local function seconds(st)
    local out = {}
    for _, s in ipairs(st.per_second) do out[#out + 1] = ("%d"):format(s.requests) end
    return table.concat(out, " ")
  end

  it("with shared_dict, the panel never sees more than the limit in a second, over all workers", function()
    local st, n_workers, calls = run("&dict=t23_rate")
    local keys = dict_keys()
    assert.is_true(n_workers >= 2, "only " .. n_workers .. " worker(s) took part")
    assert.is_true(st.peak_per_second <= PER_SECOND,
      ("%d requests in one second (limit %d a second + a burst of %d); per second: %s")
        :format(st.peak_per_second, RATE, REQUESTS, seconds(st)))
    -- and the limiter does let the rate through (generously: half of it)
    assert.is_true(calls >= RATE * RUN_MS / 1000 / 2, calls .. " calls in " .. RUN_MS .. " ms")
    -- the account's bucket, named by the panel's URL and a digest, never by the key
    local found = false
    for _, k in ipairs(keys) do
      assert.is_nil(k:find(env.KEY, 1, true), k)
      if k:find("^smm:rate:" .. sb.url:gsub("%p", "%%%0") .. ":%x+$") then found = true end
    end
    assert.is_true(found, "no smm:rate: entry for the panel among: " .. table.concat(keys, ", "))
  end)

  it("without shared_dict, each worker has its own bucket and together they go past it", function()
    local st, n_workers = run()
    assert.is_true(n_workers >= 2, "only " .. n_workers .. " worker(s) took part")
    assert.is_true(st.peak_per_second > PER_SECOND,
      ("%d requests at most in a second; per second: %s"):format(st.peak_per_second, seconds(st)))
    for _, k in ipairs(dict_keys()) do assert.is_nil(k:find("^smm:rate:"), k) end
  end)

  -- The bucket's step (read tat, take the max, write it back) is atomic across workers: four
  -- workers taking as fast as they can, none of them waiting (a bucket of a million tokens,
  -- one per second), move tat by exactly one interval per token taken. A step that another
  -- worker's step interleaved with would lose a take.
  it("every take from the shared bucket counts, however many workers take at once", function()
    local start = eval.run(ng, [[
      local dict = ngx.shared.t23_rate
      ngx.update_time()
      local start = math.floor(ngx.now() * 1000) + 1e7 -- ahead of now: never raised to now
      assert(dict:set("t23:atomic", start, 3600))
      return start
    ]])
    local answers = ng:burst(CONNECTIONS, "/takes?n=" .. TAKES)
    local workers, n_workers, took = {}, 0, 0
    for _, a in ipairs(answers) do
      assert.equal(200, a.status, tostring(a.body) .. " " .. tostring(a.err))
      local v = cjson.decode(a.body)
      if not workers[v.worker] then workers[v.worker], n_workers = true, n_workers + 1 end
      took = took + v.took
    end
    assert.is_true(n_workers >= 2, "only " .. n_workers .. " worker(s) took part")
    assert.equal(CONNECTIONS * TAKES, took)
    local tat = eval.run(ng, [[return ngx.shared.t23_rate:get("t23:atomic")]])
    -- one interval is 1e9 / 1e6 = 1000 ms
    assert.equal(took, (tat - start) / 1000)
  end)

  it("each account has its own bucket and its own service list, under one naming rule", function()
    local v = eval.run(ng, [[
      local smm = require "smm"
      local keys = {}
      for _, key in ipairs{ key_a, key_b } do
        local c = smm.new{ url = url, key = key, shared_dict = "t23_rate", retries = 0,
                           rate_limit = { requests = 5, per = 1000 } }
        assert(c:balance())
        assert(c:services())
      end
      local entry = require("smm.shared").entry
      return { keys = ngx.shared.t23_rate:get_keys(0),
               a = entry("rate", url, key_a), b = entry("rate", url, key_b),
               hidden = entry("rate", "http://user:PASSWORD-1@127.0.0.1:1/api/v2?token=TOKEN-2", key_a) }
    ]], { url = sb.url, key_a = env.KEY, key_b = OTHER_KEY })
    assert.not_equal(v.a, v.b)
    local digest_a, digest_b = v.a:match(":(%x+)$"), v.b:match(":(%x+)$")
    assert.truthy(digest_a)
    assert.equal("smm:rate:http://127.0.0.1:1/api/v2:", v.hidden:sub(1, -#digest_a - 1))
    local have = {}
    for _, k in ipairs(v.keys) do
      have[k] = true
      assert.is_nil(k:find(env.KEY, 1, true), k)
      assert.is_nil(k:find(OTHER_KEY, 1, true), k)
    end
    local prefix = sb.url .. ":"
    for _, name in ipairs{ "smm:rate:" .. prefix .. digest_a, "smm:rate:" .. prefix .. digest_b,
                           "smm:services:" .. prefix .. digest_a, "smm:services:" .. prefix .. digest_b } do
      assert.is_true(have[name], name .. " not among: " .. table.concat(v.keys, ", "))
    end
  end)
end)
