-- Bad input everywhere: every action and `call` answer wrong types, NUL bytes, huge strings,
-- negative and fractional numbers, NaN and infinities, booleans, nested tables, non-string
-- field names and bad elements deep in long id lists with an `invalid` error that names the
-- field, and nothing is sent. Misusing the API itself (bad options, a bad action name) raises.
local env = require "helpers.env"
local smm = require "smm"

local NAN, INF = 0 / 0, math.huge
local HUGE = string.rep("x", 1024 * 1024 + 1)
local function fn() end

-- A valid order with one field replaced (nil removes it).
local function order(name, value)
  local o = { service = 1, link = "https://x.test/p", quantity = 100 }
  o[name] = value
  return o
end

-- { label, call(client) -> res, err, the field the error must name }
local CASES = {}
local function case(label, call, field) CASES[#CASES + 1] = { label, call, field } end

-- add: the order itself and each field
case("add: order is a string", function(c) return c:add("x") end, "order")
case("add: order is nil", function(c) return c:add() end, "order")
for _, v in ipairs{ "abc", "", "1.5", "1e3", "0x10", true, false, {}, 1.5, -1, 0, NAN, INF, -INF,
                    "1\0", fn } do
  case("add: service = " .. tostring(v), function(c) return c:add(order("service", v)) end, "service")
  case("add: quantity = " .. tostring(v), function(c) return c:add(order("quantity", v)) end, "quantity")
end
case("add: service missing", function(c) return c:add(order("service", nil)) end, "service")
for _, v in ipairs{ 42, 1.5, true, {}, { "x" }, "", "   ", "a\0b", HUGE, NAN, fn } do
  case("add: link = " .. tostring(v):sub(1, 20), function(c) return c:add(order("link", v)) end, "link")
end
case("add: link missing", function(c) return c:add(order("link", nil)) end, "link")
local two = function(v)
  return { service = 2, link = "https://x.test/p", comments = v }
end
case("add: comments = {}", function(c) return c:add(two({})) end, "comments")
case("add: comments = 42", function(c) return c:add(two(42)) end, "comments")
case("add: comments[2] a table", function(c) return c:add(two({ "a", {} })) end, "comments[2]")
case("add: comments[2] a NUL", function(c) return c:add(two({ "a", "b\0" })) end, "comments[2]")
case("add: comments[1] two lines", function(c) return c:add(two({ "a\nb" })) end, "comments[1]")
case("add: comments[3] empty", function(c) return c:add(two({ "a", "b", " " })) end, "comments[3]")
case("add: comments not an array", function(c) return c:add(two({ "a", x = "b" })) end, "comments")
case("add: comments huge string", function(c) return c:add(two(HUGE)) end, "comments")
case("add: comments huge array", function(c)
  local lines = {}
  for i = 1, 1100 do lines[i] = string.rep("c", 1000) end
  return c:add(two(lines))
end, "comments")
case("add: extra field nested table", function(c) return c:add(order("country", { { "x" } })) end, "country")
case("add: extra field NUL", function(c) return c:add(order("country", "U\0S")) end, "country")
case("add: extra field huge", function(c) return c:add(order("country", HUGE)) end, "country")
case("add: extra field 1.5", function(c) return c:add(order("device", 1.5)) end, "device")
case("add: extra field NaN", function(c) return c:add(order("device", NAN)) end, "device")
case("add: extra field inf", function(c) return c:add(order("device", INF)) end, "device")
case("add: extra field function", function(c) return c:add(order("device", fn)) end, "device")
case("add: field name 1", function(c) return c:add(order(1, "x")) end, "1")
case("add: field name true", function(c) return c:add(order(true, "x")) end, "true")
case("add: field name with a space", function(c) return c:add(order("bad name", "x")) end, "bad name")
case("add: field name with a NUL", function(c) return c:add(order("a\0b", "x")) end, "a\0b")
case("add: field name 'key'", function(c) return c:add(order("key", "x")) end, "key")
case("add: field name 'action'", function(c) return c:add(order("action", "status")) end, "action")
case("add: runs without interval", function(c) return c:add(order("runs", 2)) end, "interval")
case("add: runs = -2", function(c)
  local o = order("runs", -2); o.interval = 5; return c:add(o) end, "runs")
case("add: interval = 0.5", function(c)
  local o = order("runs", 2); o.interval = 0.5; return c:add(o) end, "interval")
case("add: delay = 7", function(c)
  return c:add{ service = 7, username = "u", min = 50, max = 100, delay = 7 } end, "delay")
case("add: expiry = 31/02/2026", function(c)
  return c:add{ service = 7, username = "u", min = 50, max = 100, expiry = "31/02/2026" } end, "expiry")
case("add: min > max", function(c)
  return c:add{ service = 7, username = "u", min = 500, max = 100 } end, "min")
for _, v in ipairs{ {}, "abc", NAN, true, "1,00" } do
  -- a fresh client each time: no cached service list
  case("add: max_cost = " .. tostring(v), function(c)
    local fresh = env.client({ url = c.url }, { retries = 0 })
    local res, err = fresh:add(order("service", 1), { max_cost = v })
    fresh:close()
    return res, err
  end, "max_cost")
end

-- the id actions, single and multi forms
local ID_ACTIONS = {
  { "status", "order", "orders" }, { "refill", "order", "orders" },
  { "refill_status", "refill", "refills" }, { "cancel", "order", "orders" },
}
for _, a in ipairs(ID_ACTIONS) do
  local method, one, many = a[1], a[2], a[3]
  for _, v in ipairs{ "abc", "", "1.5", "-3", "1e3", "1\0", true, 1.5, -1, 0, NAN, INF, -INF, fn } do
    case(method .. "(" .. tostring(v) .. ")", function(c) return c[method](c, v) end, one)
  end
  case(method .. "()", function(c) return c[method](c) end, one)
  case(method .. "{}", function(c) return c[method](c, {}) end, many)
  case(method .. "{ x = 1 }", function(c) return c[method](c, { x = 1 }) end, many)
  case(method .. "{ [2] = 1 }", function(c) return c[method](c, { [2] = 1 }) end, many)
  for _, v in ipairs{ "x", 2.5, -1, 0, NAN, INF, true, {}, { 1 } } do
    case(method .. "{ 1, " .. tostring(v) .. " }", function(c) return c[method](c, { 1, v }) end,
      many .. "[2]")
  end
  case(method .. ": 100,000 ids, one bad", function(c)
    local ids = {}
    for i = 1, 100000 do ids[i] = i end
    ids[73411] = "73411x"
    return c[method](c, ids)
  end, many .. "[73411]")
end

-- call: any action, any fields
for _, v in ipairs{ NAN, INF, -INF, "a\0b", HUGE, { "a" }, { 1, 2.5 }, { { 1 } }, {}, fn } do
  case("call: field = " .. tostring(v):sub(1, 20), function(c)
    return c:call("balance", { field = v }) end, (type(v) == "table" and #v > 0) and
      (type(v[1]) ~= "number" and "field[1]" or "field[2]") or "field")
end
case("call: field name 1", function(c) return c:call("balance", { [1] = "x" }) end, "1")
case("call: field name true", function(c) return c:call("balance", { [true] = "x" }) end, "true")
case("call: field name with a space", function(c) return c:call("balance", { ["a b"] = "x" }) end, "a b")
case("call: field name with '&'", function(c) return c:call("balance", { ["a&key"] = "x" }) end, "a&key")
case("call: field 'key'", function(c) return c:call("balance", { key = "x" }) end, "key")
case("call: field 'action'", function(c) return c:call("balance", { action = "add" }) end, "action")
case("call: 100,000 ids, one bad", function(c)
  local ids = {}
  for i = 1, 100000 do ids[i] = i end
  ids[73411] = -1
  return c:call("status", { orders = ids })
end, "orders[73411]")

-- the helpers that take input too
case("wait({})", function(c) return c:wait({}) end, "orders")
case("wait(1.5)", function(c) return c:wait(1.5) end, "order")
case("wait{ 1, 'x' }", function(c) return c:wait({ 1, "x" }) end, "orders[2]")
case("quote(1, -5)", function(c) return c:quote(1, -5) end, "quantity")
case("quote(1, NaN)", function(c) return c:quote(1, NAN) end, "quantity")
case("quote('x', 100)", function(c) return c:quote("x", 100) end, "service")
case("service(1.5)", function(c) return c:service(1.5) end, "service")

describe("bad input", function()
  local sb, client

  setup(function()
    sb = env.sandbox()
    client = env.client(sb, { retries = 0 })
  end)

  teardown(function()
    client:close()
    sb:stop()
  end)

  for _, cs in ipairs(CASES) do
    local label, call, field = cs[1], cs[2], cs[3]
    it(label:gsub("%z", "\\0") .. " -> invalid '" .. field:gsub("%z", "\\0") .. "', nothing sent", function()
      local before = env.count(sb)
      local ok, res, err = pcall(call, client)
      assert.is_true(ok, "raised: " .. tostring(res))
      assert.is_nil(res)
      assert.is_true(smm.is_error(err), tostring(err))
      assert.equal("invalid", err.kind, tostring(err))
      assert.equal(field, err.field, tostring(err))
      assert.truthy(err.message:find("'" .. field .. "'", 1, true), err.message)
      assert.is_false(err.retryable)
      assert.is_false(err.ambiguous)
      assert.is_false(env.leaks_key(err))
      assert.is_true(#tostring(err) < 400, "a short message")
      assert.equal(before, env.count(sb), "something was sent")
    end)
  end

  it("100,000 valid ids are fine: sent in chunks of 100, every id answered", function()
    sb:reset()
    local ids = {}
    for i = 1, 100000 do ids[i] = i end
    local by_id, err = client:status(ids)
    assert.is_nil(err and tostring(err))
    assert.equal(1000, env.count(sb, "status"))
    assert.equal("Incorrect order ID", by_id[73411].error)
    assert.equal("Incorrect order ID", by_id[100000].error)
  end)

  it("booleans in extra fields and call are sent as 1/0, not refused", function()
    sb:reset()
    local res, err = client:add(order("extra_flag", true))
    assert.is_nil(err and tostring(err))
    assert.is_true(env.is_integer(res.order))
    local b
    b, err = client:call("balance", { flag = false })
    assert.is_nil(err and tostring(err))
    assert.is_string(b.balance)
    local log = sb:requests()
    assert.equal("1", log[1].fields.extra_flag)
    assert.equal("0", log[2].fields.flag)
  end)

  it("misuse of the API itself raises, naming what is wrong", function()
    local bad_options = {
      { nil, "expects a table" }, { "http://x", "expects a table" },
      { { key = env.KEY }, "'url'" }, { { url = sb.url }, "'key'" },
      { { url = sb.url, key = "" }, "'key'" }, { { url = sb.url, key = 42 }, "'key'" },
      { { url = sb.url, key = env.KEY, timeout = NAN }, "'timeout'" },
      { { url = sb.url, key = env.KEY, timeout = INF }, "'timeout'" },
      { { url = sb.url, key = env.KEY, timeout = -1 }, "'timeout'" },
      { { url = sb.url, key = env.KEY, retries = 1.5 }, "'retries'" },
      { { url = sb.url, key = env.KEY, retries = NAN }, "'retries'" },
      { { url = sb.url, key = env.KEY, concurrency = 0 }, "'concurrency'" },
      { { url = sb.url, key = env.KEY, concurrency = INF }, "'concurrency'" },
      { { url = sb.url, key = env.KEY, max_body = -1 }, "'max_body'" },
      { { url = sb.url, key = env.KEY, ssl_verify = "yes" }, "'ssl_verify'" },
      { { url = sb.url, key = env.KEY, rate_limit = { requests = 0, per = 1 } }, "'rate_limit'" },
      { { url = sb.url, key = env.KEY, rate_limit = { requests = 1, per = NAN } }, "'rate_limit'" },
      { { url = sb.url, key = env.KEY, transport = "socket" }, "'transport'" },
      { { url = sb.url, key = env.KEY, user_agent = "x\r\nX-Injected: 1" }, "'user_agent'" },
      { { url = sb.url, key = env.KEY, nope = 1 }, "'nope'" },
      { { url = sb.url, key = env.KEY, [1] = 1 }, "'1'" },
      { { url = "ftp://x/api/v2", key = env.KEY }, "'url'" },
      { { url = "http://", key = env.KEY }, "'url'" },
    }
    for i, b in ipairs(bad_options) do
      local ok, msg = pcall(smm.new, b[1])
      assert.is_false(ok, "case " .. i)
      assert.truthy(tostring(msg):find(b[2], 1, true), "case " .. i .. ": " .. tostring(msg))
    end
    for i, f in ipairs{
      function() return client:call(nil, {}) end,
      function() return client:call("", {}) end,
      function() return client:call("a b", {}) end,
      function() return client:call("balance", "x") end,
      function() return client:wait(1, { interval = -1 }) end,
      function() return client:wait(1, { on_update = 1 }) end,
      function() return client:find_services("x") end,
    } do
      local ok = pcall(f)
      assert.is_false(ok, "call " .. i)
    end
  end)
end)
