-- The order book's core, on SQLite and on PostgreSQL alike, against the sandbox panel: a ref is
-- claimed before its request leaves and never sent twice, every outcome (placed, refused,
-- ambiguous) is recorded, doubts are settled by resolve, refills and cancels are recorded,
-- ids and money survive exactly, nothing secret reaches a row, and the report sums exactly.
--
-- One book per engine for the whole file (refs are unique per case) and a sandbox that is never
-- reset, as in real use: the secret scan at the end reads everything the cases wrote.
local env = require "helpers.env"
local books = require "helpers.book"
local hostile = require "helpers.hostile"
local smm = require "smm"
local money = require "smm.money"

-- every fault of the fault matrix (spec 40) that leaves an add ambiguous, with its parameters
local AMBIGUOUS = {
  { fault = "html503" }, { fault = "html200" }, { fault = "error500" }, { fault = "truncated" },
  { fault = "empty" }, { fault = "reset_before_read" }, { fault = "reset_after_read" },
  { fault = "slow", delay = 1500 }, { fault = "big", size = 100000 }, { fault = "redirect" },
}
local CLIENT = { retries = 2, retry_base = 1, timeout = 300, max_body = 4096 }

local WRONG_KEY = "WRONG-SENTINEL-KEY-51c0d9"
local URL_PASSWORD = "URL-SENTINEL-PASS-8e2b"

local function order(n)
  return { service = 1, link = "https://x.test/" .. n, quantity = 100 }
end

