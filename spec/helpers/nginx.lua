-- Test helper: runs Debian's nginx (with the lua module) on a free loopback port, configured
-- from examples/nginx/nginx.conf with test paths and extra locations, and stops it.
--
--   local nginx = require "helpers.nginx"
--   assert(nginx.available())
--   local ng = nginx.start{ env = { SMM_API_URL = ..., SMM_API_KEY = ... }, locations = "..." }
--   ng.base   -- "http://127.0.0.1:PORT"
--   ng:get("/balance") -> status, decoded JSON, raw body ; ng:post("/order", fields)
--   ng:stop()
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson.safe"

local process = require "helpers.nginx_process"

local M = {}
local Nginx = setmetatable({}, { __index = process.Process })
Nginx.__index = Nginx

local root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/helpers/") or ".")
if root:sub(1, 1) ~= "/" then root = os.getenv("PWD") .. "/" .. root end
M.root = root

M.BINARY = process.BINARY
M.MODULES = {
  "/usr/lib/nginx/modules/ndk_http_module.so",
  "/usr/lib/nginx/modules/ngx_http_lua_module.so",
}

local read = process.read

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

-- true, or false and what is missing (the packages to install).
function M.available()
  if not exists(M.BINARY) then
    return false, M.BINARY .. " not found: install the Debian packages nginx libnginx-mod-http-lua"
  end
  for _, m in ipairs(M.MODULES) do
    if not exists(m) then return false, m .. " not found: install libnginx-mod-http-lua" end
  end
  return true
end

M.free_port = process.free_port

local function plain(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local function replace(text, old, new)
  local out, n = text:gsub(plain(old), (new:gsub("%%", "%%%%")))
  assert(n > 0, "examples/nginx/nginx.conf no longer contains: " .. old)
  return out
end

-- opts: env (table of environment variables for nginx), locations (nginx text added to the
-- server block), http (text added to the http block), conf (a different template path),
-- workers (worker processes, default the template's 1; with more, the listener has
-- `reuseport`, so that the kernel spreads the connections over them rather than one worker
-- taking most).
function M.start(opts)
  opts = opts or {}
  local ok, why = M.available()
  assert(ok, why)
  local conf = read(opts.conf or (root .. "/examples/nginx/nginx.conf"))
  assert(conf ~= "", "no nginx configuration template")
  local self = process.start({ name = "smm-nginx", env = opts.env, conf = function(_, port)
    local workers = opts.workers or 1
    conf = replace(conf, "listen 127.0.0.1:8080;",
      "listen 127.0.0.1:" .. port .. (workers > 1 and " reuseport" or "") .. ";")
    if workers > 1 then conf = replace(conf, "worker_processes 1;", "worker_processes " .. workers .. ";") end
    conf = replace(conf, "$prefix/lua/", root .. "/lua/")
    conf = replace(conf, "$prefix/examples/nginx/", root .. "/examples/nginx/")
    conf = replace(conf, "examples/nginx/logs/", "logs/")
    conf = replace(conf, "daemon off;", "daemon on;")
    conf = replace(conf, "# more locations", opts.locations or "")
    if opts.http then conf = replace(conf, "    server {", opts.http .. "\n    server {") end
    return conf
  end }, Nginx)
  self.base = "http://127.0.0.1:" .. self.port
  return self
end

local function encode(fields)
  local parts = {}
  for k, v in pairs(fields) do
    parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(c)
      return string.format("%%%02X", c:byte())
    end)
  end
  table.sort(parts)
  return table.concat(parts, "&")
end
M.encode = encode

-- -> status, decoded JSON (or nil), raw body, headers
function Nginx:request(method, path, fields)
  local body = fields and encode(fields) or nil
  local out = {}
  local _, code, headers = http.request{
    url = self.base .. path, method = method,
    headers = body and { ["content-type"] = "application/x-www-form-urlencoded",
                         ["content-length"] = #body } or nil,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(out),
  }
  local raw = table.concat(out)
  return code, (cjson.decode(raw:find("^%s*[%[{]") and raw or "null")), raw, headers
end

function Nginx:get(path) return self:request("GET", path) end
function Nginx:post(path, fields) return self:request("POST", path, fields or {}) end

-- Sends n requests at once over n raw TCP connections (all written before any is read), then
-- reads every answer. -> array of { status =, body = }
function Nginx:burst(n, path)
  local conns = {}
  for i = 1, n do
    local c = assert(socket.tcp())
    c:settimeout(30)
    assert(c:connect("127.0.0.1", self.port))
    conns[i] = c
  end
  for i = 1, n do
    assert(conns[i]:send("GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
  end
  local answers = {}
  for i = 1, n do
    local data, err, partial = conns[i]:receive("*a")
    data = data or partial or ""
    conns[i]:close()
    answers[i] = { status = tonumber(data:match("^HTTP/1%.%d (%d+)")), body = data:match("\r\n\r\n(.*)$"),
                   err = err }
  end
  return answers
end

return M
