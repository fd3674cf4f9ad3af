-- bench/router_add.lua: a routed add (smm.router, three panels, the cheapest at 20 ms) against a
-- direct add (client:add) on that same 20 ms panel, both through the same SQLite order book
-- with a ref each (the intent committed before the request, the answer recorded after). Issue
-- 13 asks routed / direct <= 1.05: what the router adds (the ref looked up in the book, the
-- panels' health read, the candidates priced from the cached lists, the route recorded) must be
-- small beside one request to a panel.
--
--   make && lua5.4 bench/router_add.lua
--
-- The adds go one after another (an add waits for its answer), SMM_BENCH_ROUTER_ADDS of each
-- kind (default 100) per repetition, SMM_BENCH_REPS repetitions (default 5) alternating the two
-- kinds; medians of the per-add time. The book is a SQLite file in a temporary folder
-- (SMM_BENCH_BOOK_DIR to put it elsewhere).
local root = (debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$") or ".")
if root:sub(1, 1) ~= "/" then root = (os.getenv("PWD") or ".") .. "/" .. root end
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;" .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath

local smm = require "smm"
local sandbox = require "helpers.sandbox"
local socket = require "socket"

local ADDS = tonumber(os.getenv("SMM_BENCH_ROUTER_ADDS") or "") or 100
local REPS = tonumber(os.getenv("SMM_BENCH_REPS") or "") or 5
local LATENCY = 20

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  local n = #c
  if n % 2 == 1 then return c[(n + 1) / 2] end
  return (c[n / 2] + c[n / 2 + 1]) / 2
end

local function tmpdir(base)
  local p = io.popen("mktemp -d " .. (base and ("-p " .. quote(base)) or ""))
  local dir = p:read("*l")
  p:close()
  return dir
end

local sbs = {}
for name, factor in pairs{ a = 1, b = 2, c = 3 } do
  local key = "bench-key-" .. name
  sbs[name] = sandbox.start{ key = key, latency = LATENCY, balance = "1000000",
    rates_for = factor > 1 and (key .. "=" .. factor) or nil }
end
local dir = tmpdir(os.getenv("SMM_BENCH_BOOK_DIR"))
local ok, err = pcall(function()
  local book = assert(smm.book.open("sqlite:" .. dir .. "/book.db"))
  local panels = {}
  for i, name in ipairs{ "a", "b", "c" } do
    panels[i] = { name = name, url = sbs[name].url, key = "bench-key-" .. name }
  end
  local router = require("smm.router").new{ book = book, panels = panels,
    products = { followers = { a = 1, b = 1, c = 1 } } }
  local direct = smm.new{ url = sbs.a.url, key = "bench-key-a", book = book }
  -- every list at hand, as in a long-running process
  assert(router:quote{ product = "followers", quantity = 100 })
  assert(direct:services())

  local n = 0
  local function routed_add()
    n = n + 1
    local ref = "routed-" .. n
    local res = assert(router:add{ product = "followers", link = "https://bench.example/" .. ref,
      quantity = 100, ref = ref })
    assert(res.panel == "a", "the routed add went to " .. tostring(res.panel))
  end
  local function direct_add()
    n = n + 1
    local ref = "direct-" .. n
    assert(direct:add({ service = 1, link = "https://bench.example/" .. ref, quantity = 100 }, { ref = ref }))
  end
  local function per_add(fn)
    local started = socket.gettime()
    for _ = 1, ADDS do fn() end
    return (socket.gettime() - started) / ADDS * 1000
  end
  per_add(routed_add) -- warm-up: the book's statements, the connections
  per_add(direct_add)
  local routed, bare = {}, {}
  for i = 1, REPS do
    if i % 2 == 1 then
      routed[i], bare[i] = per_add(routed_add), per_add(direct_add)
    else
      bare[i], routed[i] = per_add(direct_add), per_add(routed_add)
    end
  end
  local r, d = median(routed), median(bare)
  local b = sbs.b:stats().actions.add or 0
  local c = sbs.c:stats().actions.add or 0
  assert(b == 0 and c == 0, "adds reached the dearer panels: " .. b .. ", " .. c)
  print(string.format("router add: routed %.2f ms / direct %.2f ms = %.3f (limit <= 1.05)", r, d, r / d))
  direct:close()
  book:close()
end)
for _, sb in pairs(sbs) do sb:stop() end
os.execute("rm -rf " .. quote(dir))
if not ok then error(err, 0) end
