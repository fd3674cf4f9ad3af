-- The client inside nginx, driven from outside as a black box: Debian's nginx with the lua
-- module runs examples/nginx (templated with a free port and this checkout's paths) in front
-- of the sandbox panel. Every request below goes through one nginx worker, which talks to the
-- panel over cosockets (lua/smm/transport/ngx.lua), never through libcurl.
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local books = require "helpers.book"
local smm = require "smm"

local available, missing = nginx.available()

-- Locations added to the example's server block for the tests.
local function test_locations(dead_port)
  return ([[
        # the example's handler with fast retries, a dead panel, a wrong key
        location /t/ {
            content_by_lua_block {
                require("smm_app").handle{ prefix = "/t", client = { retry_base = 10, timeout = 1000 } }
            }
        }
        location /dead/ {
            content_by_lua_block {
                require("smm_app").handle{ prefix = "/dead", url = "http://127.0.0.1:DEAD_PORT/api/v2",
                                           client = { retry_base = 10 } }
            }
        }
        location /badkey/ {
            content_by_lua_block {
                require("smm_app").handle{ prefix = "/badkey", key = "WRONG-KEY-123" }
            }
        }
        # what the worker has loaded
        location = /debug/loaded {
            content_by_lua_block {
                local c = require("smm_app").client()
                local dict = ngx.shared.smm_cache
                ngx.say(require("cjson").encode({
                    core = package.loaded["smm.core"] ~= nil,
                    curl_transport = package.loaded["smm.transport.curl"] ~= nil,
                    transport = c.transport.name,
                    shared_keys = #dict:get_keys(0),
                }))
            }
        }
        # client:wait inside nginx (ngx.sleep between polls)
        location = /debug/wait {
            content_by_lua_block {
                local c = require("smm_app").client()
                local entry, err = c:wait(tonumber(ngx.var.arg_order), { interval = 20, timeout = 5000 })
                ngx.say(require("cjson").encode(entry or { error = tostring(err) }))
            }
        }
        # the transport alone: POSTs fields to ?url=, n times (request_many when n > 1)
        location = /debug/transport {
            content_by_lua_block {
                local cjson = require "cjson"
                local a = ngx.req.get_uri_args()
                local t = require("smm.transport.ngx").new{ timeout = tonumber(a.timeout) or 5000,
                    connect_timeout = 2000, max_body = tonumber(a.max_body), ssl_verify = true }
                local fields = a.fields and cjson.decode(a.fields) or { action = "balance", key = "x" }
                local ropts = { idempotent = a.idempotent ~= "0", concurrency = tonumber(a.concurrency),
                                gzip = a.gzip == "1" }
                local n = tonumber(a.n) or 1
                local results
                if n == 1 then
                    results = { t:request(a.url, fields, ropts) }
                else
                    local list = {}
                    for i = 1, n do list[i] = fields end
                    results = t:request_many(a.url, list, ropts)
                end
                ngx.say(cjson.encode(results))
            }
        }
        # answers in every framing, for the transport
        location = /fixture/length {
            content_by_lua_block {
                local b = '{"n":12345,"s":"x"}'
                ngx.header.content_length = #b
                ngx.print(b)
            }
        }
        location = /fixture/chunked {
            content_by_lua_block {
                ngx.print('{"a":')
                ngx.flush(true)
                ngx.print('[1,2,')
                ngx.flush(true)
                ngx.print('3],"big":"' .. string.rep("y", 70000) .. '"}')
            }
        }
        location = /fixture/close {
            chunked_transfer_encoding off;
            content_by_lua_block {
                ngx.print('{"closed":')
                ngx.flush(true)
                ngx.print('true}')
            }
        }
        location = /fixture/big {
            content_by_lua_block { ngx.print('{"x":"' .. string.rep("x", 100000) .. '"}') }
        }
        location = /fixture/html {
            default_type text/html;
            return 200 "<html><head><title>Hi</title></head></html>";
        }
        location = /fixture/badjson {
            return 200 '{"broken": ';
        }
        location = /fixture/redirect {
            return 302 http://127.0.0.2/api/v2;
        }
        location = /fixture/echo {
            content_by_lua_block {
                ngx.req.read_body()
                ngx.header["Retry-After"] = "7"
                ngx.say(require("cjson").encode({ body = ngx.req.get_body_data(),
                    ua = ngx.var.http_user_agent, ct = ngx.var.content_type,
                    ae = ngx.var.http_accept_encoding or "", host = ngx.var.http_host }))
            }
        }
]]):gsub("DEAD_PORT", tostring(dead_port))
end

-- lua-cjson decodes every number as a float on Lua 5.3+: ids go back into URLs with %d
local function d(id) return string.format("%d", id) end

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

describe("nginx with the cosocket transport", function()
  if not available then
    it("needs nginx and its lua module", function()
      error(missing .. " (this spec installs nothing; CI installs them)")
    end)
    return
  end

  local sb, ng

  setup(function()
    sb = env.sandbox()
    ng = nginx.start{
      env = { SMM_API_URL = sb.url, SMM_API_KEY = env.KEY },
      locations = test_locations(env.closed_port()),
    }
  end)

  teardown(function()
    if ng then ng:stop() end
    if sb then sb:stop() end
  end)

  -- sb:reset() makes a new panel whose order ids start at 1 again: the example's order book
  -- (which knows an order by its panel's URL and id) forgets the old panel's orders with it.
  local function forget_orders()
    local book = assert(smm.book.open("sqlite:" .. ng.dir .. "/logs/orders.db"))
    local db = books.db(book)
    for _, t in ipairs{ "events", "refills", "history", "orders" } do assert(db:changes("DELETE FROM " .. t)) end
    book:close()
  end

  before_each(function()
    sb:reset()
    forget_orders()
  end)

  -- The example places orders through its book, each under a ref.
  local refs = 0
  local function place(path, fields)
    refs = refs + 1
    fields.ref = fields.ref or ("t20-" .. refs)
    return ng:post(path, fields)
  end

  local function transport(url, params)
    local q = { "url=" .. escape(url) }
    for k, v in pairs(params or {}) do q[#q + 1] = k .. "=" .. escape(v) end
    local status, results, raw = ng:get("/debug/transport?" .. table.concat(q, "&"))
    assert.equal(200, status, raw)
    return results
  end

  local function api_error(status, json, raw, want_status, kind)
    assert.equal(want_status, status, raw)
    assert.is_table(json, raw)
    assert.is_table(json.error, raw)
    assert.equal(kind, json.error.kind, raw)
    assert.is_string(json.error.message)
    assert.is_nil(raw:find(env.KEY, 1, true), "the key leaked")
    return json.error
  end

  describe("the example front end", function()
    it("answers the balance", function()
      local status, json, raw = ng:get("/balance")
      assert.equal(200, status, raw)
      assert.equal("100.00", json.balance)
      assert.equal("USD", json.currency)
    end)

    it("lists and searches services", function()
      local status, json, raw = ng:get("/services")
      assert.equal(200, status, raw)
      assert.is_true(#json > 3)
      assert.equal(1, json[1].service)
      assert.equal("0.90", json[1].rate)
      status, json, raw = ng:get("/services?search=tiktok")
      assert.equal(200, status, raw)
      assert.equal(1, #json)
    end)

    it("places an order, then reports its status, one and many", function()
      local status, json, raw = place("/order",
        { service = 1, link = "https://example.com/p", quantity = 100 })
      assert.equal(200, status, raw)
      local id = json.order
      assert.equal(1, id)
      status, json, raw = place("/order", { service = 3, link = "https://example.com/q", quantity = 50 })
      assert.equal(200, status, raw)
      local id2 = json.order
      status, json, raw = ng:get("/status?order=" .. d(id))
      assert.equal(200, status, raw)
      assert.is_string(json.status)
      assert.equal("USD", json.currency)
      status, json, raw = ng:get("/status?orders=" .. d(id) .. "," .. d(id2) .. ",999")
      assert.equal(200, status, raw)
      assert.is_string(json.orders[d(id)].status)
      assert.is_string(json.orders[d(id2)].status)
      assert.is_string(json.orders["999"].error)
      local orders = sb:orders()
      assert.equal(2, #orders)
    end)

    it("refills, reports refill status, cancels", function()
      local _, json = place("/order", { service = 1, link = "https://example.com/r", quantity = 100 })
      local done = json.order
      -- client:wait inside nginx: polls with ngx.sleep until final
      local status, entry, raw = ng:get("/debug/wait?order=" .. d(done))
      assert.equal(200, status, raw)
      assert.equal("Completed", entry.status, raw)

      status, json, raw = ng:post("/refill", { order = d(done) })
      assert.equal(200, status, raw)
      local refill = json.refill
      assert.is_number(refill, raw)
      status, json, raw = ng:post("/refill", { orders = d(done) .. ",12345" })
      assert.equal(200, status, raw)
      assert.is_number(json.orders[d(done)].refill, raw)
      assert.is_string(json.orders["12345"].error, raw)

      status, json, raw = ng:get("/refill_status?refill=" .. d(refill))
      assert.equal(200, status, raw)
      assert.is_string(json.status, raw)
      status, json, raw = ng:get("/refill_status?refills=" .. d(refill) .. ",777")
      assert.equal(200, status, raw)
      assert.is_string(json.refills[d(refill)].status, raw)
      assert.is_string(json.refills["777"].error, raw)

      _, json = place("/order", { service = 1, link = "https://example.com/c", quantity = 100 })
      local open = json.order
      status, json, raw = ng:post("/cancel", { orders = d(open) .. "," .. d(done) })
      assert.equal(200, status, raw)
      assert.is_true(json.orders[d(open)].cancel, raw)
      assert.is_string(json.orders[d(done)].error, raw)
    end)

    it("sends more than 100 ids as parallel chunks (request_many over light threads)", function()
      local ids = {}
      for i = 1, 250 do ids[i] = i end
      local status, json, raw = ng:get("/status?orders=" .. table.concat(ids, ","))
      assert.equal(200, status, raw)
      assert.is_string(json.orders["1"].error)
      assert.is_string(json.orders["250"].error)
      assert.equal(3, env.count(sb, "status"))
    end)

    it("keeps the service list in the lua_shared_dict", function()
      ng:get("/services")
      local _, json = ng:get("/debug/loaded")
      assert.is_true(json.shared_keys >= 1)
    end)
  end)

  describe("errors come back classified", function()
    it("invalid input: 400 naming the field, nothing sent", function()
      local status, json, raw = place("/order",
        { service = 1, link = "https://example.com/p", quantity = "lots" })
      local e = api_error(status, json, raw, 400, "invalid")
      assert.equal("quantity", e.field)
      assert.equal(0, env.count(sb))
    end)

    it("api: a wrong key", function()
      local status, json, raw = ng:get("/badkey/balance")
      local e = api_error(status, json, raw, 502, "api")
      assert.equal("invalid_key", e.code)
      assert.is_nil(raw:find("WRONG-KEY-123", 1, true))
    end)

    it("api: the panel refuses an order", function()
      sb:config{ balance = "0.01" }
      local status, json, raw = place("/order",
        { service = 1, link = "https://example.com/p", quantity = 1000 })
      local e = api_error(status, json, raw, 422, "api")
      assert.equal("not_enough_funds", e.code)
      assert.is_false(e.ambiguous)
    end)

    it("decode: an HTML page with status 200 (retried, then reported)", function()
      sb:fault("html200", { times = 5 })
      local status, json, raw = ng:get("/t/balance")
      local e = api_error(status, json, raw, 502, "decode")
      assert.is_true(e.retryable)
      assert.equal(3, env.count(sb, "balance")) -- 1 + 2 retries, as with libcurl
    end)

    it("network: a dead panel, nothing sent", function()
      local status, json, raw = ng:get("/dead/balance")
      local e = api_error(status, json, raw, 502, "network")
      assert.is_true(e.retryable)
      assert.is_false(e.ambiguous)
    end)

    it("network, ambiguous: the connection dies after an add was carried out; never resent", function()
      sb:fault("reset_after_read", { action = "add" })
      local status, json, raw = place("/t/order",
        { service = 1, link = "https://example.com/p", quantity = 100 })
      local e = api_error(status, json, raw, 502, "network")
      assert.is_true(e.ambiguous)
      assert.equal(1, env.count(sb, "add"))
      assert.equal(1, #sb:orders())
    end)

    it("timeout: a slow panel, the whole request bounded by `timeout`", function()
      sb:fault("slow", { action = "balance", delay = 3000, times = 5 })
      local status, json, raw = ng:get("/t/balance") -- timeout = 1000 there
      api_error(status, json, raw, 504, "timeout")
    end)

    it("a 429 with Retry-After is retried after the wait, then succeeds", function()
      sb:fault("rate429", { action = "balance", retry_after = "0" })
      local status, json, raw = ng:get("/t/balance")
      assert.equal(200, status, raw)
      assert.equal("100.00", json.balance)
      assert.equal(2, env.count(sb, "balance"))
    end)
  end)

  describe("the worker", function()
    it("never loads smm.core (libcurl) and picks the ngx transport on its own", function()
      local status, json, raw = ng:get("/debug/loaded")
      assert.equal(200, status, raw)
      assert.is_false(json.core)
      assert.is_false(json.curl_transport)
      assert.equal("ngx", json.transport)
    end)

    it("is not blocked: 50 requests at once overlap at the panel", function()
      sb:config{ latency = 100 }
      local answers = ng:burst(50, "/balance")
      for i, a in ipairs(answers) do
        assert.equal(200, a.status, "answer " .. i .. ": " .. tostring(a.body) .. " " .. tostring(a.err))
        assert.truthy(a.body:find('"balance"', 1, true))
      end
      local stats = sb:stats()
      assert.equal(50, stats.actions.balance)
      assert.is_true(stats.peak_in_flight > 10, "peak_in_flight " .. tostring(stats.peak_in_flight))
    end)

    it("reuses pooled connections for reads, opens a new one for every add", function()
      for _ = 1, 4 do assert.equal(200, (ng:get("/balance"))) end
      assert.equal(1, sb:stats().connections)
      sb:reset()
      for i = 1, 3 do
        local status = place("/order", { service = 1, link = "https://example.com/" .. i, quantity = 100 })
        assert.equal(200, status)
      end
      assert.equal(3, sb:stats().connections)
    end)

    it("does not pool a connection the panel closes after its answer", function()
      sb:fault("close", { action = "balance" }) -- answers, then closes without saying so
      assert.equal(200, (ng:get("/balance")))
      assert.equal(200, (ng:get("/balance")))
      assert.equal(2, env.count(sb, "balance"))
    end)
  end)

  describe("the transport", function()
    local function fixture(path) return ng.base .. path end

    it("posts sorted, escaped form fields with its user agent, accepting gzip when asked", function()
      local r = transport(fixture("/fixture/echo"), {
        fields = '{"b":"x y&z=1","a":"é~._-","n":23501,"f":0.35}', gzip = "1" })[1]
      assert.equal(200, r.status)
      assert.equal("a=%C3%A9~._-&b=x+y%26z%3D1&f=0.35&n=23501", r.json.body)
      assert.truthy(r.json.ua:find("^lua%-smm/%d"))
      assert.equal("application/x-www-form-urlencoded", r.json.ct)
      assert.equal("gzip", r.json.ae) -- inflated through LuaJIT's FFI and nginx's zlib
      assert.equal("127.0.0.1:" .. ng.port, r.json.host)
      assert.equal(7, r.retry_after)
      assert.is_nil(r.body)
      -- a small answer is not worth compressing: nothing asked, as the C core does
      for _, n in ipairs{ "1", "2" } do
        r = transport(fixture("/fixture/echo"), { n = n, concurrency = "2" })[1]
        assert.equal("", r.json.ae)
      end
      r = transport(fixture("/fixture/echo"), { n = "2", concurrency = "2", gzip = "1" })[1]
      assert.equal("gzip", r.json.ae)
    end)

    it("reads Content-Length, chunked and close-delimited answers", function()
      local r = transport(fixture("/fixture/length"))[1]
      assert.equal(12345, r.json.n)
      r = transport(fixture("/fixture/chunked"))[1]
      assert.same({ 1, 2, 3 }, r.json.a)
      assert.equal(70000, #r.json.big)
      r = transport(fixture("/fixture/close"))[1]
      assert.is_true(r.json.closed)
    end)

    it("keeps non-JSON bodies raw and says when JSON was broken", function()
      local r = transport(fixture("/fixture/html"))[1]
      assert.is_nil(r.json)
      assert.truthy(r.body:find("<title>Hi</title>", 1, true))
      assert.truthy(r.content_type:find("text/html", 1, true))
      assert.is_nil(r.decode_error)
      r = transport(fixture("/fixture/badjson"))[1]
      assert.is_nil(r.json)
      assert.is_string(r.decode_error)
    end)

    it("does not follow redirects", function()
      local r = transport(fixture("/fixture/redirect"))[1]
      assert.equal(302, r.status)
      assert.equal("http://127.0.0.2/api/v2", r.location)
    end)

    it("caps the body at max_body", function()
      local r = transport(fixture("/fixture/big"), { max_body = 1000 })[1]
      assert.equal("too_large", r.failure)
    end)

    it("reports a refused connection as not sent", function()
      local r = transport("http://127.0.0.1:" .. env.closed_port() .. "/api/v2")[1]
      assert.equal("network", r.failure)
      assert.is_false(r.sent)
    end)

    it("runs request_many at most `concurrency` at a time, in order", function()
      sb:config{ latency = 100 }
      local results = transport(sb.url, { n = 8, concurrency = 4,
        fields = '{"action":"balance","key":"' .. env.KEY .. '"}' })
      assert.equal(8, #results)
      for _, r in ipairs(results) do assert.equal("100.00", r.json.balance) end
      local peak = sb:stats().peak_in_flight
      assert.is_true(peak >= 2 and peak <= 4, "peak_in_flight " .. peak)
    end)

    it("truncated answers are network failures, sent", function()
      sb:fault("truncated", { action = "balance" })
      local r = transport(sb.url, { fields = '{"action":"balance","key":"' .. env.KEY .. '"}' })[1]
      assert.is_true(r.failure == "network" or r.decode_error ~= nil)
    end)
  end)
end)
