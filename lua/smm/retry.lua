-- What may be sent again, and when.
--
-- Reading actions (services, status, refill_status, balance) change nothing on the panel, so a
-- failure that may pass (network, timeout, 5xx, 429, an HTML challenge page) is retried with
-- exponential backoff and jitter. Actions that spend or change something (add, refill, cancel,
-- and any custom action) are sent again only when the request provably never left this
-- machine: the API has no idempotency key, and a second `add` is a second paid order.
local DEFAULTS = require("smm.options").DEFAULTS

local M = {}

M.SAFE = { services = true, status = true, refill_status = true, balance = true }

function M.is_safe(action)
  return M.SAFE[action] == true
end

-- May this failed attempt be made again?
function M.may_retry(err, safe)
  if err.kind == "invalid" then return false end
  if safe then return err.retryable == true end
  return (err.kind == "network" or err.kind == "timeout") and err.sent == false
end

-- A policy: the attempts and waiting that one call may spend.
local Policy = {}
Policy.__index = Policy

-- opts: retries (extra attempts), retry_base (first wait, ms), retry_max (all waits of one
-- call together, ms), random (a function returning [0, 1), for jitter), on_retry (the hook
-- of smm.new, see Policy:run). Missing ones are smm.new's defaults (options.DEFAULTS).
function M.policy(opts)
  return setmetatable({
    retries = opts.retries or DEFAULTS.retries,
    base = opts.retry_base or DEFAULTS.retry_base,
    budget = opts.retry_max or DEFAULTS.retry_max,
    random = opts.random or math.random,
    on_retry = opts.on_retry,
  }, Policy)
end

-- How long to wait before attempt number `attempt + 1`, or nil to give up.
-- `waited` is what this call has already spent waiting.
function Policy:delay(err, attempt, waited)
  if attempt > self.retries then return nil end
  local wait
  if err.retry_after then
    -- the panel said how long; a little jitter keeps many clients from returning at once
    wait = err.retry_after * 1000 * (1 + 0.1 * self.random())
  else
    local ceiling = self.base * 2 ^ (attempt - 1)
    wait = ceiling / 2 + ceiling / 2 * self.random()
  end
  wait = math.floor(wait)
  if waited + wait > self.budget then return nil end
  return wait
end

-- The attempts of one call (client:send's one request, or one round of client:exchange's
-- parallel ones). try(attempt, a, b, c) makes attempt number `attempt` and returns x, y and,
-- when the call may be made again, the error that decides how long to wait (its kind and
-- retry_after). run returns x, y of the last attempt: after one that needs no retry, or when
-- the policy or the on_retry hook gives up. `timer` has now() and sleep(ms) (the client).
-- a, b, c spare the caller a closure per call.
--
-- The on_retry hook (smm.new{ on_retry = fn }) hears of each retry before it is made; false
-- from it gives up with the last error instead. A hung panel is otherwise minutes of silence
-- (3 attempts of `timeout` each), and only the caller knows its deadline.
function Policy:run(timer, try, a, b, c)
  local hook = self.on_retry
  local started = hook and timer:now() -- only the hook needs a clock
  local attempt, waited = 1, 0
  while true do
    local x, y, err = try(attempt, a, b, c)
    if not err then return x, y end
    local wait = self:delay(err, attempt, waited)
    if not wait then return x, y end
    if hook and hook{ action = err.action, attempt = attempt + 1, attempts = self.retries + 1,
                      wait = wait, err = err, elapsed = timer:now() - started } == false then
      return x, y
    end
    timer:sleep(wait)
    waited, attempt = waited + wait, attempt + 1
  end
end

return M
