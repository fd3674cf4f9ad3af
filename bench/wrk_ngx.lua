-- Is client:balance() over cosockets about as fast as nginx itself? One nginx worker (the front)
-- answers wrk through two locations that both end at the same static panel:
--   /proxy  nginx's own proxy_pass, with a keep-alive upstream pool
--   /lua    content_by_lua: client:balance() of a client made once per worker (init_worker),
--           over the ngx transport, printing the balance
-- and prints the requests per second of each (medians of interleaved A/B runs) and their ratio:
--   ngx balance rps: lua X / proxy_pass Y = R (target >= 0.85)
--
--   lua5.4 bench/wrk_ngx.lua      (from the repository root; needs nginx +
--                                  libnginx-mod-http-lua, wrk, lua-socket)
--
-- Environment: SMM_WRK_REPS (default 5) A/B pairs; SMM_WRK_DURATION (default 5) seconds per
-- run; SMM_WRK_CONNECTIONS (default 16); SMM_WRK_PIN=0 leaves every process unpinned.
--
-- The panel is a second nginx with a worker of its own: a `return 200` costs it a fraction of
-- what either front location costs, so the front worker is the bottleneck being measured. On
-- a machine with 2 or more cores the front worker is pinned to core 0 (worker_cpu_affinity)
-- and the panel worker and wrk to core 1 (worker_cpu_affinity, taskset): the front then never
-- shares its core with the load generator, which otherwise moves the figure by +-15% from one
-- run to the next as the scheduler places the three processes.
local root = (debug.getinfo(1, "S").source:match("^@(.*)/bench/") or ".")
if root:sub(1, 1) ~= "/" then root = (os.getenv("PWD") or ".") .. "/" .. root end
package.path = root .. "/spec/?.lua;" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path

local process = require "helpers.nginx_process"

local REPS = tonumber(os.getenv("SMM_WRK_REPS") or "") or 5
local DURATION = tonumber(os.getenv("SMM_WRK_DURATION") or "") or 5
local CONNECTIONS = tonumber(os.getenv("SMM_WRK_CONNECTIONS") or "") or 16
local KEY = "bench-key"
local BALANCE = '{"balance":"100.84292","currency":"USD"}'

