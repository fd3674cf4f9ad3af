-- smm.router's failover, on SQLite and PostgreSQL, against three sandbox panels (a cheapest):
-- an add goes to the next panel only when the first one's failure proves nothing was placed
-- there (refused for funds, a service it no longer has, a quantity out of its bounds; a request
-- that never reached it; a 429 before any action), and never on an ambiguous one: then the
-- order stays in doubt with the first panel, and the same ref sends nothing anywhere. Every
-- count is the sandboxes' own.
local env = require "helpers.env"
local books = require "helpers.book"
local sandbox = require "helpers.sandbox"
local rt = require "helpers.router"
local placement = require "smm.router.placement"

local function total_requests(sbs)
  local n = 0
  for _, name in ipairs(rt.NAMES) do n = n + sbs[name]:stats().requests end
  return n
end

local function placed_on(sb)
  return #sb:orders()
end

describe("smm.router.placement, on the sandbox's own refusals #router", function()
  local sb, client
  setup(function()
    sb = env.sandbox()
    client = env.client(sb, { retries = 0 })
  end)
  teardown(function()
    client:close()
    sb:stop()
  end)

  local function add_err(order, fault)
    if fault then sb:fault(fault, { action = "add", retry_after = 0 }) end
    local res, err = client:add(order)
    assert.is_nil(res)
    return err
  end

  it("names the refusals that mean 'not placed here' and nothing else", function()
    local ok_order = { service = 1, link = "https://x.test/p", quantity = 100 }
    assert.equal("below_min", placement.not_placed_here(add_err{ service = 1, link = "https://x.test/p", quantity = 10 }))
    assert.equal("above_max", placement.not_placed_here(add_err{ service = 1, link = "https://x.test/p",
      quantity = 20000 }))
    assert.equal("service_gone", placement.not_placed_here(add_err{ service = 99, link = "https://x.test/p",
      quantity = 100 }))
    assert.equal("rate_limited", placement.not_placed_here(add_err(ok_order, "rate429")))
    sb:config{ balance = "0.01" }
    assert.equal("short_of_funds", placement.not_placed_here(add_err(ok_order)))
    sb:config{ balance = "100.00" }
    -- the order itself refused: every panel would refuse it
    assert.is_nil(placement.not_placed_here(add_err{ service = 1, link = "no-link", quantity = 100 }))
    -- ambiguous: may have been placed
    for _, fault in ipairs{ "html503", "error500", "truncated", "empty", "reset_after_read", "redirect" } do
      local err = add_err(ok_order, fault)
      assert.is_true(err.ambiguous, fault)
      assert.is_nil(placement.not_placed_here(err), fault)
    end
    -- never reached: a closed port
    local down = env.client({ url = "http://127.0.0.1:" .. sandbox.closed_port() .. "/api/v2" }, { retries = 0 })
    local _, err = down:add(ok_order)
    assert.is_false(err.sent)
    assert.equal("unreachable", placement.not_placed_here(err))
    down:close()
    -- a wrong key: this panel refuses this account
    local wrong = env.client(sb, { key = "WRONG-KEY", retries = 0 })
    _, err = wrong:add(ok_order)
    assert.equal("refused_key", placement.not_placed_here(err))
    wrong:close()
  end)
end)

