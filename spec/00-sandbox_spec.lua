-- The sandbox panel checked on its own, with luasocket (an independent client): shapes,
-- exact money, life cycle, errors, faults, keep-alive, concurrency.
local sandbox = require "helpers.sandbox"
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local KEY = "test-key"

local function form(fields)
  local parts = {}
  for k, v in pairs(fields) do
    parts[#parts + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(c)
      return string.format("%%%02X", c:byte())
    end)
  end
  table.sort(parts)
  return table.concat(parts, "&")
end

-- POST an API request; returns raw body, HTTP code, headers
local function post(sb, fields, url)
  local body = form(fields)
  local out = {}
  local _, code, headers = http.request{
    url = url or sb.url, method = "POST",
    headers = { ["content-type"] = "application/x-www-form-urlencoded",
                ["content-length"] = #body, ["user-agent"] = "sandbox-spec/1" },
    source = ltn12.source.string(body), sink = ltn12.sink.table(out),
    redirect = false,
  }
  return table.concat(out), code, headers
end

local function api(sb, fields)
  fields.key = fields.key or KEY
  local body, code = post(sb, fields)
  assert(code == 200, "HTTP " .. tostring(code) .. ": " .. body)
  return cjson.decode(body), body
end

local function port_of(sb) return tonumber(sb.base:match(":(%d+)$")) end

-- raw HTTP request bytes
local function raw_request(fields, extra)
  local body = form(fields)
  return "POST /api/v2 HTTP/1.1\r\nHost: 127.0.0.1\r\n" .. (extra or "") ..
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " .. #body ..
    "\r\n\r\n" .. body
end

-- read one HTTP answer from a blocking luasocket TCP socket
local function read_answer(c)
  local status = c:receive("*l")
  if not status then return nil end
  local headers = {}
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    local n, v = l:match("^([^:]+):%s*(.*)$")
    headers[n:lower()] = v
  end
  local len = tonumber(headers["content-length"])
  local body = len > 0 and assert(c:receive(len)) or ""
  return tonumber(status:match("^HTTP/1%.1 (%d+)")), headers, body
end

describe("sandbox panel", function()
  local sb

  setup(function() sb = sandbox.start{ key = KEY } end)
  teardown(function() sb:stop() end)
  before_each(function() sb:reset() end)

  describe("actions", function()
    it("balance", function()
      local ans, raw = api(sb, { action = "balance" })
      assert.equal('{"balance":"100.00","currency":"USD"}', raw)
      assert.equal("USD", ans.currency)
    end)

    it("services lists every type with decimal-string rates", function()
      local list, raw = api(sb, { action = "services" })
      assert.truthy(#list >= 7)
      local types = {}
      for _, s in ipairs(list) do
        types[s.type] = true
        assert.is_string(s.rate)
        assert.truthy(s.rate:match("^%d+%.?%d*$"))
        assert.is_string(s.name); assert.is_string(s.category)
        assert.is_boolean(s.refill); assert.is_boolean(s.cancel)
        if s.type == "Default" then assert.is_boolean(s.dripfeed) end
      end
      for _, t in ipairs{ "Default", "Package", "Custom Comments", "Subscriptions", "Poll",
        "Mentions User Followers", "Invites from Groups" } do
        assert.truthy(types[t], t)
      end
      assert.truthy(raw:find('"service":1,"name":', 1, true))
      assert.truthy(raw:find('"rate":"0.90","min":"50","max":"10000"', 1, true))
      assert.truthy(raw:find('"rate":"1.2345"', 1, true))
      assert.truthy(raw:find('"rate":"0.0125"', 1, true))
    end)

    it("add charges rate x quantity / 1000 exactly", function()
      local ans, raw = api(sb, { action = "add", service = 1, link = "https://instagram.com/a",
        quantity = 100 })
      assert.equal('{"order":1}', raw)
      assert.equal(1, ans.order)
      assert.equal("99.91", api(sb, { action = "balance" }).balance)
      api(sb, { action = "add", service = 3, link = "https://instagram.com/p/1", quantity = 157 })
      assert.equal("99.85505", api(sb, { action = "balance" }).balance)
      local st = api(sb, { action = "status", order = 2 })
      assert.equal("0.05495", st.charge)
      assert.equal("0.09", api(sb, { action = "status", order = 1 }).charge)
    end)

    it("every kind of add", function()
      local function add(f)
        f.action = "add"
        local a, raw = api(sb, f)
        assert.is_number(a.order, raw)
        return tonumber(string.format("%d", a.order)) -- cjson decodes numbers as floats
      end
      local drip = add{ service = 1, link = "https://x.com/a", quantity = 100, runs = 3, interval = 10 }
      local text = "nice\r\ngreat\n\nwow\n4\n5\n6\n7\n8\n9\n10\n"
      local comments = add{ service = 2, link = "https://x.com/p", comments = text }
      add{ service = 6, link = "https://x.com/pkg" }
      add{ service = 7, username = "bob", min = 100, max = 200, posts = 5, delay = 30,
        expiry = "31/12/2030" }
      add{ service = 8, link = "https://x.com/p", quantity = 100, username = "alice" }
      add{ service = 10, link = "https://x.com/poll", quantity = 100, answer_number = 2 }
      add{ service = 11, link = "https://t.me/x", groups = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk" }
      local orders = sb:orders()
      assert.equal(7, #orders)
      assert.equal("0.27", orders[1].charge)        -- 0.90 x 100 x 3 runs / 1000
      assert.equal("0.08", orders[2].charge)        -- 8 x 10 non-empty lines / 1000
      assert.equal("12.50", orders[3].charge)       -- a package's rate is its price
      assert.equal("0.40", orders[4].charge)        -- 0.40 x 200 x 5 posts / 1000
      assert.equal("0.24", orders[5].charge)
      assert.equal("0.18", orders[6].charge)
      assert.equal("0.05225", orders[7].charge)     -- 4.75 x 11 groups / 1000
      assert.equal("alice", orders[5].username)
      assert.equal("2", orders[6].answer_number)
      assert.equal(text, orders[2].comments)
      assert.equal(comments, orders[2].id)
      assert.equal("86.27775", api(sb, { action = "balance" }).balance)
      local st = api(sb, { action = "status", order = drip })
      assert.equal("3", st.runs)
      assert.is_table(st.orders)
    end)

    it("life cycle: Pending, In progress, Completed in `steps` status queries", function()
      api(sb, { action = "add", service = 1, link = "https://x.com/a", quantity = 100 })
      local a = api(sb, { action = "status", order = 1 })
      assert.same({ charge = "0.09", start_count = "0", status = "Pending", remains = "100",
        currency = "USD" }, a)
      local b = api(sb, { action = "status", order = 1 })
      assert.equal("In progress", b.status)
      assert.truthy(tonumber(b.start_count) > 0)
      assert.truthy(tonumber(b.remains) < 100)
      local c = api(sb, { action = "status", order = 1 })
      assert.equal("Completed", c.status)
      assert.equal("0", c.remains)
      assert.equal(b.start_count, c.start_count)
    end)

    it("partial links end Partial with a refund", function()
      api(sb, { action = "add", service = 1, link = "https://x.com/partial", quantity = 1000 })
      assert.equal("99.10", api(sb, { action = "balance" }).balance)
      sb:advance(5)
      local st = api(sb, { action = "status", order = 1 })
      assert.equal("Partial", st.status)
      assert.equal("100", st.remains)
      assert.equal("0.81", st.charge)
      assert.equal("99.19", api(sb, { action = "balance" }).balance)
    end)

    it("status of many orders, with error entries", function()
      api(sb, { action = "add", service = 1, link = "https://x.com/a", quantity = 100 })
      local m, raw = api(sb, { action = "status", orders = "1, 10,abc" })
      assert.equal("Pending", m["1"].status)
      assert.same({ error = "Incorrect order ID" }, m["10"])
      assert.same({ error = "Incorrect order ID" }, m["abc"])
      assert.truthy(raw:find('"10":{"error":"Incorrect order ID"}', 1, true))
    end)

    it("more than 100 ids is an incorrect request", function()
      local ids = {}
      for i = 1, 101 do ids[i] = i end
      local list = table.concat(ids, ",")
      for _, f in ipairs{ { action = "status", orders = list }, { action = "refill", orders = list },
        { action = "cancel", orders = list }, { action = "refill_status", refills = list } } do
        assert.same({ error = "Incorrect request" }, api(sb, f))
      end
      ids[101] = nil
      local m = api(sb, { action = "status", orders = table.concat(ids, ",") })
      assert.same({ error = "Incorrect order ID" }, m["100"])
    end)

    it("refill and refill_status", function()
      api(sb, { action = "add", service = 1, link = "https://x.com/a", quantity = 100 })
      api(sb, { action = "add", service = 3, link = "https://x.com/b", quantity = 100 })
      api(sb, { action = "add", service = 1, link = "https://x.com/reject", quantity = 100 })
      local _, raw = api(sb, { action = "refill", order = 1 })
      assert.equal('{"error":"Refill is not available for this order"}', raw)
      sb:advance(10)
      _, raw = api(sb, { action = "refill", order = 1 })
      assert.equal('{"refill":"1"}', raw)
      _, raw = api(sb, { action = "refill", orders = "1,2,3,9" })
      assert.equal('[{"order":1,"refill":2},{"order":2,"refill":{"error":"Service does not support refill"}},'
        .. '{"order":3,"refill":3},{"order":9,"refill":{"error":"Incorrect order ID"}}]', raw)
      assert.same({ status = "Pending" }, api(sb, { action = "refill_status", refill = 1 }))
      assert.same({ status = "In progress" }, api(sb, { action = "refill_status", refill = 1 }))
      assert.same({ status = "Completed" }, api(sb, { action = "refill_status", refill = 1 }))
      sb:advance(5)
      _, raw = api(sb, { action = "refill_status", refills = "2,3,7" })
      assert.equal('[{"refill":2,"status":"Completed"},{"refill":3,"status":"Rejected"},'
        .. '{"refill":7,"status":{"error":"Refill not found"}}]', raw)
      assert.same({ error = "Refill not found" }, api(sb, { action = "refill_status", refill = 99 }))
    end)

    it("cancel refunds the undelivered part", function()
      api(sb, { action = "add", service = 1, link = "https://x.com/a", quantity = 1000 })
      api(sb, { action = "add", service = 3, link = "https://x.com/b", quantity = 1000 })
      assert.equal("98.75", api(sb, { action = "balance" }).balance)
      local _, raw = api(sb, { action = "cancel", orders = "1,2,5" })
      assert.equal('[{"order":1,"cancel":1},{"order":2,"cancel":{"error":"Service does not support cancel"}},'
        .. '{"order":5,"cancel":{"error":"Incorrect order ID"}}]', raw)
      assert.equal("99.65", api(sb, { action = "balance" }).balance)
      local st = api(sb, { action = "status", order = 1 })
      assert.equal("Canceled", st.status)
      assert.equal("0.00", st.charge)
      -- in progress: half delivered, half refunded
      api(sb, { action = "add", service = 1, link = "https://x.com/c", quantity = 1000 })
      sb:advance(1)
      api(sb, { action = "cancel", orders = "3" })
      assert.equal("0.45", api(sb, { action = "status", order = 3 }).charge)
      assert.equal("99.20", api(sb, { action = "balance" }).balance)
    end)
  end)

  describe("errors", function()
    it("keys, actions, fields, bounds, funds", function()
      local function e(f) return api(sb, f).error end
      assert.equal("Invalid API key", e{ key = "wrong", action = "balance" })
      assert.equal("Invalid API key", post(sb, { action = "balance" }):match('"error":"(.-)"'))
      assert.equal("Incorrect request", e{ action = "nope" })
      assert.equal("Incorrect request", e{})
      assert.equal("Incorrect service ID", e{ action = "add", service = 999, link = "https://x.com/a",
        quantity = 100 })
      assert.equal("Incorrect request", e{ action = "add", service = 1, link = "https://x.com/a" })
      assert.equal("Incorrect request", e{ action = "add", service = 8, link = "https://x.com/a",
        quantity = 100 })
      assert.equal("Incorrect link", e{ action = "add", service = 1, link = "x.com/a", quantity = 100 })
      assert.equal("Quantity less than minimal 50", e{ action = "add", service = 1,
        link = "https://x.com/a", quantity = 10 })
      assert.equal("Quantity more than maximum 10000", e{ action = "add", service = 1,
        link = "https://x.com/a", quantity = 10001 })
      assert.equal("Not enough funds on balance", e{ action = "add", service = 4,
        link = "https://x.com/a", quantity = 1000000 })
      assert.equal("Incorrect order ID", e{ action = "status", order = 42 })
      assert.equal(0, sb:stats().orders)
      assert.equal("100.00", api(sb, { action = "balance" }).balance)
    end)

    it("error_style=keys, error_status, dup_link", function()
      sb:config{ error_style = "keys", dup_link = 1 }
      assert.equal("neworder.error.min_quantity", api(sb, { action = "add", service = 1,
        link = "https://x.com/a", quantity = 1 }).error)
      assert.equal("neworder.error.incorrect_service_id", api(sb, { action = "add", service = 0,
        link = "https://x.com/a", quantity = 100 }).error)
      api(sb, { action = "add", service = 1, link = "https://x.com/a", quantity = 100 })
      assert.equal("neworder.error.link_duplicate", api(sb, { action = "add", service = 1,
        link = "https://x.com/a", quantity = 100 }).error)
      sb:config{ error_style = "text", error_status = 400 }
      local body, code = post(sb, { key = KEY, action = "add", service = 1, link = "https://x.com/a",
        quantity = 100 })
      assert.equal(400, code)
      assert.equal('{"error":"You have active order with this link. '
        .. 'Please wait until order being completed."}', body)
    end)

    it("invisible_calls and status styles", function()
      sb:config{ invisible_calls = 2, status_style = "british" }
      api(sb, { action = "add", service = 1, link = "https://x.com/a", quantity = 100 })
      assert.equal("Incorrect order ID", api(sb, { action = "status", order = 1 }).error)
      assert.equal("Incorrect order ID", api(sb, { action = "status", order = 1 }).error)
      assert.equal("Pending", api(sb, { action = "status", order = 1 }).status)
      api(sb, { action = "cancel", orders = "1" })
      assert.equal("Cancelled", api(sb, { action = "status", order = 1 }).status)
      sb:config{ status_style = "lower" }
      assert.equal("canceled", api(sb, { action = "status", order = 1 }).status)
    end)

    it("unknown paths answer 404, admin is not counted", function()
      local _, code = post(sb, { key = KEY, action = "balance" }, sb.base .. "/api/v1")
      assert.equal(404, code)
      local st = sb:stats()
      assert.equal(0, st.requests)
      assert.equal(0, st.connections)
    end)
  end)

  describe("numbers styles", function()
    it("number and string", function()
      sb:config{ numbers = "number" }
      local _, raw = api(sb, { action = "balance" })
      assert.equal('{"balance":100.00,"currency":"USD"}', raw)
      _, raw = api(sb, { action = "services" })
      assert.truthy(raw:find('"service":1,', 1, true))
      assert.truthy(raw:find('"rate":0.90,"min":50,"max":10000', 1, true))
      api(sb, { action = "add", service = 3, link = "https://x.com/a", quantity = 157 })
      _, raw = api(sb, { action = "status", order = 1 })
      assert.equal('{"charge":0.05495,"start_count":0,"status":"Pending","remains":157,'
        .. '"currency":"USD"}', raw)
      sb:config{ numbers = "string" }
      _, raw = api(sb, { action = "services" })
      assert.truthy(raw:find('"service":"1",', 1, true))
      _, raw = api(sb, { action = "add", service = 3, link = "https://x.com/b", quantity = 100 })
      assert.equal('{"order":"2"}', raw)
    end)

    it("services_count generates a catalogue", function()
      sb:config{ services_count = 10000 }
      local list = api(sb, { action = "services" })
      assert.equal(10000, #list)
      assert.equal(10000, list[10000].service)
    end)
  end)

  describe("admin", function()
    it("requests log hides the key", function()
      api(sb, { action = "balance" })
      api(sb, { key = "bad", action = "services" })
      local log = sb:requests()
      assert.equal(2, #log)
      assert.same({ method = "POST", action = "balance", fields = { key = "***", action = "balance" },
        key_ok = true, content_type = "application/x-www-form-urlencoded",
        user_agent = "sandbox-spec/1" }, log[1])
      assert.is_false(log[2].key_ok)
      local st = sb:stats()
      assert.equal(2, st.requests)
      assert.equal(1, st.actions.balance)
      assert.equal(1, st.actions.services)
    end)

    it("accepts GET with a query string", function()
      local out = {}
      local _, code = http.request{ url = sb.url .. "?key=" .. KEY .. "&action=balance",
        sink = ltn12.sink.table(out) }
      assert.equal(200, code)
      assert.equal('{"balance":"100.00","currency":"USD"}', table.concat(out))
    end)

    it("reset restores balance and clears orders", function()
      api(sb, { action = "add", service = 1, link = "https://x.com/a", quantity = 100 })
      sb:config{ balance = "5.5" }
      assert.equal("5.50", api(sb, { action = "balance" }).balance)
      sb:reset()
      assert.equal("100.00", api(sb, { action = "balance" }).balance)
      assert.equal(0, #sb:orders())
      assert.equal(0, sb:stats().orders)
    end)
  end)

  describe("faults", function()
    it("reset_after_read performs the action, then resets", function()
      sb:fault("reset_after_read", { action = "add" })
      local body, code = post(sb, { key = KEY, action = "add", service = 1, link = "https://x.com/a",
        quantity = 100 })
      assert.is_not.equal(200, code)
      assert.equal("", body)
      assert.equal(1, sb:stats().orders)
      assert.equal("99.91", api(sb, { action = "balance" }).balance)
      -- consumed: the next add works normally
      assert.equal(2, api(sb, { action = "add", service = 1, link = "https://x.com/b",
        quantity = 100 }).order)
    end)

    it("reset_before_read does not perform the action", function()
      sb:fault("reset_before_read", { action = "add" })
      local _, code = post(sb, { key = KEY, action = "add", service = 1, link = "https://x.com/a",
        quantity = 100 })
      assert.is_not.equal(200, code)
      assert.equal(0, sb:stats().orders)
    end)

    it("faults only fire on their action, in order, `times` times", function()
      sb:fault("error500", { action = "status", times = 2 })
      sb:fault("html503")
      -- balance skips the status-only fault and consumes html503
      local _, code = post(sb, { key = KEY, action = "balance" })
      assert.equal(503, code)
      _, code = post(sb, { key = KEY, action = "status", order = 1 })
      assert.equal(500, code)
      local body
      body, code = post(sb, { key = KEY, action = "status", order = 1 })
      assert.equal(500, code)
      assert.equal('{"error":"Internal error"}', body)
      _, code = post(sb, { key = KEY, action = "status", order = 1 })
      assert.equal(200, code)
      assert.equal("100.00", api(sb, { action = "balance" }).balance)
    end)

    it("html503 and html200", function()
      sb:fault("html503")
      local body, code, headers = post(sb, { key = KEY, action = "balance" })
      assert.equal(503, code)
      assert.truthy(body:find("Service Unavailable", 1, true))
      assert.truthy(headers["content-type"]:find("text/html", 1, true))
      sb:fault("html200")
      body, code = post(sb, { key = KEY, action = "balance" })
      assert.equal(200, code)
      assert.truthy(body:find("<html", 1, true))
    end)

    it("rate429 sends Retry-After", function()
      sb:fault("rate429", { retry_after = 7 })
      local body, code, headers = post(sb, { key = KEY, action = "balance" })
      assert.equal(429, code)
      assert.equal("7", headers["retry-after"])
      assert.is_string(cjson.decode(body).error)
    end)

    it("slow answers late but performs", function()
      sb:fault("slow", { delay = 300, action = "add" })
      local t = socket.gettime()
      local ans = api(sb, { action = "add", service = 1, link = "https://x.com/a", quantity = 100 })
      assert.truthy(socket.gettime() - t >= 0.29)
      assert.equal(1, ans.order)
    end)

    it("truncated, empty, invalid_utf8, big, gzip, redirect, close", function()
      sb:fault("truncated")
      local body, code = post(sb, { key = KEY, action = "balance" })
      assert.equal(200, code)
      assert.is_nil((require("cjson.safe").decode(body)))
      -- (the JSON is cut mid-way: a prefix of the real answer)
      assert.truthy(('{"balance":"100.00","currency":"USD"}'):sub(1, #body) == body)
      sb:fault("empty")
      body = post(sb, { key = KEY, action = "balance" })
      assert.equal("", body)
      sb:fault("invalid_utf8")
      body = post(sb, { key = KEY, action = "balance" })
      assert.truthy(body:find("\255", 1, true))
      sb:fault("big", { size = 100000 })
      body = post(sb, { key = KEY, action = "balance" })
      assert.equal(100000, #body)
      assert.equal("100.00", cjson.decode(body).balance)
      sb:fault("gzip")
      local headers
      body, code, headers = post(sb, { key = KEY, action = "balance" })
      assert.equal(200, code)
      assert.equal("gzip", headers["content-encoding"])
      assert.equal("\31\139", body:sub(1, 2))
      assert.truthy(body:find('{"balance":"100.00","currency":"USD"}', 1, true)) -- stored blocks
      sb:fault("redirect")
      body, code, headers = post(sb, { key = KEY, action = "balance" })
      assert.equal(302, code)
      assert.equal("", body)
      assert.equal("http://127.0.0.2:" .. port_of(sb) .. "/api/v2", headers["location"])
      sb:fault("close")
      local c = assert(socket.connect("127.0.0.1", port_of(sb)))
      c:settimeout(5)
      c:send(raw_request({ key = KEY, action = "balance" }))
      local status, h = read_answer(c)
      assert.equal(200, status)
      assert.equal("close", h["connection"])
      local _, err = c:receive(1)
      assert.equal("closed", err)
      c:close()
    end)
  end)

  describe("connections", function()
    it("keep-alive: two requests on one socket count one connection", function()
      local c = assert(socket.connect("127.0.0.1", port_of(sb)))
      c:settimeout(5)
      c:send(raw_request({ key = KEY, action = "balance" }))
      local s1, _, b1 = read_answer(c)
      c:send(raw_request({ key = KEY, action = "services" }))
      local s2, _, b2 = read_answer(c)
      c:close()
      assert.equal(200, s1); assert.equal(200, s2)
      assert.equal("100.00", cjson.decode(b1).balance)
      assert.is_table(cjson.decode(b2)[1])
      local st = sb:stats()
      assert.equal(2, st.requests)
      assert.equal(1, st.connections)
    end)

    it("pipelined requests and Connection: close", function()
      local c = assert(socket.connect("127.0.0.1", port_of(sb)))
      c:settimeout(5)
      c:send(raw_request({ key = KEY, action = "balance" }) ..
        raw_request({ key = KEY, action = "balance" }, "Connection: close\r\n"))
      assert.equal(200, (read_answer(c)))
      local s, h = read_answer(c)
      assert.equal(200, s)
      assert.equal("close", h.connection)
      local _, err = c:receive(1)
      assert.equal("closed", err)
      c:close()
    end)

    it("rejects a POST without Content-Length", function()
      local c = assert(socket.connect("127.0.0.1", port_of(sb)))
      c:settimeout(5)
      c:send("POST /api/v2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
      assert.equal(411, (read_answer(c)))
      c:close()
    end)

    it("survives a client that disconnects mid-request", function()
      local c = assert(socket.connect("127.0.0.1", port_of(sb)))
      c:send("POST /api/v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nkey=")
      c:close()
      assert.equal("100.00", api(sb, { action = "balance" }).balance)
    end)

    it("serves 50 concurrent requests with latency in parallel", function()
      sb:config{ latency = 100 }
      local socks = {}
      local t = socket.gettime()
      for i = 1, 50 do
        local c = assert(socket.connect("127.0.0.1", port_of(sb)))
        c:settimeout(5)
        c:send(raw_request({ key = KEY, action = "balance" }))
        socks[i] = c
      end
      for i = 1, 50 do
        local status, _, body = read_answer(socks[i])
        assert.equal(200, status)
        assert.equal("100.00", cjson.decode(body).balance)
        socks[i]:close()
      end
      local elapsed = socket.gettime() - t
      local st = sb:stats()
      assert.truthy(st.peak_in_flight >= 10, "peak " .. st.peak_in_flight)
      assert.truthy(elapsed < 2, "took " .. elapsed)
      assert.equal(50, st.connections)
      assert.equal(0, st.in_flight)
    end)
  end)
end)

describe("sandbox flags", function()
  it("several keys, balance, steps and numbers from the command line", function()
    local sb = sandbox.start{ key = "k1,k2", balance = "7.5", steps = 1, numbers = "number" }
    local ok, err = pcall(function()
      local body = post(sb, { key = "k2", action = "balance" })
      assert.equal('{"balance":7.50,"currency":"USD"}', body)
      body = post(sb, { key = "k1", action = "add", service = 1, link = "https://x.com/a", quantity = 100 })
      assert.equal('{"order":1}', body)
      body = post(sb, { key = "k1", action = "status", order = 1 })
      assert.truthy(body:find('"status":"Completed"', 1, true))
      body = post(sb, { key = "sandbox-key", action = "balance" })
      assert.equal('{"error":"Invalid API key"}', body)
    end)
    sb:stop()
    assert(ok, err)
  end)

  it("real clock: orders advance with time, not with status queries", function()
    local sb = sandbox.start{ key = KEY, clock = "real", tick = 100, steps = 3 }
    local ok, err = pcall(function()
      post(sb, { key = KEY, action = "add", service = 1, link = "https://x.com/a", quantity = 100 })
      local body = post(sb, { key = KEY, action = "status", order = 1 })
      assert.truthy(body:find('"status":"Pending"', 1, true))
      body = post(sb, { key = KEY, action = "status", order = 1 })
      assert.truthy(body:find('"status":"Pending"', 1, true))
      socket.sleep(0.25)
      body = post(sb, { key = KEY, action = "status", order = 1 })
      assert.truthy(body:find('"status":"Completed"', 1, true), body)
    end)
    sb:stop()
    assert(ok, err)
  end)
end)
