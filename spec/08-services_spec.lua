-- The service list cache, search, validation against a service and exact quotes.
local env = require "helpers.env"

describe("services", function()
  local sb, client

  setup(function()
    sb = env.sandbox()
  end)

  teardown(function()
    sb:stop()
  end)

  before_each(function()
    sb:reset()
    client = env.client(sb)
  end)

  after_each(function()
    client:close()
  end)

  it("caches the list for services_ttl", function()
    assert.is_table(client:services())
    assert.is_table(client:services())
    assert.is_table(client:service(3))
    assert.equal(1, env.count(sb, "services"))
    local short = env.client(sb, { services_ttl = 0 })
    short:services()
    short:services()
    assert.equal(3, env.count(sb, "services"))
    short:close()
    client:services{ refresh = true }
    assert.equal(4, env.count(sb, "services"))
  end)

  it("finds services by text, category and type", function()
    local found = client:find_services{ search = "instagram" }
    assert.is_true(#found >= 3)
    for _, s in ipairs(found) do
      assert.truthy((s.name .. s.category):lower():find("instagram", 1, true))
    end
    for i = 2, #found do assert.is_true(found[i - 1].service < found[i].service) end
    local polls = client:find_services{ type = "poll" }
    assert.equal(1, #polls)
    assert.equal(10, polls[1].service)
    assert.equal(0, #client:find_services{ category = "No such category" })
  end)

  it("service(id) refuses an id that is not in the list", function()
    local s, err = client:service(4242)
    assert.is_nil(s)
    assert.equal("invalid", err.kind)
    assert.equal("service", err.field)
  end)

  it("quotes exact prices: rate x quantity x runs / 1000, no floating point", function()
    assert.equal("0.09", client:quote(1, 100))
    assert.equal("0.27", client:quote(1, 100, 3))
    assert.equal("0.035", client:quote(3, 100))
    assert.equal("123.45", client:quote(4, 100000))
    assert.equal("0.00125", client:quote(5, 100))
    assert.equal("12.50", client:quote{ service = 6 })
    assert.equal("0.08", client:quote{ service = 2, comments = { "a", "b", "c", "d", "e", "f", "g", "h",
      "i", "j" } })
    local price, err = client:quote(1, 10.5)
    assert.is_nil(price)
    assert.equal("quantity", err.field)
  end)

  it("quotes agree with what the panel charges", function()
    local before = client:balance().balance
    local price = client:quote(12, 3333)
    client:add{ service = 12, link = "https://x.test/a", quantity = 3333 }
    local money = require "smm.money"
    assert.equal(money.format(money.sub(before, price)), client:balance().balance)
  end)

  describe("validation against the service, before sending", function()
    local cases = {
      { { service = 1, link = "https://x", quantity = 10 }, "quantity", "50" },
      { { service = 1, link = "https://x", quantity = 20000 }, "quantity", "10000" },
      { { service = 4, link = "https://x", quantity = 1000, runs = 2, interval = 10 }, "runs" },
      { { service = 2, link = "https://x", comments = { "just", "three", "lines" } }, "comments", "10" },
      { { service = 6, link = "https://x", quantity = 5 }, "quantity" },
      { { service = 1, link = "https://x" }, "quantity" },
      { { service = 10, link = "https://x", quantity = 100 }, "answer_number" },
      { { service = 7, username = "u", min = 10, max = 100 }, "min", "50" },
      { { service = 4242, link = "https://x", quantity = 100 }, "service" },
      { { service = 1, link = "https://x", quantity = 1000 }, "max_cost", "0.90", { max_cost = "0.50" } },
    }
    for i, case in ipairs(cases) do
      it("case " .. i .. ": " .. case[2], function()
        client = env.client(sb, { validate = true })
        local res, err = client:add(case[1], case[4])
        assert.is_nil(res)
        assert.equal("invalid", err.kind, tostring(err))
        assert.equal(case[2], err.field)
        if case[3] then assert.truthy(err.message:find(case[3], 1, true), err.message) end
        assert.equal(0, env.count(sb, "add"))
      end)
    end

    it("validates by default once the list is cached, not before", function()
      local order = { service = 1, link = "https://x", quantity = 10 }
      local _, err = client:add(order)
      assert.equal("api", err.kind) -- the panel refused it
      client:services()
      _, err = client:add(order)
      assert.equal("invalid", err.kind)
      assert.equal(1, env.count(sb, "add"))
    end)

    it("max_cost lets an order through when it is enough", function()
      local res, err = client:add({ service = 1, link = "https://x", quantity = 1000 }, { max_cost = "0.90" })
      assert.is_nil(err)
      assert.is_true(env.is_integer(res.order))
      local requests = sb:requests()
      assert.is_nil(requests[#requests].fields.max_cost)
    end)
  end)
end)
