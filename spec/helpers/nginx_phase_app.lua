-- Loaded inside nginx by spec/22-nginx_phases_spec.lua, from init_by_lua_block: clients made
-- where OpenResty users make them, before any request. `module_client` is made when this module
-- loads (nginx's init phase, in the master, before the workers fork); init_worker_by_lua_block
-- sets `worker_client`. Both are used later by requests and timers.
local smm = require "smm"
local cjson = require "cjson"
local ngx = ngx -- luacheck: ignore (the global exists only inside nginx)

local M = {}

function M.new_client(opts)
  local o = { url = os.getenv("SMM_API_URL"), key = os.getenv("SMM_API_KEY"), retry_base = 10, timeout = 5000 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return smm.new(o)
end

M.module_client = M.new_client()

-- Calls the panel with `client` (default: the worker's) where the caller is, and says what came
-- of it as JSON: { balance =, err = (a returned error), raised = (a raised one), phase =,
-- transport =, core = (whether smm.core is loaded), curl = (smm.transport.curl) }.
function M.try(client, method, ...)
  client = client or M.worker_client
  local ok, value, err = pcall(client[method or "balance"], client, ...)
  return cjson.encode{
    balance = ok and type(value) == "table" and value.balance or nil,
    err = ok and err and tostring(err) or nil,
    raised = not ok and tostring(value) or nil,
    phase = ngx.get_phase(),
    transport = client.transport.name,
    core = package.loaded["smm.core"] ~= nil,
    curl = package.loaded["smm.transport.curl"] ~= nil,
  }
end

-- The panel called in the init phase itself: it must refuse, naming the phase.
M.at_init = M.try(M.module_client)

return M
