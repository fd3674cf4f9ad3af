-- bench/run.lua: `make bench`. lua-smm against bare libcurl and cjson, on a loopback nginx.
--
--   make bench                    (builds smm.core and build/bench/curl_loop, then runs this)
--   lua5.4 bench/run.lua          (from the repository root, after `make` and the curl_loop build)
--
-- Environment: SMM_BENCH_REPS (default 5) repetitions per measure; SMM_BENCH_CALLGRIND=0 skips
-- the valgrind instruction counts; SMM_BENCH_NGINX_LUA=0 skips bench/nginx.lua;
-- SMM_KEEP_NGINX=1 keeps the temporary nginx folder; SMM_BENCH_CPATH="/some/dir/?.so;" measures
-- another build of smm.core (/some/dir/smm/core.so), e.g. a candidate fix.
-- `lua5.4 bench/run.lua --serve` only starts the loopback panel and prints its address (for
-- profiling by hand), until Enter.
--
-- What it does (docs/benchmarks.md says why each baseline is fair):
--   nginx (Debian's, with the lua module; one worker, access_log off, keepalive_requests
--   100000) on a free 127.0.0.1 port from a temporary folder, serving
--     /balance   a static `return 200` JSON answer
--     /status    content_by_lua: orders=ID,... -> ngx.sleep(0.020) -> a JSON object keyed by id
--     /services  a static 10,000-service JSON file generated here
--   1. balance x N (3000): `client:balance()` in a fresh lua5.4 process vs build/bench/curl_loop
--      doing N POSTs of the same body over one easy handle; A/B interleaved REPS times; wall
--      and cpu medians and their ratios.
--   2. `client:status(10,000 ids)` with concurrency 8 against the 20 ms answers: median wall
--      over REPS runs / (100 requests / 8 x 20 ms = 250 ms).
--   3. `client:services{ refresh = true }` (10,000 services) vs (curl_loop fetch + cjson.decode
--      of the same body), per-iteration medians of 20.
--   4. VmRSS of one process after 1,000 and after 100,000 `client:balance()` calls.
--   5. bench/nginx.lua: 50 concurrent requests through the OpenResty transport, 100 ms panel;
--      bench/wrk_ngx.lua: wrk against client:balance() in one nginx worker vs proxy_pass.
--   6. the order book: bench/book_sync.lua (a sync round over 100,000 orders against /status, on
--      SQLite and PostgreSQL, and the RSS after) and bench/book_batch.lua (smm batch
--      --concurrency 8 of 2,000 rows); see bench_book.
--   7. several panels: bench/router_add.lua (a routed add / a direct add on the same 20 ms panel,
--      through one book); see bench_router.
--   8. several panels: bench/catalog_merge.lua (merging three 10,000-service lists into products
--      against fetching one; SMM_BENCH_CATALOG=0 skips it).
--   + callgrind instructions per balance call: client vs bare libcurl (difference of two runs
--     of different lengths, so start-up and warm-up cancel).
local root = (debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$") or ".")
if root:sub(1, 1) ~= "/" then root = (os.getenv("PWD") or ".") .. "/" .. root end
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;" .. package.path
-- SMM_BENCH_CPATH (e.g. "/tmp/patched/?.so;") measures another build of smm.core
package.cpath = (os.getenv("SMM_BENCH_CPATH") or (root .. "/build/lua5.4/?.so;")) .. package.cpath

local cjson = require "cjson"

local KEY = "bench-key"
local LUA = "lua5.4"
local SELF = root .. "/bench/run.lua"
local CURL_LOOP = root .. "/build/bench/curl_loop"

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  local n = #c
  if n == 0 then return 0 / 0 end
  if n % 2 == 1 then return c[(n + 1) / 2] end
  return (c[n / 2] + c[n / 2 + 1]) / 2
end

local function rss_kib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s*(%d+)")
    if kb then return tonumber(kb) end
  end
end

---------------------------------------------------------------------------------------------
-- Child modes: `lua5.4 bench/run.lua --child MODE URL ...` prints one JSON line.
---------------------------------------------------------------------------------------------
local function child(mode, url, ...)
  local smm = require "smm"
  local core = require "smm.core"
  local now = core.now
  local out

  if mode == "balance" then
    local n, warmup = tonumber((...)), tonumber(select(2, ...) or 20)
    local client = smm.new{ url = url, key = KEY }
    for _ = 1, warmup do assert(client:balance()) end
    collectgarbage("collect")
    local c0, w0 = os.clock(), now()
    for _ = 1, n do
      local b, err = client:balance()
      if not b then error(tostring(err)) end
    end
    local wall, cpu = now() - w0, (os.clock() - c0) * 1000
    assert(client:balance().balance == "100.84292")
    out = { n = n, wall_ms = wall, cpu_ms = cpu }

  elseif mode == "core" then -- diagnosis: smm.core's handle:request alone, no Lua client
    local n, warmup = tonumber((...)), tonumber(select(2, ...) or 20)
    local handle = core.new{}
    -- what client:balance() asks of it: the answer read by its schema
    local ropts = { idempotent = true, schema = require("smm.normalize").BALANCE_SCHEMA }
    for _ = 1, warmup + n do
      local res = handle:request(url, { action = "balance", key = KEY }, ropts)
      if not res.json then error("no JSON answer") end
    end
    out = { n = n }

  elseif mode == "status" then
    local reps, conc = tonumber((...)), tonumber(select(2, ...))
    local client = smm.new{ url = url, key = KEY, concurrency = conc }
    local ids = {}
    for i = 1, 10000 do ids[i] = i end
    -- warm up: conc parallel requests open the connections the measured runs reuse
    local warm = {}
    for i = 1, conc * 100 do warm[i] = i end
    assert(client:status(warm))
    local times, cpus = {}, {}
    for r = 1, reps do
      collectgarbage("collect")
      local c0, w0 = os.clock(), now()
      local by_id, err = client:status(ids)
      times[r], cpus[r] = now() - w0, (os.clock() - c0) * 1000
      assert(by_id, tostring(err))
      assert(by_id[1].status == "In progress" and by_id[50].error == "Incorrect order ID"
        and by_id[10000].error ~= nil and by_id[9999].remains == 999, "unexpected status answer")
    end
    out = { times_ms = times, cpu_ms = cpus }

  elseif mode == "services_ab" then
    -- The client and the baseline's decode, alternated in one process (the same heap, the
    -- same moment of a noisy machine): client:services{ refresh = true } against
    -- cjson.decode of the body it fetches, read from `path`. Each after a full collect, and
    -- each with the previous list still alive, as the client's cache keeps it. The baseline
    -- decodes a fresh copy of the body each time: fetched through curl from Lua, an answer
    -- becomes a new Lua string before cjson sees it, as it does in smm.core.
    local n, path = tonumber((...)), select(2, ...)
    local body = read(path)
    local decode = require("cjson.safe").new().decode -- what smm.core uses
    local client = smm.new{ url = url, key = KEY }
    for _ = 1, 2 do assert(client:services{ refresh = true }) end
    local kept = decode(body)
    local ctimes, dtimes, cpus = {}, {}, {}
    for i = 1, n do
      collectgarbage("collect")
      local c0, w0 = os.clock(), now()
      local list, err = client:services{ refresh = true }
      ctimes[i], cpus[i] = now() - w0, (os.clock() - c0) * 1000
      assert(list, tostring(err))
      assert(#list == 10000 and list[10000].service == 10000 and type(list[1].min) == "number",
        "unexpected service list")
      collectgarbage("collect")
      w0 = now()
      local decoded = decode(" " .. body) -- a new 2 MB string (JSON allows the space)
      dtimes[i] = now() - w0
      assert(#decoded == 10000)
      kept = decoded
    end
    assert(kept)
    out = { times_ms = ctimes, cpu_ms = cpus, decode_ms = dtimes, bytes = #body }

  elseif mode == "rss" then
    local first, total = tonumber((...)), tonumber(select(2, ...))
    local client = smm.new{ url = url, key = KEY }
    local function calls(n)
      for _ = 1, n do
        local b, err = client:balance()
        if not b then error(tostring(err)) end
      end
    end
    calls(first)
    collectgarbage("collect")
    collectgarbage("collect")
    local rss1, lua1 = rss_kib(), collectgarbage("count")
    local w0 = now()
    calls(total - first)
    local wall = now() - w0
    collectgarbage("collect")
    collectgarbage("collect")
    local rss2, lua2 = rss_kib(), collectgarbage("count")
    out = { rss1_kib = rss1, rss2_kib = rss2, lua1_kib = lua1, lua2_kib = lua2, first = first,
            total = total, wall_ms = wall }
  else
    error("unknown child mode " .. tostring(mode))
  end
  io.write(cjson.encode(out), "\n")
end

if arg[1] == "--child" then
  child(table.unpack(arg, 2))
  os.exit(0)
end

---------------------------------------------------------------------------------------------
-- The driver.
---------------------------------------------------------------------------------------------
local socket = require "socket"

local REPS = tonumber(os.getenv("SMM_BENCH_REPS") or "") or 5
local BALANCE_N = 3000
local STATUS_CONC = 8
local SERVICES_N = 20
local RSS_FIRST, RSS_TOTAL = 1000, 100000

local function run(cmd)
  local p = assert(io.popen(cmd, "r"))
  local s = p:read("a")
  local ok, _, code = p:close()
  if not ok then error("command failed (" .. tostring(code) .. "): " .. cmd .. "\n" .. s) end
  return s
end

local function run_json(cmd)
  local s = run(cmd)
  local line = s:match("(%b{})%s*$")
  if not line then error("no JSON from: " .. cmd .. "\n" .. s) end
  return cjson.decode(line)
end

local function lua_child(...)
  local args = { LUA, quote(SELF), "--child" }
  for _, a in ipairs{ ... } do args[#args + 1] = quote(a) end
  return table.concat(args, " ")
end

-- The 10,000-service list, shaped like the API reference, written as PHP's json_encode writes
-- it (the panels are PHP): some names with an emoji as \u escapes, some categories with "\/".
local function services_json(n)
  local TYPES = { "Default", "Default", "Default", "Package", "Custom Comments", "Subscriptions",
                  "Mentions with Hashtags", "Poll" }
  local NETS = { "Instagram", "TikTok", "YouTube", "Twitter", "Facebook", "Telegram", "Spotify" }
  local WHAT = { "Followers", "Likes", "Views", "Comments", "Shares", "Subscribers", "Saves" }
  local parts = {}
  for i = 1, n do
    local net, what = NETS[i % #NETS + 1], WHAT[(i * 7) % #WHAT + 1]
    local cents = (i * 37) % 100000
    parts[i] = string.format(
      '{"service":%d,"name":"%s %s [Max %dK] [Refill %dD] #%d%s","type":"%s","category":"%s%s%s",' ..
      '"rate":"%d.%02d%d","min":"%d","max":"%d","refill":%s,"cancel":%s}',
      i, net, what, (i % 50 + 1) * 10, i % 60, i, i % 5 == 0 and " \\ud83d\\ude80" or "",
      TYPES[i % #TYPES + 1], net, i % 7 == 0 and " \\/ " or " ", what,
      cents // 1000, (cents // 10) % 100, cents % 10, (i % 5 + 1) * 10, (i % 100 + 1) * 1000,
      tostring(i % 3 ~= 0), tostring(i % 2 == 0))
  end
  return "[" .. table.concat(parts, ",\n") .. "]\n"
end

-- The loopback panel: bench/nginx.conf in a temporary folder, on a free port.
local process = require "helpers.nginx_process"
local nginx = {}

function nginx.start()
  nginx.process = process.start{ name = "smm-bench", pid = "nginx.pid", error_log = "error.log",
    conf = function(dir, port)
      return (read(root .. "/bench/nginx.conf"):gsub("@DIR@", dir):gsub("@PORT@", tostring(port)))
    end,
    files = { ["services.json"] = services_json(10000) } }
  nginx.dir, nginx.port = nginx.process.dir, nginx.process.port
  nginx.base = "http://127.0.0.1:" .. nginx.port
end

function nginx.stop()
  if nginx.process then nginx.process:stop() end
  nginx.process = nil
end

local rows = {}
local function row(measure, client, baseline, ratio, target, ok)
  rows[#rows + 1] = { measure, client, baseline, ratio, target, ok }
end
local function f1(x) return x and string.format("%.1f", x) or "" end
local function f2(x) return x and string.format("%.2f", x) or "" end
local function note(...) io.stderr:write(string.format(...), "\n") end

-- The Lua floor (bench/lua_curl_loop.lua) needs Debian's lua-curl, which `make bench` installs;
-- without it the row is left out.
local LUA_CURL = os.execute("lua5.1 -e 'require \"curl\"' >/dev/null 2>&1")
LUA_CURL = LUA_CURL == true or LUA_CURL == 0

local function bench_balance()
  local url = nginx.base .. "/balance"
  local body = "action=balance&key=" .. KEY -- what the client sends (fields sorted by name)
  local cw, cc, bw, bc, sw, sc, lw, lc = {}, {}, {}, {}, {}, {}, {}, {}
  for r = 1, REPS do
    -- A/B interleaved, and the order flipped every repetition, so drift hits both sides
    local function client()
      local j = run_json(lua_child("balance", url, BALANCE_N))
      cw[#cw + 1], cc[#cc + 1] = j.wall_ms, j.cpu_ms
    end
    local function baseline()
      local j = run_json(quote(CURL_LOOP) .. " " .. quote(url) .. " " .. BALANCE_N .. " " .. quote(body))
      bw[#bw + 1], bc[#bc + 1] = j.wall_ms, j.cpu_ms
      -- the same HTTP exchange smm.core has (its headers, driven through curl multi), so the
      -- distance from this is what the client adds on top of the request itself
      j = run_json(quote(CURL_LOOP) .. " " .. quote(url) .. " " .. BALANCE_N .. " " .. quote(body) ..
        " --smm all")
      sw[#sw + 1], sc[#sc + 1] = j.wall_ms, j.cpu_ms
      if LUA_CURL then -- the Lua floor: libcurl called from Lua and the JSON decoded, nothing else
        j = run_json("lua5.1 " .. quote(root .. "/bench/lua_curl_loop.lua") .. " " .. quote(url) ..
          " " .. BALANCE_N .. " " .. quote(body) .. " --decode")
        lw[#lw + 1], lc[#lc + 1] = j.wall_ms, j.cpu_ms
      end
    end
    if r % 2 == 1 then client() baseline() else baseline() client() end
    note("  balance rep %d: client %.1f ms wall %.1f ms cpu | libcurl %.1f ms wall %.1f ms cpu" ..
      " | libcurl, same request %.1f ms wall %.1f ms cpu%s", r, cw[#cw], cc[#cc], bw[#bw], bc[#bc],
      sw[#sw], sc[#sc], LUA_CURL and string.format(" | lua-curl %.1f ms wall %.1f ms cpu", lw[#lw],
      lc[#lc]) or "")
  end
  local w, c = median(cw) / median(bw), median(cc) / median(bc)
  row(("balance x%d wall (ms)"):format(BALANCE_N), f1(median(cw)), f1(median(bw)), f2(w), "<= 1.03",
    w <= 1.03)
  row(("balance x%d cpu (ms)"):format(BALANCE_N), f1(median(cc)), f1(median(bc)), f2(c), "<= 1.05", c <= 1.05)
  row("  wall vs libcurl, same request", f1(median(cw)), f1(median(sw)),
    f2(median(cw) / median(sw)), "(reference)", true)
  if LUA_CURL then
    -- not the client: how far calling libcurl from Lua at all is from the bare C loop
    row("  Lua floor: lua-curl+cjson, wall", f1(median(lw)), f1(median(bw)),
      f2(median(lw) / median(bw)), "(reference)", true)
    row("  Lua floor: lua-curl+cjson, cpu", f1(median(lc)), f1(median(bc)),
      f2(median(lc) / median(bc)), "(reference)", true)
  end
end

local function bench_status()
  local j = run_json(lua_child("status", nginx.base .. "/status", REPS, STATUS_CONC))
  local limit = (100 / STATUS_CONC) * 20
  local m = median(j.times_ms)
  local function list(t) return (table.concat(t, " "):gsub("(%d+%.%d)%d+", "%1")) end
  note("  status runs (ms): %s; client cpu (ms): %s", list(j.times_ms), list(j.cpu_ms))
  note("  (the floor with a window of %d is ceil(100/%d) x 20 = %d ms, ratio %.2f)", STATUS_CONC,
    STATUS_CONC, math.ceil(100 / STATUS_CONC) * 20, math.ceil(100 / STATUS_CONC) * 20 / limit)
  row(("status 10k ids, 20 ms panel, c=%d"):format(STATUS_CONC), f1(m), ("%d (limit)"):format(limit),
    f2(m / limit), "<= 1.25", m / limit <= 1.25)
  -- What this panel allows at all: bare libcurl, the same 100 requests in the same window,
  -- nothing decoded. The client's own cost is the distance from this floor, not from the limit.
  local ids = {}
  for i = 1, 100 do ids[i] = i end
  local floor = run_json(quote(CURL_LOOP) .. " " .. quote(nginx.base .. "/status") .. " 100 " ..
    quote("action=status&key=" .. KEY .. "&orders=" .. table.concat(ids, ",")) ..
    " --parallel " .. STATUS_CONC .. " --reps " .. REPS)
  local fm = median(floor.times_ms)
  note("  status floor, bare libcurl multi (ms): %s", list(floor.times_ms))
  row("  vs bare libcurl multi, same", f1(m), ("%.1f (floor)"):format(fm),
    f2(m / fm), "(reference)", true)
  return median(j.cpu_ms)
end

local function bench_services()
  local url = nginx.base .. "/services"
  local file = nginx.dir .. "/fetched.json"
  local fetch = run_json(quote(CURL_LOOP) .. " " .. quote(url) .. " " .. SERVICES_N .. " " ..
    quote("action=services&key=" .. KEY) .. " --warmup 2 --times --out " .. quote(file))
  local client = run_json(lua_child("services_ab", url, SERVICES_N, file))
  local f, d, c = median(fetch.times_ms), median(client.decode_ms), median(client.times_ms)
  note("  services: %d bytes; baseline fetch %.2f ms + cjson.decode %.2f ms; client %.2f ms (cpu %.2f ms)",
    fetch.bytes, f, d, c, median(client.cpu_ms))
  row("services 10k list (ms)", f1(c), f1(f + d), f2(c / (f + d)), "<= 1.3", c / (f + d) <= 1.3)
  return { fetch = f, decode = d, client = c }
end

local function bench_rss()
  local j = run_json(lua_child("rss", nginx.base .. "/balance", RSS_FIRST, RSS_TOTAL))
  local growth = j.rss2_kib - j.rss1_kib
  note("  rss: VmRSS %d KiB after %d calls, %d KiB after %d; Lua heap %.0f -> %.0f KiB; %.0f calls/s",
    j.rss1_kib, j.first, j.rss2_kib, j.total, j.lua1_kib, j.lua2_kib,
    (j.total - j.first) / j.wall_ms * 1000)
  row("RSS growth 1k -> 100k calls (KiB)", tostring(growth), "", "", "< 1024", growth < 1024)
end

local function callgrind_total(cmd)
  local s = run(cmd .. " 2>&1 >/dev/null")
  local n = s:match("Collected%s*:%s*([%d,]+)")
  if not n then error("no callgrind total from: " .. cmd .. "\n" .. s) end
  return tonumber((n:gsub(",", "")))
end

-- Instructions per balance call, each the difference of a 100-call and a 1,100-call run (start-up
-- and warm-up cancel), from the bare loop up to the client, one layer at a time.
local function bench_callgrind()
  if os.getenv("SMM_BENCH_CALLGRIND") == "0" or not os.execute("command -v valgrind >/dev/null 2>&1") then
    return nil
  end
  local url = nginx.base .. "/balance"
  local body = "action=balance&key=" .. KEY
  local vg = "valgrind --tool=callgrind --callgrind-out-file=/dev/null "
  local small, large = 100, 1100
  local function per_call(make)
    return (callgrind_total(vg .. make(large)) - callgrind_total(vg .. make(small))) / (large - small)
  end
  local function loop(extra)
    return function(n)
      return quote(CURL_LOOP) .. " " .. quote(url) .. " " .. n .. " " .. quote(body) .. extra
    end
  end
  return {
    curl = per_call(loop("")),
    curl_smm = per_call(loop(" --smm all")),
    core = per_call(function(n) return lua_child("core", url, n) end),
    client = per_call(function(n) return lua_child("balance", url, n) end),
    lua_curl = LUA_CURL and per_call(function(n)
      return "lua5.1 " .. quote(root .. "/bench/lua_curl_loop.lua") .. " " .. quote(url) .. " " .. n ..
        " " .. quote(body)
    end) or nil,
    lua_curl_decode = LUA_CURL and per_call(function(n)
      return "lua5.1 " .. quote(root .. "/bench/lua_curl_loop.lua") .. " " .. quote(url) .. " " .. n ..
        " " .. quote(body) .. " --decode"
    end) or nil,
  }
end

local function bench_nginx_lua()
  if os.getenv("SMM_BENCH_NGINX_LUA") == "0" then return end
  local ok, s = pcall(run, LUA .. " " .. quote(root .. "/bench/nginx.lua") .. " 2>&1")
  local ratio = ok and s:match("ratio (%d+%.%d+)")
  local wall = ok and s:match("wall (%d+) ms")
  if not ratio then
    note("  bench/nginx.lua failed: %s", tostring(s))
    row("nginx: 50 concurrent, 100 ms panel", "failed", "100 (latency)", "", "~1", false)
    return
  end
  note("  %s", (s:gsub("%s+$", "")))
  row("nginx: 50 concurrent, 100 ms panel", wall, "100 (latency)", ratio, "~1 (50 = serial)",
    tonumber(ratio) < 2)
end

-- bench/wrk_ngx.lua: one nginx worker, wrk against client:balance() over cosockets and against
-- proxy_pass to the same static panel. The row is the wrk ratio (requests per second, medians of
-- interleaved runs); the note gives the ratio per CPU-second of the front worker, which a busy
-- machine moves less. SMM_BENCH_WRK=0 skips it.
local function bench_wrk_ngx()
  if os.getenv("SMM_BENCH_WRK") == "0" then return end
  local ok, s = pcall(run, LUA .. " " .. quote(root .. "/bench/wrk_ngx.lua") .. " 2>&1")
  local l, p, r = tostring(s):match("ngx balance rps: lua (%d+) / proxy_pass (%d+) = ([%d.]+)")
  if not ok or not r then
    note("  bench/wrk_ngx.lua failed: %s", tostring(s))
    row("ngx: balance rps vs proxy_pass (wrk)", "failed", "", "", ">= 0.85", false)
    return
  end
  note("  %s", (s:gsub("%s+$", ""):gsub("\n", "\n  ")))
  row("ngx: balance rps vs proxy_pass (wrk)", l .. "/s", p .. "/s", r, ">= 0.85", tonumber(r) >= 0.85)
end

-- The order book (bench/book_sync.lua, bench/book_batch.lua, each its own process): a sync round
-- over SMM_BENCH_BOOK_ORDERS open orders (default 100,000) against this nginx's 20 ms /status,
-- on SQLite and on PostgreSQL, against client:status on the same ids; the process's RSS after;
-- `smm batch --concurrency 8` of 2,000 rows against the sandbox at 20 ms, against the same adds
-- in one client:batch without a book. SMM_BENCH_BOOK=0 skips them.
local function bench_book()
  if os.getenv("SMM_BENCH_BOOK") == "0" then return end
  local orders = os.getenv("SMM_BENCH_BOOK_ORDERS") or "100000"
  local ok, s = pcall(run, "SMM_BENCH_STATUS_URL=" .. quote(nginx.base .. "/status") ..
    " SMM_BENCH_ORDERS=" .. quote(orders) .. " " .. LUA .. " " .. quote(root .. "/bench/book_sync.lua") ..
    " 2>&1")
  if not ok then note("  bench/book_sync.lua failed: %s", tostring(s)) end
  for engine in ("sqlite postgresql"):gmatch("%S+") do
    local wall, base, ratio = tostring(s):match("book sync %S+ " .. engine ..
      ": ([%d.]+) s / ([%d.]+) s = ([%d.]+)")
    row("book sync " .. orders .. ", " .. engine, wall and (wall .. " s") or "failed",
      base and (base .. " s") or "", ratio or "", "<= 1.15", ratio ~= nil and tonumber(ratio) <= 1.15)
  end
  local rss = tostring(s):match("RSS after the rounds: ([%d.]+) MiB")
  row("book sync RSS after the rounds", rss and (rss .. " MiB") or "failed", "", "", "< 150 MiB",
    rss ~= nil and tonumber(rss) < 150)
  ok, s = pcall(run, LUA .. " " .. quote(root .. "/bench/book_batch.lua") .. " 2>&1")
  if not ok then note("  bench/book_batch.lua failed: %s", tostring(s)) end
  local with, without, r = tostring(s):match("(%d+)/s vs (%d+)/s = ([%d.]+)")
  row("smm batch --concurrency 8, 2000 rows", with and (with .. "/s") or "failed",
    without and (without .. "/s") or "", r or "", ">= 0.8", r ~= nil and tonumber(r) >= 0.8)
end

-- Several panels (bench/router_add.lua, its own process): a routed add through smm.router (three
-- sandbox panels at 20 ms, the cheapest taking it) against a direct client:add on that same
-- panel, both through one SQLite book with a ref each. SMM_BENCH_ROUTER=0 skips it.
local function bench_router()
  if os.getenv("SMM_BENCH_ROUTER") == "0" then return end
  local ok, s = pcall(run, LUA .. " " .. quote(root .. "/bench/router_add.lua") .. " 2>&1")
  if not ok then note("  bench/router_add.lua failed: %s", tostring(s)) end
  local routed, direct, r = tostring(s):match("routed ([%d.]+) ms / direct ([%d.]+) ms = ([%d.]+)")
  row("routed add / direct add, 20 ms panel", routed and (routed .. " ms") or "failed",
    direct and (direct .. " ms") or "", r or "", "<= 1.05", r ~= nil and tonumber(r) <= 1.05)
end

-- Several panels: bench/catalog_merge.lua (three sandbox panels of 10,000 services each).
local function bench_catalog()
  if os.getenv("SMM_BENCH_CATALOG") == "0" then return end
  local ok, s = pcall(run, LUA .. " " .. quote(root .. "/bench/catalog_merge.lua") .. " 2>&1")
  if not ok then note("  bench/catalog_merge.lua failed: %s", tostring(s)) end
  local m, f, r = tostring(s):match("catalog merge: ([%d.]+) ms vs fetch ([%d.]+) ms = ([%d.]+)")
  row("merge 3 x 10k services / fetch 1", m and (m .. " ms") or "failed", f and (f .. " ms") or "",
    r or "", "<= 1.5", r ~= nil and tonumber(r) <= 1.5)
  for line in tostring(s):gmatch("[^\n]+") do
    if not line:find("^catalog merge: ") then note("  %s", line) end
  end
end

local function main()
  assert(io.open(CURL_LOOP), CURL_LOOP .. " not built: run `make bench`")
  nginx.start()
  note("nginx on %s (one worker), %d repetitions", nginx.base, REPS)
  local t0 = socket.gettime()
  bench_balance()
  bench_status()
  bench_services()
  bench_rss()
  local ir = bench_callgrind()
  bench_book()
  bench_router()
  bench_catalog()
  nginx.stop()
  bench_nginx_lua()
  bench_wrk_ngx()

  print()
  print(string.format("%-36s %-11s %-13s %-7s %s", "measure", "client", "baseline", "ratio", "target"))
  for _, r in ipairs(rows) do
    print(string.format("%-36s %-11s %-13s %-7s %-18s %s", r[1], r[2], r[3], r[4], r[5],
      r[6] and "ok" or "MISSED"))
  end
  if ir then
    print(string.format("instructions per balance call (callgrind): client %.0f, libcurl %.0f (x%.2f)",
      ir.client, ir.curl, ir.client / ir.curl))
    print(string.format("  layer by layer: bare libcurl %.0f -> with smm.core's curl options, driven as " ..
      "smm.core does %.0f (+%.0f)\n  -> smm.core handle:request from Lua %.0f (+%.0f)" ..
      " -> client:balance() %.0f (+%.0f)",
      ir.curl, ir.curl_smm, ir.curl_smm - ir.curl, ir.core, ir.core - ir.curl_smm, ir.client,
      ir.client - ir.core))
    if ir.lua_curl then
      print(string.format("  Lua floor, lua-curl (Lua 5.1): perform and concatenate %.0f (x%.2f)," ..
        " + cjson.decode %.0f (x%.2f)", ir.lua_curl, ir.lua_curl / ir.curl, ir.lua_curl_decode,
        ir.lua_curl_decode / ir.curl))
    end
  end
  print(string.format("(medians of %d runs; whole bench %.0f s)", REPS, socket.gettime() - t0))
end

-- `lua5.4 bench/run.lua --serve`: only the loopback panel, until Enter (for profiling by hand)
if arg[1] == "--serve" then
  main = function()
    nginx.start()
    print(nginx.base .. "  (/balance /status /services; folder " .. nginx.dir .. "); Enter stops it")
    io.read("l")
  end
end

local ok, err = xpcall(main, debug.traceback)
nginx.stop()
if not ok then
  io.stderr:write("bench/run.lua: ", tostring(err), "\n")
  os.exit(1)
end
