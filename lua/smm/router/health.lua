-- Each panel's health for smm.router: a circuit breaker (down after `failures` failures in a
-- row, probed by one order after `cool_off` ms, up again when it answers) and the balance
-- tracked from answers, with a low-balance event. The state is the book's `panels` table
-- (smm.book.panels), so every process routing through the same book sees one panel state.
--
-- What counts as a failure of the panel: it did not answer as an API does (no connection, a
-- timeout, a 5xx or an HTML page, a body that is no JSON). A refusal in the API's own words
-- ("Not enough funds", "Incorrect service ID") is an answer: the panel is up.
local M = {}

local Health = {}
Health.__index = Health

-- opts: book, clock (ms), failures (threshold), cool_off (ms)
function M.new(opts)
  return setmetatable({ book = opts.book, clock = opts.clock, threshold = opts.failures,
                        cool_off = opts.cool_off }, Health)
end

-- Does this error tell of the panel failing (rather than of the order or the caller)?
function M.is_failure(err)
  if type(err) ~= "table" then return false end
  local kind = err.kind
  if kind == "network" or kind == "timeout" or kind == "decode" then return true end
  if kind == "http" then return true end
  if kind == "api" then return (err.status or 200) >= 500 end
  return false
end

-- -> "up" | "probe" | "down", the panel's row; nil, err when the book fails
function Health:try(panel)
  return self.book:panel("try", panel.name, panel.url, self.clock(), self.cool_off)
end

-- The panel's state as a quote sees it, without taking a probe: "up" (or due for a probe)
-- or "down". row: the panel's row from book:panels() (nil: never seen, up).
function Health:view(row)
  if not row or row.state == "up" then return "up" end
  if (row.down_until or 0) <= self.clock() then return "up" end
  return "down"
end

-- A request to the panel ended: ok, or failed with err (only a failure of the panel counts).
function Health:outcome(panel, ok, err)
  -- refused before it was sent (bad input, the book): no news of the panel either way. Taken
  -- for an answer, it would clear the failures and put a down panel's probe back up, unasked.
  if not ok and type(err) == "table" and (err.kind == "invalid" or err.kind == "book") then return nil end
  if not ok and not M.is_failure(err) then ok = true end
  return self.book:panel("outcome", panel.name, panel.url, ok, (not ok) and tostring(err) or nil,
    self.threshold, self.cool_off, self.clock())
end

-- The balance an answer gave.
function Health:balance(panel, balance, currency)
  return self.book:panel("balance", panel.name, panel.url, balance, currency, nil, panel.low_balance)
end

-- An order placed for `price`: taken off the balance known (an estimate until the next balance
-- answer; nothing when no balance is known yet).
function Health:spent(panel, price)
  return self.book:panel("balance", panel.name, panel.url, nil, nil, price, panel.low_balance)
end

return M
