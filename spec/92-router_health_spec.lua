-- Each panel's health behind smm.router, on SQLite and PostgreSQL: the circuit breaker (down
-- after `failures` failures in a row, left out without a request while down, probed by one
-- order after the cool-off, up again when it answers, down again when the probe fails), kept in
-- the book so that another router (another process) on the same book sees it; the balance
-- tracked from answers and orders, a low-balance event once when it crosses the threshold; a
-- balance known to be short asked anew once it is old. Events land in the book's outbox.
local env = require "helpers.env"
local books = require "helpers.book"
local sandbox = require "helpers.sandbox"
local rt = require "helpers.router"
local cjson = require "cjson"

local COOL_OFF = 60000

local function panel_events(book, type_)
  local out = {}
  local rows = books.db(book):rows("SELECT type, panel, data FROM events WHERE type LIKE 'panel.%' ORDER BY id")
  for _, row in ipairs(rows) do
    if type_ == nil or row.type == type_ then
      local data = cjson.decode(row.data)
      data.panel_url = row.panel
      out[#out + 1] = data
    end
  end
  return out
end

local function state_of(router, name)
  for _, p in ipairs(assert(router:panels())) do
    if p.name == name then return p end
  end
end

for _, engine in ipairs(books.ENGINES) do
  describe("smm.router's panel health on " .. engine .. " #router", function()
    local sbs, store, book, now_ms, book_now, n

    setup(function()
      sbs = rt.start()
      store = books.store(engine)
      n = 0
    end)

    before_each(function()
      now_ms, book_now = 1000000, nil
      book = store:open{ clock = function() return book_now or os.time() end }
    end)

    after_each(function()
      if book then book:close() end
      for _, name in ipairs(rt.NAMES) do
        sbs[name]:reset()
        sbs[name]:config{ balance = "1000.00" }
      end
    end)

    teardown(function()
      if store then store:close() end
      rt.stop(sbs)
    end)

    local function ref()
      n = n + 1
      return "health-" .. engine .. "-" .. n
    end

    local function order(extra)
      local r = ref()
      local o = { product = "followers", link = "https://x.test/" .. r, quantity = 1000, ref = r }
      for k, v in pairs(extra or {}) do o[k] = v end
      return o
    end

    -- a's list is fetched at each quote (services_ttl = 0) and never retried, so that each
    -- quote is one request to a
    local function router_on(b)
      return rt.router(b or book, sbs, { breaker = { failures = 2, cool_off = COOL_OFF },
        clock = function() return now_ms end,
        panel = { a = { services_ttl = 0, retries = 0, low_balance = "999.50" } } })
    end

    it("a panel failing twice goes down, is left out without a request, is probed after the cool-off and comes back", function()
      local router = router_on()
      sbs.a:fault("html503", { action = "services", times = 2 })
      for i = 1, 2 do
        local q = assert(router:quote{ product = "followers", quantity = 1000 })
        assert.equal("list_unavailable", q.excluded[1].reason)
        assert.equal(i, state_of(router, "a").failures)
      end
      local a = state_of(router, "a")
      assert.same({ "down", now_ms + COOL_OFF }, { a.state, a.down_until })
      assert.matches("503", a.last_error, 1, true)
      local downs = panel_events(book, "panel.down")
      assert.equal(1, #downs)
      assert.same({ "a", sbs.a.url, 2 }, { downs[1].name, downs[1].panel_url, downs[1].failures })
      -- down: no request to a at all, the order goes to b
      local requests = sbs.a:stats().requests
      local q = assert(router:quote{ product = "followers", quantity = 1000 })
      assert.equal("down", q.excluded[1].reason)
      local res = assert(router:add(order()))
      assert.equal("b", res.panel)
      assert.equal("down", res.route.passed_over[1].reason)
      assert.equal(requests, sbs.a:stats().requests)
      -- another router on the same book (another process) sees a down and sends it nothing
      local other = router_on()
      assert.equal("down", state_of(other, "a").state)
      assert.equal("b", assert(other:add(order())).panel)
      assert.equal(requests, sbs.a:stats().requests)
      -- and so does another process
      local child = books.child(books.root .. "/spec/helpers/router_child.lua",
        { store.url, sbs.a.url, sbs.b.url, sbs.c.url, now_ms, ref() })
      local p = assert(io.popen(child .. " 2>&1"))
      local line = p:read("*a")
      p:close()
      assert.equal("a=down b=up c=up add=b", (line:gsub("%s+$", "")))
      assert.equal(requests, sbs.a:stats().requests)
      -- after the cool-off: one order probes a; it answers, a is up
      now_ms = now_ms + COOL_OFF
      res = assert(router:add(order()))
      assert.equal("a", res.panel)
      assert.matches("probing", res.route.reason, 1, true)
      a = state_of(other, "a")
      assert.same({ "up", 0 }, { a.state, a.failures })
      local ups = panel_events(book, "panel.up")
      assert.equal(1, #ups)
      assert.same({ "a", "probing" }, { ups[1].name, ups[1].was })
      assert.equal("a", assert(other:add(order())).panel)
    end)

    it("a failed probe puts the panel down again; only one caller holds a probe", function()
      local router, other = router_on(), router_on()
      sbs.a:fault("html503", { action = "services", times = 2 })
      for _ = 1, 2 do assert(router:quote{ product = "followers", quantity = 1000 }) end
      assert.equal("down", state_of(router, "a").state)
      now_ms = now_ms + COOL_OFF
      -- the probe is one order: a 404 before any action (nothing placed) fails it over to b
      sbs.a:fault("html503", { action = "add", status = 404 })
      local res = assert(router:add(order()))
      assert.equal("b", res.panel)
      assert.equal("refused_http", res.route.passed_over[1].reason)
      local a = state_of(router, "a")
      assert.same({ "down", now_ms + COOL_OFF }, { a.state, a.down_until })
      assert.equal(1, #panel_events(book, "panel.down")) -- down once, not again after the probe
      assert.equal(0, #sbs.a:orders())
      -- one probe at a time, across routers
      now_ms = now_ms + COOL_OFF
      local p = router.by_name.a
      assert.equal("probe", router.health:try(p))
      assert.equal("down", other.health:try(other.by_name.a))
      assert.equal("probing", state_of(other, "a").state)
      local q = assert(other:quote{ product = "followers", quantity = 1000 })
      assert.equal("down", q.excluded[1].reason)
      -- a prober that never came back: its lease ends after a cool-off, another may probe
      now_ms = now_ms + COOL_OFF
      assert.equal("a", assert(other:add(order())).panel)
      assert.equal("up", state_of(router, "a").state)
    end)

    it("refusals are answers: they never put a panel down", function()
      local router = router_on()
      sbs.a:config{ balance = "0.10" }
      for _ = 1, 3 do assert.equal("b", assert(router:add(order())).panel) end
      local a = state_of(router, "a")
      assert.same({ "up", 0 }, { a.state, a.failures })
    end)

    it("tracks the balance from answers and orders; low_balance is emitted once when it crosses", function()
      local router = router_on()
      local b = router:balance()
      assert.same({ balance = "1000.00", currency = "USD" }, b.a)
      assert.equal(0, #panel_events(book, "panel.low_balance"))
      assert.equal("a", assert(router:add(order())).panel) -- 1000.00 - 0.90
      assert.equal("999.10", state_of(router, "a").balance)
      local lows = panel_events(book, "panel.low_balance")
      assert.equal(1, #lows)
      assert.same({ "a", "999.10", "USD", "999.50", sbs.a.url },
        { lows[1].name, lows[1].balance, lows[1].currency, lows[1].threshold, lows[1].panel_url })
      assert(router:add(order()))
      assert.equal("998.20", state_of(router, "a").balance)
      assert.same({ balance = "998.20", currency = "USD" }, router:balance("a").a) -- the panel agrees
      assert.equal(1, #panel_events(book, "panel.low_balance"))
      -- topped up, then low again: a second event
      sbs.a:config{ balance = "2000.00" }
      router:balance("a")
      sbs.a:config{ balance = "10.00" }
      router:balance("a")
      assert.equal(2, #panel_events(book, "panel.low_balance"))
      for _, t in ipairs(books.texts(book)) do
        assert.is_nil(t.value:find(env.KEY, 1, true), t.table .. "." .. t.column)
      end
      -- delivered through the book's hooks like the orders' events
      local seen = {}
      assert(book:deliver({ { fn = function(event)
        if event.type:find("^panel%.") then seen[#seen + 1] = event end
        return true
      end } }))
      assert.equal(2, #seen)
      assert.same({ "panel.low_balance", "a", "999.10" }, { seen[1].type, seen[1].name, seen[1].balance })
    end)

    it("a balance known to be short is asked anew once it is older than balance_ttl", function()
      book_now = 2000000000
      local router = rt.router(book, sbs, { clock = function() return now_ms end })
      sbs.a:config{ balance = "0.10" }
      router:balance("a")
      local asked = env.count(sbs.a, "balance")
      local q = assert(router:quote{ product = "followers", quantity = 1000 })
      assert.equal("short_of_funds", q.excluded[1].reason)
      assert.equal(asked, env.count(sbs.a, "balance")) -- fresh: trusted
      sbs.a:config{ balance = "1000.00" }
      book_now = book_now + 301
      q = assert(router:quote{ product = "followers", quantity = 1000 })
      assert.equal("a", q.candidates[1].panel)
      assert.equal(asked + 1, env.count(sbs.a, "balance"))
      assert.equal("1000.00", state_of(router, "a").balance)
    end)

    it("a panel that is down entirely (closed port) goes down by its orders' failures", function()
      local own = sandbox.start{ key = rt.KEYS.a, balance = "1000.00" }
      local router = rt.router(book, { a = own, b = sbs.b, c = sbs.c },
        { breaker = { failures = 2, cool_off = COOL_OFF }, clock = function() return now_ms end })
      assert(router:quote{ product = "followers", quantity = 1000 })
      own:stop()
      for _ = 1, 2 do
        local res = assert(router:add(order()))
        assert.equal("b", res.panel)
        assert.equal("unreachable", res.route.passed_over[1].reason)
      end
      assert.equal("down", state_of(router, "a").state)
      local res = assert(router:add(order()))
      assert.equal("down", res.route.passed_over[1].reason)
      assert.equal(2, state_of(router, "a").failures) -- not tried again
    end)
  end)
end
