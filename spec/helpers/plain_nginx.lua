-- Test helper: Debian's nginx with a bare configuration of your own (no lua module), on a free
-- loopback port, for fast static answers (load tests) and TLS termination (TLS tests).
--
--   local plain = require "helpers.plain_nginx"
--   local ng = plain.start{ server = "location / { return 200 'hi'; }", ssl = { cert =, key = } }
--   ng.port, ng.base ("http://127.0.0.1:PORT" or "https://...") ; ng:stop()
--
-- `server` is the text of the server block after its `listen` line; with `ssl` the listener
-- is TLS with that certificate and key. Returns nil, why when nginx is not installed.
local process = require "helpers.nginx_process"

local M = {}
local Nginx = setmetatable({}, { __index = process.Process })
Nginx.__index = Nginx

M.BINARY = process.BINARY
M.free_port = process.free_port

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
  local self = process.start({ name = "smm-plain-nginx", conf = function(dir, port)
    local listens = {}
    for _, host in ipairs(opts.hosts or { "127.0.0.1" }) do
      listens[#listens + 1] = "listen " .. host .. ":" .. port .. (opts.ssl and " ssl" or "") .. ";"
    end
    local listen = table.concat(listens, "\n    ")
    if opts.ssl then
      listen = listen .. "\n    ssl_certificate " .. opts.ssl.cert .. ";\n    ssl_certificate_key " ..
        opts.ssl.key .. ";"
    end
    return table.concat({
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
  end }, Nginx)
  self.base = (opts.ssl and "https" or "http") .. "://127.0.0.1:" .. self.port
  return self
end

return M
