-- Test helper: Debian's nginx with a bare configuration of your own (no lua module), on a free
-- loopback port, for fast static answers (load tests) and TLS termination (TLS tests).
--
--   local plain = require "helpers.plain_nginx"
--   local ng = plain.start{ server = "location / { return 200 'hi'; }", ssl = { cert =, key = } }
--   ng.port, ng.base ("http://127.0.0.1:PORT" or "https://...") ; ng:stop()
--
-- `server` is the text of the server block after its `listen` line; with `ssl` the listener
-- is TLS with that certificate and key. Returns nil, why when nginx is not installed.
local socket = require "socket"

local M = {}
local Nginx = {}
Nginx.__index = Nginx

M.BINARY = os.getenv("SMM_NGINX") or "/usr/sbin/nginx"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- os.execute: true/nil on 5.2+, a status number on 5.1 and LuaJIT
local function run(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local function read(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

function M.available()
  local f = io.open(M.BINARY, "r")
  if f then f:close() return true end
  return false, M.BINARY .. " not found: install the Debian package nginx"
end

-- opts: server (text inside the server block), ssl = { cert = path, key = path },
-- hosts (loopback addresses to listen on, default { "127.0.0.1" }),
-- workers (default 1), http (text added to the http block).
function M.start(opts)
  local ok, why = M.available()
  if not ok then return nil, why end
  local dir = assert(io.popen("mktemp -d /tmp/smm-plain-nginx.XXXXXX")):read("*l")
  os.execute("chmod 755 " .. quote(dir) .. " && mkdir -p " .. quote(dir .. "/logs"))
  local port = M.free_port()
  local listens = {}
  for _, host in ipairs(opts.hosts or { "127.0.0.1" }) do
    listens[#listens + 1] = "listen " .. host .. ":" .. port .. (opts.ssl and " ssl" or "") .. ";"
  end
  local listen = table.concat(listens, "\n    ")
  if opts.ssl then
    listen = listen .. "\n    ssl_certificate " .. opts.ssl.cert .. ";\n    ssl_certificate_key " ..
      opts.ssl.key .. ";"
  end
  local conf = table.concat({
    "daemon on;",
    "worker_processes " .. (opts.workers or 1) .. ";",
    "pid logs/nginx.pid;",
    "error_log logs/error.log warn;",
    "events { worker_connections 1024; }",
    "http {",
    "  access_log off;",
    "  keepalive_requests 1000000;",
    "  keepalive_timeout 120s;",
    "  client_body_temp_path " .. dir .. "/tmp_body;",
    "  proxy_temp_path " .. dir .. "/tmp_proxy;",
    "  fastcgi_temp_path " .. dir .. "/tmp_fcgi;",
    "  uwsgi_temp_path " .. dir .. "/tmp_uwsgi;",
    "  scgi_temp_path " .. dir .. "/tmp_scgi;",
    opts.http or "",
    "  server {",
    "    " .. listen,
    opts.server or "",
    "  }",
    "}",
  }, "\n")
  write(dir .. "/nginx.conf", conf)
  os.execute("chmod -R a+rX " .. quote(dir))
  local pipe = assert(io.popen(string.format("%s -p %s -c %s 2>&1", M.BINARY, quote(dir .. "/"),
    quote(dir .. "/nginx.conf")), "r"))
  local output = pipe:read("*a")
  if not pipe:close() then
    local log = read(dir .. "/logs/error.log")
    os.execute("rm -rf " .. quote(dir))
    error("nginx did not start: " .. output .. "\n" .. log)
  end
  for _ = 1, 100 do
    local c = socket.connect("127.0.0.1", port)
    if c then c:close() break end
    socket.sleep(0.05)
  end
  return setmetatable({ dir = dir, port = port,
    base = (opts.ssl and "https" or "http") .. "://127.0.0.1:" .. port }, Nginx)
end

function Nginx:error_log() return read(self.dir .. "/logs/error.log") end

function Nginx:stop()
  if not self.dir then return end
  local pid = tonumber((read(self.dir .. "/logs/nginx.pid"):match("%d+")))
  if pid then
    os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not run("kill -0 " .. pid .. " 2>/dev/null") then break end
      socket.sleep(0.05)
    end
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
  end
  os.execute("rm -rf " .. quote(self.dir))
  self.dir = nil
end

return M
