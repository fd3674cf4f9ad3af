-- Retry: reading actions are retried on passing failures; actions that spend money are sent
-- again only when the request provably never left, so no fault ever makes two orders.
local env = require "helpers.env"
local smm = require "smm"

describe("retry", function()
  local sb, client

  setup(function()
    sb = env.sandbox()
    client = env.client(sb, { retries = 3, retry_base = 10, timeout = 1000 })
  end)

  teardown(function()
    client:close()
    sb:stop()
  end)

  before_each(function()
    sb:reset()
  end)

  it("retries status on a 503 page and succeeds", function()
    local order = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }.order
    sb:fault("html503", { action = "status", times = 2 })
    local st, err = client:status(order)
    assert.is_nil(err)
    assert.is_string(st.status)
    assert.equal(3, env.count(sb, "status"))
  end)

  it("retries balance on a CDN challenge page, a reset and truncated JSON", function()
    for _, fault in ipairs{ "html200", "reset_after_read", "truncated", "error500" } do
      sb:reset()
      sb:fault(fault, { action = "balance" })
      local b, err = client:balance()
      assert.is_nil(err, fault)
      assert.equal("100.00", b.balance)
      assert.equal(2, env.count(sb, "balance"), fault)
    end
  end)

  it("gives up after `retries` extra attempts and says how many were made", function()
    sb:fault("html503", { action = "balance", times = 10 })
    local b, err = client:balance()
    assert.is_nil(b)
    assert.equal(4, err.attempts)
    assert.equal(4, env.count(sb, "balance"))
  end)

  it("honours Retry-After, and does not wait past retry_max", function()
    local patient = env.client(sb, { retries = 3, retry_max = 500 })
    sb:fault("rate429", { action = "balance", retry_after = 60 })
    local _, err = patient:balance()
    assert.equal(429, err.status)
    assert.equal(60, err.retry_after)
    assert.equal(1, env.count(sb, "balance"), "waited for Retry-After beyond retry_max")
    patient:close()
  end)

  it("does not retry api errors that will not change", function()
    local _, err = client:add{ service = 4, link = "https://x.test/a", quantity = 1000000 }
    assert.equal("api", err.kind)
    assert.equal(1, env.count(sb, "add"))
  end)

  it("never sends add again after a reset once the request was read: one order, ambiguous", function()
    sb:fault("reset_after_read", { action = "add" })
    local res, err = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }
    assert.is_nil(res)
    assert.is_true(err.ambiguous)
    assert.equal(1, err.attempts)
    assert.equal(1, env.count(sb, "add"))
    assert.equal(1, sb:stats().orders)
  end)

  it("no fault ever produces two orders from one add", function()
    local faults = { "html503", "html200", "rate429", "error500", "truncated", "invalid_utf8",
      "empty", "reset_before_read", "reset_after_read", "slow", "close" }
    for _, fault in ipairs(faults) do
      sb:reset()
      sb:fault(fault, { action = "add", delay = 2000, times = 5 })
      local res, err = client:add{ service = 1, link = "https://x.test/" .. fault, quantity = 100 }
      assert.is_true(sb:stats().orders <= 1, fault .. " made more than one order")
      assert.equal(1, env.count(sb, "add"), fault .. " was sent again")
      if not res then
        assert.is_boolean(err.ambiguous)
        if fault ~= "rate429" then assert.is_true(err.ambiguous, fault) end
      end
    end
  end)

  it("does retry add when nothing was sent (the panel is down), and says it is not ambiguous", function()
    local down = smm.new{ url = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2", key = env.KEY,
                          retries = 2, retry_base = 1 }
    local res, err = down:add{ service = 1, link = "https://x.test/a", quantity = 100 }
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.is_false(err.ambiguous)
    assert.equal(3, err.attempts)
    down:close()
  end)

  it("retries add after a connect timeout (nothing left), and says it is not ambiguous", function()
    local port, close = env.hanging_port()
    local hung = smm.new{ url = "http://127.0.0.1:" .. port .. "/api/v2", key = env.KEY,
                          connect_timeout = 200, retries = 1, retry_base = 1 }
    local res, err = hung:add{ service = 1, link = "https://x.test/a", quantity = 100 }
    hung:close()
    close()
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.is_false(err.sent)
    assert.is_false(err.ambiguous)
    assert.equal(2, err.attempts)
  end)

  it("marks every error retryable or not", function()
    sb:fault("html503", { action = "balance", times = 10 })
    local _, err = env.client(sb, { retries = 0 }):balance()
    assert.is_true(err.retryable)
    _, err = client:add{ service = 1, quantity = 100 }
    assert.is_false(err.retryable)
  end)
end)
