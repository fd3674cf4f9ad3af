-- Test helper: starts the sandbox panel (bin/smm-sandbox) on a free loopback port in its own
-- process, talks to its admin endpoints with luasocket's independent HTTP client, stops it.
--
--   local sandbox = require "helpers.sandbox"
--   local sb = sandbox.start{ key = "test-key" }   -- extra options become --name value flags
--   sb.url                -- "http://127.0.0.1:PORT/api/v2"
--   sb:stats()            -- { requests = n, actions = { add = n, ... }, orders = n, ... }
--   sb:fault("html503", { action = "status", times = 2 })
--   sb:reset() ; sb:stop()
-- A catalogue of its own: sandbox.start{ services = { { service = 1, name = ..., type = ...,
-- category = ..., rate = "0.90", min = 10, max = 1000, refill = true, cancel = false }, ... } }
-- (written to a temporary JSON file for --services; a string is a file's path as it is);
-- sb:services() the list in force; sb:services{ service = 1, rate = "1.10" } edits it (see
-- POST /sandbox/services in lua/smm/sandbox/init.lua).
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local M = {}
local Sandbox = {}
Sandbox.__index = Sandbox

local root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/helpers/") or ".")

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.start(opts)
  opts = opts or {}
  local lua = os.getenv("SMM_SANDBOX_LUA") or "lua5.4"
  local args = { "--port", "0" }
  local services_file
  if type(opts.services) == "table" then
    services_file = os.tmpname()
    local f = assert(io.open(services_file, "wb"))
    f:write(cjson.encode(opts.services))
    f:close()
    local copy = {}
    for k, v in pairs(opts) do copy[k] = v end
    copy.services = services_file
    opts = copy
  end
  for name, value in pairs(opts) do
    args[#args + 1] = "--" .. name:gsub("_", "-")
    args[#args + 1] = shell_quote(value)
  end
  local cmd = string.format("LUA_PATH=%s LUA_CPATH=';;' exec %s %s/bin/smm-sandbox %s",
    shell_quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"), lua, root,
    table.concat(args, " "))
  local pipe = assert(io.popen(cmd, "r"))
  local line = pipe:read("*l")
  assert(line, "sandbox did not start: " .. cmd)
  local url, pid = line:match("listening on (%S+) pid (%d+)")
  assert(url, "unexpected sandbox banner: " .. line)
  local base = url:match("^(https?://[^/]+)")
  if services_file then os.remove(services_file) end -- read by now: the banner comes after
  return setmetatable({ url = url, base = base, pid = tonumber(pid), pipe = pipe, key = opts.key },
    Sandbox)
end

-- Admin request: method GET or POST to /sandbox/<path>, form fields in `fields`.
function Sandbox:admin(path, fields)
  local body, method = nil, "GET"
  if fields then
    local parts = {}
    for k, v in pairs(fields) do
      parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(c)
        return string.format("%%%02X", c:byte())
      end)
    end
    body, method = table.concat(parts, "&"), "POST"
  end
  local out = {}
  local _, code = http.request{
    url = self.base .. "/sandbox/" .. path, method = method,
    headers = body and { ["content-type"] = "application/x-www-form-urlencoded",
                         ["content-length"] = #body } or nil,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(out),
  }
  assert(code == 200, "sandbox admin " .. path .. " answered " .. tostring(code))
  return cjson.decode(table.concat(out))
end

function Sandbox:stats() return self:admin("stats") end
function Sandbox:orders() return self:admin("orders") end
function Sandbox:requests() return self:admin("requests") end
function Sandbox:reset() return self:admin("reset", {}) end
function Sandbox:config(fields) return self:admin("config", fields) end
-- no fields: the catalogue in force; fields: change it (asserts the sandbox took the change)
function Sandbox:services(fields)
  if not fields then return self:admin("services") end
  local out = self:admin("services", fields)
  assert(out.ok, "sandbox services: " .. tostring(out.error))
  return out
end
function Sandbox:advance(steps) return self:admin("advance", { steps = steps or 1 }) end
function Sandbox:fault(name, fields)
  fields = fields or {}
  fields.fault = name
  return self:admin("fault", fields)
end

function Sandbox:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    self.pid = nil
  end
end

-- A loopback port with nothing listening on it: for "panel is down" cases.
function M.closed_port()
  local socket = require "socket"
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- A port where a connect never completes: a listener that never accepts, its queue already
-- full (backlog 0 and one connection waiting), so the kernel drops every further SYN and the
-- client sits in connect until its connect_timeout. Returns the port and a function that
-- closes it all.
function M.hanging_port()
  local socket = require "socket"
  local listener = assert(socket.tcp())
  assert(listener:bind("127.0.0.1", 0))
  assert(listener:listen(0))
  local _, port = listener:getsockname()
  local waiting = assert(socket.tcp())
  waiting:settimeout(1)
  assert(waiting:connect("127.0.0.1", tonumber(port)))
  return tonumber(port), function()
    waiting:close()
    listener:close()
  end
end

return M
