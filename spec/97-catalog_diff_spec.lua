-- The watch's diff on its own (smm.router.watch): each kind of change, exact money (no float,
-- "0.9" is "0.90"), percentages by long division; the snapshot digest; and the catalog's
-- interface against a real sandbox: products, offers of a service gone, misuse refused.
local smm = require "smm"
local sandbox = require "helpers.sandbox"
local catalog = require "smm.router.catalog"
local watch = require "smm.router.watch"
local snapshot = require "smm.router.snapshot"

local function svc(id, fields)
  local s = { service = id, name = "Service " .. id, type = "Default", category = "Cat",
    rate = "1.00", min = 10, max = 1000, refill = false, cancel = false }
  for k, v in pairs(fields or {}) do s[k] = v end
  return s
end

local function kinds(changes)
  local out = {}
  for i, c in ipairs(changes) do out[i] = c.service .. " " .. c.type end
  return out
end

describe("watch.diff", function()
  it("tells each kind of change, by id then kind", function()
    local old = { svc(1), svc(2), svc(3, { rate = "0.90" }), svc(4), svc(5, { refill = true }) }
    local new = { svc(5, { refill = false, cancel = true, dripfeed = true }), svc(4, { min = 20, max = 2000 }),
      svc(3, { rate = "1.2", min = 5 }), svc(1), svc(6, { rate = "0.0125" }) }
    assert.are.same({ "2 service.removed", "3 service.rate", "3 service.bounds", "4 service.bounds",
      "5 service.flags", "6 service.added" }, kinds(watch.diff(old, new)))
    local ch = watch.diff(old, new)
    assert.are.same({ service = 3, service_name = "Service 3", old = "0.90", new = "1.2", change = "0.30",
      percent = "33.33", direction = "up" }, ch[2].data)
    assert.are.same({ service = 3, service_name = "Service 3", old_min = 10, new_min = 5, old_max = 1000,
      new_max = 1000 }, ch[3].data)
    assert.are.same({ "refill", "cancel", "dripfeed" }, ch[5].data.changed)
    assert.are.same({ true, false, false, true, false, true }, { ch[5].data.old_refill,
      ch[5].data.new_refill, ch[5].data.old_cancel, ch[5].data.new_cancel, ch[5].data.old_dripfeed,
      ch[5].data.new_dripfeed })
    assert.are.same({ service = 6, service_name = "Service 6", type = "Default", category = "Cat",
      rate = "0.0125", min = 10, max = 1000, refill = false, cancel = false }, ch[6].data)
    assert.are.equal("Service 2", ch[1].data.service_name)
    -- one bound alone is a change too
    assert.are.same({ "7 service.bounds" }, kinds(watch.diff({ svc(7) }, { svc(7, { max = 999 }) })))
    assert.are.same({ "7 service.bounds" }, kinds(watch.diff({ svc(7) }, { svc(7, { min = 9 }) })))
  end)

  it("compares money exactly: the same rate spelled twice is no change", function()
    assert.are.same({}, watch.diff({ svc(1, { rate = "0.9" }) }, { svc(1, { rate = "0.90000" }) }))
    assert.are.same({}, watch.diff({ svc(1) }, { svc(1, { name = "Renamed", category = "Other" }) }))
    -- 0.1 + 0.2 is 0.30000000000000004 in floats; not here
    local c = watch.diff({ svc(1, { rate = "0.1" }) }, { svc(1, { rate = "0.3" }) })[1].data
    assert.are.same({ "0.20", "200.00", "up" }, { c.change, c.percent, c.direction })
    c = watch.diff({ svc(1, { rate = "0.95" }) }, { svc(1, { rate = "0.90" }) })[1].data
    assert.are.same({ "-0.05", "-5.26", "down" }, { c.change, c.percent, c.direction })
    -- tiny and huge rates, rounding half away from zero
    c = watch.diff({ svc(1, { rate = "0.0000008" }) }, { svc(1, { rate = "0.0000009" }) })[1].data
    assert.are.same({ "0.0000001", "12.50" }, { c.change, c.percent })
    c = watch.diff({ svc(1, { rate = "123456789.12345" }) }, { svc(1, { rate = "123456789.12346" }) })[1].data
    assert.are.same({ "0.00001", "0.00" }, { c.change, c.percent })
    c = watch.diff({ svc(1, { rate = "3" }) }, { svc(1, { rate = "1" }) })[1].data
    assert.are.same({ "-2.00", "-66.67" }, { c.change, c.percent })
    -- from zero: no percentage
    c = watch.diff({ svc(1, { rate = "0" }) }, { svc(1, { rate = "0.50" }) })[1].data
    assert.are.same({ "0.50", "up" }, { c.change, c.direction })
    assert.is_nil(c.percent)
    for _, v in ipairs{ c.change, c.old, c.new } do assert.are.equal("string", type(v)) end
  end)

  it("divides exactly", function()
    assert.are.equal("0.67", watch.divide("2", "3", 2))
    assert.are.equal("0.13", watch.divide("1", "8", 2))
    assert.are.equal("-0.13", watch.divide("-1", "8", 2))
    assert.are.equal("17636684144620811.143", watch.divide("123456789012345678", "7", 3))
    assert.are.equal("0.00", watch.divide("0", "7", 2))
  end)

  it("refuses what is not two lists", function()
    assert.has_error(function() watch.diff(nil, {}) end,
      "smm.router.watch: diff(old_list, new_list): two lists expected")
  end)
end)

