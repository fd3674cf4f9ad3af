-- The order book reviewed as a reseller and an attacker would use it, on SQLite and PostgreSQL
-- against the sandbox: each case is a defect the review found (money placed and forgotten, a
-- ref stuck in doubt that was never sent, a sync round that never ends, a secret in a row, a
-- report that adds dollars to euros), kept so that it stays fixed.
local env = require "helpers.env"
local books = require "helpers.book"
local errors = require "smm.errors"

local function order(n) return { service = 1, link = "https://x.test/" .. n, quantity = 100 } end

for _, engine in ipairs(books.ENGINES) do
  describe("the order book reviewed on " .. engine .. " #book", function()
    local sb, store

    setup(function()
      sb = env.sandbox()
      sb:config{ balance = "1000000.00" }
      store = books.store(engine)
    end)

    teardown(function()
      if store then store:close() end
      if sb then sb:stop() end
    end)

    local function fresh(clock)
      local book = store:open(clock and { clock = clock } or nil)
      return book, env.client(sb, { book = book })
    end

    it("claims no ref of a batch in which a later call is refused as misuse (nothing left sending)", function()
      local book, client = fresh()
      local before = env.count(sb, "add")
      assert.has_error(function()
        client:batch{ { "add", order("b1"), { ref = "batch-1" } },
                      { "add", order("b2"), { reff = "batch-2" } } }
      end)
      assert.has_error(function()
        client:batch{ { "add", order("b3"), { ref = "batch-3" } }, { "nonsense" } }
      end)
      assert.equal(before, env.count(sb, "add"))
      assert.is_nil(book:get("batch-1"))
      assert.is_nil(book:get("batch-3"))
      -- the batch run again, corrected, places the order (no in_doubt refusal for a ref never sent)
      local results = client:batch{ { "add", order("b1"), { ref = "batch-1" } } }
      assert.is_nil(results[1].err)
      assert.equal("placed", assert(book:get("batch-1")).state)
      client:close()
      book:close()
    end)

    it("ends a sync round that outlasts min_interval without asking about an order twice", function()
      local t = 2000000000
      local book, client = fresh(function() return t end)
      for i = 1, 6 do assert(client:add(order("r" .. i), { ref = "round-" .. i })) end
      sb:admin("polls", {}) -- clears the counts
      t = t + 120
      local clock_reads = 0
      -- every page takes 100 s of the book's clock: longer than min_interval (60 s)
      local summary = assert(book:sync(client, { page = 2, stop = function()
        clock_reads = clock_reads + 1
        t = t + 100
        return clock_reads > 50 -- a round that would never end is stopped here, and fails below
      end }))
      assert.is_true(clock_reads <= 50, "the round did not end on its own")
      assert.equal(6, summary.checked)
      local polls = sb:admin("polls")
      assert.equal(1, polls.max)
      -- and a round with no pause between checks is refused rather than left to spin
      assert.has_error(function() book:sync(client, { min_interval = 0 }) end)
      client:close()
      book:close()
    end)

    it("keeps an exec hook's environment assignments (tokens) out of the events' last_error", function()
      local book, client = fresh()
      assert(client:add(order("hook"), { ref = "hook-1" }))
      local token = "hunter2-SENTINEL-7d1e"
      local summary = assert(book:deliver({ { exec = "TOKEN=" .. token .. " API=x false" } }, { limit = 5 }))
      assert.is_true(summary.failed >= 1)
      local shown = false
      for _, cell in ipairs(books.texts(book)) do
        assert.is_nil(cell.value:find(token, 1, true), cell.table .. "." .. cell.column .. ": " .. cell.value)
        if cell.column == "last_error" and cell.value:find("(exec false)", 1, true) then shown = true end
      end
      assert.is_true(shown, "last_error names the command it ran")
      client:close()
      book:close()
    end)

    it("reports charges in different currencies apart, never summed into one figure", function()
      local book, client = fresh()
      for i = 1, 3 do assert(client:add(order("cur" .. i), { ref = "cur-" .. i })) end
      local db = books.db(book)
      db:run("UPDATE orders SET charge = '1.50', currency = 'USD' WHERE ref = 'cur-1'")
      db:run("UPDATE orders SET charge = '2.25', currency = 'USD' WHERE ref = 'cur-2'")
      db:run("UPDATE orders SET charge = '100', currency = 'EUR' WHERE ref = 'cur-3'")
      local report = assert(book:report{ by = "panel" })
      assert.equal(1, #report)
      assert.same({ USD = "3.75", EUR = "100" }, report[1].charges)
      assert.is_nil(report[1].charge) -- no single figure for two currencies
      assert.same({ USD = "3.75", EUR = "100" }, report.all.charges)
      assert.is_nil(report.all.charge)
      assert.equal(3, report.all.orders)
      -- one currency: one figure, and which currency it is
      db:run("UPDATE orders SET currency = 'USD' WHERE ref = 'cur-3'")
      report = assert(book:report{ by = "panel" })
      assert.equal("103.75", report.all.charge)
      assert.equal("USD", report.all.currency)
      assert.same({ USD = "103.75" }, report.all.charges)
      client:close()
      book:close()
    end)

    it("never lets a late answer of an earlier attempt overwrite the order a later attempt placed", function()
      local book, client = fresh()
      local fields = order("late")
      fields.key, fields.action = env.KEY, "add"
      -- attempt 1 claims the ref; its sender stalls (its answer comes much later)
      local first = { panel = client.url, ref = "late-1", fields = fields }
      assert.is_true(assert(book:intent(first)).claimed)
      -- the operator settles it as not placed, and the ref is sent again and placed
      assert(book:resolve("late-1", false))
      local placed = assert(client:add(order("late"), { ref = "late-1" }))
      -- attempt 1's answer arrives: another order on the panel, not the ref's
      local late_id = placed.order + 1000
      local ok, err = book:outcome(first, { order = late_id })
      assert.is_nil(ok)
      assert.equal("ref_conflict", err.code)
      assert.matches(tostring(late_id), err.message)
      local row = assert(book:get("late-1"))
      assert.equal("placed", row.state)
      assert.equal(placed.order, row.order_id) -- the ref's order is not forgotten
      local told = false -- nor is the other one: its id is in the ref's history
      for _, h in ipairs(assert(book:history("late-1"))) do
        if (h.detail or ""):find(tostring(late_id), 1, true) then told = true end
      end
      assert.is_true(told)
      -- a late failure of attempt 1 does not mark the placed order failed (re-sendable) either
      book:outcome(first, nil, errors.new{ kind = "network", message = "refused" })
      assert.equal("placed", assert(book:get("late-1")).state)
      -- nor does a late ambiguous one put it in doubt (it is written into the history instead)
      ok, err = book:outcome(first, nil, errors.new{ kind = "timeout", message = "timed out", ambiguous = true })
      assert.is_nil(ok)
      assert.equal("ref_conflict", err.code)
      assert.equal("placed", assert(book:get("late-1")).state)
      assert.equal(placed.order, assert(book:get("late-1")).order_id)
      client:close()
      book:close()
    end)
  end)
end
