-- The transport over libcurl (smm.core). It knows HTTP, not the API: it posts form fields and
-- hands back the C core's result tables untouched. smm.core is loaded here, on first use, so
-- that inside nginx (where the cosocket transport is used) libcurl is never loaded.
local M = {}
M.name = "curl"

local Transport = {}
Transport.__index = Transport
Transport.name = "curl" -- client:__tostring reads transport.name from the instance

local CORE_OPTIONS = { "timeout", "connect_timeout", "proxy", "ssl_verify", "cainfo", "user_agent",
                       "max_body", "concurrency" }

function M.new(opts)
  local core = require "smm.core"
  local core_opts = {}
  for _, name in ipairs(CORE_OPTIONS) do core_opts[name] = opts[name] end
  return setmetatable({ core = core, handle = core.new(core_opts) }, Transport)
end

-- url, fields, { idempotent = bool, [schema = { field = type }] } -> result (normalized = true
-- when smm.core applied the schema: see smm.normalize.SERVICE_SCHEMA)
function Transport:request(url, fields, ropts)
  return self.handle:request(url, fields, ropts)
end

-- url, { fields, ... }, { idempotent =, concurrency = } -> { result, ... }
function Transport:request_many(url, list, ropts)
  return self.handle:request_many(url, list, ropts)
end

function Transport:sleep(ms)
  if ms > 0 then self.core.sleep(ms) end
end

function Transport:now()
  return self.core.now()
end

function Transport:close()
  self.handle:close()
end

return M
