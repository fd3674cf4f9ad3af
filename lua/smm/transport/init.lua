-- Choosing a transport. Inside nginx the cosocket transport is the default in every phase, not
-- only where cosockets work at the moment smm.new runs: a client is usually made once, in
-- init_worker_by_lua or when a module is loaded, and used later by requests and timers, where
-- cosockets work. The ngx transport looks at the phase where each request runs (and says
-- clearly where none can). libcurl is taken inside nginx only when asked for by name: it would
-- block the whole worker. Outside nginx, libcurl.
local M = {}

-- Phases in which ngx.socket.tcp (and ngx.sleep, ngx.thread.spawn) may be used; the names
-- ngx.get_phase() gives.
M.COSOCKET_PHASES = { rewrite = true, server_rewrite = true, access = true, content = true,
                      timer = true, ssl_cert = true, ssl_session_fetch = true,
                      ssl_client_hello = true, preread = true }

-- The current nginx phase, or nil outside nginx.
function M.phase()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" then return nil end
  return ngx.get_phase()
end

function M.cosockets_available()
  return M.COSOCKET_PHASES[M.phase()] == true
end

function M.default_name()
  return M.phase() and "ngx" or "curl"
end

local REQUIRED = { "request", "request_many", "sleep", "now", "close" }

-- opts: the checked client options. opts.transport: nil, "curl", "ngx", or an object that
-- implements request/request_many/sleep/now/close like transport/curl.lua.
-- The dialect's extra header lines (the key in X-Api-Key or Authorization) go to the transport
-- as plain header lines, apart from the public options (which are printable).
function M.open(opts)
  local t = opts.public.transport or M.default_name()
  local headers = opts.dialect and require("smm.dialect").headers(opts.dialect, opts.key)
  if type(t) == "table" then
    if headers then
      error("smm.new: option 'dialect' " .. tostring(opts.dialect.name) .. " sends the key in a " ..
        "header, which a transport object cannot be given: use transport \"curl\" or \"ngx\"", 3)
    end
    for _, method in ipairs(REQUIRED) do
      if type(t[method]) ~= "function" then
        error("smm.new: option 'transport' lacks the method '" .. method .. "'", 3)
      end
    end
    return t
  end
  if t == "curl" then return require("smm.transport.curl").new(opts.public, headers) end
  if t == "ngx" then return require("smm.transport.ngx").new(opts.public, headers) end
  error("smm.new: option 'transport' must be \"curl\", \"ngx\" or a transport object", 3)
end

return M
