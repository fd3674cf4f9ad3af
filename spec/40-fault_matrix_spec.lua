-- The fault matrix: every action against every fault the sandbox can inject (and a panel that
-- is down), with the outcome each must have. The matrix is data: the `it` blocks and the
-- table in docs/fault-matrix.md (checked verbatim) are both generated from MATRIX below.
--
-- Safe actions (services, status, refill_status, balance) change nothing, so a failure that
-- may pass is retried; actions that spend or change something (add, refill, cancel) are never
-- sent again once the request may have reached the panel, so no fault makes a second order.
local env = require "helpers.env"
local smm = require "smm"

local RETRIES = 2           -- extra attempts: a retried call makes 1 + RETRIES attempts
local TIMEOUT = 300         -- ms; the slow fault answers after SLOW ms
local SLOW = 1500
local MAX_BODY = 4096       -- the big fault answers BIG bytes
local BIG = 100000

-- One row per fault. `safe` and `change` are the expected outcomes for the two action classes:
--   ok         the call succeeds (the answer is still usable)
--   kind       the error kind; status: its HTTP status
--   retryable  err.retryable;  ambiguous: err.ambiguous (change actions; safe ones: false)
--   retried    safe: the call is made 1 + RETRIES times;  change: `resent` is whether it is
--   resends    safe: libcurl itself may re-send on a reused connection that was reset, so the
--              sandbox may count up to 3 requests per attempt
--   sent       err.sent (failures before any answer)
--   performs   the sandbox carries the action out before the fault (an add places an order)
-- opts: the sandbox fault's parameters.
local MATRIX = {
  { fault = "html503", label = "HTML 503 page (CDN)",
    safe = { kind = "http", status = 503, retryable = true, retried = true },
    change = { kind = "http", status = 503, retryable = true, ambiguous = true } },
  { fault = "html200", label = "HTML 200 challenge page",
    safe = { kind = "decode", status = 200, retryable = true, retried = true },
    change = { kind = "decode", status = 200, retryable = true, ambiguous = true } },
  { fault = "rate429", label = "429 + Retry-After", opts = { retry_after = 0 },
    safe = { kind = "api", status = 429, retryable = true, retried = true },
    change = { kind = "api", status = 429, retryable = true, ambiguous = false } },
  { fault = "error500", label = "500 + JSON error",
    safe = { kind = "api", status = 500, retryable = true, retried = true },
    change = { kind = "api", status = 500, retryable = true, ambiguous = true } },
  { fault = "truncated", label = "truncated JSON", performs = true,
    safe = { kind = "decode", status = 200, retryable = true, retried = true },
    change = { kind = "decode", status = 200, retryable = true, ambiguous = true } },
  -- cjson takes invalid UTF-8 inside strings as bytes: the answer is usable JSON, and the
  -- fields the client reads are intact, so the call succeeds (the bad bytes stay in a field
  -- the client does not read). Refusing it would turn a placed order into an error.
  { fault = "invalid_utf8", label = "invalid UTF-8 in a string", performs = true,
    safe = { ok = true }, change = { ok = true } },
  { fault = "empty", label = "empty body", performs = true,
    safe = { kind = "decode", status = 200, retryable = true, retried = true },
    change = { kind = "decode", status = 200, retryable = true, ambiguous = true } },
  { fault = "reset_before_read", label = "reset before the request is read",
    safe = { kind = "network", retryable = true, retried = true, resends = true, sent = true },
    change = { kind = "network", retryable = true, ambiguous = true, sent = true } },
  { fault = "reset_after_read", label = "reset after the request is read", performs = true,
    safe = { kind = "network", retryable = true, retried = true, resends = true, sent = true },
    change = { kind = "network", retryable = true, ambiguous = true, sent = true } },
  { fault = "slow", label = "answer slower than the timeout", performs = true,
    opts = { delay = SLOW },
    safe = { kind = "timeout", retryable = true, retried = true, sent = true },
    change = { kind = "timeout", retryable = true, ambiguous = true, sent = true } },
  -- the same answer would be as large next time: not retried
  { fault = "big", label = "body larger than max_body", performs = true, opts = { size = BIG },
    safe = { kind = "http", retryable = false },
    change = { kind = "http", retryable = false, ambiguous = true } },
  { fault = "gzip", label = "gzip-encoded answer", performs = true,
    safe = { ok = true }, change = { ok = true } },
  { fault = "close", label = "answer, then connection closed", performs = true,
    safe = { ok = true }, change = { ok = true } },
  -- never followed: the key is in the body. A panel or proxy may act before it redirects
  -- (303 See Other after placing an order), so for add/refill/cancel it proves nothing.
  { fault = "redirect", label = "302 redirect to another host",
    safe = { kind = "http", status = 302, retryable = false },
    change = { kind = "http", status = 302, retryable = false, ambiguous = true } },
  -- nothing left this machine, so even add is tried again
  { fault = "down", label = "panel down (closed port)",
    safe = { kind = "network", retryable = true, retried = true, sent = false, none = true },
    change = { kind = "network", retryable = true, ambiguous = false, sent = false, none = true,
               resent = true } },
}