for _, engine in ipairs(books.ENGINES) do
  describe("smm.router's failover on " .. engine .. " #router", function()
    local sbs, store, book, router, n

    setup(function()
      sbs = rt.start()
      store = books.store(engine)
      book = store:open()
      router = rt.router(book, sbs)
      n = 0
    end)

    teardown(function()
      if book then book:close() end
      if store then store:close() end
      rt.stop(sbs)
    end)

    local function ref()
      n = n + 1
      return "failover-" .. engine .. "-" .. n
    end

    local function order(r, extra)
      local o = { product = "followers", link = "https://x.test/" .. r, quantity = 1000, ref = r }
      for k, v in pairs(extra or {}) do o[k] = v end
      return o
    end

    -- a router whose panel a is a sandbox of its own (stopped after)
    local function with_own_a(opts, fn)
      local own = sandbox.start((function()
        local o = { key = rt.KEYS.a, balance = "1000.00" }
        for k, v in pairs(opts or {}) do o[k] = v end
        return o
      end)())
      local ok, err = pcall(fn, own, rt.router(book, { a = own, b = sbs.b, c = sbs.c }))
      own:stop()
      if not ok then error(err, 0) end
    end

    it("not enough funds on the cheapest panel: placed with the next, a placed nothing", function()
      sbs.a:config{ balance = "0.10" }
      finally(function()
        sbs.a:config{ balance = "1000.00" }
        router:balance("a")
      end)
      local a_orders, before = placed_on(sbs.a), rt.adds(sbs)
      local r = ref()
      local res = assert(router:add(order(r)))
      assert.equal("b", res.panel)
      assert.equal("1.80", res.route.price)
      assert.equal("short_of_funds", res.route.passed_over[1].reason)
      assert.equal("a", res.route.passed_over[1].panel)
      assert.matches("Not enough funds", res.route.passed_over[1].message, 1, true)
      assert.matches("a short_of_funds", res.route.reason, 1, true)
      assert.same({ a = before.a + 1, b = before.b + 1, c = before.c }, rt.adds(sbs))
      assert.equal(a_orders, placed_on(sbs.a))
      local row = assert(book:get(r))
      assert.same({ "placed", sbs.b.url, 2, res.order }, { row.state, row.panel, row.attempts, row.order_id })
      assert.equal("b", row.route.panel)
      assert.equal("short_of_funds", row.route.passed_over[1].reason)
      local what = {}
      for _, h in ipairs(assert(book:history(r))) do what[#what + 1] = h.what end
      assert.same({ "failed", "placed" }, what)
      -- a's balance was asked after the refusal: the next quote leaves a out before sending
      local p = assert(router:panels())[1]
      assert.same({ "a", "0.10", "up" }, { p.name, p.balance, p.state })
      local q = assert(router:quote{ product = "followers", quantity = 1000 })
      assert.equal("short_of_funds", q.excluded[1].reason)
      before = rt.adds(sbs)
      local r2 = ref()
      assert.equal("b", assert(router:add(order(r2))).panel)
      assert.same({ a = before.a, b = before.b + 1, c = before.c }, rt.adds(sbs))
    end)

    it("a service gone from the panel since its list was cached: placed with the next", function()
      with_own_a({}, function(own)
        local products = { followers = { a = 12, b = 1, c = 1 } }
        local r_ = rt.router(book, { a = own, b = sbs.b, c = sbs.c }, { products = products })
        assert.equal("a", assert(r_:quote{ product = "followers", quantity = 1000 }).candidates[1].panel)
        own:config{ services_count = 5 } -- service 12 is gone; the client's list still has it
        local before = rt.adds(sbs)
        local r = ref()
        local res = assert(r_:add(order(r)))
        assert.equal("b", res.panel)
        assert.equal("service_gone", res.route.passed_over[1].reason)
        assert.equal(1, env.count(own, "add"))
        assert.equal(0, #own:orders())
        assert.same({ a = before.a, b = before.b + 1, c = before.c }, rt.adds(sbs))
      end)
    end)

    it("a quantity out of the panel's bounds (its list changed): placed with the next", function()
      -- the generated list's service 1 takes 20..20000; the default one 50..10000
      -- (c's service 3 takes 10..50000, at 0.35 x 3: 30 cost 0.0315 there, 0.027 on a)
      with_own_a({ services_count = 5 }, function(own)
        local r_ = rt.router(book, { a = own, b = sbs.b, c = sbs.c }, { products = { followers = { a = 1, c = 3 } } })
        local q = assert(r_:quote{ product = "followers", quantity = 30 })
        assert.same({ "a", 20, "0.027" }, { q.candidates[1].panel, q.candidates[1].min, q.candidates[1].price })
        own:config{ services_count = 0 }
        local r = ref()
        local res = assert(r_:add(order(r, { quantity = 30 })))
        assert.equal("c", res.panel)
        assert.equal("0.0315", res.route.price)
        assert.equal("below_min", res.route.passed_over[1].reason)
        assert.equal(0, #own:orders())
      end)
    end)

    it("a panel that cannot be reached (nothing sent): placed with the next, the failure counted", function()
      with_own_a({}, function(own, r_)
        assert(r_:quote{ product = "followers", quantity = 1000 }) -- a's list cached
        own:stop()
        local before = rt.adds(sbs)
        local r = ref()
        local res = assert(r_:add(order(r)))
        assert.equal("b", res.panel)
        assert.equal("unreachable", res.route.passed_over[1].reason)
        assert.same({ a = before.a, b = before.b + 1, c = before.c }, rt.adds(sbs))
        local p = assert(r_:panels())[1]
        assert.equal(1, p.failures)
        assert.is_string(p.last_error)
        assert.is_false(env.leaks_key(p))
      end)
    end)

    it("a 429 before any action: placed with the next", function()
      sbs.a:fault("rate429", { action = "add", retry_after = 0, times = 2 })
      local a_orders = placed_on(sbs.a)
      local r = ref()
      local res = assert(router:add(order(r)))
      assert.equal("b", res.panel)
      assert.equal("rate_limited", res.route.passed_over[1].reason)
      assert.equal(a_orders, placed_on(sbs.a))
      sbs.a:reset()
      sbs.a:config{ balance = "1000.00" }
    end)

    it("an ambiguous failure never fails over: in doubt with a, and the same ref sends nothing anywhere", function()
      sbs.a:fault("error500", { action = "add" })
      local before = rt.adds(sbs)
      local r = ref()
      local res, err = router:add(order(r))
      assert.is_nil(res)
      assert.is_true(err.ambiguous)
      assert.equal("a", err.panel)
      assert.equal("a", err.route.panel)
      assert.same({ a = before.a + 1, b = before.b, c = before.c }, rt.adds(sbs))
      local row = assert(book:get(r))
      assert.same({ "in_doubt", sbs.a.url }, { row.state, row.panel })
      assert.equal("a", row.route.panel)
      local requests = total_requests(sbs)
      for _, extra in ipairs{ {}, { avoid = { "a" } }, { max_cost = "100.00" } } do
        res, err = router:add(order(r, extra))
        assert.is_nil(res)
        assert.equal("in_doubt", err.code)
        assert.equal("a", err.panel)
      end
      assert.equal(requests, total_requests(sbs))
      -- settled as not placed, the ref is free again and routed as any other
      assert(book:resolve(r, false))
      res = assert(router:add(order(r)))
      assert.equal("a", res.panel)
    end)

    it("a refusal of the order itself (a bad link) is not failed over", function()
      local before = rt.adds(sbs)
      local r = ref()
      local res, err = router:add(order(r, { link = "not-a-link" }))
      assert.is_nil(res)
      assert.equal("bad_link", err.code)
      assert.is_false(err.ambiguous)
      assert.same({ a = before.a + 1, b = before.b, c = before.c }, rt.adds(sbs))
      assert.equal("failed", assert(book:get(r)).state)
    end)

    it("every panel refusing for funds: no_panel with each reason, nothing placed anywhere", function()
      local counts = {}
      for _, name in ipairs(rt.NAMES) do
        sbs[name]:config{ balance = "0.10" }
        counts[name] = placed_on(sbs[name])
      end
      finally(function()
        for _, name in ipairs(rt.NAMES) do sbs[name]:config{ balance = "1000.00" } end
        router:balance()
      end)
      local r = ref()
      local res, err = router:add(order(r, { quantity = 500 }))
      assert.is_nil(res)
      assert.equal("no_panel", err.code)
      assert.is_false(err.ambiguous)
      local why = {}
      for _, e in ipairs(err.passed_over) do why[#why + 1] = e.panel .. " " .. e.reason end
      assert.same({ "a short_of_funds", "b short_of_funds", "c short_of_funds" }, why)
      for _, name in ipairs(rt.NAMES) do assert.equal(counts[name], placed_on(sbs[name])) end
      assert.equal("failed", assert(book:get(r)).state)
    end)
  end)
end
