-- Choosing a transport. Inside nginx, in a phase where cosockets work, the cosocket transport
-- is the default (libcurl would block the whole worker); everywhere else, libcurl.
local M = {}

-- Phases in which ngx.socket.tcp may be used.
local COSOCKET_PHASES = { rewrite = true, access = true, content = true, timer = true,
                          ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true }

function M.cosockets_available()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.get_phase) ~= "function" then return false end
  return COSOCKET_PHASES[ngx.get_phase()] == true
end

function M.default_name()
  return M.cosockets_available() and "ngx" or "curl"
end

local REQUIRED = { "request", "request_many", "sleep", "now", "close" }

-- opts: the checked client options. opts.transport: nil, "curl", "ngx", or an object that
-- implements request/request_many/sleep/now/close like transport/curl.lua.
function M.open(opts)
  local t = opts.public.transport or M.default_name()
  if type(t) == "table" then
    for _, method in ipairs(REQUIRED) do
      if type(t[method]) ~= "function" then
        error("smm.new: option 'transport' lacks the method '" .. method .. "'", 3)
      end
    end
    return t
  end
  if t == "curl" then return require("smm.transport.curl").new(opts.public) end
  if t == "ngx" then return require("smm.transport.ngx").new(opts.public) end
  error("smm.new: option 'transport' must be \"curl\", \"ngx\" or a transport object", 3)
end

return M
