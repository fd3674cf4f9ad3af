-- The catalog's snapshots and watch, against three real sandbox panels selling different
-- catalogues, on a real SQLite book and a real PostgreSQL book: a list is stored once per
-- change; the watch tells each kind of change as an event in the book's outbox, in the same
-- transaction as the snapshot; products losing their last panel or changing their cheapest
-- panel are told; the events reach the book's hooks like order events.
local smm = require "smm"
local cjson = require "cjson"
local sandbox = require "helpers.sandbox"
local books = require "helpers.book"
local catalog = require "smm.router.catalog"
local cli = require "helpers.cli"
local socket = require "socket"

local CHILD = books.root .. "/spec/helpers/catalog_watch_child.lua"
local WATCHERS = 6

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function eventually(seconds, check)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    if check() then return true end
    socket.sleep(0.02)
  end
  return check()
end

local A = {
  { service = 1, name = "Instagram Followers [Refill 30D]", type = "Default",
    category = "Instagram Followers", rate = "0.90", min = 50, max = 10000, refill = true,
    cancel = true },
  { service = 2, name = "Instagram Likes [No Refill]", type = "Default", category = "Instagram Likes",
    rate = "0.10", min = 10, max = 5000, refill = false, cancel = false },
  { service = 3, name = "YouTube Views", type = "Default", category = "YouTube", rate = "1.20",
    min = 100, max = 100000, refill = false, cancel = false },
}
local B = {
  { service = 17, name = "IG Followers - R30", type = "Default", category = "Instagram",
    rate = "0.85", min = 100, max = 20000, refill = true, cancel = false },
  { service = 18, name = "IG Likes | Instant", type = "Default", category = "Instagram",
    rate = "0.08", min = 20, max = 10000, refill = false, cancel = false },
}
local C = {
  { service = 300, name = "Insta Followers (30 days refill)", type = "Default",
    category = "IG | Followers", rate = "1.05", min = 20, max = 50000, refill = true, cancel = true },
}
local PRODUCTS = { ["ig-followers"] = { a = 1, b = 17, c = 300 }, ["ig-likes"] = { a = 2, b = 18 },
  ["yt-views"] = { a = 3 } }

local function count(book, sql, ...)
  local db = books.db(book)
  return tonumber(db:row("SELECT CAST(COUNT(*) AS TEXT) AS n FROM " .. sql, ...).n)
end

