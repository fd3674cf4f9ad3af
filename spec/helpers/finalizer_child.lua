-- Run by spec/52-trust_core_spec.lua in a process of its own: a smm.core handle used from a
-- __gc finalizer in the middle of its own request (issue 10, point 9). A fresh Lua state keeps
-- the heap small, so that collection cycles (and so the finalizer) surely run while the
-- answer is decoded, on every Lua, however large the heap of the busted process is.
--   lua finalizer_child.lua close|request URL KEY N     prints "ok" or raises
local core = require "smm.core"

local scenario, url, key, n = arg[1], arg[2], arg[3], tonumber(arg[4])

-- A finalizer that runs fn at every collection cycle until disarmed: each run makes the next
-- one (re-armed first, so that an error in fn cannot end the loop). Lua 5.1 has no __gc on
-- tables: newproxy there (LuaJIT too).
local function finalizer_loop(fn)
  local state = { armed = true, runs = 0 }
  local function arm()
    local gc = function()
      if not state.armed then return end
      state.runs = state.runs + 1
      arm()
      fn()
    end
    if rawget(_G, "newproxy") then
      getmetatable(newproxy(true)).__gc = gc
    else
      setmetatable({}, { __gc = gc })
    end
  end
  arm()
  return state
end

-- Allocates until the finalizer has run: a cycle just ended, the next one ends while the
-- answer is decoded. The tables are kept, so that LuaJIT cannot sink the allocations.
local function sync(loop)
  local runs, keep = loop.runs, {} -- luacheck: ignore (written only: kept reachable)
  for i = 1, 1e8 do
    if loop.runs ~= runs then return end
    keep[i % 64] = {}
  end
  error("the finalizer loop stopped: no collection cycle ran it")
end

if _VERSION == "Lua 5.4" then collectgarbage("incremental") end
collectgarbage("setpause", 20)
collectgarbage("setstepmul", 200)
collectgarbage("collect")

local h = core.new{ timeout = 60000 }
if scenario == "close" then
  local closed_inside
  local loop = finalizer_loop(function()
    if closed_inside == nil and tostring(h):find("(busy)", 1, true) then
      closed_inside = tostring(h)
      h:close()
    end
  end)
  sync(loop)
  local r = h:request(url, { key = key, action = "services" })
  loop.armed = false
  assert(r.status == 200, "status " .. tostring(r.status))
  assert(#r.json == n and r.json[n].service == n, "the answer is not whole")
  -- the finalizer ran while the handle was in its request; the close took effect after it
  assert(closed_inside and closed_inside:find("%(busy%)$"), "the finalizer never ran inside the request")
  assert(tostring(h):find("%(closed%)$"), "not closed after the request: " .. tostring(h))
  local ok, err = pcall(h.request, h, url, { key = key, action = "balance" })
  assert(not ok and tostring(err):find("handle is closed", 1, true), tostring(err))
  h:close()
elseif scenario == "request" then
  local refusals = 0
  local loop = finalizer_loop(function()
    if refusals >= 3 or not tostring(h):find("(busy)", 1, true) then return end
    local ok, err = pcall(h.request, h, url, { key = key, action = "balance" })
    assert(not ok and tostring(err):find("handle is busy", 1, true), tostring(err))
    refusals = refusals + 1
  end)
  sync(loop)
  local single = h:request(url, { key = key, action = "services" })
  assert(single.status == 200 and #single.json == n, "the single request did not complete")
  single = nil -- luacheck: ignore (less to mark in every cycle)
  sync(loop)
  local many = h:request_many(url, { { key = key, action = "services" },
    { key = key, action = "services" } }, { concurrency = 2 })
  loop.armed = false
  assert(#many == 2, "request_many gave " .. #many .. " results")
  for i = 1, 2 do
    assert(many[i].status == 200, tostring(many[i].message))
    assert(#many[i].json == n, "answer " .. i .. " is not whole")
  end
  assert(refusals > 0, "the finalizer never ran inside a request")
  -- the handle is still usable, and idle
  assert(h:request(url, { key = key, action = "balance" }).json.balance == "5.00")
  h:close()
else
  error("unknown scenario " .. tostring(scenario))
end
print("ok")
