-- Test helper: runs Debian's nginx (with the lua module) on a free loopback port, configured
-- from examples/nginx/nginx.conf with test paths and extra locations, and stops it.
--
--   local nginx = require "helpers.nginx"
--   assert(nginx.available())
--   local ng = nginx.start{ env = { SMM_API_URL = ..., SMM_API_KEY = ... }, locations = "..." }
--   ng.base   -- "http://127.0.0.1:PORT"
--   ng:get("/balance") -> status, decoded JSON, raw body ; ng:post("/order", fields)
--   ng:stop()
--
-- The example's endpoints refuse every request without its token (SMM_FRONT_TOKEN): the helper
-- sets one (ng.token, M.TOKEN unless opts.token says otherwise) and its requests carry it.
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

M.TOKEN = "front-token-for-the-specs-7f3a"

-- opts: env (table of environment variables for nginx), locations (nginx text added to the
-- server block), http (text added to the http block), conf (a different template path),
-- workers (worker processes, default the template's 1; with more, the listener has
-- `reuseport`, so that the kernel spreads the connections over them rather than one worker
-- taking most), token (the front's SMM_FRONT_TOKEN, default M.TOKEN; false: none set),
-- example_init = false (the example's init_by_lua and init_worker_by_lua blocks left out, for
-- a spec that brings its own), replace ({ { old, new }, ... } more changes to the template,
-- each of which must find its text).
function M.start(opts)
  opts = opts or {}
  local ok, why = M.available()
  assert(ok, why)
  local conf = read(opts.conf or (root .. "/examples/nginx/nginx.conf"))
  assert(conf ~= "", "no nginx configuration template")
  local token = opts.token
  if token == nil then token = M.TOKEN end
  local environment = {}
  for k, v in pairs(opts.env or {}) do environment[k] = v end
  if token then environment.SMM_FRONT_TOKEN = token end
  local self = process.start({ name = "smm-nginx", env = environment, conf = function(_, port)
    local workers = opts.workers or 1
    conf = replace(conf, "listen 127.0.0.1:8080;",
      "listen 127.0.0.1:" .. port .. (workers > 1 and " reuseport" or "") .. ";")
    -- the example posts its book's events to itself
    conf = replace(conf, "http://127.0.0.1:8080/", "http://127.0.0.1:" .. port .. "/")
    if opts.example_init == false then
      for _, block in ipairs{ "init_by_lua_block", "init_worker_by_lua_block" } do
        local n
        conf, n = conf:gsub("\n    " .. block .. " {\n.-\n    }\n", "\n")
        assert(n == 1, "examples/nginx/nginx.conf no longer has one " .. block)
      end
    end
    for _, r in ipairs(opts.replace or {}) do conf = replace(conf, r[1], r[2]) end
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
  self.token = token or nil
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

-- opts: token (instead of the front's; false: no Authorization header), body (sent as it is,
-- instead of fields), headers (more request headers).
-- -> status, decoded JSON (or nil), raw body, headers
function Nginx:request(method, path, fields, opts)
  opts = opts or {}
  local body = opts.body or (fields and encode(fields)) or nil
  local sent = {}
  if body then
    sent["content-type"] = opts.body and "application/json" or "application/x-www-form-urlencoded"
    sent["content-length"] = #body
  end
  local token = opts.token
  if token == nil then token = self.token end
  if token then sent.authorization = "Bearer " .. token end
  for k, v in pairs(opts.headers or {}) do sent[k:lower()] = v end
  local out = {}
  local _, code, headers = http.request{
    url = self.base .. path, method = method, headers = sent,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(out),
  }
  local raw = table.concat(out)
  return code, (cjson.decode(raw:find("^%s*[%[{]") and raw or "null")), raw, headers
end

function Nginx:get(path, opts) return self:request("GET", path, nil, opts) end
function Nginx:post(path, fields, opts) return self:request("POST", path, fields or {}, opts) end

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
    assert(conns[i]:send("GET " .. path .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" ..
      (self.token and "Authorization: Bearer " .. self.token .. "\r\n" or "") .. "\r\n"))
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
