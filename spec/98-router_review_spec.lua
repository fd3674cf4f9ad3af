-- A cold review of smm.router, against three real sandbox panels and a real SQLite book: bad
-- input to a routed add is refused before anything is sent (a misspelled routing option is
-- not sent along as a panel field while the guarantee it asked for is dropped; a typo in the
-- order's fields does not take a down panel's probe and put it back up); a service that cannot
-- take the order's fields is left out for the panel whose service can; an error of the caller
-- or of the book is no news of a panel's health. Counts are the sandboxes' own.
local env = require "helpers.env"
local books = require "helpers.book"
local rt = require "helpers.router"
local cjson = require "cjson"

-- likes: a's service 3 has no refill and is the cheapest (0.35 / 1000); b's service 1 has
-- refill (1.80 / 1000). views: a's service 4 has no drip-feed (1.2345 / 1000), b's 1 has.
local PRODUCTS = { likes = { a = 3, b = 1 }, views = { a = 4, b = 1 }, followers = { a = 1, b = 1, c = 1 } }

local function requests(sbs)
  local out = {}
  for _, name in ipairs(rt.NAMES) do out[name] = env.count(sbs[name]) end
  return out
end

local function adds_total(sbs)
  local n = 0
  for _, v in pairs(rt.adds(sbs)) do n = n + v end
  return n
end

local function panel_events(book, type_)
  local rows = books.db(book):rows("SELECT data FROM events WHERE type = ? ORDER BY id", type_)
  local out = {}
  for i, row in ipairs(rows) do out[i] = cjson.decode(row.data) end
  return out
end

local function state_of(router, name)
  for _, p in ipairs(assert(router:panels())) do
    if p.name == name then return p end
  end
end

