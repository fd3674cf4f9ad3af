-- Issue 13, dialects under the router: three sandbox panels, each speaking another dialect (a:
-- api_token, the cheapest; b: x_api_key; c: bearer), one router over them. A refusal in a
-- dialect's words (a's {"errors": ["Not enough funds on balance"]}) fails over as the common
-- form's does, an ambiguous answer in it never does, and calls by ref reach the panel that holds
-- the order in its own dialect. Every count is the sandboxes' own. (The router itself:
-- specs 90-93.)
local env = require "helpers.env"
local books = require "helpers.book"
local sandbox = require "helpers.sandbox"
local rt = require "helpers.router"

local DIALECT = { a = "api_token", b = "x_api_key", c = "bearer" }

describe("dialects under smm.router #router", function()
  local sbs, store, book, router

  setup(function()
    sbs = {}
    for _, name in ipairs(rt.NAMES) do
      local o = { key = rt.KEYS[name], balance = "1000.00", dialect = DIALECT[name] }
      if rt.FACTOR[name] > 1 then o.rates_for = rt.KEYS[name] .. "=" .. rt.FACTOR[name] end
      sbs[name] = sandbox.start(o)
    end
    store = books.store("sqlite")
    book = store:open()
    local panel = {}
    for name, d in pairs(DIALECT) do panel[name] = { dialect = d } end
    router = rt.router(book, sbs, { panel = panel })
  end)

  teardown(function()
    if book then book:close() end
    if store then store:close() end
    rt.stop(sbs)
  end)

  local function order(r)
    return { product = "followers", link = "https://x.test/" .. r, quantity = 1000, ref = r }
  end

  it("prices each panel from its own dialect's service list", function()
    local q = assert(router:quote{ product = "followers", quantity = 1000 })
    local got = {}
    for i, c in ipairs(q.candidates) do got[i] = c.panel .. " " .. c.price end
    assert.same({ "a 0.90", "b 1.80", "c 2.70" }, got)
  end)

  it("an api_token panel's errors answer for funds fails over, nothing placed there", function()
    sbs.a:config{ balance = "0.10" }
    finally(function()
      sbs.a:config{ balance = "1000.00" }
      router:balance("a")
    end)
    local before = rt.adds(sbs)
    local res = assert(router:add(order("dialect-funds")))
    assert.equal("b", res.panel)
    assert.equal("short_of_funds", res.route.passed_over[1].reason)
    assert.matches("Not enough funds", res.route.passed_over[1].message, 1, true)
    assert.same({ a = before.a + 1, b = before.b + 1, c = before.c }, rt.adds(sbs))
    assert.equal(0, #sbs.a:orders())
    assert.equal(1, #sbs.b:orders())
    -- the order's calls go to b, in b's dialect
    local entry = assert(router:status("dialect-funds"))
    assert.is_string(entry.status)
    local log = sbs.b:requests()
    local last = log[#log]
    assert.equal("status", last.action)
    assert.equal("***", last.x_api_key)
    assert.is_true(last.key_ok)
  end)

  it("an ambiguous answer in a dialect never fails over: in doubt with that panel", function()
    sbs.a:fault("error500", { action = "add", perform = 1 })
    local before = rt.adds(sbs)
    local res, err = router:add(order("dialect-doubt"))
    assert.is_nil(res)
    assert.is_true(err.ambiguous)
    assert.same({ a = before.a + 1, b = before.b, c = before.c }, rt.adds(sbs))
    assert.equal("in_doubt", assert(book:get("dialect-doubt")).state)
    -- the same ref again sends nothing anywhere
    before = rt.adds(sbs)
    res, err = router:add(order("dialect-doubt"))
    assert.is_nil(res)
    assert.equal("in_doubt", err.code)
    assert.same(before, rt.adds(sbs))
  end)

  it("a bearer panel holds an order placed there when the others are avoided", function()
    local res = assert(router:add{ product = "followers", link = "https://x.test/c1", quantity = 1000,
                                   ref = "dialect-bearer", avoid = { "a", "b" } })
    assert.equal("c", res.panel)
    assert.equal("2.70", res.route.price)
    local c_log = sbs.c:requests()
    assert.equal("***", c_log[#c_log].authorization)
    local done = assert(router:wait("dialect-bearer", { interval = 1, timeout = 5000 }))
    assert.equal("Completed", done.status)
    assert.is_false(env.leaks_key(c_log))
    assert.is_false(env.leaks_key(books.texts(book))) -- no key of any dialect in the book
  end)
end)
