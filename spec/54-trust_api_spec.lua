-- Issue 10, the traps of the library's API: an odd service list (point 12), misspelled options
-- and order fields (19), a `wait` that times out (20), and the smaller ones of point 29 (quote
-- and min/max, values in validation errors, the documented helpers). Only smm.new: run again
-- inside nginx by spec/21.
local hostile = require "helpers.hostile"
local smm = require "smm"

local KEY = "SENTINEL-KEY-7f3a9c2e"
local SERVICE = '{"service":1,"name":"Followers","type":"Default","category":"Instagram",'
  .. '"rate":"0.90","min":10,"max":1000}'

local function list(...) return "[" .. table.concat({ ... }, ",") .. "]" end

-- service 1 with its rate replaced by `rate` (raw JSON)
local function rated(rate)
  return list('{"service":1,"name":"Odd","type":"Default","category":"X","rate":' .. rate ..
    ',"min":10,"max":1000}')
end

local function panel(services, extra)
  local script = { actions = { services = hostile.json(services),
                               add = hostile.json('{"order":23501}') } }
  for k, v in pairs(extra or {}) do script.actions[k] = v end
  return hostile.start(script)
end

local function client(srv, opts)
  local o = { url = srv.url, key = KEY, retries = 0, timeout = 5000 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return smm.new(o)
end

local ORDER = { service = 1, link = "https://x.test/p", quantity = 100 }
local function order(name, value)
  local o = {}
  for k, v in pairs(ORDER) do o[k] = v end
  if name then o[name] = value end
  return o
end

-- Calls f(); it must neither raise nor succeed. -> err
local function refused(f)
  local ok, res, err = pcall(f)
  assert.is_true(ok, "raised: " .. tostring(res))
  assert.is_nil(res)
  assert.is_true(smm.is_error(err), tostring(err))
  return err
end

-- f() must raise; the message must hold every one of `words`. -> message
local function raises(f, ...)
  local ok, msg = pcall(f)
  assert.is_false(ok, "did not raise")
  msg = tostring(msg)
  for _, w in ipairs{ ... } do assert.truthy(msg:find(w, 1, true), msg) end
  return msg
end

describe("an odd service list (issue 10, point 12)", function()
  local RATES = {
    { '"1e999999999"', "1e999999999" },
    { "1e999999999", "inf" },
    { "NaN", "nan" },
    { '"NaN"', "NaN" },
    { '{"amount":"0.90"}', "table" },
    { '["0.90"]', "table" },
    { "true", "true" },
    { '"0,90"', "0,90" },
    { '"-0.90"', "-0.90" },
    { '""', "no rate" },
    { "null", "no rate" },
  }
  for _, case in ipairs(RATES) do
    local raw, shown = case[1], case[2]
    it("a rate of " .. raw .. ": quote and add{max_cost} return nil, err naming service and rate; nothing sent", function()
      local srv = panel(rated(raw))
      finally(function() srv:stop() end)
      local c = client(srv)
      local err = refused(function() return c:quote(1, 100) end)
      assert.truthy(err.kind == "decode" or err.kind == "invalid", tostring(err))
      assert.equal("rate", err.field, tostring(err))
      assert.equal(1, err.service, tostring(err))
      assert.truthy(err.message:find("service 1", 1, true), err.message)
      assert.truthy(err.message:lower():find(shown:lower(), 1, true), err.message)
      assert.is_false(err.ambiguous)
      err = refused(function() return c:add(order(), { max_cost = "1000.00" }) end)
      assert.equal("rate", err.field, tostring(err))
      assert.truthy(err.message:find("service 1", 1, true), err.message)
      assert.is_false(err.ambiguous)
      -- in a batch too
      local results = c:batch{ { "add", order(), { max_cost = "1000.00" } } }
      assert.is_nil(results[1].value)
      assert.equal("rate", results[1].err.field)
      assert.equal(0, srv:count("add"), "an order that cannot be priced was sent")
      -- the list itself is still usable
      local found = assert(c:find_services{ search = "odd" })
      assert.equal(1, #found)
      c:close()
      srv:stop()
    end)
  end

  it("entries that are not objects, ids that are tables, booleans or fractions are left out", function()
    local srv = panel(list('1', '"x"', 'null', 'true', '[1]',
      '{"service":{"a":1},"name":"T1","type":"Default","rate":"1.00"}',
      '{"service":{"b":2},"name":"T2","type":"Default","rate":"1.00"}',
      '{"service":true,"name":"B1","type":"Default","rate":"1.00"}',
      '{"service":false,"name":"B2","type":"Default","rate":"1.00"}',
      '{"service":1.5,"name":"F","type":"Default","rate":"1.00"}',
      '{"service":"abc","name":"S","type":"Default","rate":"1.00"}',
      '{"name":"no id","type":"Default","rate":"1.00"}',
      '{"service":2,"name":"Good","type":"Default","category":"Instagram","rate":"2.00","min":10,"max":1000}',
      '{"service":"3","name":"Good too","type":"Default","category":"Instagram","rate":"1.00","min":"10","max":1000}'))
    finally(function() srv:stop() end)
    local c = client(srv)
    for _, filter in ipairs{ {}, { type = "default" }, { search = "good" }, { category = "instagram" } } do
      local ok, found, err = pcall(c.find_services, c, filter)
      assert.is_true(ok, "raised: " .. tostring(found))
      assert.is_nil(err)
      assert.equal(2, #found)
      assert.equal(2, found[1].service)
      assert.equal(3, found[2].service)
    end
    local all = assert(c:services())
    assert.equal(2, #all)
    local ok, price = pcall(c.quote, c, 2, 100)
    assert.is_true(ok, tostring(price))
    assert.equal("0.20", price)
    local res, err = c:add(order("service", 2), { max_cost = "0.20" })
    assert.is_nil(err and tostring(err))
    assert.equal(23501, res.order)
    err = refused(function() return c:quote(1, 100) end)
    assert.equal("service", err.field)
    c:close()
    srv:stop()
  end)

  it("a list that is not a list of objects at all gives nil, err, not a raise", function()
    for _, body in ipairs{ '"services"', '42', '{"data":1}', 'true' } do
      local srv = panel(body)
      finally(function() srv:stop() end)
      local c = client(srv)
      refused(function() return c:quote(1, 100) end)
      refused(function() return c:find_services{ search = "x" } end)
      refused(function() return c:add(order(), { max_cost = "5.00" }) end)
      assert.equal(0, srv:count("add"))
      c:close()
      srv:stop()
    end
  end)
end)

describe("misspelled options and fields (issue 10, point 19)", function()
  local srv, c

  setup(function()
    srv = panel(list(SERVICE))
    c = client(srv)
  end)

  teardown(function()
    c:close()
    srv:stop()
  end)

  it("max_cost goes in add's second argument and guards the order there", function()
    local before = srv:count("add")
    local err = refused(function() return c:add(order(), { max_cost = "0.01" }) end)
    assert.equal("max_cost", err.field)
    assert.equal("0.09", err.price)
    assert.equal(before, srv:count("add"))
    local res = assert(c:add(order(), { max_cost = "0.09" }))
    assert.equal(23501, res.order)
    local sent = srv:requests()[#srv:requests()].form
    assert.equal("add", sent.action)
    assert.is_nil(sent.max_cost)
    assert.equal("100", sent.quantity)
  end)

  it("a misspelled option of add raises with a did-you-mean, before anything is sent", function()
    local before = srv:count()
    raises(function() return c:add(order(), { max_costs = "0.01" }) end, "'max_costs'", "'max_cost'")
    raises(function() return c:add(order(), { maxcost = "0.01" }) end, "'maxcost'", "'max_cost'")
    raises(function() return c:add(order(), { valdiate = true }) end, "'valdiate'", "'validate'")
    raises(function() return c:add(order(), { nonsense = 1 }) end, "'nonsense'", "max_cost")
    raises(function() return c:add(order(), "0.01") end, "opts")
    raises(function() return c:add(order(), { validate = "yes" }) end, "validate")
    raises(function() return c:batch{ { "add", order(), { max_costs = "1" } } } end, "'max_cost'")
    assert.equal(before, srv:count())
  end)

  it("a near miss of an option or a known field in the order is refused, naming field and value", function()
    local before = srv:count()
    local cases = {
      { "max_costs", "0.01", "max_cost" }, { "maxcost", "0.01", "max_cost" },
      { "MaxCost", "0.01", "max_cost" }, { "max_cots", "0.01", "max_cost" },
      { "validat", true, "validate" },
      { "quantiy", 100, "quantity" }, { "qunatity", 100, "quantity" }, { "Quantity", 100, "quantity" },
      { "serivce", 1, "service" }, { "links", "https://x.test/q", "link" },
      { "comment", "nice", "comments" }, { "user_name", "bob", "username" },
      { "intervall", 5, "interval" }, { "run", 2, "runs" }, { "answer_numbr", 1, "answer_number" },
      { "expire", "1/1/2030", "expiry" }, { "old_post", 1, "old_posts" }, { "hashtagz", "x", "hashtags" },
    }
    for _, case in ipairs(cases) do
      local name, value, meant = case[1], case[2], case[3]
      local err = refused(function() return c:add(order(name, value)) end)
      assert.equal("invalid", err.kind, tostring(err))
      assert.equal(name, err.field, tostring(err))
      assert.truthy(err.message:find("'" .. name .. "'", 1, true), err.message)
      assert.truthy(err.message:find("'" .. meant .. "'", 1, true), err.message)
      assert.truthy(err.message:find(tostring(value), 1, true), err.message)
      assert.is_false(err.ambiguous)
    end
    assert.equal(before, srv:count(), "a misspelled order was sent")
  end)

  it("max_cost or validate inside the order is refused, pointing at the second argument", function()
    local before = srv:count()
    for _, name in ipairs{ "max_cost", "validate" } do
      local err = refused(function() return c:add(order(name, name == "validate" or "5.00")) end)
      assert.equal(name, err.field)
      assert.truthy(err.message:find("client:add(order, {", 1, true), err.message)
    end
    assert.equal(before, srv:count())
  end)

  it("genuine panel extras still pass through", function()
    local res = assert(c:add(order("country", "US")))
    assert.equal(23501, res.order)
    local o = order("device", "mobile")
    o.lang, o.speed, o.gender = "en", 2, "f"
    res = assert(c:add(o))
    assert.equal(23501, res.order)
    local sent = srv:requests()[#srv:requests()].form
    assert.equal("mobile", sent.device)
    assert.equal("en", sent.lang)
    assert.equal("2", sent.speed)
  end)

  it("validate = true in the second argument checks the order against its service", function()
    local fresh = client(srv)
    local before = srv:count("add")
    local err = refused(function() return fresh:add(order("quantity", 5), { validate = true }) end)
    assert.equal("quantity", err.field)
    assert.equal(before, srv:count("add"))
    fresh:close()
  end)

  it("wait, services and find_services refuse unknown options as smm.new does", function()
    local before = srv:count()
    local f = function() end
    raises(function() return c:wait(1, { ontick = f, timeout = 10 }) end, "'ontick'", "on_update")
    raises(function() return c:wait({ 1, 2 }, { on_updat = f, timeout = 10 }) end, "'on_updat'", "'on_update'")
    raises(function() return c:wait(1, { intervall = 10, timeout = 10 }) end, "'intervall'", "'interval'")
    raises(function() return c:services{ refesh = true } end, "'refesh'", "'refresh'")
    raises(function() return c:find_services{ catgory = "x" } end, "'catgory'", "'category'")
    raises(function() return c:find_services{ serch = "x" } end, "'serch'", "'search'")
    assert.equal(before, srv:count())
  end)
end)

describe("wait that times out (issue 10, point 20)", function()
  local srv, c

  setup(function()
    srv = panel(list(SERVICE), { status = hostile.json(
      '{"7":{"charge":"0.27","start_count":"3","status":"In progress","remains":"57","currency":"USD"},'
      .. '"8":{"charge":"0.10","start_count":"1","status":"Completed","remains":"0","currency":"USD"}}') })
    c = client(srv)
  end)

  teardown(function()
    c:close()
    srv:stop()
  end)

  it("one id: nil, err with the last entries and the pending id", function()
    local entry, err = c:wait(7, { interval = 10, timeout = 50 })
    assert.is_nil(entry)
    assert.equal("timeout", err.kind)
    assert.same({ 7 }, err.pending)
    assert.equal("In progress", err.entries[7].status)
    assert.equal(57, err.entries[7].remains)
  end)

  it("many ids: nil, err; the final ones are in err.entries too", function()
    local by_id, err = c:wait({ 7, 8 }, { interval = 10, timeout = 50 })
    assert.is_nil(by_id)
    assert.equal("timeout", err.kind)
    assert.same({ 7 }, err.pending)
    assert.equal("In progress", err.entries[7].status)
    assert.equal("Completed", err.entries[8].status)
    assert.truthy(tostring(err):find("1 of 2", 1, true), tostring(err))
  end)

  it("orders that are all final still come back as by_id, no error", function()
    local by_id, err = c:wait({ 8 }, { interval = 10, timeout = 1000 })
    assert.is_nil(err)
    assert.equal("Completed", by_id[8].status)
  end)
end)

describe("smaller traps (issue 10, point 29)", function()
  local srv, c

  setup(function()
    srv = panel(list(SERVICE, '{"service":2,"name":"Comments","type":"Custom Comments",'
      .. '"category":"X","rate":"10.00","min":2,"max":3}'))
    c = client(srv)
  end)

  teardown(function()
    c:close()
    srv:stop()
  end)

  it("quote refuses a quantity outside the service's min/max, naming quantity and the bound", function()
    local err = refused(function() return c:quote(1, 5) end)
    assert.equal("quantity", err.field)
    assert.truthy(err.message:find("5", 1, true) and err.message:find("10", 1, true), err.message)
    err = refused(function() return c:quote(1, 5000) end)
    assert.equal("quantity", err.field)
    assert.truthy(err.message:find("5000", 1, true) and err.message:find("1000", 1, true), err.message)
    err = refused(function() return c:quote{ service = 2, comments = { "a", "b", "c", "d" } } end)
    assert.equal("comments", err.field)
    assert.equal("0.009", c:quote(1, 10))
    assert.equal("0.90", c:quote(1, 1000))
    assert.equal("0.02", c:quote{ service = 2, comments = { "a", "b" } })
  end)

  it("a validation error shows the value it refused", function()
    local cases = {
      { order("quantity", "abc"), "quantity", '"abc"' },
      { order("quantity", {}), "quantity", "table" },
      { order("quantity", true), "quantity", "true" },
      { order("service", "1.5"), "service", '"1.5"' },
      { order("link", 42), "link", "42" },
      { order("link", true), "link", "true" },
      { { service = 2, link = "https://x", comments = 7 }, "comments", "7" },
      { order("country", 1.5), "country", "1.5" },
      { order("country", {}), "country", "table" },
    }
    for i, case in ipairs(cases) do
      local err = refused(function() return c:add(case[1]) end)
      assert.equal(case[2], err.field, "case " .. i)
      assert.truthy(err.message:find(case[3], 1, true), "case " .. i .. ": " .. err.message)
    end
    local err = refused(function() return c:status("12x") end)
    assert.truthy(err.message:find('"12x"', 1, true), err.message)
  end)

  it("a shown value never carries the key", function()
    local err = refused(function() return c:add(order("quantity", KEY)) end)
    assert.is_nil(err.message:find(KEY, 1, true), err.message)
    err = refused(function() return c:add(order("quantity", "x" .. string.rep("y", 100) .. KEY)) end)
    assert.is_nil(err.message:find(KEY:sub(1, 8), 1, true), err.message)
  end)

  it("the README documents smm.money, smm.is_error and smm.is_refill_final with syntax: lines", function()
    local root = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
    local f = assert(io.open(root .. "/README.md"))
    local readme = f:read("*a")
    f:close()
    for _, name in ipairs{ "smm.is_error(", "smm.is_refill_final(", "money.add(", "money.compare(",
                           "money.format(", "client:add(order [, {" } do
      assert.truthy(readme:find("`syntax: [^`\n]*" .. name:gsub("%p", "%%%0")), name)
    end
    assert.truthy(readme:find('require "smm.money"', 1, true))
  end)
end)