describe("smm.router review: bad input refused before anything is sent #router", function()
  local sbs, store, book, router, now_ms, n

  setup(function()
    sbs = rt.start()
    store = books.store("sqlite")
    n = 0
  end)

  before_each(function()
    now_ms = 1000000
    book = store:open()
    router = rt.router(book, sbs, { products = PRODUCTS, breaker = { failures = 1, cool_off = 1000 },
      clock = function() return now_ms end, client = { retries = 0 } })
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
    return "review-" .. n
  end

  it("places a refill order with the panel whose service has refill (the guarantee works)", function()
    local res, err = router:add{ product = "likes", link = "https://x.test/r0", quantity = 1000, ref = ref(),
      refill = true }
    assert.is_nil(err)
    assert.equal("b", res.panel)
    assert.same({ a = 0, b = 1, c = 0 }, rt.adds(sbs))
  end)

  it("refuses a misspelled routing option instead of sending it as a panel field", function()
    for _, typo in ipairs{ { refil = true }, { cancle = true }, { prefr = { "b" } }, { aviod = { "a" } },
                           { max_cots = "0.10" }, { maxcost = "0.10" } } do
      local order = { product = "likes", link = "https://x.test/r1", quantity = 1000, ref = ref() }
      local name = next(typo)
      order[name] = typo[name]
      local res, err = router:add(order)
      assert.is_nil(res, name)
      assert.equal("invalid", err.kind, name)
      assert.equal(name, err.field, name)
      assert.is_nil(book:get(order.ref), name) -- not even claimed
    end
    assert.equal(0, adds_total(sbs))
    for _, name in ipairs(rt.NAMES) do
      for _, o in ipairs(sbs[name]:orders()) do
        assert.is_nil(o.refil, "a panel received refil as an order field")
      end
    end
  end)

  it("refuses prefer and avoid that are not lists of names (a map would be ignored)", function()
    for _, bad in ipairs{ { prefer = { b = true } }, { avoid = { a = true } } } do
      local order = { product = "followers", link = "https://x.test/r2", quantity = 1000, ref = ref() }
      local name = next(bad)
      order[name] = bad[name]
      local res, err = router:add(order)
      assert.is_nil(res, name)
      assert.equal("invalid", err.kind, name)
      assert.equal(name, err.field, name)
      local q, qerr = router:quote{ product = "followers", quantity = 1000, [name] = bad[name] }
      assert.is_nil(q, name)
      assert.equal(name, qerr.field, name)
    end
    assert.equal(0, adds_total(sbs))
  end)

  it("a typo in the order's fields sends nothing and leaves a down panel's probe alone", function()
    sbs.a:fault("error500", { action = "add" })
    local _, err = router:add{ product = "followers", link = "https://x.test/r3", quantity = 1000, ref = ref() }
    assert.equal(500, err.status)
    assert.equal("down", state_of(router, "a").state)
    now_ms = now_ms + 5000 -- the cool-off is over: the next add to a would be its probe
    local before = requests(sbs)
    local res
    res, err = router:add{ product = "followers", lnik = "https://x.test/r3", link = "https://x.test/r3",
      quantity = 1000, ref = ref() }
    assert.is_nil(res)
    assert.equal("invalid", err.kind)
    assert.equal("lnik", err.field)
    assert.same(before, requests(sbs)) -- not a list, not a balance, not an add
    local a = state_of(router, "a")
    assert.equal("down", a.state)
    assert.equal(1, a.failures)
    assert.same({}, panel_events(book, "panel.up"))
  end)

  it("leaves out a panel whose service cannot take the order's fields, for one whose can", function()
    local order = { product = "views", link = "https://x.test/r4", quantity = 1000, runs = 2, interval = 5,
      ref = ref() }
    local res, err = router:add(order)
    assert.is_nil(err)
    assert.equal("b", res.panel)
    assert.equal("unfit", res.route.passed_over[1].reason)
    assert.equal("a", res.route.passed_over[1].panel)
    assert.same({ a = 0, b = 1, c = 0 }, rt.adds(sbs))
  end)

  it("an error of the caller's or the book's is no news of a panel: a down panel stays down", function()
    sbs.a:fault("error500", { action = "add" })
    router:add{ product = "followers", link = "https://x.test/r5", quantity = 1000, ref = ref() }
    assert.equal("down", state_of(router, "a").state)
    now_ms = now_ms + 5000
    -- a real refusal of bad input by a's own client (nothing sent) and a real book error
    local client = router:panel("a")
    local _, invalid = client:add{ service = 1, lnik = "https://x.test/r5", link = "https://x.test/r5",
      quantity = 1000 }
    assert.equal("invalid", invalid.kind)
    local _, conflict = client:add({ service = 1, link = "https://x.test/other", quantity = 1000 },
      { ref = "review-" .. n })
    assert.equal("book", conflict.kind)
    local p = router.by_name.a
    assert.equal("probe", (router.health:try(p)))
    router.health:outcome(p, false, invalid)
    router.health:outcome(p, false, conflict)
    local a = state_of(router, "a")
    assert.equal("probing", a.state)
    assert.same({}, panel_events(book, "panel.up"))
  end)
end)

for _, engine in ipairs(books.ENGINES) do
  describe("smm.router review: a panel still failing after its cool-off is down again, on " .. engine .. " #router",
    function()
      local sbs, store, book, router, now_ms

      setup(function()
        sbs = rt.start()
        store = books.store(engine)
        book = store:open()
        now_ms = 1000000
        router = rt.router(book, sbs, { breaker = { failures = 1, cool_off = 1000 },
          clock = function() return now_ms end, client = { retries = 0 } })
      end)

      teardown(function()
        if book then book:close() end
        if store then store:close() end
        rt.stop(sbs)
      end)

      it("after the cool-off, one failed ask puts it down again: the next adds ask it nothing", function()
        sbs.a:fault("html503", { action = "services", times = 100 })
        for i = 1, 2 do
          assert.equal("b", assert(router:add{ product = "followers", link = "https://x.test/d" .. i,
            quantity = 1000, ref = engine .. "-d" .. i }).panel)
        end
        assert.equal(1, env.count(sbs.a))
        now_ms = now_ms + 5000 -- the cool-off is over: a is asked once more, and fails
        for i = 3, 6 do
          assert.equal("b", assert(router:add{ product = "followers", link = "https://x.test/d" .. i,
            quantity = 1000, ref = engine .. "-d" .. i }).panel)
        end
        assert.equal(2, env.count(sbs.a))
        local a = state_of(router, "a")
        assert.equal("down", a.state)
        assert.equal(now_ms + 1000, a.down_until)
        assert.equal(1, #panel_events(book, "panel.down")) -- down once, not told again
      end)
    end)
end

describe("smm.router review: an order in doubt names its ref #router", function()
  local sbs, store, book, router

  setup(function()
    sbs = rt.start()
    store = books.store("sqlite")
    book = store:open()
    router = rt.router(book, sbs, { client = { retries = 0 } })
  end)

  teardown(function()
    if book then book:close() end
    if store then store:close() end
    rt.stop(sbs)
  end)

  it("without a ref given, the error of an ambiguous add names the one made for it", function()
    sbs.a:fault("error500", { action = "add" }) -- performed? unknown: in doubt with a
    local res, err = router:add{ product = "followers", link = "https://x.test/auto", quantity = 1000 }
    assert.is_nil(res)
    assert.is_true(err.ambiguous)
    assert.equal("a", err.panel)
    assert.is_string(err.ref)
    local row = assert(book:get(err.ref))
    assert.equal("in_doubt", row.state)
    assert.same({ a = 1, b = 0, c = 0 }, rt.adds(sbs))
  end)
end)

describe("smm.router review: a key the panel echoes, a password in the URL #router", function()
  local sbs, store, book

  setup(function()
    sbs = rt.start({ echo_key = true })
    store = books.store("sqlite")
    book = store:open()
  end)

  teardown(function()
    if book then book:close() end
    if store then store:close() end
    rt.stop(sbs)
  end)

  it("reach no row of the book, no event, no route, no error and no printed router", function()
    local PASSWORD = "PASS-W0RD-7c1d"
    local WRONG = env.KEY .. "-wr/o+n&g\"" -- echoed as the panel's error text, in its JSON escape
    local router = require("smm.router").new{ book = book, products = rt.PRODUCTS,
      breaker = { failures = 1, cool_off = 60000 }, panels = {
        { name = "a", url = "http://user:" .. PASSWORD .. "@" .. sbs.a.url:sub(8), key = WRONG, retries = 0 },
        { name = "b", url = "http://user:" .. PASSWORD .. "@" .. sbs.b.url:sub(8), key = env.KEY .. "-wrong-b",
          retries = 0 },
        { name = "c", url = sbs.c.url, key = rt.KEYS.c, retries = 0 } } }
    -- a: its list answered at 500 with the key echoed (a failure: last_error, panel.down);
    -- b: refuses the key at 200 (the order passes over it, the message in the route)
    sbs.a:fault("close", { status = 500, action = "services" })
    local res = assert(router:add{ product = "followers", link = "https://x.test/s", quantity = 1000, ref = "s1" })
    assert.equal("c", res.panel)
    local seen = {
      res, router:panels(), router:quote{ product = "followers", quantity = 1000 }, router:balance(),
      tostring(router), books.texts(book),
    }
    local _, err = router:add{ product = "followers", link = "https://x.test/s2", quantity = 1000, ref = "s2",
      avoid = { "c" } }
    seen[#seen + 1] = err
    assert.equal("no_panel", err.code)
    -- the echo did reach the client (scrubbed there), so this is no empty test
    assert.matches("Invalid API key", state_of(router, "a").last_error, 1, true)
    assert.is_false(env.leaks_key(seen))
    assert.is_nil(env.find_any(seen, { PASSWORD, "wr/o+n", "wr\\/o" }))
  end)
end)

describe("smm.router review: `errors` read by a client of the common dialect #router", function()
  local echo = require "helpers.echo"
  local placement = require "smm.router.placement"
  local srv, store, book

  setup(function()
    srv = echo.start()
    store = books.store("sqlite")
    book = store:open()
  end)

  teardown(function()
    if book then book:close() end
    if store then store:close() end
    if srv then srv:stop() end
  end)

  -- an add whose answer is `reply` (the echo server answers what the request asks it to)
  local function add(reply, ref)
    local c = require("smm").new{ url = srv.url, key = env.KEY, retries = 0, book = book }
    local res, err = c:add({ service = 1, link = "https://x.test/e", quantity = 100, reply = reply },
      { ref = ref })
    c:close()
    return res, err
  end

  it("alone, a refusal: the router may fail over", function()
    local res, err = add('{"errors":["Not enough funds on balance"]}', "errors-1")
    assert.is_nil(res)
    assert.is_false(err.ambiguous)
    assert.equal("short_of_funds", placement.not_placed_here(err))
    assert.equal("failed", book:get("errors-1").state)
  end)

  it("beside other fields (an order_id of the panel's own), in doubt: never failed over", function()
    for i, reply in ipairs{ '{"order_id":5,"errors":["Not enough funds for the next run"]}',
                            '{"errors":["Link may be private"],"data":{"id":6}}' } do
      local ref = "errors-beside-" .. i
      local res, err = add(reply, ref)
      assert.is_nil(res, reply)
      assert.is_true(err.ambiguous, reply)
      assert.is_nil(placement.not_placed_here(err), reply)
      assert.equal("in_doubt", book:get(ref).state, reply)
    end
  end)
end)