-- Every action, single and multi forms. fx: the fixture (an order a completed with refill r,
-- an order b still pending).
local ACTIONS = {
  { name = "services", action = "services", safe = true,
    call = function(c) return c:services{ refresh = true } end,
    check = function(res) assert.is_true(#res > 0) end },
  { name = "add", action = "add",
    call = function(c) return c:add{ service = 1, link = "https://x.test/new", quantity = 100 } end,
    check = function(res) assert.is_true(env.is_integer(res.order)) end },
  { name = "status", action = "status", safe = true,
    call = function(c, fx) return c:status(fx.a) end,
    check = function(res) assert.equal("Completed", res.status) end },
  { name = "status (multi)", action = "status", safe = true,
    call = function(c, fx) return c:status{ fx.a, fx.b } end,
    check = function(res, fx) assert.equal("Completed", res[fx.a].status) end },
  { name = "refill", action = "refill",
    call = function(c, fx) return c:refill(fx.a) end,
    check = function(res) assert.is_true(env.is_integer(res.refill)) end },
  { name = "refill (multi)", action = "refill",
    call = function(c, fx) return c:refill{ fx.a } end,
    check = function(res, fx) assert.is_true(env.is_integer(res[fx.a].refill)) end },
  { name = "refill_status", action = "refill_status", safe = true,
    call = function(c, fx) return c:refill_status(fx.r) end,
    check = function(res) assert.is_string(res.status) end },
  { name = "refill_status (multi)", action = "refill_status", safe = true,
    call = function(c, fx) return c:refill_status{ fx.r } end,
    check = function(res, fx) assert.is_string(res[fx.r].status) end },
  { name = "cancel", action = "cancel",
    call = function(c, fx) return c:cancel(fx.b) end,
    check = function(res) assert.is_true(res.cancel) end },
  { name = "cancel (multi)", action = "cancel",
    call = function(c, fx) return c:cancel{ fx.b } end,
    check = function(res, fx) assert.is_true(res[fx.b].cancel) end },
  { name = "balance", action = "balance", safe = true,
    call = function(c) return c:balance() end,
    check = function(res) assert.is_string(res.balance) end },
}

------------------------------------------------------------------------------------------
-- the Markdown table, from the same data

local function outcome_text(e)
  if e.ok then return "success (the answer is used)" end
  local s = "`" .. e.kind .. "`" .. (e.status and (" (HTTP " .. e.status .. ")") or "")
  if e.sent ~= nil then s = s .. ", `sent = " .. tostring(e.sent) .. "`" end
  return s .. (e.retryable and ", retryable" or ", not retryable")
end

local function markdown()
  local lines = {
    "<!-- generated by spec/40-fault_matrix_spec.lua from its MATRIX: edit the spec, not this file -->",
    "| fault | safe actions (services, status, refill_status, balance): outcome, retries |" ..
      " add / refill / cancel: outcome, ambiguous, sent again? |",
    "|---|---|---|",
  }
  for _, row in ipairs(MATRIX) do
    local s, c = row.safe, row.change
    local retries
    if s.ok then retries = "none needed"
    elseif s.retried then
      retries = "retried: " .. (1 + RETRIES) .. " attempts with `retries = " .. RETRIES .. "`" ..
        (s.resends and " (libcurl may also re-send once on a reused connection)" or "")
    else retries = "not retried" end
    local again
    if c.ok then again = "no"
    elseif c.resent then again = "yes: nothing was sent (" .. (1 + RETRIES) .. " attempts, 0 reached the panel)"
    else again = "no: exactly one request reached the panel" end
    lines[#lines + 1] = string.format("| %s (`%s`) | %s; %s | %s; %s; %s |", row.label,
      row.fault, outcome_text(s), retries, outcome_text(c),
      c.ok and "-" or (c.ambiguous and "**ambiguous**" or "not ambiguous"), again)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Measured with `retries = " .. RETRIES .. "`, `timeout = " .. TIMEOUT ..
    "` ms (the slow answer takes " .. SLOW .. " ms), `max_body = " .. MAX_BODY ..
    "` (the big answer is " .. BIG .. " bytes). No fault ever produced a second order."
  return table.concat(lines, "\n") .. "\n"
end

local root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]+$") or ".")

------------------------------------------------------------------------------------------

describe("fault matrix", function()
  local sb, client

  setup(function()
    sb = env.sandbox()
    client = env.client(sb, { retries = RETRIES, retry_base = 1, timeout = TIMEOUT,
                              max_body = MAX_BODY })
  end)

  teardown(function()
    client:close()
    sb:stop()
  end)

  -- a fresh panel: order a completed with a refill r, order b pending (cancellable)
  local function fixture()
    sb:reset()
    local a = assert(client:add{ service = 1, link = "https://x.test/a", quantity = 100 }).order
    sb:advance(20)
    local r = assert(client:refill(a)).refill
    local b = assert(client:add{ service = 1, link = "https://x.test/b", quantity = 100 }).order
    return { a = a, r = r, b = b }
  end

  local function snapshot()
    local st = sb:stats()
    return { actions = st.actions, orders = st.orders, refills = #sb:admin("refills") }
  end

  local function count(before, after, action)
    return (after.actions[action] or 0) - (before.actions[action] or 0)
  end

  local function down_client()
    return smm.new{ url = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2", key = env.KEY,
                    retries = RETRIES, retry_base = 1, timeout = TIMEOUT }
  end

  -- times: how many requests the fault hits (10: every attempt; 1: the first only)
  local function run(row, act, times)
    local fx = fixture()
    local before = snapshot()
    local c = client
    if row.fault == "down" then
      c = down_client()
    else
      local opts = { action = act.action, times = times }
      for k, v in pairs(row.opts or {}) do opts[k] = v end
      local ok = sb:fault(row.fault, opts)
      assert.is_true(ok.ok)
    end
    local res, err = act.call(c, fx)
    if c ~= client then c:close() end
    local after = snapshot()
    -- never a duplicate: at most the one order an add was asked for, one refill per refill
    local new_orders, new_refills = after.orders - before.orders, after.refills - before.refills
    assert.is_true(new_orders <= (act.action == "add" and 1 or 0), "duplicate order")
    assert.is_true(new_refills <= (act.action == "refill" and 1 or 0), "duplicate refill")
    return res, err, count(before, after, act.action), fx, new_orders
  end

  for _, row in ipairs(MATRIX) do
    for _, act in ipairs(ACTIONS) do
      local e = act.safe and row.safe or row.change
      it(row.fault .. " -> " .. act.name, function()
        local res, err, n, fx, new_orders = run(row, act, 10)
        if e.ok then
          assert.is_nil(err and tostring(err))
          act.check(res, fx)
          assert.equal(1, n)
          return
        end
        assert.is_nil(res)
        assert.is_true(smm.is_error(err))
        assert.equal(e.kind, err.kind, tostring(err))
        assert.equal(e.status, err.status)
        assert.equal(e.retryable, err.retryable)
        if act.safe then assert.is_false(err.ambiguous) else assert.equal(e.ambiguous, err.ambiguous) end
        if e.sent ~= nil then assert.equal(e.sent, err.sent) end
        assert.is_false(env.leaks_key(err))
        assert.is_string(tostring(err))
        local again = act.safe and e.retried or (not act.safe and e.resent)
        local attempts = again and 1 + RETRIES or 1
        assert.equal(attempts, err.attempts)
        if e.none then
          assert.equal(0, n)
        elseif act.safe and e.resends then
          assert.is_true(n >= attempts and n <= 3 * attempts, n .. " requests")
        else
          assert.equal(attempts, n)   -- add/refill/cancel: exactly one request
        end
        if act.action == "add" then
          assert.equal((row.performs and row.fault ~= "down") and 1 or 0, new_orders)
        end
      end)
    end
  end

  -- A fault that passes: reading actions come back with the answer on the next attempt.
  for _, row in ipairs(MATRIX) do
    if row.safe.retried and row.fault ~= "down" then
      for _, act in ipairs(ACTIONS) do
        if act.safe then
          it(row.fault .. " once -> " .. act.name .. " succeeds on a retry", function()
            local res, err, n, fx = run(row, act, 1)
            assert.is_nil(err and tostring(err))
            act.check(res, fx)
            assert.is_true(n >= 2, n .. " requests")
          end)
        end
      end
    end
  end

  it("a redirect whose target is reachable is still not followed", function()
    -- the sandbox listens on 127.0.0.1 only: a followed redirect would be a network error
    sb:reset()
    sb:fault("redirect", { action = "balance" })
    local _, err = client:balance()
    assert.equal("http", err.kind)
    assert.equal(302, err.status)
    assert.truthy(err.message:find("127.0.0.2", 1, true))
    assert.equal(1, env.count(sb, "balance"))
  end)

  it("docs/fault-matrix.md is the fault matrix this spec checks, and the only copy", function()
    local text = markdown()
    local function read(path)
      local f = assert(io.open(root .. "/" .. path, "r"))
      local s = f:read("*a")
      f:close()
      return s
    end
    local doc = read("docs/fault-matrix.md")
    if not doc:find(text, 1, true) then
      os.execute("mkdir -p '" .. root .. "/build'")
      local f = assert(io.open(root .. "/build/fault-matrix.md", "w"))
      f:write(text)
      f:close()
    end
    assert.is_truthy(doc:find(text, 1, true),
      "docs/fault-matrix.md's fault matrix differs from this spec's: paste build/fault-matrix.md into it")
    assert.equal(#MATRIX + 5, select(2, text:gsub("\n", "")))
    -- a second copy elsewhere would go stale unchecked
    assert.is_nil(read("README.md"):find(text:match("^[^\n]*\n([^\n]*)"), 1, true),
      "README.md holds a copy of the fault matrix: link docs/fault-matrix.md instead")
  end)

end)
