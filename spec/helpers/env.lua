-- Shared test setup: a sandbox panel per spec file and clients pointed at it. Every suite uses
-- the same sentinel key, so that a leak anywhere can be searched for.
local sandbox = require "helpers.sandbox"
local smm = require "smm"

local M = {}

M.KEY = "SENTINEL-KEY-7f3a9c2e"

function M.sandbox(opts)
  opts = opts or {}
  opts.key = opts.key or M.KEY
  return sandbox.start(opts)
end

function M.client(sb, opts)
  local o = { url = sb.url, key = M.KEY, retry_base = 10, timeout = 5000 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return smm.new(o)
end

-- Requests the sandbox received for an action (all actions when nil).
function M.count(sb, action)
  local stats = sb:stats()
  if action == nil then return stats.requests end
  return stats.actions[action] or 0
end

-- Lua 5.3+: a real integer subtype; 5.1/LuaJIT: a whole number.
function M.is_integer(x)
  if math.type then return math.type(x) == "integer" end
  return type(x) == "number" and x == math.floor(x)
end

-- Searches every string inside a value (errors, answers) for the sentinel key.
function M.leaks_key(value, seen)
  seen = seen or {}
  local t = type(value)
  if t == "string" then return value:find(M.KEY, 1, true) ~= nil end
  if t ~= "table" or seen[value] then return false end
  seen[value] = true
  if getmetatable(value) and getmetatable(value).__tostring and tostring(value):find(M.KEY, 1, true) then
    return true
  end
  for k, v in pairs(value) do
    if M.leaks_key(k, seen) or M.leaks_key(v, seen) then return true end
  end
  return false
end

M.closed_port = sandbox.closed_port
M.hanging_port = sandbox.hanging_port

-- The first of `needles` found in any string inside v (keys, values, and tostring of values
-- that have a __tostring, such as errors), or nil.
function M.find_any(v, needles, seen)
  seen = seen or {}
  if type(v) == "string" then
    for _, n in ipairs(needles) do
      if v:find(n, 1, true) then return n end
    end
    return nil
  end
  if type(v) ~= "table" or seen[v] then return nil end
  seen[v] = true
  local mt = getmetatable(v)
  if mt and mt.__tostring then
    local hit = M.find_any(tostring(v), needles, seen)
    if hit then return hit end
  end
  for k, x in pairs(v) do
    local hit = M.find_any(k, needles, seen) or M.find_any(x, needles, seen)
    if hit then return hit end
  end
  return nil
end

return M