local function shell(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local s = p:read("*a")
  local ok = p:close()
  return s, ok
end

local function median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  local n = #c
  if n % 2 == 1 then return c[(n + 1) / 2] end
  return (c[n / 2] + c[n / 2 + 1]) / 2
end

if not shell("command -v wrk >/dev/null && echo yes"):find("yes") then
  io.stderr:write("bench/wrk_ngx.lua: wrk not found (apt-get install wrk)\n")
  os.exit(1)
end
local cores = tonumber((shell("nproc"))) or 1
local pin = cores >= 2 and os.getenv("SMM_WRK_PIN") ~= "0"

local MODULES = "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n" ..
  "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n"

local function common(dir)
  return ([[
daemon on;
error_log @DIR@/logs/error.log warn;
pid @DIR@/logs/nginx.pid;
events { worker_connections 1024; }
]]):gsub("@DIR@", dir)
end

local function temp_paths(dir)
  local out = {}
  for _, t in ipairs{ "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
    out[#out + 1] = ("    %s_temp_path %s/%s;"):format(t, dir, t)
  end
  return table.concat(out, "\n")
end

local panel = process.start{ name = "smm-wrk-panel", conf = function(dir, port)
  return "worker_processes 1;\n" .. (pin and "worker_cpu_affinity 10;\n" or "") .. common(dir) .. ([[
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    tcp_nodelay on;
@TEMP@
    server {
        listen 127.0.0.1:@PORT@ backlog=1024;
        location = /balance {
            default_type application/json;
            return 200 '@BALANCE@';
        }
    }
}
]]):gsub("@PORT@", tostring(port)):gsub("@TEMP@", temp_paths(dir)):gsub("@BALANCE@", BALANCE)
end }

-- For finding where the time goes (by hand): SMM_WRK_PROFILE="Fl" runs LuaJIT's profiler
-- (jit.p with those options) in the front worker, SMM_WRK_JITV=1 logs its traces and their
-- aborts (jit.v); either writes FILE.txt next to this run's numbers, named on stderr.
local function profile(dir)
  local out = {}
  if os.getenv("SMM_WRK_PROFILE") then
    out[#out + 1] = ('require("jit.p").start(%q, %q)'):format(os.getenv("SMM_WRK_PROFILE"),
      "/tmp/smm-wrk-jitp.txt")
  end
  if os.getenv("SMM_WRK_JITV") then
    out[#out + 1] = ('require("jit.v").start(%q)'):format("/tmp/smm-wrk-jitv.txt")
  end
  if #out > 0 then io.stderr:write("  profiling into /tmp/smm-wrk-jit*.txt (", dir, ")\n") end
  return table.concat(out, "\n")
end

local front
local ok, err = pcall(function()
  front = process.start{ name = "smm-wrk-front", conf = function(dir, port)
    return MODULES .. "worker_processes 1;\n" .. (pin and "worker_cpu_affinity 01;\n" or "") ..
      common(dir) .. ([[
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    tcp_nodelay on;
@TEMP@
    lua_package_path "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;;";
    upstream panel {
        server 127.0.0.1:@PANEL@;
        keepalive 32;
        keepalive_requests 1000000;
    }
    init_worker_by_lua_block {
@PROFILE@
        -- the usual OpenResty habit: one client per worker, made at start-up
        client = require("smm").new{ url = "http://127.0.0.1:@PANEL@/balance", key = "@KEY@",
                                     transport = "ngx" }
    }
    server {
        listen 127.0.0.1:@PORT@ backlog=1024;
        location = /proxy {
            proxy_pass http://panel/balance;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /lua {
            default_type text/plain;
            content_by_lua_block {
                local b, err = client:balance()
                if not b then
                    ngx.status = 502
                    ngx.say(tostring(err))
                    return
                end
                ngx.say(tostring(b.balance))
            }
        }
    }
}
]]):gsub("@PORT@", tostring(port)):gsub("@PANEL@", tostring(panel.port)):gsub("@TEMP@", temp_paths(dir))
      :gsub("@ROOT@", root):gsub("@KEY@", KEY):gsub("@PROFILE@", profile(dir))
  end }
  local base = "http://127.0.0.1:" .. front.port
  -- both answer, and as expected
  for _, path in ipairs{ "/proxy", "/lua" } do
    local body = shell("curl -s " .. base .. path)
    assert(body:find("100.84292", 1, true), path .. " answered: " .. body)
  end

  local wrk = (pin and "taskset -c 1 " or "") .. "wrk -t1 -c" .. CONNECTIONS .. " -d"
  -- The front worker's CPU time (utime + stime, in clock ticks) from /proc: requests per
  -- CPU-second of that worker is what it could serve if it were the only thing on its core,
  -- a figure that a busy machine moves far less than the requests per second wrk sees.
  local worker = tonumber((shell("pgrep -P " .. front:pid())):match("%d+"))
  local hz = tonumber((shell("getconf CLK_TCK"))) or 100
  local function cpu_ticks()
    local f = io.open("/proc/" .. tostring(worker) .. "/stat", "r")
    if not f then return nil end
    local stat = f:read("*a")
    f:close()
    local fields = {}
    for x in stat:gsub("^.*%) ", ""):gmatch("%S+") do fields[#fields + 1] = x end
    return tonumber(fields[12]) + tonumber(fields[13]) -- utime, stime (fields 14, 15 of stat)
  end
  -- -> requests per second (wrk), requests per CPU-second of the front worker, its busy share
  local function rps(path, seconds)
    local t0 = cpu_ticks()
    local out = shell(wrk .. (seconds or DURATION) .. "s " .. base .. path)
    local t1 = cpu_ticks()
    local r = out:match("Requests/sec:%s*([%d.]+)")
    local n = out:match("(%d+) requests in")
    local non2xx = out:match("Non%-2xx or 3xx responses:%s*(%d+)")
    assert(r and n, "wrk failed: " .. out)
    assert(not non2xx, path .. ": " .. tostring(non2xx) .. " answers were not 200")
    local cpu = t0 and t1 and (t1 - t0) / hz
    return tonumber(r), cpu and cpu > 0 and tonumber(n) / cpu, cpu and cpu / (seconds or DURATION)
  end
  -- warm up: the upstream pool, the client's pool, LuaJIT's traces
  rps("/proxy", 1)
  rps("/lua", 1)
  local lua, proxy, ratios, lcap, pcap, cratios = {}, {}, {}, {}, {}, {}
  local lbusy, pbusy
  for i = 1, REPS do
    -- alternate which goes first, so that a drift of the machine falls on both alike
    if i % 2 == 1 then
      proxy[i], pcap[i], pbusy = rps("/proxy")
      lua[i], lcap[i], lbusy = rps("/lua")
    else
      lua[i], lcap[i], lbusy = rps("/lua")
      proxy[i], pcap[i], pbusy = rps("/proxy")
    end
    ratios[i], cratios[i] = lua[i] / proxy[i], lcap[i] / pcap[i]
    io.stderr:write(("  wrk pair %d: lua %.0f / proxy_pass %.0f = %.2f; per CPU-second of the front " ..
      "worker: lua %.0f / proxy_pass %.0f = %.2f (worker busy %.0f%% / %.0f%%)\n"):format(i, lua[i],
      proxy[i], ratios[i], lcap[i], pcap[i], cratios[i], lbusy * 100, pbusy * 100))
  end
  local l, p = median(lua), median(proxy)
  print(("ngx balance rps: lua %.0f / proxy_pass %.0f = %.2f (target >= 0.85; median of pairs %.2f; " ..
    "wrk -t1 -c%d -d%ds x%d%s)"):format(l, p, l / p, median(ratios), CONNECTIONS, DURATION, REPS,
    pin and ", front pinned to core 0, wrk and panel to core 1" or ""))
  print(("ngx balance per CPU-second of the front worker: lua %.0f / proxy_pass %.0f = %.2f"):format(
    median(lcap), median(pcap), median(lcap) / median(pcap)))
  local log = front:error_log()
  if log:find("%[error%]") or log:find("%[alert%]") then
    io.stderr:write("front error log:\n", log, "\n")
  end
end)
if front then front:stop() end
panel:stop()
if not ok then
  io.stderr:write("bench/wrk_ngx.lua: ", tostring(err), "\n")
  os.exit(1)
end