describe("catalog snapshots' digest", function()
  it("is the same for the same list in any order, and changes with any field", function()
    local a = { svc(2), svc(1, { rate = "0.90" }) }
    local text, digest = snapshot.encode(a)
    local _, again = snapshot.encode({ svc(1, { rate = "0.90" }), svc(2) })
    assert.are.equal(digest, again)
    assert.matches('^%[{"service":1,"name":"Service 1",', text)
    for _, change in ipairs{ { rate = "0.91" }, { min = 11 }, { refill = true }, { name = "x" },
        { dripfeed = false } } do
      local _, other = snapshot.encode({ svc(2), svc(1, (function()
        local f = { rate = "0.90" }
        for k, v in pairs(change) do f[k] = v end
        return f
      end)()) })
      assert.are_not.equal(digest, other)
    end
    -- a record off the usual shape (no category, an id as text) is stored all the same
    local odd = snapshot.encode({ svc(2), svc(1, { category = false, service = "x1" }) })
    local back = require("cjson").decode(odd)
    assert.are.same({ 2, "x1", false }, { back[1].service, back[2].service, back[2].category })
    assert.are.equal(snapshot.encode({ svc(2), svc(1) }),
      snapshot.encode({ svc(1), svc(2) })) -- ids out of order: sorted
    -- fields beyond the API's own are not kept
    local _, extra = snapshot.encode({ svc(2), svc(1, { rate = "0.90", desc = "anything" }) })
    assert.are.equal(digest, extra)
    -- the pure Lua digest (without luaossl) tells changes apart too
    local t1 = snapshot.encode(a)
    local t2 = snapshot.encode({ svc(2), svc(1, { rate = "0.91" }) })
    assert.are.equal(snapshot.plain_digest(t1), snapshot.plain_digest(t1))
    assert.are_not.equal(snapshot.plain_digest(t1), snapshot.plain_digest(t2))
    assert.matches("^poly64:%d+:%x+$", snapshot.plain_digest(t1))
  end)
end)

describe("catalog interface", function()
  local sb, client
  setup(function()
    sb = sandbox.start{ services = { svc(1, { rate = "0.90" }), svc(2) } }
    client = smm.new{ url = sb.url, key = "sandbox-key" }
  end)
  teardown(function() if sb then sb:stop() end end)
  before_each(function() sb:reset() end)

  it("lists products and their offers, a service gone as nil", function()
    local cat = catalog.new{ panels = { { name = "a", client = client } },
      products = { one = { a = 1 }, gone = { a = 99 } } }
    assert.are.same({ { product = "gone", services = { a = 99 } }, { product = "one", services = { a = 1 } } },
      cat:products())
    local offers = cat:offers("one")
    assert.are.equal(1, #offers)
    assert.are.equal("0.90", offers[1].service.rate)
    offers = cat:offers("gone")
    assert.are.equal(99, offers[1].service_id)
    assert.is_nil(offers[1].service)
    assert.is_nil(offers[1].err)
    -- without a book, lists are not snapshotted and watch is refused
    assert.is_truthy(cat:list("a", { refresh = true }))
    assert.has_error(function() cat:watch() end, "smm.router.catalog: watch(): the catalog has no book")
  end)

  it("refuses misuse, naming the field and the value", function()
    local panels = { { name = "a", client = client } }
    assert.has_error(function() catalog.new{ panels = panels, prodcuts = {} } end,
      "smm.router.catalog: new: unknown option 'prodcuts'")
    assert.has_error(function() catalog.new{ panels = panels, products = { p = { z = 1 } } } end,
      "smm.router.catalog: new: product 'p' names no panel 'z'")
    assert.has_error(function() catalog.new{ panels = panels, products = { p = { a = "17" } } } end,
      "smm.router.catalog: new: product 'p': panel 'a' service id must be a whole number >= 1, not 17")
    assert.has_error(function() catalog.new{ panels = { panels[1], panels[1] } } end,
      "smm.router.catalog: new: two panels named 'a'")
    -- a book whose connection is not in this process (nginx's thread pool): no snapshots
    local threaded = catalog.new{ panels = panels, book = {} }
    assert.is_truthy(threaded:list("a", { refresh = true }))
    assert.has_error(function() threaded:watch() end, "smm.router.catalog: watch(): snapshots need a"
      .. " book opened in this process (smm.book.open without thread_pool)")
    local cat = catalog.new{ panels = panels }
    assert.has_error(function() cat:offers("nope") end, "smm.router.catalog: no product named 'nope'")
    assert.has_error(function() cat:list("b") end, "smm.router.catalog: no panel named 'b'")
    assert.has_error(function() cat:refresh("b") end, "smm.router.catalog: no panel named 'b'")
    local list, info = assert(cat:refresh("a")) -- no book: the fetch alone
    assert.are.equal(2, #list)
    assert.is_false(info.changed)
    assert.has_error(function() cat:snapshot("a") end,
      "smm.router.catalog: snapshot(name): the catalog has no book")
  end)
end)
