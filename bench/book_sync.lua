-- bench/book_sync.lua: what following orders through the book costs beyond the status requests.
--
--   lua5.4 bench/book_sync.lua        (from the repository root, after `make`)
--
-- A loopback sandbox panel answering every request after 20 ms, 100,000 orders it knows (placed
-- at once through its bulk endpoint; its clock is "real" with an endless tick, so a status never
-- moves and the round is the steady state: every order asked about, none changed). Concurrency 8.
-- For SQLite (a file, synchronous=FULL) and PostgreSQL (helpers/postgres, fsync on): the
-- wall time of book:sync over the 100,000 open orders (rows inserted directly, as the panel
-- answers them) / the wall time of client:status on the same ids without a book, measured just
-- before. Then the process's VmRSS after the rounds.
--
-- Environment: SMM_BENCH_ORDERS (default 100000), SMM_BENCH_ENGINES (default "sqlite postgresql"),
-- SMM_BENCH_PAGE (sync's page option; default: its own, concurrency x 200).
local root = (debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$") or ".")
if root:sub(1, 1) ~= "/" then root = (os.getenv("PWD") or ".") .. "/" .. root end
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;" .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath

local smm = require "smm"
local sandbox = require "helpers.sandbox"
local now = require("socket").gettime

local KEY = "bench-key"
local N = tonumber(os.getenv("SMM_BENCH_ORDERS") or "") or 100000
local LIMIT, RSS_LIMIT_MIB = 1.15, 150
local ENGINES = os.getenv("SMM_BENCH_ENGINES") or "sqlite postgresql"
local PAGE = tonumber(os.getenv("SMM_BENCH_PAGE") or "")

local function rss_mib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s*(%d+)")
    if kb then return tonumber(kb) / 1024 end
  end
end

local function label(n)
  if n % 1000 == 0 then return (n // 1000) .. "k" end
  return tostring(n)
end

-- SMM_BENCH_STATUS_URL: bench/run.lua's nginx /status (a panel in C and a few lines of Lua,
-- which leaves the client's core to the client); else the sandbox (a Lua panel, whose own work
-- per request then competes with the client's on a 2-core machine).
local STATUS_URL = os.getenv("SMM_BENCH_STATUS_URL")
local sb, panel_url
if STATUS_URL then
  panel_url = STATUS_URL
else
  sb = sandbox.start{ key = KEY, latency = 20, balance = "1000000.00", clock = "real", tick = "1000000000" }
  panel_url = sb.url
end
local ok, failure = pcall(function()
  local first, last
  if sb then
    local made = sb:admin("bulk", { count = N, service = 1, link = "https://example.com/bench",
      quantity = 100 })
    assert(made.ok, made.error)
    first, last = math.tointeger(made.first), math.tointeger(made.last)
  else
    first, last = 1, N
  end
  local ids = {}
  for id = first, last do ids[#ids + 1] = id end
  local bare = smm.new{ url = panel_url, key = KEY, concurrency = 8 }
  -- each order's row as the panel answers it, so that the round is the steady state; kept in
  -- flat arrays, not 100,000 tables, so that the RSS measured after the rounds is the round's
  local answered = assert(bare:status(ids))
  local sample = answered[last]
  local A = { status = {}, remains = {}, charge = {}, start_count = {}, currency = {}, error = {} }
  for id = first, last do
    local a = answered[id]
    for name, list in pairs(A) do list[id - first + 1] = a[name] or false end
  end
  answered = nil -- luacheck: ignore 311
  collectgarbage()
  collectgarbage()
  local function answer(id)
    local i = id - first + 1
    if A.error[i] then return { error = A.error[i] } end
    local a = {}
    for name, list in pairs(A) do if list[i] ~= false then a[name] = list[i] end end
    return a
  end

  local function baseline()
    local t0 = now()
    local res = assert(bare:status(ids))
    local wall = now() - t0
    assert(res[last] and res[last].status == sample.status)
    return wall
  end

  local failed = false
  for engine in ENGINES:gmatch("%S+") do
    local url, pg, dir
    if engine == "sqlite" then
      dir = os.tmpname()
      os.remove(dir)
      os.execute("mkdir -p " .. dir)
      url = "sqlite:" .. dir .. "/book.db"
    else
      pg = require("helpers.postgres").start{ fast = false }
      url = pg.url
    end
    local book = assert(smm.book.open(url))
    local db = smm.book.connections[book].db
    local client = smm.new{ url = panel_url, key = KEY, concurrency = 8, book = book }
    local t = os.time()
    db:transaction(function()
      for id = first, last do
        local a = answer(id)
        if a.error then a = {} end
        db:run([[INSERT INTO orders (ref, panel, state, order_id, service, link, quantity, fields, attempts,
            created_at, sent_at, updated_at, next_check, status, remains, charge, start_count, currency)
            VALUES (?, ?, 'placed', ?, 1, 'https://example.com/bench', 100, '{}', 1,
              ?, ?, ?, ?, ?, ?, ?, ?, ?)]],
          "bench-" .. id, client.url, id, t, t, t, t, a.status, a.remains, a.charge,
          a.start_count, a.currency)
      end
    end)
    if pg then db:run("ANALYZE orders") end
    collectgarbage()
    local base = baseline()
    local t0 = now()
    local summary = assert(book:sync(client, { page = PAGE }))
    local wall = now() - t0
    local unknown = 0 -- ids the panel answers with an error (nginx's /status: every 50th)
    for i = 1, N do if A.error[i] then unknown = unknown + 1 end end
    assert(summary.checked == N - unknown and summary.changed == 0 and summary.errors == unknown,
      "the round did not check every order unchanged: " .. require("smm.json").encode(summary))
    local ratio = wall / base
    print(string.format("book sync %s %s%s: %.2f s / %.2f s = %.2f (limit %.2f)%s", label(N), engine,
      PAGE and (" page " .. PAGE) or "", wall, base, ratio, LIMIT, ratio <= LIMIT and "" or "  OVER"))
    failed = failed or ratio > LIMIT
    book:close()
    if pg then pg:stop() end
    if dir then os.execute("rm -rf " .. dir) end
  end
  local rss = rss_mib()
  print(string.format("book sync %s RSS after the rounds: %.1f MiB (limit %d)%s", label(N), rss,
    RSS_LIMIT_MIB,
    rss < RSS_LIMIT_MIB and "" or "  OVER"))
  return not failed and rss < RSS_LIMIT_MIB
end)
if sb then sb:stop() end
if not ok then error(failure, 0) end
if not failure then os.exit(1) end
