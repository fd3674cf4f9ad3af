-- The example reseller front (examples/nginx) as shipped: Debian's nginx runs its nginx.conf
-- (templated by helpers/nginx: a free port, this checkout's paths, the background every second)
-- with a real SQLite book in its logs folder, in front of the sandbox panel. Orders go through
-- the book under a ref; the endpoints spend money, so without the operator's token they refuse;
-- the book's events come back signed to the front's own webhook endpoint.
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local books = require "helpers.book"
local socket = require "socket"
local cjson = require "cjson.safe"
local hooks = require "smm.book.hooks"
local smm = require "smm"

local SECRET = "whsec-spec25-5e7d"

local available, missing = nginx.available()

describe("the example reseller front in nginx #nginx #book #examples", function()
  if not available then
    it("needs nginx and its lua module", function()
      error(missing .. " (this spec installs nothing; CI installs them)")
    end)
    return
  end

  local sb, ng, closed

  local function environment()
    return { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY, SMM_WEBHOOK_SECRET = SECRET }
  end

  setup(function()
    sb = env.sandbox()
    ng = nginx.start{ env = environment(), replace = { { "every = 10,", "every = 1," } } }
    -- as shipped: the operator has set no token (an empty variable is no token either)
    -- and no webhook secret
    closed = nginx.start{ env = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY }, token = "" }
  end)

  teardown(function()
    for _, n in ipairs{ ng, closed } do
      local log = n:error_log()
      n:stop()
      assert.is_nil(log:find(env.KEY, 1, true), "the key is in nginx's error log")
    end
    if sb then sb:stop() end
  end)

  local order = { service = 1, link = "https://x.test/front", quantity = 100 }
  local function with_ref(ref)
    local f = { ref = ref }
    for k, v in pairs(order) do f[k] = v end
    return f
  end

  local function refused(want, status, json, raw)
    assert.equal(want, status, raw)
    assert.is_table(json, raw)
    assert.equal("forbidden", json.error.kind, raw)
  end

  local function book_path(n) return n.dir .. "/logs/orders.db" end

  -- What the sandbox charged for an order, as the panel's exact decimal text.
  local function panel_charge(id)
    for _, o in ipairs(sb:orders()) do
      if o.id == id then return o.charge end
    end
    error("the sandbox has no order " .. tostring(id))
  end

  describe("the token", function()
    it("as shipped (no token set) every endpoint refuses, whatever the request carries", function()
      refused(403, closed:post("/order", with_ref("closed-1")))
      refused(403, closed:post("/order", with_ref("closed-2"), { token = "" }))         -- "Bearer "
      refused(403, closed:post("/order", with_ref("closed-3"), { token = nginx.TOKEN }))
      refused(403, closed:get("/order/closed-1"))
      refused(403, closed:get("/balance"))
      refused(403, closed:get("/events"))
      refused(403, closed:get("/no/such/endpoint"))
      assert.equal(0, env.count(sb))
    end)

    it("with a token set, a request without it or with another is refused and nothing is sent", function()
      local before = env.count(sb)
      refused(403, ng:post("/order", with_ref("anon-1"), { token = false }))
      refused(403, ng:post("/order", with_ref("anon-2"), { token = "wrong" }))
      refused(403, ng:post("/order", with_ref("anon-3"), { token = nginx.TOKEN .. "x" }))
      refused(403, ng:post("/order", with_ref("anon-4"), { headers = { authorization = nginx.TOKEN } })) -- no "Bearer "
      refused(403, ng:get("/order/anon-1", { token = false }))
      refused(403, ng:get("/balance", { token = "wrong" }))
      refused(403, ng:get("/events", { token = false }))
      assert.equal(before, env.count(sb))
      -- and none of them is in the book
      local status = ng:get("/order/anon-1")
      assert.equal(404, status)
    end)
  end)

  describe("orders through the book", function()
    it("POST /order with a ref places it once; the same ref again is the recorded order", function()
      local adds = env.count(sb, "add")
      local status, res, raw = ng:post("/order", with_ref("shop-1"))
      assert.equal(200, status, raw)
      assert.truthy(raw:find('"order":%d+[,}]'), raw)
      assert.equal("shop-1", res.ref, raw)
      assert.equal(adds + 1, env.count(sb, "add"))

      local status2, again, raw2 = ng:post("/order", with_ref("shop-1"))
      assert.equal(200, status2, raw2)
      assert.equal(res.order, again.order, raw2)
      assert.is_true(again.recorded, raw2)
      assert.equal(adds + 1, env.count(sb, "add"))

      -- the same ref for another order: refused by the book, nothing sent
      local other = with_ref("shop-1")
      other.quantity = 200
      local status3, conflict, raw3 = ng:post("/order", other)
      assert.equal(409, status3, raw3)
      assert.equal("ref_conflict", conflict.error.code, raw3)
      assert.equal(adds + 1, env.count(sb, "add"))

      -- without a ref: refused before anything is sent
      local status4, none, raw4 = ng:post("/order", order)
      assert.equal(400, status4, raw4)
      assert.equal("ref", none.error.field)
      assert.equal(adds + 1, env.count(sb, "add"))
    end)

    it("GET /order/REF is the book's order as JSON: ids integers, money exact strings, no key", function()
      assert.equal(200, (ng:get("/services"))) -- the client's service list: add records a quote
      local _, placed = ng:post("/order", with_ref("shop-2"))
      local status, row, raw = ng:get("/order/shop-2")
      assert.equal(200, status, raw)
      assert.equal("shop-2", row.ref)
      assert.equal("placed", row.state, raw)
      assert.equal(placed.order, row.order)
      assert.truthy(raw:find('"order":' .. string.format("%d", placed.order) .. "[,}]"), raw)
      assert.truthy(raw:find('"quantity":100[,}]'), raw)
      assert.truthy(raw:find('"service":1[,}]'), raw)
      -- money: the quote (the service list was at hand) is the panel's exact price
      assert.equal(panel_charge(placed.order), row.quote)
      assert.truthy(raw:find('"quote":"[%d.]+"'), raw)
      assert.is_nil(row.charge, raw) -- known once the background sync asks the panel
      assert.is_nil(raw:find(env.KEY, 1, true), "the key is in the answer")
      assert.is_nil(row.fields)
      assert.is_nil(row.lease_owner)

      local missing_status, missing_json = ng:get("/order/no-such-ref")
      assert.equal(404, missing_status)
      assert.equal("ref", missing_json.error.field)

      -- a ref with characters that need escaping in a path
      local status_odd, odd, raw_odd = ng:post("/order", with_ref("shop 3/ü"))
      assert.equal(200, status_odd, raw_odd)
      local _, row_odd, raw_row = ng:get("/order/shop%203%2F%C3%BC")
      assert.equal(odd.order, row_odd.order, raw_row)

      -- the book's file holds no key
      local f = assert(io.open(book_path(ng), "rb"))
      local bytes = f:read("*a")
      f:close()
      assert.is_nil(bytes:find(env.KEY, 1, true))
    end)
  end)

  describe("the webhook endpoint", function()
    local function event(id, type_)
      return cjson.encode({ id = id, type = type_ or "order.placed", ref = "hook-" .. id, at = "2026-05-01T12:00:00Z" })
    end

    local function received()
      local status, json, raw = ng:get("/events")
      assert.equal(200, status, raw)
      return json.events
    end

    local function has(events, id)
      local n = 0
      for _, e in ipairs(events) do if e.id == id then n = n + 1 end end
      return n
    end

    it("accepts a correctly signed event (no token needed), once per id", function()
      local body = event(900001)
      local sig = { ["x-smm-signature"] = hooks.signature(SECRET, body) }
      local status, json, raw = ng:request("POST", "/smm-events", nil, { body = body, token = false, headers = sig })
      assert.equal(200, status, raw)
      assert.equal(900001, json.received)
      assert.equal(1, has(received(), 900001))
      -- delivered again (at least once): acknowledged, kept once
      status = ng:request("POST", "/smm-events", nil, { body = body, token = false, headers = sig })
      assert.equal(200, status)
      assert.equal(1, has(received(), 900001))
    end)

    it("rejects a bad signature, an altered body and an unsigned event", function()
      local body = event(900002)
      local function post(headers, b)
        return ng:request("POST", "/smm-events", nil, { body = b or body, headers = headers })
      end
      refused(401, post({ ["x-smm-signature"] = hooks.signature("another-secret", body) }))
      refused(401, post({ ["x-smm-signature"] = hooks.signature(SECRET, body) }, event(900003)))
      local good = hooks.signature(SECRET, body)
      refused(401, post({ ["x-smm-signature"] = good:sub(1, -2) }))                 -- one digit short
      refused(401, post({ ["x-smm-signature"] = good:upper() }))
      refused(401, post({}))                                                       -- unsigned
      local events = received()
      assert.equal(0, has(events, 900002))
      assert.equal(0, has(events, 900003))
    end)

    it("takes nothing while no webhook secret is set", function()
      local body = event(900004)
      refused(403, closed:request("POST", "/smm-events", nil, { body = body, headers = {
        ["x-smm-signature"] = hooks.signature("", body) } }))
    end)
  end)

  it("the background sync follows an order to its end; its signed order.final reaches the front", function()
    local _, placed, raw = ng:post("/order", with_ref("shop-bg"))
    assert.is_number(placed.order, raw)
    sb:advance(20) -- the panel completes it
    -- an hour passes for the book: the order is due (its first check is a minute after placing)
    local direct = assert(smm.book.open("sqlite:" .. book_path(ng)))
    assert.equal(1, assert(books.db(direct):changes("UPDATE orders SET next_check = 0 WHERE ref = 'shop-bg'")))
    direct:close()
    local row
    for _ = 1, 100 do
      row = select(2, ng:get("/order/shop-bg"))
      if row and row.state == "final" then break end
      socket.sleep(0.1)
    end
    assert.equal("final", row.state, cjson.encode(row))
    assert.equal("Completed", row.status)
    assert.equal(panel_charge(placed.order), row.charge)
    assert.equal("USD", row.currency)

    local final
    for _ = 1, 50 do
      for _, e in ipairs(select(2, ng:get("/events")).events) do
        if e.type == "order.final" and e.ref == "shop-bg" then final = e end
      end
      if final then break end
      socket.sleep(0.1)
    end
    assert.is_table(final, "no order.final event for shop-bg reached the front")
    assert.equal(placed.order, final.order)
    assert.equal("Completed", final.status)
    assert.equal(panel_charge(placed.order), final.charge)
  end)
end)
