-- Every API action through the client, against the sandbox panel over real HTTP.
local env = require "helpers.env"

describe("actions", function()
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

  it("balance answers the exact balance and its currency", function()
    local b, err = client:balance()
    assert.is_nil(err)
    assert.equal("100.00", b.balance)
    assert.equal("USD", b.currency)
  end)

  it("services answers every service with integer ids and bounds, exact rates, boolean flags", function()
    local list, err = client:services{ refresh = true }
    assert.is_nil(err)
    assert.is_true(#list >= 10)
    local first = list[1]
    assert.is_true(env.is_integer(first.service))
    assert.is_true(env.is_integer(first.min))
    assert.is_true(env.is_integer(first.max))
    assert.equal("string", type(first.rate))
    assert.equal("boolean", type(first.refill))
    assert.equal("boolean", type(first.cancel))
    local types = {}
    for _, s in ipairs(list) do types[s.type] = true end
    for _, t in ipairs{ "Default", "Package", "Custom Comments", "Subscriptions", "Poll" } do
      assert.is_true(types[t], "no service of type " .. t)
    end
  end)

  it("add places an order, answers its integer id, and charges rate x quantity / 1000 exactly", function()
    local res, err = client:add{ service = 1, link = "https://instagram.com/p/x", quantity = 100 }
    assert.is_nil(err)
    assert.is_true(env.is_integer(res.order))
    assert.equal(1, sb:stats().orders)
    assert.equal("99.91", client:balance().balance) -- "0.90" x 100 / 1000 = 0.09
  end)

  it("status of one order answers its entry with integer counts and money as a string", function()
    local order = client:add{ service = 1, link = "https://instagram.com/p/x", quantity = 1000 }.order
    local st, err = client:status(order)
    assert.is_nil(err)
    assert.equal("0.90", st.charge)
    assert.equal("USD", st.currency)
    assert.is_true(env.is_integer(st.remains))
    assert.is_truthy(({ Pending = true, ["In progress"] = true })[st.status])
    client:status(order)
    st = client:status(order)
    assert.is_true(env.is_integer(st.start_count))
  end)

  it("status of many orders is keyed by integer id, with per-id errors as data", function()
    local a = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }.order
    local b = client:add{ service = 3, link = "https://x.test/b", quantity = 100 }.order
    local by_id, err = client:status{ a, b, 999999 }
    assert.is_nil(err)
    assert.equal("0.09", by_id[a].charge)
    assert.equal("0.035", by_id[b].charge)
    assert.same({ error = "Incorrect order ID" }, by_id[999999])
    for id in pairs(by_id) do assert.is_true(env.is_integer(id)) end
  end)

  it("status of an unknown single order is an api error with a code", function()
    local st, err = client:status(424242)
    assert.is_nil(st)
    assert.equal("api", err.kind)
    assert.equal("incorrect_order", err.code)
    assert.equal("Incorrect order ID", err.message)
  end)

  it("refill, then refill_status, single and multi forms", function()
    local a = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }.order
    local b = client:add{ service = 1, link = "https://x.test/b", quantity = 100 }.order
    local no_refill = client:add{ service = 3, link = "https://x.test/c", quantity = 100 }.order
    sb:advance(10)
    local r, err = client:refill(a)
    assert.is_nil(err)
    assert.is_true(env.is_integer(r.refill))
    local many = client:refill{ b, no_refill, 777777 }
    assert.is_true(env.is_integer(many[b].refill))
    assert.is_string(many[no_refill].error)
    assert.is_string(many[777777].error)

    local rs
    rs, err = client:refill_status(r.refill)
    assert.is_nil(err)
    assert.is_string(rs.status)
    local statuses = client:refill_status{ r.refill, many[b].refill, 888888 }
    assert.is_string(statuses[r.refill].status)
    assert.is_string(statuses[many[b].refill].status)
    assert.is_string(statuses[888888].error)
    for id in pairs(statuses) do assert.is_true(env.is_integer(id)) end
  end)

  it("cancel answers per id: cancel = true or the panel's error", function()
    local a = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }.order
    local no_cancel = client:add{ service = 3, link = "https://x.test/b", quantity = 100 }.order
    local by_id, err = client:cancel{ a, no_cancel, 555555 }
    assert.is_nil(err)
    assert.same({ cancel = true }, by_id[a])
    assert.is_string(by_id[no_cancel].error)
    assert.is_string(by_id[555555].error)
    assert.equal("Canceled", client:status(a).status)
    -- the single form turns the per-id error into the call's error
    local one
    one, err = client:cancel(555555)
    assert.is_nil(one)
    assert.equal("api", err.kind)
  end)

  it("call sends any action and answers the panel's JSON as it is", function()
    local raw, err = client:call("balance")
    assert.is_nil(err)
    assert.equal("100.00", raw.balance)
    local unknown
    unknown, err = client:call("no_such_action", { x = "1" })
    assert.is_nil(unknown)
    assert.equal("api", err.kind)
  end)

  it("asks for compressed answers only where they can be large", function()
    client:balance()
    client:add{ service = 1, link = "https://x.test/gz", quantity = 100 }
    client:services{ refresh = true }
    client:status{ 1, 2 }
    local ae = {}
    for _, entry in ipairs(sb:requests()) do
      ae[#ae + 1] = entry.action .. "=" .. tostring(entry.accept_encoding)
    end
    -- the same over nginx's cosocket transport (spec 21)
    assert.same({ "balance=nil", "add=nil", "services=gzip", "status=gzip" }, ae)
  end)

  it("normalises panels that send numbers as JSON numbers", function()
    sb:config{ numbers = "number" }
    local list = client:services{ refresh = true }
    local by_id = {}
    for _, s in ipairs(list) do by_id[s.service] = s end
    assert.equal("0.35", by_id[3].rate)
    assert.equal("0.9", by_id[1].rate:gsub("0+$", ""))
    assert.is_true(env.is_integer(by_id[1].min))
    local order = client:add{ service = 3, link = "https://x.test/n", quantity = 100 }.order
    assert.is_true(env.is_integer(order))
    local st = client:status(order)
    assert.equal("0.035", st.charge)
    assert.is_true(env.is_integer(st.remains))
    assert.equal("99.965", client:balance().balance)
  end)

  -- The multi form goes through the transport's schema (STATUS_SCHEMA, applied in C by the curl
  -- transport, in Lua by the ngx one): the same entries as one order at a time.
  it("normalises many orders' status exactly as one order's", function()
    sb:config{ numbers = "number", status_style = "british" }
    local a = client:add{ service = 3, link = "https://x.test/m1", quantity = 100 }.order
    local b = client:add{ service = 1, link = "https://x.test/m2", quantity = 100 }.order
    client:cancel{ b }
    sb:advance(10) -- final, so that asking again changes nothing
    local many = client:status{ a, b, 999999 }
    assert.same(client:status(a), many[a])
    assert.same(client:status(b), many[b])
    assert.equal("0.035", many[a].charge)
    assert.equal("Completed", many[a].status)
    assert.is_true(env.is_integer(many[a].start_count))
    assert.equal("Canceled", many[b].status)
    assert.same({ error = "Incorrect order ID" }, many[999999])
  end)

  it("normalises status spellings across panels", function()
    sb:config{ status_style = "british" }
    local a = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }.order
    client:cancel{ a }
    assert.equal("Canceled", client:status(a).status)
    sb:config{ status_style = "lower" }
    local b = client:add{ service = 1, link = "https://x.test/b", quantity = 100 }.order
    sb:advance(10)
    assert.equal("Completed", client:status(b).status)
  end)
end)
