-- Does one nginx worker overlap panel calls? Sends N requests at once (default 50) through the
-- example front end (examples/nginx) to the sandbox panel answering after LATENCY ms (default
-- 100), and prints the wall time against LATENCY: a ratio near 1 means every call overlapped,
-- near N means the worker served them one after another.
--
--   lua5.4 bench/nginx.lua [N] [LATENCY_MS]      (from the repository root; needs nginx +
--                                                 libnginx-mod-http-lua, lua-socket, lua-cjson)
local root = (debug.getinfo(1, "S").source:match("^@(.*)/bench/") or ".")
package.path = root .. "/spec/?.lua;" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path

local socket = require "socket"
local sandbox = require "helpers.sandbox"
local nginx = require "helpers.nginx"

local n = tonumber(arg[1]) or 50
local latency = tonumber(arg[2]) or 100
local KEY = "bench-key"

local ok, why = nginx.available()
if not ok then
  io.stderr:write("bench/nginx.lua: ", why, "\n")
  os.exit(1)
end

local sb = sandbox.start{ key = KEY }
local ng = nginx.start{ env = { SMM_API_URL = sb.url, SMM_API_KEY = KEY } }
local status = 0
local run_ok, err = pcall(function()
  -- warm up: the worker's client and its pooled connections
  assert(ng:burst(4, "/balance")[1].status == 200, "the front end does not answer")
  sb:reset()
  sb:config{ latency = latency }
  local t0 = socket.gettime()
  local answers = ng:burst(n, "/balance")
  local wall = (socket.gettime() - t0) * 1000
  local good = 0
  for _, a in ipairs(answers) do if a.status == 200 then good = good + 1 end end
  local stats = sb:stats()
  print(string.format("nginx: %d concurrent requests, panel latency %d ms: wall %.0f ms, ratio %.2f " ..
    "(1.0 = all overlapped, %d = serial); %d answered 200; panel peak_in_flight %d",
    n, latency, wall, wall / latency, n, good, stats.peak_in_flight))
  if good ~= n then status = 1 end
end)
ng:stop()
sb:stop()
if not run_ok then
  io.stderr:write("bench/nginx.lua: ", tostring(err), "\n")
  os.exit(1)
end
os.exit(status)