for _, engine in ipairs(books.ENGINES) do
  describe("the order book's core on " .. engine .. " #book", function()
    local sb, store, book, client, now

    setup(function()
      sb = env.sandbox()
      sb:config{ balance = "1000000.00", echo_key = 1 }
      store = books.store(engine)
      now = nil
      book = store:open{ clock = function() return now or os.time() end }
      client = env.client(sb, { book = book })
    end)

    teardown(function()
      if client then client:close() end
      if book then book:close() end
      if store then store:close() end
      if sb then sb:stop() end
    end)

    local function adds() return env.count(sb, "add") end
    local function faulty_client()
      local o = { book = book }
      for k, v in pairs(CLIENT) do o[k] = v end
      return env.client(sb, o)
    end
    local function types_of(ref)
      local out = {}
      for _, row in ipairs(books.db(book):rows("SELECT type FROM events WHERE ref = ? ORDER BY id", ref)) do
        out[#out + 1] = row.type
      end
      return out
    end
    local function whats(ref)
      local out = {}
      for i, h in ipairs(assert(book:history(ref))) do out[i] = h.what end
      return out
    end

    it("records a placed order: its integer id, its fields without key or action, history, an event", function()
      local before = adds()
      local res = assert(client:add(order("placed"), { ref = "placed-1" }))
      assert.is_true(env.is_integer(res.order))
      assert.equal("placed-1", res.ref)
      assert.equal(before + 1, adds())
      local row = assert(book:get("placed-1"))
      assert.equal("placed", row.state)
      assert.equal(res.order, row.order_id)
      assert.is_true(env.is_integer(row.order_id))
      assert.equal(sb.url, row.panel)
      assert.same({ service = 1, link = "https://x.test/placed", quantity = 100 }, row.fields)
      for _, v in pairs(row.fields) do
        if type(v) == "number" then assert.is_true(env.is_integer(v), "a field read back as a float") end
      end
      local text = books.db(book):row("SELECT fields FROM orders WHERE ref = ?", "placed-1").fields
      assert.not_matches('"key"', text)
      assert.not_matches('"action"', text)
      assert.same({ "placed" }, whats("placed-1"))
      assert.same({ "order.placed" }, types_of("placed-1"))
      assert.same(row, book:find(sb.url, res.order))
    end)

    it("returns the recorded order for the same ref again and sends nothing", function()
      local first = assert(client:add(order("again"), { ref = "again-1" }))
      local before = adds()
      local second = assert(client:add(order("again"), { ref = "again-1" }))
      assert.equal(before, adds())
      assert.equal(first.order, second.order)
      assert.is_true(second.recorded)
      -- the same order written differently (a quantity as text) is the same order
      local third = assert(client:add({ service = "1", link = "https://x.test/again", quantity = "100" },
        { ref = "again-1" }))
      assert.equal(first.order, third.order)
      assert.equal(before, adds())
    end)

    it("refuses the same ref for a different order (ref_conflict) and sends nothing", function()
      assert(client:add(order("conflict"), { ref = "conflict-1" }))
      local before = adds()
      local res, err = client:add(order("conflict-other"), { ref = "conflict-1" })
      assert.is_nil(res)
      assert.equal("book", err.kind)
      assert.equal("ref_conflict", err.code)
      assert.equal(before, adds())
    end)

    it("refuses the same ref and order sent to another panel (ref_conflict): service ids are per panel",
      function()
        assert(client:add(order("other-panel"), { ref = "panel-1" }))
        local srv = hostile.start{ default = hostile.json('{"order":77}') }
        local other = smm.new{ url = srv.url, key = env.KEY, book = book }
        local res, err = other:add(order("other-panel"), { ref = "panel-1" })
        local sent = srv:count("add")
        other:close()
        srv:stop()
        assert.is_nil(res)
        assert.equal("ref_conflict", err and err.code)
        assert.equal(0, sent)
      end)

    it("records a definite refusal as failed, and the same ref may then be sent again, and is", function()
      local before = adds()
      local res, err = client:add({ service = 999999, link = "https://x.test/refused", quantity = 100 },
        { ref = "refused-1" })
      assert.is_nil(res)
      assert.is_false(err.ambiguous)
      assert.equal(before + 1, adds())
      assert.equal("failed", book:get("refused-1").state)
      sb:config{ balance = "0.00" }
      res, err = client:add(order("refused"), { ref = "refused-2" })
      sb:config{ balance = "1000000.00" }
      assert.is_nil(res)
      assert.equal("not_enough_funds", err.code)
      assert.equal("failed", book:get("refused-2").state)
      assert.same({ "order.failed" }, types_of("refused-2"))
      local again = assert(client:add(order("refused"), { ref = "refused-2" }))
      assert.equal(before + 3, adds())
      local row = book:get("refused-2")
      assert.equal("placed", row.state)
      assert.equal(again.order, row.order_id)
      assert.equal(2, row.attempts)
      assert.same({ "failed", "placed" }, whats("refused-2"))
    end)

    for _, f in ipairs(AMBIGUOUS) do
      it("records an add made ambiguous by the " .. f.fault .. " fault in doubt, and never sends it again",
        function()
          local c = faulty_client()
          local ref = "doubt-" .. f.fault
          local before = adds()
          sb:fault(f.fault, { action = "add", delay = f.delay, size = f.size })
          local res, err = c:add(order(ref), { ref = ref })
          assert.is_nil(res)
          assert.is_true(err.ambiguous, f.fault .. " should be ambiguous: " .. tostring(err))
          assert.equal(before + 1, adds())
          assert.equal("in_doubt", book:get(ref).state)
          assert.same({ "order.in_doubt" }, types_of(ref))
          res, err = c:add(order(ref), { ref = ref })
          assert.is_nil(res)
          assert.equal("in_doubt", err.code)
          assert.equal(before + 1, adds())
          assert.equal(1, #assert(book:orders{ ref = ref }))
          c:close()
        end)
    end

    it("resolves a doubt as placed: a later add of the ref returns that order and sends nothing", function()
      local c = faulty_client()
      sb:fault("error500", { action = "add" })
      assert.is_nil(c:add(order("resolve-placed"), { ref = "resolve-placed" }))
      c:close()
      assert.is_true(assert(book:resolve("resolve-placed", 2^31 + 7)))
      local before = adds()
      local res = assert(client:add(order("resolve-placed"), { ref = "resolve-placed" }))
      assert.equal(2^31 + 7, res.order)
      assert.equal(before, adds())
      assert.equal("placed", book:get("resolve-placed").state)
      assert.same({ "in_doubt", "resolved" }, whats("resolve-placed"))
      local types = types_of("resolve-placed")
      assert.equal("order.placed", types[#types])
    end)

    it("resolves a doubt as not placed: the ref may be sent again, and is", function()
      local c = faulty_client()
      sb:fault("html503", { action = "add" })
      assert.is_nil(c:add(order("resolve-not"), { ref = "resolve-not" }))
      c:close()
      assert.is_true(assert(book:resolve("resolve-not", false)))
      local before = adds()
      local res = assert(client:add(order("resolve-not"), { ref = "resolve-not" }))
      assert.equal(before + 1, adds())
      assert.equal(res.order, book:get("resolve-not").order_id)
      assert.equal("placed", book:get("resolve-not").state)
    end)

    it("refuses to resolve what is not in doubt, or not there", function()
      assert(client:add(order("resolve-refused"), { ref = "resolve-refused" }))
      local ok, err = book:resolve("resolve-refused", 5)
      assert.is_nil(ok)
      assert.equal("not_in_doubt", err.code)
      ok, err = book:resolve("resolve-refused", false)
      assert.is_nil(ok)
      assert.equal("not_in_doubt", err.code)
      assert.equal("placed", book:get("resolve-refused").state)
      ok, err = book:resolve("no-such-ref", false)
      assert.is_nil(ok)
      assert.equal("not_found", err.code)
      assert.has_error(function() book:resolve("resolve-refused", 0) end)
      assert.has_error(function() book:resolve("resolve-refused", 1.5) end)
      assert.has_error(function() book:resolve(7, 1) end)
    end)

    it("records an add without a ref under a generated one", function()
      local res = assert(client:add(order("no-ref")))
      assert.matches("^auto%-", res.ref)
      local row = assert(book:get(res.ref))
      assert.equal(res.order, row.order_id)
      assert.equal("placed", row.state)
      local other = assert(client:add(order("no-ref")))
      assert.not_equal(res.ref, other.ref)
    end)

    it("places client:batch's adds through the book: one ref recorded returns without sending", function()
      local earlier = assert(client:add(order("batch-0"), { ref = "batch-0" }))
      local before = adds()
      local results = client:batch{
        { "add", order("batch-1"), { ref = "batch-1" } },
        { "add", order("batch-0"), { ref = "batch-0" } },
        { "balance" },
        { "add", order("batch-2"), { ref = "batch-2" } },
        { "add", order("batch-3"), { ref = "batch-1" } }, -- the ref of the first, another order
      }
      assert.equal(before + 2, adds())
      assert.equal(earlier.order, results[2].value.order)
      assert.is_true(results[2].value.recorded)
      assert.is_string(results[3].value.balance)
      for _, i in ipairs({ 1, 4 }) do
        local ref = "batch-" .. (i == 1 and 1 or 2)
        assert.equal(results[i].value.order, book:get(ref).order_id)
        assert.equal(ref, results[i].value.ref)
      end
      assert.equal("book", results[5].err.kind)
      assert.equal("ref_conflict", results[5].err.code)
    end)

    it("records refills and cancels in the order's history, the refill id kept to be followed", function()
      local a = assert(client:add(order("refill"), { ref = "refill-1" })).order
      local b = assert(client:add(order("cancel"), { ref = "cancel-1" })).order
      sb:advance(20)
      local refill = assert(client:refill(a)).refill
      assert(client:cancel{ b })
      assert.same({ "placed", "refill" }, whats("refill-1"))
      assert.same({ "placed", "cancel" }, whats("cancel-1"))
      local rows = books.db(book):rows("SELECT " .. books.db(book):columns("ref order_id refill_id state next_check") ..
        " FROM refills WHERE ref = ?", "refill-1")
      assert.equal(1, #rows)
      assert.equal(refill, rows[1].refill_id)
      assert.equal(a, rows[1].order_id)
      assert.equal("open", rows[1].state) -- what book:sync follows
      assert.is_true(env.is_integer(rows[1].next_check))
    end)

    it("keeps ids above 2^31 and up to 2^53 - 1 exactly, from resolve and from a panel's answer", function()
      local c = faulty_client()
      for i, id in ipairs({ 2^31 + 1, 2^32 + 3, 2^53 - 1 }) do
        local ref = "big-resolved-" .. i
        sb:fault("error500", { action = "add" })
        assert.is_nil(c:add(order(ref), { ref = ref }))
        assert(book:resolve(ref, id))
        local row = book:get(ref)
        assert.equal(id, row.order_id)
        assert.is_true(env.is_integer(row.order_id))
        assert.equal(ref, book:find(sb.url, id).ref)
      end
      c:close()
      local srv = hostile.start{ hostile.json('{"order":2147483649}'), hostile.json('{"order":9007199254740991}') }
      local panel = smm.new{ url = srv.url, key = env.KEY, book = book }
      local r1 = assert(panel:add(order("big-1"), { ref = "big-panel-1" }))
      local r2 = assert(panel:add(order("big-2"), { ref = "big-panel-2" }))
      panel:close()
      srv:stop()
      assert.equal(2147483649, r1.order)
      assert.equal(2147483649, book:get("big-panel-1").order_id)
      assert.equal(9007199254740991, r2.order)
      assert.equal(9007199254740991, book:get("big-panel-2").order_id)
      assert.equal(string.format("%.0f", 2^53 - 1), string.format("%.0f", book:get("big-panel-2").order_id))
      local data = books.db(book):row("SELECT data FROM events WHERE ref = ? AND type = 'order.placed'",
        "big-panel-2").data
      assert.matches('"order":9007199254740991[,}]', data)
    end)

    it("keeps money as exact strings: the quote recorded is the price", function()
      assert(client:services())
      assert(client:add({ service = 4, link = "https://x.test/money", quantity = 300 }, { ref = "money-1" }))
      local row = book:get("money-1")
      assert.is_string(row.quote)
      assert.equal(0, money.compare(row.quote, "0.37035")) -- 300 x 1.2345 / 1000
    end)

    it("reports what was charged, summed exactly, by day, service and panel", function()
      local day1 = 1924992000 -- 2031-01-01T00:00:00Z
      local db = books.db(book)
      local function placed(ref, at, service, charge)
        now = at
        assert(client:add({ service = service, link = "https://x.test/" .. ref, quantity = 100 }, { ref = ref }))
        now = nil
        db:run("UPDATE orders SET charge = ? WHERE ref = ?", charge, ref)
      end
      placed("report-1", day1 + 10, 1, "0.1")
      placed("report-2", day1 + 20, 1, "0.1")
      placed("report-3", day1 + 86400 + 5, 3, "0.1")
      now = day1 + 30
      assert(client:add(order("report-uncharged"), { ref = "report-4" }))
      now = nil
      local by_day = assert(book:report{ since = day1, by = "day" })
      assert.equal(2, #by_day)
      -- charges recorded without a currency: one figure, under "unknown" (spec 87: currencies)
      assert.same({ key = "2031-01-01", orders = 3, charge = "0.2", charges = { unknown = "0.2" } }, by_day[1])
      assert.same({ key = "2031-01-02", orders = 1, charge = "0.1", charges = { unknown = "0.1" } }, by_day[2])
      assert.same({ key = "all", orders = 4, charge = "0.3", charges = { unknown = "0.3" } }, by_day.all)
      local by_service = assert(book:report{ since = day1, by = "service" })
      assert.same({ key = "1", orders = 3, charge = "0.2", charges = { unknown = "0.2" } }, by_service[1])
      assert.same({ key = "3", orders = 1, charge = "0.1", charges = { unknown = "0.1" } }, by_service[2])
      local by_panel = assert(book:report{ since = day1, by = "panel", panel = sb.url })
      assert.same({ { key = sb.url, orders = 4, charge = "0.3", charges = { unknown = "0.3" } } }, { by_panel[1] })
      assert.equal("0.3", by_panel.all.charge)
      local none = assert(book:report{ since = day1 + 10 * 86400 })
      assert.same({ key = "all", orders = 0, charge = "0", charges = {} }, none.all)
    end)

    it("holds neither the API key, nor a key or password of the panel's URL, nor the database's password",
      function()
        -- a wrong key the panel echoes back, and a URL with credentials: neither may reach a row
        local wrong = smm.new{ url = sb.url, key = WRONG_KEY, book = book }
        local res = wrong:add(order("wrong-key"), { ref = "wrong-key" })
        wrong:close()
        assert.is_nil(res)
        assert.equal("failed", book:get("wrong-key").state)
        local with_password = smm.new{ url = sb.url:gsub("^http://", "http://user:" .. URL_PASSWORD .. "@") ..
          "?key=" .. URL_PASSWORD, key = env.KEY, book = book }
        assert(with_password:add(order("url-password"), { ref = "url-password" }))
        with_password:close()
        local texts = books.texts(book)
        local tables = {}
        for _, t in ipairs(texts) do tables[t.table] = true end
        for _, name in ipairs({ "orders", "history", "refills", "events" }) do
          assert.is_true(tables[name], "no text read from " .. name)
        end
        local secrets = { env.KEY, WRONG_KEY, URL_PASSWORD, store.secret }
        for _, t in ipairs(texts) do
          for _, secret in ipairs(secrets) do
            assert.is_nil(t.value:find(secret, 1, true), t.table .. "." .. t.column .. " holds a secret: " ..
              t.value:gsub(secret, "<secret>"))
          end
        end
      end)
  end)
end
