-- client:batch through the book with a window (what `smm batch --concurrency N` uses): the
-- calls go n at a time, each group's intents committed in one transaction before its requests
-- leave, claimed while the group before travels, and recorded while the group after travels.
-- Real sandbox (30 ms answers), SQLite and PostgreSQL.
local env = require "helpers.env"
local books = require "helpers.book"

local function order(n) return { service = 1, link = "https://w.test/" .. n, quantity = 100 } end

for _, engine in ipairs(books.ENGINES) do
  describe("client:batch with a window, through a book on " .. engine .. " #book", function()
    local sb, store

    setup(function()
      sb = env.sandbox()
      sb:config{ balance = "1000000.00", latency = 30 }
      store = books.store(engine)
    end)

    teardown(function()
      if store then store:close() end
      if sb then sb:stop() end
    end)

    local function calls(prefix, n)
      local list = {}
      for i = 1, n do list[i] = { "add", order(prefix .. i), { ref = prefix .. "-" .. i } } end
      return list
    end

    it("places every call once, each recorded with its id, never more than 2 windows claimed unanswered", function()
      local book = store:open()
      local client = env.client(sb, { book = book, concurrency = 3 })
      local db = books.db(book)
      local before = env.count(sb, "add")
      local most = 0
      -- how many rows are claimed and unanswered, looked at while the requests wait
      local function sending()
        local row = db:row("SELECT " .. db:int("n") .. " FROM (SELECT count(*) AS n FROM orders " ..
          "WHERE state = 'sending') AS c")
        return row.n
      end
      -- looked at as each group ends (stop is asked then): the group just answered, not yet
      -- recorded, and the next one, claimed while it travelled
      local results = client:batch(calls("w", 20), { window = 3, stop = function()
        local n = sending()
        if n > most then most = n end
        return false
      end })
      assert.equal(20, env.count(sb, "add") - before)
      for i = 1, 20 do
        local r = results[i]
        assert.is_nil(r.err, tostring(r.err))
        local row = assert(book:get("w-" .. i))
        assert.equal("placed", row.state)
        assert.equal(r.value.order, row.order_id)
      end
      assert.is_true(most > 3 and most <= 6, most .. " refs claimed and unanswered at once")
      assert.equal(0, sending())
      -- the outcomes were written relaxed (a lost one leaves its row in doubt, never sent again);
      -- every intent after them must wait for the disk again
      if engine == "sqlite" then
        assert.equal(2, db:row("PRAGMA synchronous").synchronous) -- FULL
      else
        assert.equal("on", db:row("SHOW synchronous_commit").synchronous_commit)
      end
      client:close()
      book:close()
    end)

    it("stops after the group whose result says so: the next group, claimed, is recorded not placed and sent later", function()
      local book = store:open()
      local client = env.client(sb, { book = book, concurrency = 2 })
      local before = env.count(sb, "add")
      local asked = {}
      local results = client:batch(calls("s", 8), { window = 2, stop = function(i)
        asked[#asked + 1] = i
        return i == 3
      end })
      -- groups 1-2 and 3-4 were sent; 5-6 had been claimed while 3-4 travelled; 7-8 never were
      assert.equal(4, env.count(sb, "add") - before)
      assert.same({ 1, 2, 3 }, asked)
      for i = 1, 4 do assert.truthy(results[i].value, "call " .. i) end
      for i = 5, 8 do assert.is_nil(results[i], "call " .. i) end
      assert.equal("failed", assert(book:get("s-5")).state)
      assert.equal("failed", assert(book:get("s-6")).state)
      assert.is_nil(book:get("s-7"))
      -- the same calls again: the placed ones answered from the book, the rest sent now
      results = client:batch(calls("s", 8), { window = 2 })
      assert.equal(8, env.count(sb, "add") - before)
      for i = 1, 8 do
        assert.truthy(results[i].value, "call " .. i)
        assert.equal("placed", assert(book:get("s-" .. i)).state)
      end
      assert.is_true(results[1].value.recorded)
      client:close()
      book:close()
    end)

    it("refuses a bad window or stop, and an unknown option, before anything is claimed", function()
      local book = store:open()
      local client = env.client(sb, { book = book })
      local before = env.count(sb, "add")
      for _, opts in ipairs{ { window = 0 }, { window = 1.5 }, { window = "2" }, { stop = true },
                             { windw = 2 } } do
        assert.has_error(function() client:batch(calls("x", 2), opts) end)
      end
      assert.equal(before, env.count(sb, "add"))
      assert.equal(0, #assert(book:orders{}))
      client:close()
      book:close()
    end)
  end)
end
