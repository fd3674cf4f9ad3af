-- The transport over libcurl: an smm.core handle, which has the transport's methods itself
-- (request, request_many, sleep, now, close, name), so that a request costs no Lua call of its
-- own. It knows HTTP, not the API: it posts form fields and hands back result tables:
--   handle:request(url, fields, { idempotent = bool, [schema = { field = type }],
--                                 [gzip = bool] }) -> result
--     (normalized = true when smm.core applied the schema: see smm.normalize.SERVICE_SCHEMA)
--   handle:request_many(url, { fields, ... }, { idempotent =, concurrency =, ... })
--     -> { result, ... }
--   handle:sleep(ms), handle:now() -> ms, handle:close()
-- smm.core is loaded here, on first use, so that inside nginx (where the cosocket transport is
-- used) libcurl is never loaded.
local M = {}
M.name = "curl"

local CORE_OPTIONS = { "timeout", "connect_timeout", "proxy", "ssl_verify", "cainfo", "user_agent",
                       "max_body", "concurrency" }

-- headers: extra header lines ("Name: value") for every request, or nil (smm.core's option
-- `headers`, kept in C: never on a Lua table anyone can print).
function M.new(opts, headers)
  local core = require "smm.core"
  local core_opts = { headers = headers }
  for _, name in ipairs(CORE_OPTIONS) do core_opts[name] = opts[name] end
  return core.new(core_opts)
end

return M
