-- What may be sent again, and when.
--
-- Reading actions (services, status, refill_status, balance) change nothing on the panel, so a
-- failure that may pass (network, timeout, 5xx, 429, an HTML challenge page) is retried with
-- exponential backoff and jitter. Actions that spend or change something (add, refill, cancel,
-- and any custom action) are sent again only when the request provably never left this
-- machine: the API has no idempotency key, and a second `add` is a second paid order.
local M = {}

M.SAFE = { services = true, status = true, refill_status = true, balance = true }

M.DEFAULTS = { retries = 2, retry_base = 500, retry_max = 30000 }

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
-- call together, ms), random (a function returning [0, 1), for jitter).
function M.policy(opts)
  return setmetatable({
    retries = opts.retries or M.DEFAULTS.retries,
    base = opts.retry_base or M.DEFAULTS.retry_base,
    budget = opts.retry_max or M.DEFAULTS.retry_max,
    random = opts.random or math.random,
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

return M
