-- book:sync: following open orders and refills to their end, on a real SQLite file and a real
-- PostgreSQL, against the sandbox panel. Several workers on one PostgreSQL book are separate OS
-- processes (helpers/sync_worker.lua); the sandbox counts the status requests per order id.
local cjson = require "cjson"
local smm = require "smm"
local sandbox = require "helpers.sandbox"
local postgres = require "helpers.postgres"
local cli = require "helpers.cli"

local KEY = "sync-spec-key"
local root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or ".")
if root:sub(1, 1) ~= "/" then root = (os.getenv("PWD") or ".") .. "/" .. root end

local function db_of(book) return require("smm.book").connections[book].db end

-- Leases live now: a round's slices in progress (a finished round's rows keep their last lease
-- columns, dead once its slice is gone).
local function live_slices(book)
  local db = db_of(book)
  return db:row("SELECT " .. db:int("n") .. " FROM (SELECT count(*) AS n FROM sync_slices) AS c").n
end

local function events_of(book, type_)
  local out = {}
  for _, row in ipairs(db_of(book):rows("SELECT type, data FROM events WHERE type = ? ORDER BY id", type_)) do
    out[#out + 1] = cjson.decode(row.data)
  end
  return out
end

local function order_row(book, ref)
  return db_of(book):row("SELECT " .. db_of(book):columns("state status remains charge next_check checks " ..
    "final_at") .. ", lease_owner FROM orders WHERE ref = ?", ref)
end

local function place(client, ref, link)
  local res = assert(client:add({ service = 1, link = link or ("https://example.com/" .. ref), quantity = 100 },
    { ref = ref }))
  return res.order
end

-- Orders the panel knows (placed at once by the sandbox) recorded as placed in the book, as
-- client:add would have left them: for thousands of orders without thousands of requests.
local function many_orders(sb, book, panel, n, now)
  local made = sb:admin("bulk", { count = n, service = 1, link = "https://example.com/many", quantity = 100 })
  assert(made.ok, made.error)
  local db = db_of(book)
  db:transaction(function()
    for id = made.first, made.last do
      db:run([[INSERT INTO orders (ref, panel, state, order_id, service, link, quantity, fields, attempts,
          created_at, sent_at, updated_at, next_check) VALUES (?, ?, 'placed', ?, 1, 'https://example.com/many',
          100, '{}', 1, ?, ?, ?, ?)]], "many-" .. id, panel, id, now, now, now, now)
    end
  end)
  return made.first, made.last
end

-- A worker process: returns a handle with its pid; :result() waits for its JSON line.
local function start_worker(book_url, panel, opts, concurrency)
  local cmd = table.concat({
    "SMM_BOOK=" .. cli.quote(book_url), "SMM_PANEL=" .. cli.quote(panel), "SMM_KEY=" .. cli.quote(KEY),
    "SMM_SYNC=" .. cli.quote(cjson.encode(opts or {})), "SMM_CONCURRENCY=" .. (concurrency or 2),
    "LUA_PATH=" .. cli.quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;;"),
    "LUA_CPATH=" .. cli.quote(root .. "/build/lua5.4/?.so;;"),
    "exec lua5.4", cli.quote(root .. "/spec/helpers/sync_worker.lua"),
  }, " ")
  local pipe = assert(io.popen(cmd, "r"))
  local first = pipe:read("*l")
  local pid = first and tonumber(first:match("^pid (%d+)"))
  assert(pid, "the worker did not start: " .. tostring(first))
  return { pid = pid, result = function()
    local line = pipe:read("*l")
    pipe:close()
    return line and cjson.decode(line)
  end }
end

local function polls(sb) return sb:admin("polls") end

for _, engine in ipairs({ "sqlite", "postgresql" }) do
  describe("book:sync on " .. engine .. " #book", function()
    local sb, pg, dir, book, client, t
    local url

    setup(function()
      sb = sandbox.start{ key = KEY }
      if engine == "postgresql" then
        pg = postgres.start()
      else
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. cli.quote(dir)))
      end
    end)

    teardown(function()
      if sb then sb:stop() end
      if pg then pg:stop() end
      if dir then os.execute("rm -rf " .. cli.quote(dir)) end
    end)

    local n = 0
    before_each(function()
      sb:reset()
      n = n + 1
      if pg then
        pg:reset()
        url = pg.url
      else
        url = "sqlite:" .. dir .. "/book" .. n .. ".db"
      end
      t = 1800000000
      book = assert(smm.book.open(url, { clock = function() return t end }))
      client = smm.new{ url = sb.url, key = KEY, book = book, concurrency = 4 }
    end)

    after_each(function()
      if book then book:close() end
      book = nil
    end)

    it("records each change with a history row and an event, and asks again only when due", function()
      local id1 = place(client, "a1")
      place(client, "a2")
      t = t + 60
      local s = assert(book:sync(client))
      assert.same({ 2, 2, 0, 0 }, { s.checked, s.changed, s.final, s.errors })
      assert.equal(t + 60, s.next_due)
      local row = order_row(book, "a1")
      assert.same({ "placed", "Pending", 100, "0.09" }, { row.state, row.status, row.remains, row.charge })
      local history = book:history("a1")
      assert.equal("status", history[#history].what)
      assert.equal("Pending", history[#history].status)
      local ev = events_of(book, "order.status")
      assert.equal(2, #ev)
      assert.equal(id1, ev[1].order)
      assert.is_nil(ev[1].old)
      assert.equal("Pending", ev[1].new)
      assert.equal("0.09", ev[1].charge)
      assert.equal("a1", ev[1].ref)
      -- nothing due: nothing asked
      local before = polls(sb).total
      s = assert(book:sync(client))
      assert.equal(0, s.checked)
      assert.equal(before, polls(sb).total)
      -- due again: In progress, a new change with old and new
      t = t + 60
      s = assert(book:sync(client))
      assert.same({ 2, 2 }, { s.checked, s.changed })
      ev = events_of(book, "order.status")
      assert.equal(4, #ev)
      assert.equal("Pending", ev[3].old)
      assert.equal("In progress", ev[3].new)
      assert.equal(50, ev[3].remains)
    end)

    it("records a final status: state final, final_at, an order.final event, never asked again", function()
      place(client, "f1", "https://example.com/partial-f1")
      for _ = 1, 3 do
        t = t + 60
        assert(book:sync(client))
      end
      local row = order_row(book, "f1")
      assert.same({ "final", "Partial", t }, { row.state, row.status, row.final_at })
      local final = events_of(book, "order.final")
      assert.equal(1, #final)
      assert.equal("Partial", final[1].status)
      assert.equal(10, final[1].remains)
      local before = polls(sb).total
      t = t + 86400
      local s = assert(book:sync(client))
      assert.equal(0, s.checked)
      assert.equal(before, polls(sb).total)
      assert.equal(1, book:counts().final)
    end)

    it("turns an order with no final status after max_age stale, without asking", function()
      place(client, "s1")
      place(client, "s2")
      t = t + 60
      assert(book:sync(client))
      local before = polls(sb).total
      t = t + 30 * 86400 + 1
      local s = assert(book:sync(client, { max_age = 30 * 86400 }))
      assert.equal(2, s.stale)
      assert.equal(0, s.checked)
      assert.equal(before, polls(sb).total)
      assert.equal("stale", order_row(book, "s1").state)
      local ev = events_of(book, "order.stale")
      assert.equal(2, #ev)
      assert.equal("Pending", ev[1].status)
      s = assert(book:sync(client))
      assert.equal(0, s.stale)
      assert.equal(2, #events_of(book, "order.stale"))
    end)

    it("backs off an unchanged order with its age and comes back to min_interval on a change", function()
      sb:config{ clock = "real", tick = 1e9 } -- the panel's orders stay where they are
      local created = t
      place(client, "b1")
      t = t + 60
      assert(book:sync(client))
      assert.equal(t + 60, order_row(book, "b1").next_check) -- the first answer is a change
      t = created + 86400 -- a day old: every 86400 / 168 = 514 s
      local s = assert(book:sync(client))
      assert.same({ 1, 0 }, { s.checked, s.changed })
      assert.equal(t + 514, order_row(book, "b1").next_check)
      t = created + 7 * 86400 -- a week old: hourly
      assert(book:sync(client))
      assert.equal(t + 3600, order_row(book, "b1").next_check)
      t = created + 20 * 86400 -- older still: max_interval holds it
      assert(book:sync(client, { max_interval = 7200 }))
      assert.equal(t + 7200, order_row(book, "b1").next_check)
      sb:advance(1)
      t = t + 7200
      s = assert(book:sync(client))
      assert.equal(1, s.changed)
      assert.equal(t + 60, order_row(book, "b1").next_check)
      assert.equal(5, order_row(book, "b1").checks)
    end)

    it("counts an id the panel does not know as an error, backs it off and goes on", function()
      place(client, "e1")
      local intent = { panel = client.url, ref = "e-unknown", fields = { service = 1, link = "https://x.y/z",
        quantity = 100 } }
      assert(book:intent(intent))
      assert(book:outcome(intent, { order = 987654 }))
      t = t + 86400
      local s = assert(book:sync(client))
      assert.same({ 1, 1, 1 }, { s.checked, s.changed, s.errors })
      local row = order_row(book, "e-unknown")
      assert.equal("placed", row.state)
      assert.equal(t + 514, row.next_check)
      assert.equal(0, live_slices(book)) -- no lease of the round is live after it
    end)

    it("leaves orders whose status request failed for the next round, as due as before", function()
      local plain = smm.new{ url = sb.url, key = KEY, book = book, retries = 0 }
      place(plain, "n1")
      place(plain, "n2")
      t = t + 60
      local due = order_row(book, "n1").next_check
      sb:fault("html503", { action = "status", times = 5 })
      local s, err = book:sync(plain)
      assert.truthy(err)
      assert.same({ 0, 2 }, { s.checked, s.errors })
      local row = order_row(book, "n1")
      assert.equal(due, row.next_check)
      -- found while the last page travelled, then folded with the release that followed
      assert.equal(due, s.next_due)
      assert.is_nil(row.lease_owner)
      assert.equal(0, live_slices(book))
      assert.equal(0, row.checks)
    end)

    it("follows a refill to its end with refill.status events", function()
      place(client, "r1")
      for _ = 1, 3 do
        t = t + 60
        assert(book:sync(client))
      end
      assert.equal("final", order_row(book, "r1").state)
      local order = book:get("r1").order_id
      local res = assert(client:refill({ order }))
      assert.truthy(res[order].refill)
      local seen = {}
      for _ = 1, 3 do
        t = t + 60
        local s = assert(book:sync(client))
        assert.equal(1, s.refills_checked)
        assert.equal(1, s.refills_changed)
      end
      for _, e in ipairs(events_of(book, "refill.status")) do seen[#seen + 1] = e.new end
      assert.same({ "Pending", "In progress", "Completed" }, seen)
      local refill = db_of(book):row("SELECT state, status FROM refills WHERE ref = 'r1'")
      assert.same({ "final", "Completed" }, { refill.state, refill.status })
      t = t + 3600
      local s = assert(book:sync(client))
      assert.equal(0, s.refills_checked)
    end)

    it("declares a `sending` row older than in_doubt_after in doubt, once", function()
      local intent = { panel = client.url, ref = "d1", fields = { service = 1, link = "https://x.y/d", quantity = 100 } }
      assert(book:intent(intent)) -- and the process "died" before the answer
      t = t + 599
      local s = assert(book:sync(client))
      assert.equal(0, s.in_doubt)
      t = t + 2
      s = assert(book:sync(client))
      assert.equal(1, s.in_doubt)
      assert.equal("in_doubt", order_row(book, "d1").state)
      local history = book:history("d1")
      assert.equal("in_doubt", history[#history].what)
      s = assert(book:sync(client))
      assert.equal(0, s.in_doubt)
      assert.equal(1, #events_of(book, "order.in_doubt"))
      local _, err = client:add(intent.fields, { ref = "d1" })
      assert.equal("in_doubt", err.code)
    end)

    it("refuses a misspelled or mistyped option before anything is asked", function()
      assert.has_error(function() book:sync(client, { leas = 5 }) end,
        "smm.book: sync(client, opts): unknown option 'leas'")
      assert.has_error(function() book:sync(client, { lease = "5" }) end)
      assert.has_error(function() book:sync(client, { page = 0 }) end)
      assert.has_error(function() book:sync(client, { min_interval = 100, max_interval = 50 }) end)
      assert.equal(0, polls(sb).total)
    end)

    it("honours limit and stop", function()
      for i = 1, 5 do place(client, "l" .. i) end
      t = t + 60
      local s = assert(book:sync(client, { limit = 2, page = 1 }))
      assert.equal(2, s.checked)
      local pages = 0
      s = assert(book:sync(client, { page = 1, stop = function()
        pages = pages + 1
        return pages > 2
      end }))
      assert.equal(2, s.checked)
      s = assert(book:sync(client))
      assert.equal(1, s.checked)
      assert.equal(0, live_slices(book))
    end)

    if engine == "postgresql" then
      it("shares 5,000 orders between two worker processes: each polled once, none by both", function()
        book:close()
        book = assert(smm.book.open(url)) -- the real clock, as the workers have
        local slow = sandbox.start{ key = KEY, latency = 20, balance = "100000" }
        finally(function() slow:stop() end)
        local first, last = many_orders(slow, book, slow.url, 5000, os.time())
        local opts = { page = 100, lease = 60 }
        local a = start_worker(url, slow.url, opts)
        local b = start_worker(url, slow.url, opts)
        local ra, rb = a.result(), b.result()
        assert.is_nil(ra.error)
        assert.is_nil(rb.error)
        assert.equal(5000, ra.checked + rb.checked)
        assert.is_true(ra.checked > 0 and rb.checked > 0)
        local p = polls(slow)
        assert.same({ 5000, 5000, 1 }, { p.total, p.distinct, p.max })
        for id = first, last do assert.equal(1, p.by_id[string.format("%d", id)]) end
        local db = db_of(book)
        local left = db:row("SELECT " .. db:int("n") .. " FROM (SELECT count(*) AS n FROM orders " ..
          "WHERE checks <> 1) AS c")
        assert.equal(0, left.n)
        assert.equal(0, live_slices(book))
      end)

      it("finishes the work of a worker killed mid-round once its leases expire", function()
        book:close()
        book = assert(smm.book.open(url))
        local slow = sandbox.start{ key = KEY, latency = 50, balance = "100000" }
        finally(function() slow:stop() end)
        local first, last = many_orders(slow, book, slow.url, 5000, os.time())
        local a = start_worker(url, slow.url, { page = 100, lease = 2 }, 1)
        local deadline = os.time() + 30
        while polls(slow).total < 300 and os.time() < deadline do
          require("socket").sleep(0.05)
        end
        assert(os.execute("kill -KILL " .. a.pid))
        assert.is_nil(a.result()) -- killed: no summary
        local polled_by_a = polls(slow).total
        assert.is_true(polled_by_a >= 300 and polled_by_a < 5000)
        local db = db_of(book)
        local leased = db:row("SELECT " .. db:int("n") .. " FROM (SELECT count(*) AS n FROM orders " ..
          "WHERE lease_owner IS NOT NULL) AS c").n
        assert.is_true(leased > 0) -- the page it was asking about when it died
        require("socket").sleep(2.5)
        local b = start_worker(url, slow.url, { page = 500, lease = 60 }, 4)
        local rb = b.result()
        assert.is_nil(rb.error)
        local p = polls(slow)
        assert.equal(5000, p.distinct)
        -- asked twice at most: the killed worker's page in flight and the one before it, whose
        -- answers it had not written yet (they are written while the next page travels)
        assert.is_true(p.max <= 2)
        assert.is_true(p.total - 5000 <= 200)
        for id = first, last do assert.truthy(p.by_id[string.format("%d", id)]) end
        local left = db:row("SELECT " .. db:int("n") .. " FROM (SELECT count(*) AS n FROM orders " ..
          "WHERE checks = 0 OR next_check <= CAST(? AS BIGINT)) AS c", os.time() - 5)
        assert.equal(0, left.n)
        -- the dead worker's slices (expired) stay until forgotten; the live worker's are gone
        local live = db:row("SELECT " .. db:int("n") .. " FROM (SELECT count(*) AS n FROM sync_slices " ..
          "WHERE lease_until >= CAST(? AS BIGINT)) AS c", os.time())
        assert.equal(0, live.n)
      end)
    end
  end)
end
