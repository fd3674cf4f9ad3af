-- Test helper: the transport contract of docs/transport.md as busted blocks, for any transport.
--
--   local conformance = require "helpers.conformance"
--   conformance.run("curl", function(opts) return require("smm.transport.curl").new(opts) end,
--                   { describe = describe, it = it, setup = setup, teardown = teardown,
--                     assert = assert })   -- busted's functions, which only a spec file sees
--
-- `new(opts)` makes a transport; opts holds timeout, connect_timeout (ms), max_body (bytes),
-- concurrency, as smm.new passes them. The blocks talk to real servers on loopback: the echo
-- server (the exact body bytes a request carried) and the hostile panel (scripted raw answers,
-- and a log of what reached it). A third transport (lua-http, cqueues, a test double that really
-- sends) passes when these pass; the form bytes are those of M.FORMS, which both built-in
-- transports send byte for byte.
local echo = require "helpers.echo"
local hostile = require "helpers.hostile"
local sandbox = require "helpers.sandbox"

local M = {}

local rep = string.rep

local ALL_BYTES = {}
for b = 0, 255 do ALL_BYTES[#ALL_BYTES + 1] = string.char(b) end
ALL_BYTES = table.concat(ALL_BYTES)

-- What ALL_BYTES must become: the rule written out once more, independently of both encoders.
local function all_bytes_escaped()
  local out = {}
  for b = 0, 255 do
    local c = string.char(b)
    if (b >= 48 and b <= 57) or (b >= 65 and b <= 90) or (b >= 97 and b <= 122) or c == "-" or
       c == "." or c == "_" or c == "~" then
      out[#out + 1] = c
    elseif c == " " then
      out[#out + 1] = "+"
    else
      out[#out + 1] = ("%%%02X"):format(b)
    end
  end
  return table.concat(out)
end

-- { what, fields, the exact body }. Every transport must send these bytes.
M.FORMS = {
  { "strings", { action = "balance", key = "k3y" }, "action=balance&key=k3y" },
  { "an empty string", { link = "" }, "link=" },
  { "integers", { service = 1, quantity = 1000, n = -42 }, "n=-42&quantity=1000&service=1" },
  { "zero and negative zero", { a = 0, b = -0.0, c = 0.0 }, "a=0&b=0&c=0" },
  { "integral floats without .0, on every Lua", { quantity = 100.0, runs = -3.0 },
    "quantity=100&runs=-3" },
  { "2^53 and beyond: every digit of the value", { a = 2 ^ 53, b = 2 ^ 63, c = 1e23, d = -1e22 },
    "a=9007199254740992&b=9223372036854775808&c=99999999999999991611392&d=-10000000000000000000000" },
  { "floats: the shortest decimal that reads back", { a = 0.1, b = 0.35, c = 1 / 3, d = 0.1 + 0.2,
    e = 123456.789, f = 1e15 + 0.5, g = -7.25 },
    "a=0.1&b=0.35&c=0.3333333333333333&d=0.30000000000000004&e=123456.789&f=1000000000000000.5&g=-7.25" },
  -- the fewest of 15..17 digits, not fewer: 5e-324 reads back from 1 digit, but written with 15
  { "small floats never in exponent notation", { a = 1e-05, b = -2.5e-7, c = 1.5e-300, d = 5e-324 },
    "a=0.00001&b=-0.00000025&c=0." .. rep("0", 299) .. "15&d=0." .. rep("0", 323) .. "494065645841247" },
  -- exactly halfway between two 17-digit decimals: the even one, as C's printf (not LuaJIT's)
  { "floats at a rounding tie", { a = -155299.160400390625, b = 155299.000732421875,
    c = 155299.000244140625 }, "a=-155299.16040039062&b=155299.00073242188&c=155299.00024414062" },
  { "numeric-looking strings stay as written", { quantity = "1e5", price = "0.90", id = " 7" },
    "id=+7&price=0.90&quantity=1e5" },
  { "reserved bytes, space as +", { ["a b"] = "x y&z=1+2%", q = "*'()!,;:@/?#[]" },
    "a+b=x+y%26z%3D1%2B2%25&q=%2A%27%28%29%21%2C%3B%3A%40%2F%3F%23%5B%5D" },
  { "unreserved bytes kept", { ["A-Z.a_z~09"] = "AZaz09-._~" }, "A-Z.a_z~09=AZaz09-._~" },
  { "UTF-8 and line breaks", { comments = "h\195\169llo\nline2\r\n" },
    "comments=h%C3%A9llo%0Aline2%0D%0A" },
  { "every byte", { v = ALL_BYTES }, "v=" .. all_bytes_escaped() },
  { "names sorted bytewise", { b = 1, a = 2, B = 3, _ = 4, aa = 5, ["~"] = 6, ["\195\169"] = 7, Z = 8 },
    "B=3&Z=8&_=4&a=2&aa=5&b=1&~=6&%C3%A9=7" },
  { "a NUL byte in a name and a value", { ["a\0b"] = "x\0y", a = "1" }, "a=1&a%00b=x%00y" },
  { "a long value", { comments = rep("ab ", 40000) }, "comments=" .. rep("ab+", 40000) },
}
if math.type then -- an integer subtype exists (5.3+): its whole range
  M.FORMS[#M.FORMS + 1] = { "integer extremes", { a = math.maxinteger, b = math.mininteger },
    "a=9223372036854775807&b=-9223372036854775808" }
end

-- { what, fields, a pattern the raised message must match }. A misuse: raises before sending.
M.REFUSED = {
  { "a boolean", { action = "balance", flag = true }, "flag.*boolean" },
  { "false", { flag = false }, "flag.*boolean" },
  { "a table (the client joins lists)", { orders = { 1, 2, 3 } }, "orders.*table" },
  { "NaN", { x = 0 / 0 }, "x.*finite" },
  { "inf", { x = math.huge }, "x.*finite" },
  { "-inf", { x = -math.huge }, "x.*finite" },
  { "a function", { f = print }, "f.*function" },
  { "a number as a name", { [1] = "x" }, "names must be strings" },
  { "a boolean as a name", { [true] = "x" }, "names must be strings" },
}

local ANSWER = '{"balance":"12.30","currency":"USD"}'

-- Defines the blocks. name: for the describe title; new(opts) -> a transport; bu: busted's
-- describe, it, setup, teardown and assert.
function M.run(name, new, bu)
  local describe, it, setup, teardown, assert = bu.describe, bu.it, bu.setup, bu.teardown, bu.assert
  local function open(opts)
    opts = opts or {}
    local o = { timeout = opts.timeout or 5000, connect_timeout = opts.connect_timeout or 2000,
                max_body = opts.max_body or 1024 * 1024, concurrency = opts.concurrency or 4 }
    return new(o)
  end

  describe("transport " .. name .. " conformance", function()
    describe("form encoding", function()
      local srv, t
      setup(function()
        srv = echo.start()
        t = open()
      end)
      teardown(function()
        t:close()
        srv:stop()
      end)

      for _, case in ipairs(M.FORMS) do
        it("sends " .. case[1] .. " as the exact bytes", function()
          local r = t:request(srv.url, case[2], { idempotent = true })
          assert.is_nil(r.failure, r.message)
          assert.equal(200, r.status)
          assert.equal(case[3], r.body)
        end)
      end

      -- A transport may keep the body of fields it sent before (the ngx one does): the same
      -- table, changed in between, must go out as it is now.
      it("the same fields table, changed between requests, sends what it holds each time", function()
        local fields = { key = "k1", action = "balance" }
        local steps = {
          { function() end, "action=balance&key=k1" },
          { function() fields.key = "k2" end, "action=balance&key=k2" },
          { function() fields.order = 7 end, "action=balance&key=k2&order=7" },
          { function() fields.order = 7.5 end, "action=balance&key=k2&order=7.5" },
          { function() fields.order = nil end, "action=balance&key=k2" },
          { function() fields.action = nil end, "key=k2" },
          { function() fields.key = nil; fields.zz, fields.aa = "k2", "balance" end, "aa=balance&zz=k2" },
        }
        for i, step in ipairs(steps) do
          step[1]()
          local r = t:request(srv.url, fields, { idempotent = true })
          assert.is_nil(r.failure, r.message)
          assert.equal(step[2], r.body, "step " .. i)
        end
        local other = { action = "balance", key = "k2" } -- another table of the same fields
        assert.equal("action=balance&key=k2", t:request(srv.url, other, { idempotent = true }).body)
        other.key = math.huge
        assert.is_false(pcall(t.request, t, srv.url, other, { idempotent = true }))
      end)

      it("request_many sends each item's own bytes", function()
        local list, want = {}, {}
        for i = 1, 4 do list[i], want[i] = M.FORMS[i][2], M.FORMS[i][3] end
        local rs = t:request_many(srv.url, list, { idempotent = true, concurrency = 1 })
        assert.equal(4, #rs)
        for i = 1, 4 do assert.equal(want[i], rs[i].body) end
      end)
    end)

    describe("refuses a field the form cannot carry, before sending", function()
      local srv
      setup(function() srv = hostile.start{ default = hostile.json(ANSWER) } end)
      teardown(function() srv:stop() end)

      for _, case in ipairs(M.REFUSED) do
        it(case[1] .. " (request)", function()
          local t = open()
          local ok, err = pcall(t.request, t, srv.url, case[2], { idempotent = true })
          t:close()
          assert.is_false(ok)
          assert.matches(case[3], tostring(err))
          assert.equal(0, srv:count())
        end)
      end

      it("in request_many: raises naming the item, with nothing sent", function()
        for _, case in ipairs(M.REFUSED) do
          local t = open()
          local ok, err = pcall(t.request_many, t, srv.url,
            { { action = "balance" }, case[2], { action = "balance" } }, { idempotent = true })
          t:close()
          assert.is_false(ok, case[1])
          assert.matches(case[3], tostring(err))
          assert.matches("(item 2)", tostring(err), 1, true)
        end
        assert.equal(0, srv:count())
      end)
    end)

    describe("results", function()
      local srv
      local CLOSE = "Connection: close\r\n"
      local HTML = "<html><title>502</title>down</html>"
      setup(function()
        srv = hostile.start{
          default = hostile.json(ANSWER, 200, CLOSE),
          actions = {
            html = "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: " ..
              #HTML .. "\r\n" .. CLOSE .. "\r\n" .. HTML,
            broken = hostile.json('{"balance":', 200, CLOSE),
            limited = hostile.json('{"error":"Too many requests"}', 429, "Retry-After: 7\r\n" .. CLOSE),
            moved = "HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example/api/v2\r\n" ..
              "Content-Length: 0\r\n" .. CLOSE .. "\r\n",
            big = hostile.json('{"x":"' .. rep("y", 5000) .. '"}', 200, CLOSE),
            silent = { raw = "", hang = 1 },
            reset = { raw = "", reset = true },
            money = hostile.json('{"price":0.35,"id":"157"}', 200, CLOSE),
            one = hostile.json('{"n":1}', 200, CLOSE),
            two = hostile.json('{"n":2}', 200, CLOSE),
            three = hostile.json('{"n":3}', 200, CLOSE),
          },
        }
      end)
      teardown(function() srv:stop() end)

      local function request(action, ropts, opts)
        local t = open(opts)
        local r = t:request(srv.url, { action = action, key = "k" }, ropts or { idempotent = true })
        t:close()
        return r
      end

      it("a JSON answer: status and json, no failure", function()
        local r = request("balance")
        assert.is_nil(r.failure)
        assert.equal(200, r.status)
        assert.same({ balance = "12.30", currency = "USD" }, r.json)
        assert.is_nil(r.body)
        assert.is_nil(r.decode_error)
      end)

      it("the form reaches the panel as a POST of application/x-www-form-urlencoded", function()
        local before = #srv:requests()
        request("balance")
        local got = srv:requests()[before + 1]
        assert.matches("^POST /api/v2 HTTP/1%.1", got.line)
        assert.matches("^application/x%-www%-form%-urlencoded", got.headers["content-type"])
        assert.equal("action=balance&key=k", got.body)
      end)

      it("an answer that is not JSON: status, body and content_type", function()
        local r = request("html")
        assert.equal(502, r.status)
        assert.is_nil(r.json)
        assert.equal(HTML, r.body)
        assert.matches("text/html", r.content_type, 1, true)
      end)

      it("JSON that does not parse: body and decode_error", function()
        local r = request("broken")
        assert.equal(200, r.status)
        assert.is_nil(r.json)
        assert.equal('{"balance":', r.body)
        assert.is_string(r.decode_error)
      end)

      it("Retry-After in seconds", function()
        local r = request("limited")
        assert.equal(429, r.status)
        assert.equal(7, r.retry_after)
        assert.same({ error = "Too many requests" }, r.json)
      end)

      it("a redirect is handed back, never followed", function()
        local before = srv:count()
        local r = request("moved")
        assert.equal(302, r.status)
        assert.equal("https://elsewhere.example/api/v2", r.location)
        assert.equal(before + 1, srv:count())
      end)

      it("nothing listening: failure network, sent = false", function()
        local t = open()
        local r = t:request("http://127.0.0.1:" .. sandbox.closed_port() .. "/api/v2",
          { action = "balance", key = "k" }, { idempotent = true })
        t:close()
        assert.equal("network", r.failure)
        assert.is_false(r.sent)
        assert.is_string(r.message)
        assert.is_nil(r.status)
      end)

      it("no answer within timeout: failure timeout, sent = true", function()
        local r = request("silent", { idempotent = false }, { timeout = 300 })
        assert.equal("timeout", r.failure)
        assert.is_true(r.sent)
        assert.is_string(r.message)
      end)

      it("the connection dropped after the request: failure network, sent = true", function()
        local r = request("reset", { idempotent = false })
        assert.equal("network", r.failure)
        assert.is_true(r.sent)
      end)

      it("an answer larger than max_body: failure too_large", function()
        local r = request("big", nil, { max_body = 1000 })
        assert.equal("too_large", r.failure)
        assert.is_string(r.message)
      end)

      it("normalized only when the transport applied ropts.schema", function()
        local r = request("money", { idempotent = true, schema = { "record", price = "money", id = "integer" } })
        assert.equal(200, r.status)
        if r.normalized then
          assert.same({ price = "0.35", id = 157 }, r.json)
        else
          assert.same({ price = 0.35, id = "157" }, r.json)
        end
        assert.is_falsy(request("money").normalized)
      end)

      it("request_many: one result per item, in the order given", function()
        local t = open()
        local before = srv:count()
        local rs = t:request_many(srv.url, { { action = "three" }, { action = "one" }, { action = "two" },
          { action = "one" } }, { idempotent = true, concurrency = 2 })
        t:close()
        assert.equal(4, #rs)
        for i, n in ipairs{ 3, 1, 2, 1 } do assert.same({ n = n }, rs[i].json) end
        assert.equal(before + 4, srv:count())
      end)

      it("request_many: failures stay in their place", function()
        local t = open({ max_body = 1000 })
        local rs = t:request_many(srv.url, { { action = "one" }, { action = "big" }, { action = "two" } },
          { idempotent = true, concurrency = 3 })
        t:close()
        assert.same({ n = 1 }, rs[1].json)
        assert.equal("too_large", rs[2].failure)
        assert.same({ n = 2 }, rs[3].json)
      end)

      it("request_many of nothing sends nothing", function()
        local t = open()
        local before = srv:count()
        local rs = t:request_many(srv.url, {}, { idempotent = true })
        t:close()
        assert.same({}, rs)
        assert.equal(before, srv:count())
      end)
    end)

    describe("the rest of the object", function()
      it("name, now in ms, sleep in ms, close", function()
        local t = open()
        assert.is_string(t.name)
        local t0 = t:now()
        assert.is_number(t0)
        t:sleep(60)
        local elapsed = t:now() - t0
        assert.is_true(elapsed >= 40 and elapsed < 5000, "slept 60 ms, now() moved " .. elapsed)
        t:sleep(0)
        t:close()
      end)
    end)
  end)
end

return M
