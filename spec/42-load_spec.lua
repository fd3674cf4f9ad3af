-- Load: 100,000 calls through one client, and through 8 clients in 8 processes in parallel,
-- against nginx answering a static balance on loopback: not one error, and flat memory (the
-- Lua heap and the process's VmRSS after 100k calls within 1 MiB of what they were after 1k).
-- Tagged #load so that the valgrind/ASan runs can leave it out: busted --exclude-tags=load
local plain = require "helpers.plain_nginx"
local smm = require "smm"
local env = require "helpers.env"

local CALLS = 100000
local WORKERS = 8
local MiB = 1024 * 1024

local function heap()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count") * 1024
end

-- the interpreter running this spec, for the worker processes
local function interpreter()
  if rawget(_G, "jit") then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

describe("load #load", function()
  local ng, url

  setup(function()
    ng = assert(plain.start{ workers = 2, server = [[
    location = /api/v2 { default_type application/json;
                         return 200 '{"balance":"1.00","currency":"USD"}'; }
]] })
    url = ng.base .. "/api/v2"
  end)

  teardown(function()
    if ng then ng:stop() end
  end)

  -- Each client runs in a process of its own (the interpreter running this spec), so that
  -- VmRSS measures the client and not busted's own bookkeeping.
  local WORKER = [[
    local smm = require "smm"
    local function rss()
      local f = io.open("/proc/self/status", "r")
      local s = f and f:read("*a") or ""
      if f then f:close() end
      return (tonumber(s:match("VmRSS:%s*(%d+)")) or 0) * 1024
    end
    local function heap()
      collectgarbage("collect") collectgarbage("collect")
      return collectgarbage("count") * 1024
    end
    local c = smm.new{ url = arg[1], key = arg[2], retries = 0 }
    local n, errors, first = tonumber(arg[3]), 0, "-"
    local function calls(k)
      for _ = 1, k do
        local b, err = c:balance()
        if not b or b.balance ~= "1.00" then
          errors = errors + 1
          if first == "-" then first = tostring(err):gsub("%s", "_") end
        end
      end
    end
    calls(1000)
    local h0, r0 = heap(), rss()
    calls(n - 1000)
    local h1, r1 = heap(), rss()
    c:close()
    io.write(string.format("done %d %d %d %d %s\n", n, errors, h1 - h0, r1 - r0, first))
  ]]

  -- runs `count` clients in parallel, `calls` calls each; checks each; returns the total
  local function clients(count, calls)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(WORKER)
    f:close()
    local cmd = string.format("LUA_PATH=%s LUA_CPATH=%s %s %s %s %s %d 2>&1",
      quote(package.path), quote(package.cpath), interpreter(), quote(path), quote(url),
      quote(env.KEY), calls)
    local pipes = {}
    for i = 1, count do pipes[i] = assert(io.popen(cmd, "r")) end
    local total = 0
    for i = 1, count do
      local out = pipes[i]:read("*a")
      pipes[i]:close()
      local n, errors, dh, dr, first = out:match("done (%d+) (%d+) (%-?%d+) (%-?%d+) (%S+)")
      assert.truthy(n, "client " .. i .. " said: " .. out)
      assert.equal(0, tonumber(errors), first)
      assert.is_true(tonumber(dh) < MiB, "client " .. i .. ": Lua heap grew by " .. dh .. " bytes")
      assert.is_true(tonumber(dr) < MiB, "client " .. i .. ": VmRSS grew by " .. dr .. " bytes")
      total = total + tonumber(n)
    end
    os.remove(path)
    return total
  end

  it("100,000 calls through one client: no error, flat Lua heap and RSS", function()
    assert.equal(CALLS, clients(1, CALLS))
  end)

  it("8 clients in 8 processes, 12,500 calls each: no error, flat memory in each", function()
    assert.equal(CALLS, clients(WORKERS, CALLS / WORKERS))
  end)

  it("and in this process too, the Lua heap stays flat over 20,000 calls", function()
    local client = smm.new{ url = url, key = env.KEY, retries = 0 }
    local errors = 0
    local function calls(n)
      for _ = 1, n do
        local b = client:balance()
        if not b then errors = errors + 1 end
      end
    end
    calls(1000)
    local heap0 = heap()
    calls(19000)
    local heap1 = heap()
    client:close()
    assert.equal(0, errors)
    assert.is_true(heap1 - heap0 < MiB, string.format("Lua heap grew by %d bytes", heap1 - heap0))
  end)
end)
