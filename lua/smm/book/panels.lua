-- Each panel's health as every process on the book sees it (the `panels` table, migration 6):
-- smm.router's circuit breaker and the balance tracked from answers. The SQL of it lives here;
-- the rules (when a failure counts, what is low) are smm.router.health's.
--
-- Times: updated_at and balance_at are the book's clock (UTC seconds); down_until is the
-- router's clock (milliseconds), since a cool-off is counted in milliseconds.
-- Each function runs inside the caller's transaction (db, now = the book's).
--
-- Breaker states: up (orders go there), down (none until down_until), probing (one process
-- sends one order to see whether it is back; down_until is then the probe's lease, so that a
-- prober that died leaves the panel probed again by another after a cool-off).
local events = require "smm.book.events"
local money = require "smm.money"

local M = {}

M.COLUMNS = "name url state failures down_until balance currency balance_at last_error updated_at"

local function row(db, name)
  return db:row("SELECT " .. db:columns(M.COLUMNS) .. " FROM panels WHERE name = ?", name)
end

function M.list(db)
  return db:rows("SELECT " .. db:columns(M.COLUMNS) .. " FROM panels ORDER BY name")
end

-- The panel's row, made (up, no failures) when it is new; its URL (without credentials) kept
-- current.
function M.ensure(db, now, name, url)
  db:changes([[INSERT INTO panels (name, url, state, failures, updated_at) VALUES (?, ?, 'up', 0, ?)
    ON CONFLICT (name) DO NOTHING]], name, url, now)
  local r = row(db, name)
  if r.url ~= url then
    db:run("UPDATE panels SET url = ?, updated_at = ? WHERE name = ?", url, now, name)
    r.url = url
  end
  return r
end

-- May an order go to the panel now? -> "up" | "probe" (this caller holds the probe) | "down", row.
-- Only one caller wins a probe: the UPDATE that moves the row is conditional on what was read.
function M.try(db, now, name, url, now_ms, cool_off)
  local r = M.ensure(db, now, name, url)
  if r.state == "up" then return "up", r end
  if (r.down_until or 0) <= now_ms then
    local n = db:changes([[UPDATE panels SET state = 'probing', down_until = ?, updated_at = ?
      WHERE name = ? AND state = ? AND (down_until IS NULL OR down_until <= ?)]],
      now_ms + cool_off, now, name, r.state, now_ms)
    if n == 1 then return "probe", r end
  end
  return "down", r
end

-- What a request to the panel ended in, for the breaker. ok: it answered (even with a refusal).
-- Otherwise one more failure in a row; at `threshold` (or a failed probe) the panel is down
-- until now_ms + cool_off. Emits panel.down and panel.up on the changes of state.
function M.outcome(db, now, name, url, ok, last_error, threshold, cool_off, now_ms)
  local r = M.ensure(db, now, name, url)
  if ok then
    if r.state ~= "up" or r.failures ~= 0 then
      db:run([[UPDATE panels SET state = 'up', failures = 0, down_until = NULL, updated_at = ?
        WHERE name = ?]], now, name)
      if r.state ~= "up" then
        events.emit(db, now, "panel.up", nil, url, { name = name, was = r.state })
      end
    end
    return "up"
  end
  db:run([[UPDATE panels SET failures = failures + 1, last_error = ?, updated_at = ? WHERE name = ?]],
    last_error, now, name)
  -- a panel down whose cool-off is over fails again (its list fetched for a quote or an add,
  -- before any probe was taken): as a failed probe, down for another cool-off. Left down with
  -- the old down_until, it stayed due: every quote and add asked it again (a hanging panel cost
  -- each of them its whole timeout) and the breaker never tripped on it again.
  local n = db:changes([[UPDATE panels SET state = 'down', down_until = ? WHERE name = ?
    AND (state = 'probing' OR (state = 'up' AND failures >= ?)
      OR (state = 'down' AND (down_until IS NULL OR down_until <= ?)))]],
    now_ms + cool_off, name, threshold, now_ms)
  if n == 1 then
    if r.state == "up" then
      events.emit(db, now, "panel.down", nil, url, { name = name, failures = r.failures + 1,
        error = last_error, down_until = now_ms + cool_off })
    end
    return "down"
  end
  return r.state
end

-- The panel's balance as an answer gave it (balance, currency) or as an order spent it
-- (spent: the amount taken off the balance known). low: the threshold; crossing below it
-- emits panel.low_balance once (again only after the balance rose to it or above).
function M.balance(db, now, name, url, balance, currency, spent, low)
  local r = M.ensure(db, now, name, url)
  if spent then
    if not (r.balance and money.is_decimal(r.balance)) then return nil end
    balance, currency = money.format(money.sub(r.balance, spent)), r.currency
  end
  if not money.is_decimal(balance) then return nil end
  db:run([[UPDATE panels SET balance = ?, currency = ?, balance_at = ?, updated_at = ? WHERE name = ?]],
    balance, currency, now, now, name)
  if low and money.compare(balance, low) < 0 and
      not (r.balance and money.is_decimal(r.balance) and money.compare(r.balance, low) < 0) then
    events.emit(db, now, "panel.low_balance", nil, url, { name = name, balance = balance,
      currency = currency, threshold = low })
  end
  return balance
end

return M
