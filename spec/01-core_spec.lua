-- smm.core, the C core: real HTTP on loopback against the sandbox panel (bin/smm-sandbox) and,
-- for exact bytes and arbitrary answers, the tiny echo server in spec/helpers/echo.lua.
-- Runs on Lua 5.1, 5.3, 5.4 and LuaJIT (the servers themselves always run on lua5.4).
local core = require "smm.core"
local sandbox = require "helpers.sandbox"
local echo = require "helpers.echo"

local KEY = "core-spec-key"
local is54 = _VERSION == "Lua 5.4"

-- math.type only exists on 5.3+; on 5.1/LuaJIT every number is a float and nothing to check.
local function assert_integer(v, what)
  assert.is_number(v, what)
  if math.type then assert.equal("integer", math.type(v), what) end
end

local function elapsed_ms(f)
  local t0 = core.now()
  local a, b = f()
  return core.now() - t0, a, b
end

describe("smm.core", function()
  local sb, srv

  setup(function()
    sb = sandbox.start{ key = KEY }
    srv = echo.start()
  end)

  teardown(function()
    if sb then sb:stop() end
    if srv then srv:stop() end
  end)

  before_each(function() sb:reset() end)

  describe("module", function()
    it("has a version", function()
      assert.equal("0.1.0", core._VERSION)
    end)

    it("sleep waits about the time asked, with integer or float ms", function()
      local ms = elapsed_ms(function() core.sleep(120) end)
      assert.is_true(ms >= 115 and ms < 1000, "slept " .. ms)
      ms = elapsed_ms(function() core.sleep(30.5) end)
      assert.is_true(ms >= 29 and ms < 1000, "slept " .. ms)
      core.sleep(0)
    end)

    it("sleep refuses negative, NaN and non-numbers", function()
      assert.has_error(function() core.sleep(-1) end)
      assert.has_error(function() core.sleep(0 / 0) end)
      assert.has_error(function() core.sleep("10") end)
      assert.has_error(function() core.sleep() end)
    end)

    it("now is a monotonic millisecond clock", function()
      local a = core.now()
      core.sleep(20)
      local b = core.now()
      assert.is_true(b - a >= 19 and b - a < 1000)
    end)
  end)

  describe("new", function()
    it("accepts no options, an empty table and every known option", function()
      core.new():close()
      core.new({}):close()
      core.new{ timeout = 0, connect_timeout = 500.5, proxy = "socks5h://127.0.0.1:1",
                ssl_verify = false, cainfo = "/etc/ssl/certs/ca-certificates.crt",
                user_agent = "x", max_body = 10, concurrency = 8 }:close()
    end)

    local bad = {
      { "timeout", -1 }, { "timeout", "30" }, { "timeout", 0 / 0 }, { "connect_timeout", true },
      { "proxy", 42 }, { "proxy", "ftp://h:1" }, { "ssl_verify", 1 }, { "ssl_verify", "no" },
      { "cainfo", false }, { "user_agent", {} }, { "user_agent", "a\r\nX-Injected: 1" }, { "max_body", 0 }, { "max_body", "1" },
      { "concurrency", 0 }, { "concurrency", 1.5 }, { "concurrency", 1000 },
    }
    for _, case in ipairs(bad) do
      local name, value = case[1], case[2]
      it("raises naming option '" .. name .. "' for " .. tostring(value), function()
        local ok, err = pcall(core.new, { [name] = value })
        assert.is_false(ok)
        assert.matches("smm.core.new: option '" .. name .. "'", err, 1, true)
      end)
    end

    it("says what a timeout must be", function()
      local ok, err = pcall(core.new, { timeout = -5 })
      assert.is_false(ok)
      assert.matches("option 'timeout' must be a non-negative number of milliseconds", err, 1, true)
    end)

    it("raises on unknown options and non-table options", function()
      local ok, err = pcall(core.new, { timout = 10 })
      assert.is_false(ok)
      assert.matches("unknown option 'timout'", err, 1, true)
      assert.has_error(function() core.new("fast") end)
      assert.has_error(function() core.new{ [1] = true } end)
    end)
  end)

  describe("handle lifecycle", function()
    it("tostring shows open/closed and never the fields", function()
      local h = core.new()
      h:request(srv.url, { secret = "hunter2" })
      local s = tostring(h)
      assert.matches("^smm%.core%.handle: 0?x?%x+ %(open%)$", s)
      assert.is_nil(s:find("hunter2", 1, true))
      h:close()
      assert.matches("^smm%.core%.handle: 0?x?%x+ %(closed%)$", tostring(h))
    end)

    it("close twice is safe, use after close raises", function()
      local h = core.new()
      h:close()
      h:close()
      local ok, err = pcall(h.request, h, sb.url, { key = KEY, action = "balance" })
      assert.is_false(ok)
      assert.matches("smm.core: handle is closed", err, 1, true)
      ok, err = pcall(h.request_many, h, sb.url, {})
      assert.is_false(ok)
      assert.matches("handle is closed", err, 1, true)
    end)

    it("garbage collection frees unclosed handles, other handles keep working", function()
      local weak = setmetatable({}, { __mode = "v" })
      for i = 1, 5 do
        local h = core.new()
        assert.equal(200, h:request(sb.url, { key = KEY, action = "balance" }).status)
        weak[i] = h
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak), "an unclosed handle was not collected")
      local h = core.new()
      assert.equal(200, h:request(sb.url, { key = KEY, action = "balance" }).status)
      h:close()
    end)

    if is54 then
      it("closes a to-be-closed variable (5.4)", function()
        local f = assert(load([[
          local core = ...
          local keep
          do
            local h <close> = core.new()
            keep = h
          end
          return keep
        ]]))
        assert.matches("%(closed%)$", tostring(f(core)))
      end)
    end
  end)

  describe("form encoding", function()
    local h
    before_each(function() h = core.new() end)
    after_each(function() h:close() end)

    it("sends exact, sorted, escaped bytes", function()
      local r = h:request(srv.url, { b = "x y", a = "1&2=3", c = "+#%~-._", ["d e"] = "\n\r\t",
                                     u = "\195\169\226\130\172" })
      assert.equal(200, r.status)
      assert.equal("a=1%262%3D3&b=x+y&c=%2B%23%25~-._&d+e=%0A%0D%09&u=%C3%A9%E2%82%AC", r.body)
    end)

    it("sends a large body at once (no Expect: 100-continue wait)", function()
      local big = ("0123456789&= \n"):rep(100000) -- 1.4 MB: libcurl adds Expect above 1 MiB
      local r = h:request(srv.url, { z = big })
      assert.equal(200, r.status)
      local expected = "z=" .. ("0123456789%26%3D+%0A"):rep(100000)
      assert.equal(#expected, #r.body)
      assert.is_true(r.body == expected)
      -- with Expect, libcurl would stall 1000 ms waiting for a "100 Continue"
      assert.equal("text/plain", r.content_type)
    end)

    it("sorts names bytewise and formats numbers", function()
      local r = h:request(srv.url, { Z = 1, a = 2.0, B = 0.1, aa = -7, b = 1e20, c = 12345678901,
                                     d = 2.5, e = -0.0 })
      assert.equal("B=0.1&Z=1&a=2&aa=-7&b=100000000000000000000&c=12345678901&d=2.5&e=0", r.body)
    end)

    it("sends an empty table as an empty body, with the form content type", function()
      local r = h:request(srv.url, {})
      assert.equal(200, r.status)
      assert.equal("", r.body)
      local r2 = h:request(srv.url, { reply = "[]" })
      assert.same({}, r2.json)
    end)

    it("the sandbox receives exactly the original strings", function()
      local tricky = {
        link = "https://x.test/p?a=1&b=2#frag",
        comments = "first & second\r\nthird = 3 + 4 %20 100%\nÿ \226\156\148 done",
        username = "  spaces  and+plus ",
        answer_number = "#1",
      }
      local fields = { key = KEY, action = "add", service = 1, quantity = 100 }
      for k, v in pairs(tricky) do fields[k] = v end
      local r = h:request(sb.url, fields)
      assert.equal(200, r.status)
      local log = sb:requests()
      local got = log[#log].fields
      for k, v in pairs(tricky) do assert.equal(v, got[k], k) end
      assert.equal("1", got.service)
      assert.equal("100", got.quantity)
      assert.equal("add", got.action)
      assert.equal("application/x-www-form-urlencoded", log[#log].content_type)
      assert.equal("lua-smm/0.1.0", log[#log].user_agent)
    end)

    it("writes a whole float of any size in full (1e300: its 301 digits, not a cut-off buffer)", function()
      local r = h:request(sb.url, { key = KEY, action = "balance", big = 1e300, small = 2 ^ 53 })
      assert.equal(200, r.status)
      local log = sb:requests()
      assert.equal(string.format("%.0f", 1e300), log[#log].fields.big)
      assert.equal(301, #log[#log].fields.big)
      assert.equal("9007199254740992", log[#log].fields.small)
    end)

    it("sends the configured user agent", function()
      local h2 = core.new{ user_agent = "spec-agent/1" }
      h2:request(sb.url, { key = KEY, action = "balance" })
      h2:close()
      local log = sb:requests()
      assert.equal("spec-agent/1", log[#log].user_agent)
    end)

    it("raises naming a field of an unsupported type, before sending", function()
      local ok, err = pcall(h.request, h, sb.url, { key = KEY, action = "add", quantity = {} })
      assert.is_false(ok)
      assert.matches("smm.core: field 'quantity' has unsupported type table", err, 1, true)
      ok, err = pcall(h.request, h, sb.url, { key = KEY, refill = true })
      assert.is_false(ok)
      assert.matches("field 'refill' has unsupported type boolean", err, 1, true)
      ok, err = pcall(h.request, h, sb.url, { key = KEY, [1] = "x" })
      assert.is_false(ok)
      assert.matches("field names must be strings", err, 1, true)
      ok = pcall(h.request, h, sb.url, { key = KEY, n = 1 / 0 })
      assert.is_false(ok)
      ok, err = pcall(h.request_many, h, sb.url, { { key = KEY }, { key = KEY, x = print } })
      assert.is_false(ok)
      assert.matches("field 'x' has unsupported type function", err, 1, true)
      ok = pcall(h.request_many, h, sb.url, { { key = KEY }, "action=balance" })
      assert.is_false(ok)
      assert.equal(0, sb:stats().requests)
      -- the handle still works after those errors
      assert.equal(200, h:request(sb.url, { key = KEY, action = "balance" }).status)
    end)

    it("raises on bad arguments and request options", function()
      assert.has_error(function() h:request(nil, {}) end)
      assert.has_error(function() h:request(sb.url, "key=x") end)
      assert.has_error(function() h:request(sb.url, {}, { idempotent = "no" }) end)
      assert.has_error(function() h:request(sb.url, {}, { retries = 3 }) end)
      assert.has_error(function() h:request(sb.url, {}, { concurrency = 2 }) end)
      assert.has_error(function() h:request_many(sb.url, {}, { concurrency = 0 }) end)
    end)
  end)

  describe("answers", function()
    local h
    before_each(function() h = core.new{ timeout = 5000 } end)
    after_each(function() h:close() end)

    it("decodes JSON with integer fidelity", function()
      local r = h:request(sb.url, { key = KEY, action = "add", service = 1,
                                    link = "https://x.test/a", quantity = 100 })
      assert.equal(200, r.status)
      assert.is_nil(r.body)
      assert.is_nil(r.content_type) -- only told when the answer is not JSON
      assert.is_number(r.time)
      assert_integer(r.json.order, "order")
      assert_integer(r.status, "status")
    end)

    it("keeps string keys, non-integral floats and cjson.null", function()
      local r = h:request(srv.url, { reply =
        '{"1": {"charge": 0.27819, "remains": -157, "big": 1e300, "n": null},' ..
        ' "list": [1, 2.0, 3.5, 9007199254740992, 18014398509481984]}' })
      assert.equal(200, r.status)
      local one = r.json["1"]
      assert.is_table(one)
      assert.is_nil(r.json[1])
      assert.equal(0.27819, one.charge)
      assert_integer(one.remains)
      assert.equal(-157, one.remains)
      assert.equal(require("cjson").null, one.n)
      local list = r.json.list
      assert_integer(list[1])
      assert_integer(list[2])
      assert_integer(list[4])
      if math.type then
        assert.equal("float", math.type(one.charge))
        assert.equal("float", math.type(one.big))
        assert.equal("float", math.type(list[3]))
        assert.equal("float", math.type(list[5]))
      end
    end)

    -- Flat objects and arrays of them take a direct path in smm.core; everything else goes
    -- through cjson. Either way a user sees the same values.
    it("decodes flat answers exactly, whichever path they take", function()
      local cjson = require "cjson"
      local cases = {
        { '{"balance":"100.84292","currency":"USD"}', { balance = "100.84292", currency = "USD" } },
        { ' {"order": 23501} ', { order = 23501 } },
        { '{"a": -7, "b": true, "c": false, "": ""}', { a = -7, b = true, c = false, [""] = "" } },
        { '{"big": 123456789012345678}', { big = 1.2345678901234568e17 } }, -- beyond 2^53: a float, as cjson gives
        { '{"e": "line\\nbreak", "u": "caf\\u00e9", "n": null}',
          { e = "line\nbreak", u = "café", n = cjson.null } },
        { '{"x": 1.5, "z": -0, "d": 1e3}', { x = 1.5, z = 0, d = 1000 } },
        { '{}', {} },
        { '{"a": "b"} trailing', nil },
        -- arrays of flat records, as service lists come from PHP panels (escaped slashes and
        -- emoji), with scalars, null and an empty record among them
        { '[{"service":1,"name":"Likes \\u26a1 \\ud83d\\ude80","url":"https:\\/\\/x.test","rate":0.9,' ..
          '"max":1000.0},{},null,"s",-2.5e-3]',
          { { service = 1, name = "Likes \226\154\161 \240\159\154\128", url = "https://x.test", rate = 0.9,
              max = 1000 }, {}, cjson.null, "s", -0.0025 } },
        { '[{"a":{"nested":1}}, 2.0]', { { a = { nested = 1 } }, 2 } }, -- nesting: through cjson
        { '[{"s":"\\ud800 lone surrogate"}]', nil }, -- cjson refuses it, and so does the direct path
        { '[1, 2,]', nil },
      }
      for i, case in ipairs(cases) do
        local r = h:request(srv.url, { reply = case[1] })
        if case[2] == nil then
          assert.is_nil(r.json, "case " .. i)
          assert.equal(case[1], r.body, "case " .. i)
        else
          assert.same(case[2], r.json, "case " .. i)
          local function integers(t)
            for k, v in pairs(t) do
              if type(v) == "table" then integers(v)
              elseif type(v) == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
                assert_integer(v, "case " .. i .. " " .. tostring(k))
              end
            end
          end
          integers(r.json)
        end
      end
    end)

    -- The request option `schema` (normalize.SERVICE_SCHEMA, normalize.STATUS_SCHEMA): named
    -- fields normalised during the decode, as lua/smm/normalize.lua would.
    it("a schema normalises the named fields of each record of an array", function()
      local r = h:request(srv.url, { reply =
        '[{"service": "7", "rate": 0.35, "min": "50", "max": 1000.0, "refill": "1", "x": 2.0},' ..
        ' {"service": 8, "rate": "1.2e-3", "min": null, "refill": false}]' },
        { schema = { service = "integer", rate = "money", min = "integer", max = "integer",
                     refill = "boolean" } })
      assert.is_true(r.normalized)
      local a, b = r.json[1], r.json[2]
      assert_integer(a.service)
      assert.equal(7, a.service)
      assert.equal("0.35", a.rate)
      assert.equal(50, a.min)
      assert_integer(a.max)
      assert.is_true(a.refill)
      assert_integer(a.x) -- fields outside the schema: integers as without one
      assert.equal("0.0012", b.rate)
      assert.is_nil(b.min)
      assert.is_false(b.refill)
    end)

    it("a by_id schema keys the records of an object by integer id", function()
      local r = h:request(srv.url, { reply =
        '{"23501": {"charge": 0.27819, "remains": "157", "start_count": "3572", "status": "Partial"},' ..
        ' "10": {"error": "Incorrect order ID"}, " 12 ": {"charge": "1.50", "remains": 0},' ..
        ' "": {"charge": "9"}, "note": "kept", "5": 6.0}' },
        { schema = { "by_id", charge = "money", remains = "integer", start_count = "integer" } })
      assert.is_true(r.normalized)
      local e = r.json[23501]
      assert.is_table(e)
      assert.is_nil(r.json["23501"])
      assert.equal("0.27819", e.charge)
      assert_integer(e.remains)
      assert.equal(157, e.remains)
      assert.equal(3572, e.start_count)
      assert.equal("Partial", e.status) -- statuses are the Lua layer's business
      assert.same({ error = "Incorrect order ID" }, r.json[10])
      assert.equal("1.50", r.json[12].charge)
      assert.equal("kept", r.json.note)
      assert_integer(r.json["5"]) -- only records are keyed by id
      assert.is_nil(r.json[5])
      local keys = 0
      for _ in pairs(r.json) do keys = keys + 1 end
      assert.equal(5, keys) -- the entry keyed "" is dropped, as the Lua reader drops it
      -- a key written twice: the last one counts, as in any JSON reader
      r = h:request(srv.url, { reply = '{"7": {"charge": "1"}, "7": "x", "8": {"remains": "2"}}' },
        { schema = { "by_id", remains = "integer" } })
      assert.same({ ["7"] = "x", [8] = { remains = 2 } }, r.json)
    end)

    it("a record schema normalises the answer itself, read by cjson or without it", function()
      local schema = { "record", balance = "money", currency = "text", order = "integer" }
      -- a flat object of plain strings and integers (read without cjson)
      local r = h:request(srv.url, { reply = '{"balance": "  12.50 ", "currency": 7, "order": "23501"}' },
        { schema = schema })
      assert.is_true(r.normalized)
      assert.same({ balance = "12.50", currency = "7", order = 23501 }, r.json)
      assert_integer(r.json.order)
      -- fractions, null and nesting (cjson)
      r = h:request(srv.url, { reply = '{"balance": 12.5, "currency": null, "order": 23501.0, "x": [2.0]}' },
        { schema = schema })
      assert.is_true(r.normalized)
      assert.same({ balance = "12.5", order = 23501, x = { 2 } }, r.json)
      assert_integer(r.json.order)
      assert_integer(r.json.x[1])
    end)

    it("request_many reads each answer with its own schema (schemas)", function()
      local rs = h:request_many(srv.url,
        { { reply = '{"order": "7"}' }, { reply = '{"order": "8"}' }, { reply = '{"balance": 1.5}' } },
        { concurrency = 1, -- the echo server answers one connection at a time
          schemas = { { "record", order = "integer" }, false, { "record", balance = "money" } } })
      assert.equal(7, rs[1].json.order)
      assert.is_true(rs[1].normalized)
      assert.equal("8", rs[2].json.order)
      assert.is_nil(rs[2].normalized)
      assert.equal("1.5", rs[3].json.balance)
      assert.has_error(function()
        h:request_many(sb.url, { { key = KEY, action = "balance" } }, { schemas = { { rate = "float" } } })
      end)
    end)

    it("asks for a compressed answer only with gzip = true", function()
      assert.equal(200, h:request(sb.url, { key = KEY, action = "balance" }).status)
      assert.equal(200, h:request(sb.url, { key = KEY, action = "balance" }, { gzip = true }).status)
      local log = sb:requests()
      assert.is_nil(log[#log - 1].accept_encoding)
      assert.equal("gzip", log[#log].accept_encoding)
      assert.has_error(function() h:request(sb.url, { key = KEY, action = "balance" }, { gzip = 1 }) end)
    end)

    it("refuses a malformed schema before sending", function()
      for _, schema in ipairs{ { rate = "float" }, { "by_name", rate = "money" }, { [2] = "by_id" },
                               "money" } do
        assert.has_error(function()
          h:request(sb.url, { key = KEY, action = "balance" }, { schema = schema })
        end)
      end
      assert.equal(0, sb:stats().requests)
    end)

    it("an HTML page gives json=nil and the body", function()
      sb:fault("html503")
      local r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(503, r.status)
      assert.is_nil(r.json)
      assert.is_nil(r.decode_error)
      assert.matches("<html", r.body, 1, true)
      assert.matches("text/html", r.content_type, 1, true)
      sb:fault("html200")
      r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(200, r.status)
      assert.is_nil(r.json)
      assert.matches("<html", r.body, 1, true)
    end)

    it("JSON mislabelled as text/html is still decoded", function()
      local r = h:request(srv.url, { reply = ' \r\n {"order": 7}', ctype = "text/html" })
      assert.is_nil(r.content_type) -- JSON: the label does not matter
      assert.equal(7, r.json.order)
      assert.is_nil(r.body)
    end)

    it("truncated JSON gives decode_error and the raw body", function()
      sb:fault("truncated")
      local r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(200, r.status)
      assert.is_nil(r.json)
      assert.is_string(r.decode_error)
      assert.is_string(r.body)
      assert.equal("{", r.body:sub(1, 1))
    end)

    it("an empty body gives json=nil, body=''", function()
      sb:fault("empty")
      local r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(200, r.status)
      assert.is_nil(r.json)
      assert.equal("", r.body)
      assert.is_nil(r.decode_error)
    end)

    it("an answer with invalid UTF-8 is still an HTTP answer", function()
      sb:fault("invalid_utf8")
      local r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(200, r.status)
      assert.is_nil(r.failure)
      assert.is_true(r.json ~= nil or r.decode_error ~= nil)
    end)

    it("429 carries retry_after as an integer", function()
      sb:fault("rate429", { retry_after = 7 })
      local r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(429, r.status)
      assert.equal(7, r.retry_after)
      assert_integer(r.retry_after)
      assert.equal("Too many requests", r.json.error)
      r = h:request(srv.url, { reply = "{}", status = 503, header = "Retry-After: 0" })
      assert.equal(0, r.retry_after)
      r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.is_nil(r.retry_after)
    end)

    it("error statuses keep their JSON", function()
      sb:fault("error500")
      local r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(500, r.status)
      assert.equal("Internal error", r.json.error)
    end)

    it("a gzip answer is decoded", function()
      sb:fault("gzip")
      local r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(200, r.status)
      assert.is_table(r.json)
      assert.equal("USD", r.json.currency)
    end)

    it("does not follow redirects and reports location", function()
      sb:fault("redirect")
      local r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(302, r.status)
      assert.matches("^http://127%.0%.0%.2:%d+/api/v2$", r.location)
      assert.is_nil(r.json)
      assert.equal(1, sb:stats().requests)
    end)

    it("a big answer within max_body is fine, beyond it is too_large", function()
      local h2 = core.new{ max_body = 20000 }
      sb:fault("big", { size = 10000 })
      local r = h2:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(200, r.status)
      assert.equal("USD", r.json.currency)
      sb:fault("big", { size = 50000 })
      r = h2:request(sb.url, { key = KEY, action = "balance" })
      assert.equal("too_large", r.failure)
      assert.is_true(r.sent)
      assert.is_number(r.code)
      assert.is_nil(r.status)
      -- and the handle is usable afterwards
      r = h2:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(200, r.status)
      h2:close()
    end)
  end)

  describe("failures", function()
    it("a closed port is network, not sent, and the message holds no field value", function()
      local h = core.new()
      local url = "http://127.0.0.1:" .. sandbox.closed_port() .. "/api/v2"
      local r = h:request(url, { key = "SECRET-KEY-123", link = "secret-link" })
      h:close()
      assert.equal("network", r.failure)
      assert.is_false(r.sent)
      assert.equal(7, r.code) -- CURLE_COULDNT_CONNECT
      assert.is_string(r.message)
      assert.is_nil(r.message:find("SECRET", 1, true))
      assert.is_nil(r.message:find("secret", 1, true))
      assert.is_nil(r.status)
    end)

    it("a connect that never completes is timeout, not sent", function()
      local port, close = sandbox.hanging_port()
      local h = core.new{ connect_timeout = 300, timeout = 5000 }
      local ms, r = elapsed_ms(function()
        return h:request("http://127.0.0.1:" .. port .. "/api/v2", { key = KEY, action = "add" },
                         { idempotent = false })
      end)
      h:close()
      close()
      assert.equal("timeout", r.failure)
      assert.is_false(r.sent) -- so even an add may be sent again: it never left
      assert.equal(28, r.code) -- CURLE_OPERATION_TIMEDOUT
      assert.is_true(ms >= 250 and ms < 4000, "took " .. ms) -- connect_timeout, not timeout
    end)

    it("an unresolvable host is network, not sent", function()
      local h = core.new{ connect_timeout = 3000 }
      local r = h:request("http://nonexistent.invalid/api/v2", { key = KEY })
      h:close()
      assert.equal("network", r.failure)
      assert.is_false(r.sent)
    end)

    it("a failed TLS handshake is tls, not sent", function()
      local plain = echo.start("greet")
      local h = core.new{ connect_timeout = 3000, timeout = 3000 }
      local r = h:request((plain.url:gsub("^http:", "https:")), { key = KEY })
      -- the same server over plain HTTP answers: it really was there
      local r2 = h:request(plain.url, { key = KEY })
      h:close()
      plain:stop()
      assert.equal("tls", r.failure)
      assert.is_false(r.sent)
      assert.equal(35, r.code) -- CURLE_SSL_CONNECT_ERROR
      assert.equal("hello", r2.body)
    end)

    it("a slow server that read the request is timeout, sent", function()
      local h = core.new{ timeout = 300 }
      sb:fault("slow", { delay = 1500 })
      local ms, r = elapsed_ms(function()
        return h:request(sb.url, { key = KEY, action = "balance" })
      end)
      assert.equal("timeout", r.failure)
      assert.is_true(r.sent)
      assert.equal(28, r.code) -- CURLE_OPERATION_TIMEDOUT
      assert.is_true(ms < 1400, "took " .. ms)
      -- the next request works (on a new connection)
      r = h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(200, r.status)
      h:close()
    end)

    it("a reset after the request is network, sent, when not idempotent", function()
      local h = core.new()
      sb:fault("reset_after_read", { action = "add" })
      local r = h:request(sb.url, { key = KEY, action = "add", service = 1,
                                    link = "https://x.test/r", quantity = 100 },
                          { idempotent = false })
      h:close()
      assert.equal("network", r.failure)
      assert.is_true(r.sent)
      local st = sb:stats()
      assert.equal(1, st.requests) -- never re-sent
      assert.equal(1, st.orders)
    end)
  end)

  describe("connections", function()
    -- smm.core parses a URL once and keeps it while it does not change: a handle that goes
    -- back and forth between two panels must reach each one every time.
    it("sends each request to its own URL when one handle alternates between two", function()
      local h = core.new{ timeout = 5000 }
      for i = 1, 3 do
        local a = h:request(sb.url, { key = KEY, action = "balance" })
        local b = h:request(srv.url, { reply = '{"n": ' .. i .. '}' })
        assert.equal("USD", a.json.currency, "round " .. i)
        assert.equal(i, b.json.n, "round " .. i)
      end
      assert.equal(3, sb:stats().actions.balance)
      h:close()
    end)

    it("keeps one connection alive across sequential requests", function()
      local h = core.new()
      for _ = 1, 15 do
        assert.equal(200, h:request(sb.url, { key = KEY, action = "balance" }).status)
      end
      local st = sb:stats()
      assert.equal(15, st.requests)
      assert.equal(1, st.connections)
      h:close()
    end)

    it("idempotent=false opens a fresh connection each time", function()
      local h = core.new()
      h:request(sb.url, { key = KEY, action = "balance" })
      for _ = 1, 3 do
        local r = h:request(sb.url, { key = KEY, action = "balance" }, { idempotent = false })
        assert.equal(200, r.status)
      end
      assert.equal(4, sb:stats().connections)
      -- and idempotent requests go back to reusing
      h:request(sb.url, { key = KEY, action = "balance" })
      h:request(sb.url, { key = KEY, action = "balance" })
      assert.equal(4, sb:stats().connections)
      h:close()
    end)

    it("request_many reuses connections across calls and with single requests", function()
      local h = core.new{ concurrency = 3 }
      local list = {}
      for i = 1, 9 do list[i] = { key = KEY, action = "balance" } end
      local res = h:request_many(sb.url, list)
      assert.equal(9, #res)
      local c1 = sb:stats().connections
      assert.is_true(c1 >= 1 and c1 <= 3, "connections " .. c1)
      res = h:request_many(sb.url, list)
      assert.equal(9, #res)
      h:request(sb.url, { key = KEY, action = "balance" })
      local st = sb:stats()
      assert.equal(19, st.requests)
      assert.equal(c1, st.connections)
      h:close()
    end)
  end)

  describe("request_many", function()
    local h
    before_each(function() h = core.new() end)
    after_each(function() h:close() end)

    it("returns results in list order even when the first finishes last", function()
      sb:fault("slow", { delay = 400, action = "balance" })
      local res = h:request_many(sb.url, {
        { key = KEY, action = "balance" },
        { key = KEY, action = "services" },
        { key = KEY, action = "status", order = 999999 },
        { key = "wrong", action = "balance" },
        { key = KEY, action = "add", service = 1, link = "https://x.test/m", quantity = 100 },
      })
      assert.equal(5, #res)
      assert.equal("USD", res[1].json.currency)
      assert.is_string(res[1].json.balance)
      assert.is_table(res[2].json[1])
      assert.is_string(res[3].json.error)
      assert.is_string(res[4].json.error)
      assert_integer(res[5].json.order)
      for i = 1, 5 do assert.equal(200, res[i].status) end
    end)

    it("matches 40 answers to their requests", function()
      local list = {}
      for i = 1, 40 do list[i] = { reply = ('{"i": %d}'):format(i), tag = ("#%d&"):format(i), close = 1 } end
      local res = h:request_many(srv.url, list, { concurrency = 4 })
      assert.equal(40, #res)
      for i = 1, 40 do
        assert.equal(i, res[i].json.i)
        assert_integer(res[i].json.i)
      end
    end)

    it("runs transfers in parallel", function()
      sb:fault("slow", { delay = 600, times = 4 })
      local list = {}
      for i = 1, 4 do list[i] = { key = KEY, action = "balance" } end
      local ms, res = elapsed_ms(function() return h:request_many(sb.url, list) end)
      for i = 1, 4 do assert.equal(200, res[i].status) end
      assert.is_true(ms < 1500, "took " .. ms)
      assert.equal(4, sb:stats().peak_in_flight)
    end)

    it("honours a per-call concurrency", function()
      sb:fault("slow", { delay = 200, times = 3 })
      local list = {}
      for i = 1, 3 do list[i] = { key = KEY, action = "balance" } end
      local ms, res = elapsed_ms(function()
        return h:request_many(sb.url, list, { concurrency = 1 })
      end)
      assert.equal(3, #res)
      assert.is_true(ms >= 590, "took " .. ms)
      assert.equal(1, sb:stats().peak_in_flight)
    end)

    it("mixes failures and answers, each in its slot", function()
      local dead = "http://127.0.0.1:" .. sandbox.closed_port() .. "/api/v2"
      local res = h:request_many(dead, { { key = KEY }, { key = KEY } })
      assert.equal(2, #res)
      for i = 1, 2 do
        assert.equal("network", res[i].failure)
        assert.is_false(res[i].sent)
      end
      sb:fault("html503", { times = 1 })
      res = h:request_many(sb.url, { { key = KEY, action = "balance" },
                                     { key = KEY, action = "balance" } }, { concurrency = 1 })
      assert.equal(503, res[1].status)
      assert.equal(200, res[2].status)
    end)

    it("an empty list gives an empty table without sending", function()
      assert.same({}, h:request_many(sb.url, {}))
      assert.equal(0, sb:stats().requests)
    end)
  end)
end)
