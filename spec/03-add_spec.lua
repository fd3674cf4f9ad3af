-- Every kind of order, escaping of what users type, and bad input refused before sending.
local env = require "helpers.env"

describe("add", function()
  local sb, client

  setup(function()
    sb = env.sandbox()
    client = env.client(sb)
  end)

  teardown(function()
    client:close()
    sb:stop()
  end)

  before_each(function()
    sb:reset()
  end)

  local function last_order()
    local orders = sb:orders()
    return orders[#orders]
  end

  it("places every kind of order with the fields the panel expects", function()
    local cases = {
      { service = 1, link = "https://x.test/default", quantity = 100 },
      { service = 1, link = "https://x.test/drip", quantity = 100, runs = 3, interval = 30 },
      { service = 6, link = "https://x.test/package" },
      { service = 2, link = "https://x.test/comments", comments = { "nice", "great", "wow", "a", "b",
        "c", "d", "e", "f", "g" } },
      { service = 7, username = "someone", min = 100, max = 200, posts = 5, old_posts = 2, delay = 30,
        expiry = "31/12/2026" },
      { service = 8, link = "https://x.test/mention", quantity = 100, username = "owner" },
      { service = 10, link = "https://x.test/poll", quantity = 100, answer_number = 2 },
      { service = 11, link = "https://t.me/x", quantity = 20, groups = { "g1", "g2" } },
    }
    for i, order in ipairs(cases) do
      local res, err = client:add(order)
      assert.is_nil(err, "case " .. i .. ": " .. tostring(err))
      assert.is_true(env.is_integer(res.order))
      local got = last_order()
      for name, value in pairs(order) do
        if type(value) == "table" then value = table.concat(value, "\n") end
        assert.equal(tostring(value), tostring(got[name]), "case " .. i .. " field " .. name)
      end
    end
    assert.equal(#cases, sb:stats().orders)
  end)

  it("sends what users type exactly: & = + # % spaces, newlines and UTF-8", function()
    local link = "https://x.test/p?a=1&b=2+3#frag %41 é 日本"
    local comments = "first & second = third\nplus + hash # percent % ünï\r\nlast line" ..
      string.rep("\nmore", 8)
    assert.is_nil(select(2, client:add{ service = 2, link = link, comments = comments }))
    local got = last_order()
    assert.equal(link, got.link)
    assert.equal(comments, got.comments)
  end)

  it("passes fields it does not know through to the panel", function()
    assert.is_nil(select(2, client:add{ service = 1, link = "https://x.test/e", quantity = 100,
      country = "DE", device = "mobile" }))
    local requests = sb:requests()
    local fields = requests[#requests].fields
    assert.equal("DE", fields.country)
    assert.equal("mobile", fields.device)
  end)

  describe("refuses bad input before sending, naming the field", function()
    local bad = {
      { {}, "service" },
      { { service = 1, quantity = 100 }, "link" },
      { { service = 1, link = "https://x", quantity = 10.5 }, "quantity" },
      { { service = 1, link = "https://x", quantity = -5 }, "quantity" },
      { { service = 1, link = "https://x", quantity = "lots" }, "quantity" },
      { { service = 0, link = "https://x", quantity = 100 }, "service" },
      { { service = 2, link = "https://x", comments = "" }, "comments" },
      { { service = 2, link = "https://x", comments = {} }, "comments" },
      { { service = 2, link = "https://x", comments = { "ok", "" } }, "comments[2]" },
      { { service = 1, link = "https://x\0y", quantity = 100 }, "link" },
      { { service = 1, link = "", quantity = 100 }, "link" },
      { { service = 1, link = "https://x", quantity = 100, runs = 3 }, "interval" },
      { { service = 7, username = "u", min = 300, max = 200 }, "min" },
      { { service = 7, username = "u", min = 100, max = 200, delay = 7 }, "delay" },
      { { service = 7, username = "u", min = 100, max = 200, expiry = "2026-12-31" }, "expiry" },
      { { service = 7, username = "u", min = 100, max = 200, expiry = "31/02/2026" }, "expiry" },
      { { service = 10, link = "https://x", quantity = 100, answer_number = 0 }, "answer_number" },
      { { service = 1, link = "https://x", quantity = 100, country = { "DE" } }, "country" },
      { { service = 1, link = "https://x", quantity = 100, key = "other" }, "key" },
      { { service = 1, link = string.rep("x", 2 * 1024 * 1024), quantity = 100 }, "link" },
    }
    for i, case in ipairs(bad) do
      it("case " .. i .. ": " .. case[2], function()
        local before = env.count(sb)
        local res, err = client:add(case[1])
        assert.is_nil(res)
        assert.equal("invalid", err.kind)
        assert.equal(case[2], err.field)
        assert.truthy(tostring(err):find(case[2], 1, true), tostring(err))
        assert.equal(before, env.count(sb), "a request was sent for bad input")
      end)
    end
  end)

  it("refuses bad ids before sending", function()
    local before = env.count(sb)
    for _, call in ipairs{
      function() return client:status(0) end,
      function() return client:status(-1) end,
      function() return client:status(1.5) end,
      function() return client:status("abc") end,
      function() return client:status{} end,
      function() return client:status{ 1, "x" } end,
      function() return client:refill{} end,
      function() return client:refill_status(0) end,
      function() return client:cancel{ 1, -2 } end,
    } do
      local res, err = call()
      assert.is_nil(res)
      assert.equal("invalid", err.kind)
      assert.is_string(err.field)
    end
    assert.equal(before, env.count(sb))
  end)
end)
