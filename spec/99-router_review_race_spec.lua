-- A cold review of smm.router's one-order property, on SQLite and PostgreSQL, against three real
-- sandbox panels: a ref placed directly then routed, a routed ref refused everywhere then sent
-- again with other fields or for another product, and two processes routing the same ref at
-- once while one of them fails over. From the sandboxes' own order lists: no ref is ever placed
-- twice, on one panel or on two.
local env = require "helpers.env"
local books = require "helpers.book"
local rt = require "helpers.router"

-- followers as helpers.router has it; likes: service 3 everywhere
local PRODUCTS = { followers = rt.PRODUCTS.followers, likes = { a = 3, b = 3, c = 3 } }

local function orders_for(sbs, link)
  local out, total = {}, 0
  for _, name in ipairs(rt.NAMES) do
    local n = 0
    for _, o in ipairs(sbs[name]:orders()) do
      if o.link == link then n = n + 1 end
    end
    out[name], total = n, total + n
  end
  return out, total
end

local function wait_for(pred, what)
  for _ = 1, 1000 do
    if pred() then return end
    os.execute("sleep 0.01")
  end
  error("timed out waiting for " .. what)
end

for _, engine in ipairs(books.ENGINES) do
  describe("smm.router review: one ref, one order, on " .. engine .. " #router", function()
    local sbs, store, book, router

    setup(function()
      sbs = rt.start()
      store = books.store(engine)
    end)

    before_each(function()
      book = store:open()
      router = rt.router(book, sbs, { client = { retries = 0 }, products = PRODUCTS })
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

    it("a ref placed directly is not placed again when routed", function()
      local link = "https://x.test/direct-" .. engine
      -- placed directly on b (service 1), then routed: a is cheaper
      local res = assert(router:panel("b"):add({ service = 1, link = link, quantity = 1000 }, { ref = "direct-1" }))
      local again, err = router:add{ product = "followers", link = link, quantity = 1000, ref = "direct-1" }
      assert.is_nil(again)
      assert.equal("ref_conflict", err.code)
      -- the same on the panel that holds it, the same service: the order as recorded
      router:panel("a"):add({ service = 1, link = link .. "/a", quantity = 1000 }, { ref = "direct-2" })
      local rec = assert(router:add{ product = "followers", link = link .. "/a", quantity = 1000, ref = "direct-2" })
      assert.is_true(rec.recorded)
      assert.equal("a", rec.panel)
      local _, total = orders_for(sbs, link)
      assert.equal(1, total)
      assert.equal(res.order, sbs.b:orders()[1].id)
      _, total = orders_for(sbs, link .. "/a")
      assert.equal(1, total)
    end)

    it("a routed ref refused everywhere is sent again only as the same order", function()
      for _, name in ipairs(rt.NAMES) do sbs[name]:config{ balance = "0.01" } end
      local link = "https://x.test/again-" .. engine
      local order = { product = "followers", link = link, quantity = 1000, ref = "again-1" }
      local res, err = router:add(order)
      assert.is_nil(res)
      assert.equal("no_panel", err.code)
      assert.equal("failed", book:get("again-1").state)
      for _, name in ipairs(rt.NAMES) do sbs[name]:config{ balance = "1000.00" } end
      router:balance() -- the router knows they were topped up: each is a candidate again
      -- other fields, another product: another order under the same ref, refused, nothing sent
      local before = rt.adds(sbs)
      _, err = router:add{ product = "followers", link = link .. "/other", quantity = 1000, ref = "again-1" }
      assert.equal("ref_conflict", err.code)
      _, err = router:add{ product = "followers", link = link, quantity = 2000, ref = "again-1" }
      assert.equal("ref_conflict", err.code)
      _, err = router:add{ product = "likes", link = link, quantity = 1000, ref = "again-1" }
      assert.equal("ref_conflict", err.code)
      assert.same(before, rt.adds(sbs))
      -- the same order: placed once; once more: as recorded
      res = assert(router:add(order))
      assert.equal("a", res.panel)
      local rec = assert(router:add(order))
      assert.is_true(rec.recorded)
      local per, total = orders_for(sbs, link)
      assert.equal(1, total)
      assert.same({ a = 1, b = 0, c = 0 }, per)
    end)

    it("two processes on one ref: one fails over (slowly) while the other sends it again", function()
      local ref = "race-" .. engine
      local link = "https://x.test/" .. ref
      sbs.a:config{ balance = "0.01" }                       -- a refuses: the child fails over
      sbs.b:fault("slow", { action = "add", delay = 1500 })  -- b places it, answering late
      local child = books.child(books.root .. "/spec/helpers/router_race_child.lua",
        { store.url, sbs.a.url, sbs.b.url, sbs.c.url, ref })
      local out = os.tmpname()
      os.execute(child .. " > " .. out .. " 2>&1 &")
      -- while b holds the child's add: a is topped up and this process routes the same ref
      wait_for(function() return env.count(sbs.b, "add") >= 1 end, "the child's add on b")
      sbs.a:config{ balance = "1000.00" }
      local fresh = rt.router(book, sbs, { client = { retries = 0 } })
      fresh.balance_ttl = 0 -- a's short balance asked anew: a is a candidate again
      local res, err = fresh:add{ product = "followers", link = link, quantity = 1000, ref = ref }
      assert.is_nil(res)
      assert.equal("in_doubt", err.code) -- the child holds it: nothing sent
      wait_for(function()
        local f = io.open(out)
        local line = f and f:read("*l")
        if f then f:close() end
        return line ~= nil
      end, "the child's answer")
      local f = io.open(out)
      local line = f:read("*l")
      f:close()
      os.remove(out)
      assert.equal("placed:b", line)
      local per, total = orders_for(sbs, link)
      assert.equal(1, total)
      assert.same({ a = 0, b = 1, c = 0 }, per)
      -- and now both answer it as recorded, on b
      local rec = assert(fresh:add{ product = "followers", link = link, quantity = 1000, ref = ref })
      assert.same({ true, "b" }, { rec.recorded, rec.panel })
    end)
  end)
end