local function outbox(book)
  local db = books.db(book)
  local out = {}
  for _, row in ipairs(db:rows("SELECT " .. db:columns("id created_at") .. ", type, ref, panel, data"
      .. " FROM events ORDER BY id")) do
    row.data = cjson.decode(row.data)
    out[#out + 1] = row
  end
  return out
end

local function of_type(list, type_)
  local out = {}
  for _, e in ipairs(list) do if e.type == type_ then out[#out + 1] = e end end
  return out
end

for _, engine in ipairs(books.ENGINES) do
  describe("catalog snapshots and watch (" .. engine .. ")", function()
    local store, sbs, book, cat
    setup(function()
      store = books.store(engine)
      sbs = { a = sandbox.start{ services = A }, b = sandbox.start{ services = B },
        c = sandbox.start{ services = C } }
    end)
    teardown(function()
      for _, sb in pairs(sbs or {}) do sb:stop() end
      if store then store:close() end
    end)
    before_each(function()
      for _, sb in pairs(sbs) do sb:reset() end
      book = store:open()
      local panels = {}
      for _, name in ipairs{ "a", "b", "c" } do
        panels[#panels + 1] = { name = name, client = smm.new{ url = sbs[name].url,
          key = "sandbox-key" } }
      end
      cat = catalog.new{ panels = panels, products = PRODUCTS, book = book }
    end)
    after_each(function() if book then book:close() end end)

    it("stores a panel's list once per change, and only lists fetched anew", function()
      local list, info = assert(cat:refresh("a"))
      assert.are.equal(3, #list)
      assert.is_true(info.changed)
      assert.are.equal(0, info.events) -- the first snapshot is the baseline
      local first = info.snapshot
      assert.are.equal(1, count(book, "catalog_snapshots"))
      -- unchanged: fetched again, not stored again
      local _, again = assert(cat:refresh("a"))
      assert.is_false(again.changed)
      assert.are.equal(first, again.snapshot)
      assert.is_truthy(cat:list("a", { refresh = true }))
      assert.is_truthy(cat:list("a")) -- the client's cache: nothing fetched, nothing stored
      assert.are.equal(1, count(book, "catalog_snapshots"))
      assert.are.equal(3, sbs.a:stats().actions.services) -- two refreshes, one list refresh
      -- changed: stored, and told
      sbs.a:services{ service = 1, rate = "0.95" }
      local _, changed = assert(cat:refresh("a"))
      assert.is_true(changed.changed)
      assert.are.equal(1, changed.events)
      assert.is_true(changed.snapshot > first)
      assert.are.equal(2, count(book, "catalog_snapshots"))
      assert.are.equal(2, count(book, "catalog_snapshots WHERE panel = ?", "a"))
      local snap = assert(cat:snapshot("a"))
      assert.are.equal(changed.snapshot, snap.id)
      assert.are.equal("a", snap.panel)
      assert.is_number(snap.taken_at)
      assert.matches("^sha256:%x+$", snap.digest)
      assert.are.equal("0.95", snap.services[1].rate)
      assert.are.equal(1, snap.services[1].service)
      assert.are.equal(50, snap.services[1].min)
      assert.is_nil(cat:snapshot("b"))
    end)

    it("a list fetched by the client's cache expiring is snapshotted too, its changes told", function()
      assert(cat:refresh("b"))
      sbs.b:services{ service = 18, rate = "0.09" }
      -- the router quoting after the cache expired: offers -> list, a new table
      cat.panels.b.client.catalog:clear()
      local offers = cat:offers("ig-likes")
      assert.are.equal("0.09", offers[2].service.rate)
      assert.are.equal(2, count(book, "catalog_snapshots WHERE panel = ?", "b"))
      local rate = of_type(outbox(book), "service.rate")
      assert.are.equal(1, #rate)
      assert.are.equal(sbs.b.url, rate[1].panel) -- the panel's URL, as order and panel events
      assert.are.equal("b", rate[1].data.name)
      assert.are.same({ "0.08", "0.09", "0.01", "12.50", "up" }, { rate[1].data.old, rate[1].data.new,
        rate[1].data.change, rate[1].data.percent, rate[1].data.direction })
    end)

    it("watch tells every kind of change, with exact money, in the outbox", function()
      local first = assert(cat:watch())
      assert.are.equal(3, #first.panels)
      assert.are.equal(0, #first.events)
      for _, p in ipairs(first.panels) do
        assert.is_true(p.changed)
        assert.is_nil(p.err)
      end
      assert.are.equal(0, count(book, "events"))
      sbs.a:services{ service = 4, name = "TikTok Views", type = "Default", category = "TikTok",
        rate = "0.01", min = 100, max = 1000000 }               -- added
      sbs.a:services{ service = 3, remove = 1 }                  -- removed
      sbs.a:services{ service = 1, rate = "0.99" }               -- up 10% (b stays cheapest)
      sbs.b:services{ service = 18, min = 50, max = 20000 }      -- bounds
      sbs.c:services{ service = 300, refill = "false", cancel = "false", rate = "1.05000" } -- flags
      local w = assert(cat:watch())
      local types = {}
      for _, e in ipairs(w.events) do types[#types + 1] = e.panel and (e.panel .. ":" .. e.type) or e.type end
      assert.are.same({ "a:service.rate", "a:service.removed", "a:service.added", "b:service.bounds",
        "c:service.flags", "product.orphaned" }, types)
      local rows = outbox(book)
      assert.are.equal(6, #rows)
      local rate = of_type(rows, "service.rate")[1]
      assert.are.same({ service = 1, service_name = "Instagram Followers [Refill 30D]", old = "0.90",
        new = "0.99", change = "0.09", percent = "10.00", direction = "up", type = "service.rate",
        name = "a", panel = sbs.a.url, at = rate.data.at }, rate.data)
      assert.is_nil(rate.ref)
      assert.are.equal(sbs.a.url, rate.panel)
      local added = of_type(rows, "service.added")[1].data
      assert.are.same({ 4, "TikTok Views", "0.01", 100, 1000000, false }, { added.service, added.service_name,
        added.rate, added.min, added.max, added.refill })
      local removed = of_type(rows, "service.removed")[1].data
      assert.are.same({ 3, "YouTube Views", "1.20", "a" }, { removed.service, removed.service_name,
        removed.rate, removed.name })
      local bounds = of_type(rows, "service.bounds")[1].data
      assert.are.same({ 18, 20, 50, 10000, 20000 }, { bounds.service, bounds.old_min, bounds.new_min,
        bounds.old_max, bounds.new_max })
      local flags = of_type(rows, "service.flags")[1].data
      assert.are.same({ "refill", "cancel" }, flags.changed)
      assert.are.same({ true, false, true, false }, { flags.old_refill, flags.new_refill,
        flags.old_cancel, flags.new_cancel })
      -- 1.05000 is 1.05: no rate event for c
      assert.are.equal(1, #of_type(rows, "service.rate"))
      -- yt-views was sold by a alone
      local orphan = of_type(rows, "product.orphaned")[1]
      assert.are.same({ product = "yt-views", panels = { "a" }, services = { a = 3 } },
        { product = orphan.data.product, panels = orphan.data.panels, services = orphan.data.services })
      -- the snapshot and its events in one transaction: the same clock second
      local db = books.db(book)
      local snap = db:row("SELECT " .. db:columns("id taken_at") .. " FROM catalog_snapshots " ..
        "WHERE panel = 'a' ORDER BY id DESC LIMIT 1")
      assert.are.equal(snap.taken_at, rate.created_at)
      -- nothing changed since: nothing told, nothing stored
      local again = assert(cat:watch())
      assert.are.equal(0, #again.events)
      for _, p in ipairs(again.panels) do assert.is_false(p.changed) end
      assert.are.equal(6, count(book, "events"))
      assert.are.equal(6, count(book, "catalog_snapshots"))
    end)

    it("tells a product losing its last panel, and not before", function()
      assert(cat:watch())
      sbs.a:services{ service = 1, remove = 1 }
      local w = assert(cat:watch())
      assert.are.same({}, of_type(w.events, "product.orphaned"))
      sbs.b:services{ service = 17, remove = 1 }
      w = assert(cat:watch())
      assert.are.same({}, of_type(w.events, "product.orphaned"))
      sbs.c:services{ service = 300, remove = 1 }
      w = assert(cat:watch())
      local orphaned = of_type(w.events, "product.orphaned")
      assert.are.equal(1, #orphaned)
      assert.are.equal("ig-followers", orphaned[1].data.product)
      assert.are.same({ "c" }, orphaned[1].data.panels)
      assert.are.equal(1, #of_type(outbox(book), "product.orphaned"))
      -- gone is gone: no second event, whatever else changes
      assert.are.equal(0, #assert(cat:watch()).events)
      sbs.a:services{ service = 2, rate = "0.11" }
      w = assert(cat:watch())
      assert.are.equal(1, #w.events)
      assert.are.equal("service.rate", w.events[1].type)
      assert.are.equal(1, #of_type(outbox(book), "product.orphaned"))
    end)

    it("tells a product whose cheapest panel changed", function()
      assert(cat:watch())                          -- ig-followers: b 0.85 < a 0.90 < c 1.05
      sbs.b:services{ service = 17, rate = "1.00" } -- now a is the cheapest
      local w = assert(cat:watch())
      local cheapest = of_type(w.events, "product.cheapest")
      assert.are.equal(1, #cheapest)
      assert.are.same({ product = "ig-followers", old_panel = "b", old_rate = "0.85", new_panel = "a",
        new_rate = "0.90", service = 1, type = "product.cheapest", at = cheapest[1].data.at },
        cheapest[1].data)
      assert.is_nil(cheapest[1].panel)
      -- a rate change that leaves the order alone is no product event
      sbs.c:services{ service = 300, rate = "1.10" }
      w = assert(cat:watch())
      assert.are.same({}, of_type(w.events, "product.cheapest"))
      assert.are.equal(1, #of_type(w.events, "service.rate"))
    end)

    it("a panel that cannot be reached is reported, counted with its last snapshot", function()
      assert(cat:watch())
      sbs.a:fault("html503", { action = "services", times = 10 }) -- more than the retries
      sbs.b:services{ service = 17, rate = "0.95" } -- b now dearer than a's last known 0.90
      local w = assert(cat:watch())
      assert.are.equal("a", w.panels[1].name)
      assert.is_truthy(w.panels[1].err)
      assert.is_false(w.panels[1].changed)
      local cheapest = of_type(w.events, "product.cheapest")
      assert.are.equal(1, #cheapest)
      assert.are.equal("a", cheapest[1].data.new_panel)
      assert.are.equal(1, count(book, "catalog_snapshots WHERE panel = ?", "a"))
    end)

    it("stores nothing when the events cannot be written: snapshot and events are one", function()
      assert(cat:watch())
      sbs.a:services{ service = 1, rate = "0.99" }
      local db = books.db(book)
      db:run("ALTER TABLE events RENAME TO events_away")
      local res, err = cat:watch()
      assert.is_nil(res)
      assert.are.equal("book", err.kind)
      db:run("ALTER TABLE events_away RENAME TO events")
      assert.are.equal(3, count(book, "catalog_snapshots"))
      assert.are.equal(0, count(book, "events"))
      -- the change is told by the next watch
      local w = assert(cat:watch())
      assert.are.equal(1, #of_type(w.events, "service.rate"))
    end)

    it("tells a change once when " .. WATCHERS .. " processes watch the same book at once", function()
      assert(cat:watch())
      local url = store.url
      sbs.a:services{ service = 1, rate = "0.97" }
      -- the panel answers slowly: every watcher has fetched before any records
      sbs.a:config{ latency = 300 }
      local dir = store.dir .. "/watchers"
      os.execute("rm -rf " .. cli.quote(dir) .. " && mkdir -p " .. cli.quote(dir))
      local go = dir .. "/go"
      local commands = {}
      for i = 1, WATCHERS do
        commands[i] = books.child(CHILD, { url, sbs.a.url, go, dir .. "/ready" .. i }) ..
          " >" .. cli.quote(dir .. "/out" .. i) .. " 2>&1 &"
      end
      os.execute("sh -c " .. cli.quote(table.concat(commands, "\n") .. "\nwait\ntouch " ..
        cli.quote(dir .. "/done")) .. " >/dev/null 2>&1 &")
      assert.is_true(eventually(60, function()
        for i = 1, WATCHERS do if not exists(dir .. "/ready" .. i) then return false end end
        return true
      end), "the watchers did not start")
      cli.write_file(go, "go")
      assert.is_true(eventually(120, function() return exists(dir .. "/done") end), "the watchers did not end")
      local told, changed = 0, 0
      for i = 1, WATCHERS do
        local text = cli.read_file(dir .. "/out" .. i) or ""
        local n, c = text:match("events=(%d+) changed=(%a+)")
        assert(n, "watcher " .. i .. ": " .. text)
        told = told + tonumber(n)
        if c == "true" then changed = changed + 1 end
      end
      assert.are.equal(1, told)
      assert.are.equal(1, changed)
      assert.are.equal(1, #of_type(outbox(book), "service.rate"))
      assert.are.equal(2, count(book, "catalog_snapshots WHERE panel = ?", "a"))
    end)

    it("delivers the watch's events through the book's hooks, like order events", function()
      assert(cat:watch())
      sbs.b:services{ service = 18, rate = "0.07" }
      assert(cat:watch())
      local seen = {}
      local summary = assert(book:deliver({ { fn = function(event)
        seen[#seen + 1] = event -- the event as stored, its id first
        return true
      end } }))
      assert.are.equal(#seen, summary.delivered)
      local rate
      for _, e in ipairs(seen) do if e.type == "service.rate" then rate = e end end
      assert.are.same({ sbs.b.url, "b", 18, "0.08", "0.07", "-0.01", "-12.50", "down" }, { rate.panel,
        rate.name, rate.service, rate.old, rate.new, rate.change, rate.percent, rate.direction })
      assert.is_number(rate.id)
    end)
  end)
end
