-- Waiting for orders to finish: multi-status polls (chunked and parallel through the client)
-- until every order is in a final state, the time is up, or the panel refuses the key.
local normalize = require "smm.normalize"

local M = {}

M.DEFAULTS = { interval = 5000, timeout = 3600000, grace = 30000 }
-- What client:wait takes; `random` (the jitter source) is for tests.
M.OPTIONS = { "interval", "timeout", "grace", "on_update", "random" }

local function changed(entry, previous)
  if not previous then return true end
  if previous.error ~= nil or entry.error ~= nil then return previous.error ~= entry.error end
  return entry.status ~= previous.status or entry.remains ~= previous.remains
end

-- client: an smm client (its status, and its clock and sleep: client:now(), client:sleep(ms));
-- ids: array of positive integer ids (checked); opts: interval, timeout, grace (ms),
-- on_update(id, status, previous_status, entry), random (jitter source).
-- Returns final entries keyed by id. On timeout nil, err: a timeout error whose `entries` are
-- the last entries by id (final or not) and `pending` the ids not final yet. A timeout must
-- not look like success, so the entries are never the first value then.
function M.wait(client, ids, opts)
  local interval = opts.interval or M.DEFAULTS.interval
  local timeout = opts.timeout or M.DEFAULTS.timeout
  local grace = opts.grace or M.DEFAULTS.grace
  local random = opts.random or math.random
  local on_update = opts.on_update
  local started = client:now()
  local last, done = {}, {}
  local pending = {}
  for i, id in ipairs(ids) do pending[i] = id end

  while true do
    local by_id, err = client:status(pending)
    if not by_id and err and (err.kind == "api" or err.kind == "invalid") and
        err.code ~= "incorrect_order" then
      return nil, err
    end
    local elapsed = client:now() - started
    local still = {}
    for _, id in ipairs(pending) do
      local entry = by_id and by_id[id]
      if entry and entry.error == nil then
        if changed(entry, last[id]) and on_update then
          on_update(id, entry.status, last[id] and last[id].status, entry)
        end
        last[id] = entry
        if normalize.is_final(entry.status) then done[id] = entry else still[#still + 1] = id end
      elseif entry and entry.kind == nil and elapsed >= grace then
        -- the panel says the id is unknown, and not just because the order is brand new
        last[id] = entry
        done[id] = entry
      else
        still[#still + 1] = id
      end
    end
    pending = still
    if #pending == 0 then return done end
    elapsed = client:now() - started
    if elapsed >= timeout then
      for _, id in ipairs(pending) do done[id] = last[id] or { error = "no answer yet" } end
      return nil, client:error{ kind = "timeout", action = "wait", retryable = true,
        entries = done, pending = pending,
        message = #pending .. " of " .. #ids .. " orders not final after " .. timeout .. " ms" }
    end
    local wait = interval * (0.8 + 0.4 * random())
    client:sleep(math.max(0, math.min(wait, timeout - elapsed)))
  end
end

return M
