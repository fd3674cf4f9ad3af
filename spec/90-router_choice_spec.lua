-- smm.router's choice, on SQLite and PostgreSQL, against three sandbox panels whose prices
-- differ (a at the list's rates, b at twice, c at three times): the quote lists every candidate
-- with its exact price, cheapest first, and says why each other panel was left out; an add goes
-- to the cheapest candidate, the choice and its reason recorded with the order in the book;
-- calls for existing orders go by ref to the panel that holds them (order ids collide across
-- panels); bad input is refused before anything is sent.
local env = require "helpers.env"
local books = require "helpers.book"
local rt = require "helpers.router"

local PRODUCTS = {
  followers = { a = 1, b = 1, c = 1 },
  -- a: service 12 (min 1000); b: service 1 (max 10000); c: service 3 (10..50000)
  bounds = { a = 12, b = 1, c = 3 },
  -- a: service 3 (no refill, no cancel); b: service 4 (refill, no cancel); c: service 1 (both)
  guarantees = { a = 3, b = 4, c = 1 },
  gone = { a = 99, b = 1 },
}

local function reasons(q)
  local out = {}
  for _, e in ipairs(q.excluded) do out[e.panel] = e.reason end
  return out
end

local function panels_of(q)
  local out = {}
  for i, c in ipairs(q.candidates) do out[i] = c.panel end
  return out
end

local function same_adds(expected, sbs)
  assert.same(expected, rt.adds(sbs))
end

for _, engine in ipairs(books.ENGINES) do
  describe("smm.router's choice on " .. engine .. " #router", function()
    local sbs, store, book, router, n

    setup(function()
      sbs = rt.start()
      store = books.store(engine)
      book = store:open()
      router = rt.router(book, sbs, { products = PRODUCTS })
      n = 0
    end)

    teardown(function()
      if book then book:close() end
      if store then store:close() end
      rt.stop(sbs)
    end)

    local function ref()
      n = n + 1
      return "choice-" .. engine .. "-" .. n
    end

    it("quotes every panel cheapest first, with exact prices and each service's terms", function()
      local q = assert(router:quote{ product = "followers", quantity = 1000 })
      assert.same({ "a", "b", "c" }, panels_of(q))
      assert.same({ "0.90", "1.80", "2.70" }, { q.candidates[1].price, q.candidates[2].price, q.candidates[3].price })
      assert.same({ "0.90", "1.80", "2.70" }, { q.candidates[1].rate, q.candidates[2].rate, q.candidates[3].rate })
      local c = q.candidates[1]
      assert.equal(1, c.service)
      assert.is_true(env.is_integer(c.min) and env.is_integer(c.max))
      assert.same({ 50, 10000, true, true }, { c.min, c.max, c.refill, c.cancel })
      assert.is_string(c.name)
      assert.same({}, q.excluded)
      -- 1234 units: 1.1106 exactly, never a float
      q = assert(router:quote{ product = "followers", quantity = 1234 })
      assert.equal("1.1106", q.candidates[1].price)
      assert.equal("3.3318", q.candidates[3].price)
    end)

    it("places an add with the cheapest panel and records the choice and its reason", function()
      local before = rt.adds(sbs)
      local r = ref()
      local res = assert(router:add{ product = "followers", link = "https://x.test/" .. r, quantity = 1000, ref = r })
      assert.is_true(env.is_integer(res.order))
      assert.equal("a", res.panel)
      assert.equal(r, res.ref)
      assert.same({ product = "followers", panel = "a", service = 1, price = "0.90", reason = "cheapest" },
        { product = res.route.product, panel = res.route.panel, service = res.route.service,
          price = res.route.price, reason = res.route.reason })
      same_adds({ a = before.a + 1, b = before.b, c = before.c }, sbs)
      local row = assert(book:get(r))
      assert.equal("placed", row.state)
      assert.equal(sbs.a.url, row.panel)
      assert.equal(res.order, row.order_id)
      assert.equal("a", row.route.panel)
      assert.equal("followers", row.route.product)
      assert.equal("0.90", row.route.price)
      assert.equal("cheapest", row.route.reason)
      assert.equal(1, row.service)
    end)

    it("avoid leaves a panel out; the reason is in the quote and in the route", function()
      local q = assert(router:quote{ product = "followers", quantity = 1000, avoid = { "a" } })
      assert.same({ "b", "c" }, panels_of(q))
      assert.same({ a = "avoided" }, reasons(q))
      local before = rt.adds(sbs)
      local r = ref()
      local res = assert(router:add{ product = "followers", link = "https://x.test/" .. r, quantity = 1000,
        ref = r, avoid = { "a" } })
      assert.equal("b", res.panel)
      assert.equal("1.80", res.route.price)
      assert.equal("a", res.route.passed_over[1].panel)
      assert.equal("avoided", res.route.passed_over[1].reason)
      same_adds({ a = before.a, b = before.b + 1, c = before.c }, sbs)
      assert.equal(sbs.b.url, assert(book:get(r)).panel)
    end)

    it("max_cost leaves out what costs more; none left is no_panel and nothing is sent", function()
      local q = assert(router:quote{ product = "followers", quantity = 1000, max_cost = "1.80" })
      assert.same({ "a", "b" }, panels_of(q))
      assert.same({ c = "over_max_cost" }, reasons(q))
      local before = rt.adds(sbs)
      local r = ref()
      local res, err = router:add{ product = "followers", link = "https://x.test/" .. r, quantity = 1000,
        ref = r, max_cost = "0.89", avoid = { "b" } }
      assert.is_nil(res)
      assert.equal("no_panel", err.code)
      assert.is_false(err.ambiguous)
      assert.matches("a: over_max_cost", err.message, 1, true)
      assert.matches("b: avoided", err.message, 1, true)
      assert.equal(3, #err.passed_over)
      same_adds(before, sbs)
      assert.is_nil(book:get(r))
    end)

    it("a quantity below a service's minimum or above its maximum leaves that panel out", function()
      local q = assert(router:quote{ product = "bounds", quantity = 500 })
      assert.same({ a = "below_min" }, reasons(q))
      assert.same({ "c", "b" }, panels_of(q)) -- c 0.35 x 3 x 0.5 = 0.525, b 0.90 x 2 x 0.5 = 0.90
      assert.same({ "0.525", "0.90" }, { q.candidates[1].price, q.candidates[2].price })
      q = assert(router:quote{ product = "bounds", quantity = 20000 })
      assert.same({ b = "above_max" }, reasons(q))
      assert.same({ "a", "c" }, panels_of(q)) -- a 0.5575 x 20 = 11.15, c 1.05 x 20 = 21.00
      assert.same({ "11.15", "21.00" }, { q.candidates[1].price, q.candidates[2].price })
      local before = rt.adds(sbs)
      local r = ref()
      local res = assert(router:add{ product = "bounds", link = "https://x.test/" .. r, quantity = 20000, ref = r })
      assert.equal("a", res.panel)
      assert.equal(12, res.route.service)
      assert.equal("above_max", res.route.passed_over[1].reason)
      same_adds({ a = before.a + 1, b = before.b, c = before.c }, sbs)
    end)

    it("refill = true and cancel = true leave out the services without them", function()
      local q = assert(router:quote{ product = "guarantees", quantity = 1000 })
      assert.same({ "a", "b", "c" }, panels_of(q)) -- 0.35, 2.469, 2.70
      q = assert(router:quote{ product = "guarantees", quantity = 1000, refill = true })
      assert.same({ a = "no_refill" }, reasons(q))
      assert.same({ "b", "c" }, panels_of(q))
      q = assert(router:quote{ product = "guarantees", quantity = 1000, refill = true, cancel = true })
      assert.same({ a = "no_refill", b = "no_cancel" }, reasons(q))
      assert.same({ "c" }, panels_of(q))
      local r = ref()
      local res = assert(router:add{ product = "guarantees", link = "https://x.test/" .. r, quantity = 1000,
        ref = r, refill = true, cancel = true })
      assert.equal("c", res.panel)
      assert.equal("2.70", res.route.price)
    end)

    it("a service missing from a panel's list is service_gone", function()
      local q = assert(router:quote{ product = "gone", quantity = 100 })
      assert.same({ a = "service_gone" }, reasons(q))
      assert.same({ "b" }, panels_of(q))
    end)

    it("a panel whose balance is known to be short is left out (short_of_funds)", function()
      sbs.a:config{ balance = "0.50" }
      local b = router:balance()
      assert.same({ balance = "0.50", currency = "USD" }, b.a)
      assert.equal("USD", b.b.currency)
      local q = assert(router:quote{ product = "followers", quantity = 1000 })
      assert.same({ a = "short_of_funds" }, reasons(q))
      assert.same({ "b", "c" }, panels_of(q))
      q = assert(router:quote{ product = "followers", quantity = 500 }) -- 0.45 fits
      assert.same({ "a", "b", "c" }, panels_of(q))
      sbs.a:config{ balance = "1000.00" }
      assert.same({ balance = "1000.00", currency = "USD" }, router:balance("a").a)
      q = assert(router:quote{ product = "followers", quantity = 1000 })
      assert.same({ "a", "b", "c" }, panels_of(q))
    end)

    it("preferred panels that can take the order go first, in prefer's order; the rest cheapest first, " ..
      "equal prices in the panels' order", function()
      sbs.c:config{ rates_for = rt.KEYS.c .. "=1" }
      finally(function() sbs.c:config{ rates_for = rt.KEYS.c .. "=3" } end)
      local fresh = rt.router(book, sbs, { products = PRODUCTS }) -- new clients: lists fetched anew
      local q = assert(fresh:quote{ product = "followers", quantity = 1000 })
      assert.same({ "a", "c", "b" }, panels_of(q))
      q = assert(fresh:quote{ product = "followers", quantity = 1000, prefer = { "c" } })
      assert.same({ "c", "a", "b" }, panels_of(q))
      -- prefer outranks price (a panel trusted more is worth paying for): b costs more
      q = assert(fresh:quote{ product = "followers", quantity = 1000, prefer = { "b", "c" } })
      assert.same({ "b", "c", "a" }, panels_of(q))
      q = assert(fresh:quote{ product = "followers", quantity = 1000, prefer = { "b" } })
      assert.same({ "b", "a", "c" }, panels_of(q))
      -- but not max_cost: a preferred panel above it is left out like any other
      local b_price = q.candidates[1].price
      q = assert(fresh:quote{ product = "followers", quantity = 1000, prefer = { "b" },
        max_cost = q.candidates[2].price })
      assert.same({ "a", "c" }, panels_of(q))
      assert.truthy(b_price)
      local before = rt.adds(sbs)
      local r = ref()
      local res = assert(fresh:add{ product = "followers", link = "https://x.test/" .. r, quantity = 1000,
        ref = r, prefer = { "c" } })
      assert.equal("c", res.panel)
      same_adds({ a = before.a, b = before.b, c = before.c + 1 }, sbs)
    end)

    it("compares prices in one currency only: another currency is left out, or refused when none is named",
      function()
      -- the sandboxes answer USD; c says it prices in EUR
      local eur = { c = { currency = "EUR" } }
      local mixed = rt.router(book, sbs, { products = PRODUCTS, panel = eur })
      assert.equal("USD", mixed:balance("a").a.currency) -- learnt, and kept in the book
      assert.equal("USD", mixed:balance("b").b.currency)
      local before = rt.adds(sbs)
      local q, err = mixed:quote{ product = "followers", quantity = 1000 }
      assert.is_nil(q)
      assert.equal("currency", err.field)
      assert.matches("different currencies", err.message)
      assert.matches("EUR", err.message)
      local r = ref()
      local res
      res, err = mixed:add{ product = "followers", link = "https://x.test/" .. r, quantity = 1000, ref = r }
      assert.is_nil(res)
      assert.equal("currency", err.field)
      same_adds(before, sbs)
      assert.is_nil(book:get(r))

      local usd = rt.router(book, sbs, { products = PRODUCTS, panel = eur, currency = "usd" })
      q = assert(usd:quote{ product = "followers", quantity = 1000 })
      assert.same({ "a", "b" }, panels_of(q))
      assert.equal("other_currency", reasons(q).c)
      assert.equal("USD", q.candidates[1].currency)

      local in_eur = rt.router(book, sbs, { products = PRODUCTS, panel = eur, currency = "EUR" })
      q = assert(in_eur:quote{ product = "followers", quantity = 1000 })
      assert.same({ "c" }, panels_of(q))
      assert.same({ a = "other_currency", b = "other_currency" }, reasons(q))
      res = assert(in_eur:add{ product = "followers", link = "https://x.test/" .. r, quantity = 1000, ref = r })
      assert.equal("c", res.panel)
      same_adds({ a = before.a, b = before.b, c = before.c + 1 }, sbs)

      assert.has_error(function() rt.router(book, sbs, { products = PRODUCTS, currency = 1.5 }) end,
        "smm.router: new: currency must be a currency code like \"USD\", got 1.5")
    end)

    it("a ref already placed is answered from the book, whatever the prices now; nothing is sent", function()
      local r = ref()
      local first = assert(router:add{ product = "followers", link = "https://x.test/" .. r, quantity = 1000, ref = r })
      assert.equal("a", first.panel)
      local before = rt.adds(sbs)
      -- a is avoided now: the ref is still the order placed with a
      local again = assert(router:add{ product = "followers", link = "https://x.test/" .. r, quantity = 1000,
        ref = r, avoid = { "a" } })
      assert.is_true(again.recorded)
      assert.equal(first.order, again.order)
      assert.equal("a", again.panel)
      assert.equal("a", again.route.panel)
      same_adds(before, sbs)
      -- the same ref for another order (another link) is refused, nothing sent
      local res, err = router:add{ product = "followers", link = "https://x.test/other", quantity = 1000, ref = r,
        avoid = { "a" } }
      assert.is_nil(res)
      assert.equal("ref_conflict", err.code)
      same_adds(before, sbs)
      assert.equal(first.order, assert(book:get(r)).order_id)
    end)

    it("status, refill, cancel and wait go by ref to the panel holding each order, ids colliding", function()
      -- order ids collide across panels: a's next order and b's next order get the same id
      local pa = assert(router:add{ product = "followers", link = "https://x.test/" .. ref(), quantity = 1000, ref = ref() })
      local pb = assert(router:add{ product = "followers", link = "https://x.test/" .. ref(), quantity = 1000, ref = ref(),
        avoid = { "a", "c" } })
      local behind = pa.order > pb.order and sbs.b or sbs.a
      if pa.order ~= pb.order then
        behind:admin("bulk", { count = math.abs(pa.order - pb.order), service = 1, link = "https://x.test/filler",
          quantity = 100 })
      end
      local ra, rc = ref(), ref()
      local x = assert(router:add{ product = "followers", link = "https://x.test/" .. ra, quantity = 1000, ref = ra })
      local z = assert(router:add{ product = "followers", link = "https://x.test/" .. rc, quantity = 1000, ref = rc,
        avoid = { "a", "c" } })
      assert.equal("a", x.panel)
      assert.equal("b", z.panel)
      assert.equal(x.order, z.order) -- the same id, on two panels
      local before_a, before_b = env.count(sbs.a, "status"), env.count(sbs.b, "status")
      local st = router:status{ ra, rc, "no-such-ref" }
      assert.equal("0.90", st[ra].charge)
      assert.equal("a", st[ra].panel)
      assert.equal("1.80", st[rc].charge)
      assert.equal("b", st[rc].panel)
      assert.equal("not_found", st["no-such-ref"].error.code)
      assert.equal(before_a + 1, env.count(sbs.a, "status"))
      assert.equal(before_b + 1, env.count(sbs.b, "status"))
      local one = assert(router:status(rc))
      assert.equal("1.80", one.charge)
      local _, err = router:status("no-such-ref")
      assert.equal("not_found", err.code)
      -- cancel reaches b only
      local cancels_a = env.count(sbs.a, "cancel")
      local rd = ref()
      assert(router:add{ product = "followers", link = "https://x.test/" .. rd, quantity = 1000, ref = rd,
        avoid = { "a", "c" } })
      local c = router:cancel{ rd }
      assert.is_true(c[rd].cancel)
      assert.equal("b", c[rd].panel)
      assert.equal(cancels_a, env.count(sbs.a, "cancel"))
      assert.equal(1, env.count(sbs.b, "cancel"))
      -- wait until final, then refill: a only
      local done = router:wait({ ra }, { interval = 1, timeout = 20000 })
      assert.equal("Completed", done[ra].status)
      local refills_b = env.count(sbs.b, "refill")
      local rf = router:refill{ ra }
      assert.is_true(env.is_integer(rf[ra].refill))
      assert.equal(refills_b, env.count(sbs.b, "refill"))
      assert.equal(1, env.count(sbs.a, "refill"))
      -- the refill is in the book, on a's order
      local kinds = {}
      for _, h in ipairs(assert(book:history(ra))) do kinds[#kinds + 1] = h.what end
      assert.truthy(table.concat(kinds, ","):find("refill", 1, true))
    end)

    it("panels() lists each panel's state and balance from the book, without keys", function()
      local list = assert(router:panels())
      assert.same({ "a", "b", "c" }, { list[1].name, list[2].name, list[3].name })
      for i, p in ipairs(list) do
        assert.equal(sbs[rt.NAMES[i]].url, p.url)
        assert.equal("up", p.state)
        assert.equal(0, p.failures)
      end
      assert.is_string(list[1].balance)
      assert.equal("USD", list[1].currency)
      assert.is_false(env.leaks_key(list))
      assert.is_false(env.leaks_key(tostring(router)))
      for _, t in ipairs(books.texts(book)) do
        assert.is_nil(t.value:find(env.KEY, 1, true), t.table .. "." .. t.column)
      end
    end)

    it("refuses bad input before anything is sent, naming the field and the value", function()
      local before = rt.adds(sbs)
      local cases = {
        { { product = "nope", quantity = 1000 }, "product", "nope" },
        { { product = "followers", quantity = 0 }, "quantity", "0" },
        { { product = "followers", quantity = 10.5 }, "quantity", "10.5" },
        { { product = "followers", quantity = 1000, max_cost = 1.5 }, "max_cost", "1.5" },
        { { product = "followers", quantity = 1000, max_cost = "-1" }, "max_cost", "-1" },
        { { product = "followers", quantity = 1000, prefer = { "zz" } }, "prefer", "zz" },
        { { product = "followers", quantity = 1000, avoid = "a" }, "avoid", "a" },
        { { product = "followers", quantity = 1000, refill = "yes" }, "refill", "yes" },
      }
      for _, case in ipairs(cases) do
        local q, err = router:quote(case[1])
        assert.is_nil(q)
        assert.equal("invalid", err.kind)
        assert.equal(case[2], err.field)
        assert.matches(case[3], err.message, 1, true)
        local order = { link = "https://x.test/bad", ref = ref() }
        for k, v in pairs(case[1]) do order[k] = v end
        local res, aerr = router:add(order)
        assert.is_nil(res)
        assert.equal(case[2], aerr.field)
      end
      local res, err = router:add{ product = "followers", quantity = 1000, link = "https://x.test/bad", ref = "" }
      assert.is_nil(res)
      assert.equal("ref", err.field)
      same_adds(before, sbs)
      -- misuse raises
      assert.has_error(function() router:quote{ product = "followers", quantity = 1000, max_cots = "1" } end)
      assert.has_error(function() router:add{ product = "followers", service = 1, quantity = 1000 } end)
      assert.has_error(function() router:panel("zz") end)
      assert.has_error(function() router:balance("zz") end)
      assert.has_error(function() router:status{} end)
      assert.has_error(function() rt.router(book, sbs, { products = { p = { zz = 1 } } }) end)
      assert.has_error(function() rt.router(book, sbs, { products = { p = { a = 0 } } }) end)
      assert.has_error(function() rt.router(book, sbs, { breaker = { failure = 3 } }) end)
      assert.has_error(function() rt.router(book, sbs, { panel = { a = { timeuot = 5 } } }) end)
      assert.has_error(function() rt.router(book, sbs, { panel = { a = { low_balance = 5 } } }) end)
      assert.has_error(function() rt.router(book, sbs, { order = { "a", "a" } }) end)
      assert.has_error(function()
        require("smm.router").new{ book = book, panels = { { name = "a", url = sbs.a.url, key = "k" },
          { name = "b", url = sbs.a.url, key = "k2" } } }
      end)
      assert.has_error(function() require("smm.router").new{ panels = {} } end)
      assert.has_error(function() require("smm.router").new{ book = book, panels = {}, product = {} } end)
      same_adds(before, sbs)
      assert.equal(sbs.b.url:match("^[^?]*"), router:panel("b").url)
    end)
  end)
end
