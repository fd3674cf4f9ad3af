-- Answers a hostile or sloppy panel gives, and what each must mean (issue 10, points 1, 4, 5,
-- 15, 16 and the 404 hint of 29). Every answer is scripted byte for byte (helpers.hostile),
-- and only smm.new is used, so spec/21 runs this file again over the cosocket transport. Over
-- libcurl the C core reads these answers itself (the direct reader, or cjson when an answer has
-- a nested value): each case that matters comes in both shapes.
--
-- An add has exactly one of three outcomes: placed (an integer id), not placed (provably), or
-- ambiguous. Anything the answer does not prove is ambiguous, never a definite failure (a
-- batch would place the row again) and never a success with a made-up id.
local hostile = require "helpers.hostile"
local env = require "helpers.env"
local smm = require "smm"

local KEY = env.KEY
local ORDER = { service = 1, link = "https://x.test/p", quantity = 100 }
local BOM = "\239\187\191"

-- An object member that makes the C core hand the answer to cjson (the direct reader reads flat
-- objects only), so both of its readers are exercised.
local NESTED = ',"extra":{"nested":[1]}'

local function with_nested(body)
  return (body:gsub("}$", NESTED .. "}"))
end

local function status_entry(extra)
  return '{"charge":"0.90","start_count":"10","status":"Completed","remains":"0","currency":"USD"' ..
    (extra or "") .. "}"
end

local function gzip(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  local p = assert(io.popen("gzip -nc '" .. path .. "'"))
  local out = p:read("*a")
  p:close()
  os.remove(path)
  assert(#out > 18, "gzip produced nothing")
  return out
end

-- (concatenated: Lua 5.1's %s stops at the NUL bytes gzip data holds)
local function gzipped(body)
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n" ..
    "Content-Length: " .. #body .. "\r\n\r\n" .. body
end

local function page(status, reason, extra)
  local body = "<html><head><title>" .. reason .. "</title></head><body>" .. reason .. "</body></html>"
  return ("HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n%s\r\n%s")
    :format(status, reason, #body, extra or "", body)
end

describe("trusting answers", function()
  local servers = {}

  -- A hostile panel and a client of it; both are stopped after each test.
  local function panel(script)
    local srv = hostile.start(script)
    local client = smm.new{ url = srv.url, key = KEY, retries = 0, timeout = 5000 }
    servers[#servers + 1] = { srv = srv, client = client }
    return client, srv
  end

  after_each(function()
    for _, s in ipairs(servers) do
      s.client:close()
      s.srv:stop()
    end
    servers = {}
  end)

  local function placed(id, res, err)
    assert.is_nil(err and tostring(err))
    assert.is_table(res)
    assert.is_true(env.is_integer(res.order), "order id is not an integer: " .. tostring(res.order))
    assert.equal(id, res.order)
    assert.is_nil(res.error)
  end

  local function ambiguous(res, err, kind)
    assert.is_nil(res)
    assert.is_true(smm.is_error(err), tostring(err))
    if kind then assert.equal(kind, err.kind, tostring(err)) end
    assert.is_true(err.ambiguous, tostring(err))
    assert.is_false(env.leaks_key(err))
  end

  describe("an empty error field (point 1)", function()
    for _, empty in ipairs{ "null", "false", '""' } do
      for _, shape in ipairs{ "flat", "nested" } do
        local body = '{"order":23501,"error":' .. empty .. "}"
        if shape == "nested" then body = with_nested(body) end

        it("add answered " .. body .. " is placed", function()
          local client, srv = panel{ actions = { add = hostile.json(body) } }
          placed(23501, client:add(ORDER))
          assert.equal(1, srv:count("add"))
        end)

        it("balance with error " .. empty .. " (" .. shape .. ") is read", function()
          local b = '{"balance":"12.50","currency":"USD","error":' .. empty .. "}"
          local client = panel{ actions = { balance = hostile.json(shape == "nested" and with_nested(b) or b) } }
          local res, err = client:balance()
          assert.is_nil(err and tostring(err))
          assert.equal("12.50", res.balance)
          assert.is_nil(res.error)
        end)

        it("single status with error " .. empty .. " (" .. shape .. ") is read", function()
          local b = status_entry(',"error":' .. empty)
          local client = panel{ actions = { status = hostile.json(shape == "nested" and with_nested(b) or b) } }
          local res, err = client:status(23501)
          assert.is_nil(err and tostring(err))
          assert.equal("Completed", res.status)
          assert.equal("0.90", res.charge)
          assert.is_nil(res.error)
        end)

        it("multi status of 250 ids with error " .. empty .. " (" .. shape .. ") in every entry", function()
          local ids, parts = {}, {}
          for i = 1, 250 do
            ids[i] = 1000 + i
            parts[i] = ('"%d":%s'):format(1000 + i, status_entry(',"error":' .. empty ..
              ((shape == "nested" and i == 1) and NESTED or "")))
          end
          local client = panel{ actions = { status = hostile.json("{" .. table.concat(parts, ",") .. "}") } }
          local res, err = client:status(ids)
          assert.is_nil(err and tostring(err))
          for _, id in ipairs(ids) do
            assert.is_nil(res[id].error, "entry " .. id .. " read as an error: " .. tostring(res[id].error))
            assert.equal("Completed", res[id].status)
          end
        end)
      end
    end

    it("an order id with a real error message is ambiguous, never a definite failure", function()
      for _, body in ipairs{ '{"order":23501,"error":"Not enough funds"}',
                             with_nested('{"order":"23501","error":"Not enough funds"}'),
                             '{"order_id":23501,"error":"Not enough funds"}',
                             '{"error":"Not enough funds","refill_id":"23501"}' } do
        local client, srv = panel{ actions = { add = hostile.json(body) } }
        local res, err = client:add(ORDER)
        ambiguous(res, err)
        assert.truthy(err.message:find("23501", 1, true), err.message)
        assert.equal(1, srv:count("add"))
      end
    end)

    it("a real error without an order id stays a definite api error", function()
      for _, body in ipairs{ '{"error":"Not enough funds"}', '{"order":null,"error":"Not enough funds"}' } do
        local client = panel{ actions = { add = hostile.json(body) } }
        local res, err = client:add(ORDER)
        assert.is_nil(res)
        assert.equal("api", err.kind)
        assert.equal("not_enough_funds", err.code)
        assert.is_false(err.ambiguous)
      end
    end)

    it("a per-id error in a multi status answer is still that id's error", function()
      local client = panel{ actions = { status = hostile.json(
        '{"1":' .. status_entry(',"error":null') .. ',"2":{"error":"Incorrect order ID"}}') } }
      local res, err = client:status{ 1, 2 }
      assert.is_nil(err and tostring(err))
      assert.is_nil(res[1].error)
      assert.equal("Incorrect order ID", res[2].error)
    end)
  end)

  describe("an answer that proves nothing (point 4)", function()
    local see_other = "HTTP/1.1 303 See Other\r\nLocation: /orders/23501\r\nContent-Length: 0\r\n\r\n"

    for _, call in ipairs{
      { "add", function(c) return c:add(ORDER) end },
      { "refill", function(c) return c:refill(23501) end },
      { "cancel", function(c) return c:cancel(23501) end },
      { "cancel", function(c) return c:cancel{ 23501, 23502 } end },
    } do
      local action, run = call[1], call[2]
      it("a 303 after " .. action .. " is ambiguous and not sent again", function()
        local client, srv = panel{ actions = { [action] = see_other } }
        local res, err = run(client)
        ambiguous(res, err, "http")
        assert.equal(303, err.status)
        assert.equal(1, srv:count(action))
      end)
    end

    for _, case in ipairs{
      { page(502, "Bad Gateway"), 502 },
      { page(403, "Forbidden"), 403 },
      { page(400, "Bad Request"), 400 },
      { "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK", nil, "decode" },
      { page(200, "Just a moment..."), nil, "decode" },
    } do
      it("add answered HTTP " .. (case[2] or 200) .. " without JSON is ambiguous", function()
        local client, srv = panel{ actions = { add = case[1] } }
        local res, err = client:add(ORDER)
        ambiguous(res, err, case[3] or "http")
        assert.equal(1, srv:count("add"))
      end)
    end

    for _, case in ipairs{
      { page(404, "Not Found"), 404 },
      { page(405, "Method Not Allowed"), 405 },
      { page(429, "Too Many Requests", "Retry-After: 0\r\n"), 429 },
    } do
      it("add answered HTTP " .. case[2] .. " is definitely not placed", function()
        local client = panel{ actions = { add = case[1] } }
        local res, err = client:add(ORDER)
        assert.is_nil(res)
        assert.equal("http", err.kind)
        assert.equal(case[2], err.status)
        assert.is_false(err.ambiguous)
      end)
    end

    it("a redirect of a reading action is a plain http error", function()
      local client = panel{ actions = { balance = see_other } }
      local res, err = client:balance()
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.is_false(err.ambiguous)
    end)

    it("a 404 says to check the /api/v2 path (point 29)", function()
      local client = panel{ default = page(404, "Not Found") }
      local _, err = client:balance()
      assert.equal(404, err.status)
      assert.truthy(tostring(err):find("/api/v2", 1, true), tostring(err))
    end)
  end)

  describe("an order id that is no order id (point 5)", function()
    for _, id in ipairs{ "23501.5", "-1", "0", "1e400", "-1e400", "1e20", "9007199254740992", "true",
                         '"abc"', '"23501x"', '"-5"', '"0"', '"1e3"', '""', "[23501]" } do
      for _, shape in ipairs{ "flat", "nested" } do
        local body = '{"order":' .. id .. "}"
        if shape == "nested" then body = with_nested(body) end
        it("add answered " .. body .. " is ambiguous", function()
          local client, srv = panel{ actions = { add = hostile.json(body) } }
          local res, err = client:add(ORDER)
          ambiguous(res, err, "decode")
          assert.equal(1, srv:count("add"))
        end)
      end
    end

    for _, case in ipairs{ { "1", 1 }, { '"23501"', 23501 }, { "9007199254740991", 9007199254740991 },
                           { '" 77 "', 77 } } do
      it("add answered order " .. case[1] .. " is placed", function()
        local client = panel{ actions = { add = hostile.json('{"order":' .. case[1] .. "}") } }
        placed(case[2], client:add(ORDER))
      end)
    end
  end)

  describe("a multi status given as an array (point 15)", function()
    local function entry(status, extra)
      return '{"charge":"1.00","start_count":"0","status":"' .. status .. '","remains":"0"' ..
        (extra or "") .. "}"
    end

    for _, shape in ipairs{ "flat", "nested" } do
      it("is refused when its elements do not name their ids (" .. shape .. ")", function()
        local body = "[" .. entry("Completed") .. "," .. entry("Canceled") .. "]"
        if shape == "nested" then body = "[" .. entry("Completed", NESTED) .. "," .. entry("Canceled") .. "]" end
        local client = panel{ actions = { status = hostile.json(body) } }
        local res, err = client:status{ 1, 2 }
        assert.is_nil(res)
        assert.equal("decode", err.kind, tostring(err))
      end)

      it("is read by the id each element names (" .. shape .. ")", function()
        local body = "[" .. entry("Canceled", ',"order":2' .. (shape == "nested" and NESTED or "")) ..
          "," .. entry("Completed", ',"id":"1"') .. "]"
        local client = panel{ actions = { status = hostile.json(body) } }
        local res, err = client:status{ 1, 2 }
        assert.is_nil(err and tostring(err))
        assert.equal("Completed", res[1].status)
        assert.equal("Canceled", res[2].status)
      end)
    end

    it("is refused when only some elements name their ids", function()
      local client = panel{ actions = { status = hostile.json(
        "[" .. entry("Canceled", ',"order":2') .. "," .. entry("Completed") .. "]") } }
      local res, err = client:status{ 1, 2 }
      assert.is_nil(res)
      assert.equal("decode", err.kind, tostring(err))
    end)

    it("an object keyed by ids is still read by its keys", function()
      local client = panel{ actions = { status = hostile.json(
        '{"1":' .. entry("Completed") .. ',"2":' .. entry("Canceled") .. "}") } }
      local res, err = client:status{ 1, 2 }
      assert.is_nil(err and tostring(err))
      assert.equal("Completed", res[1].status)
      assert.equal("Canceled", res[2].status)
    end)
  end)

  describe("a UTF-8 BOM before the JSON (point 16)", function()
    for _, shape in ipairs{ "flat", "nested" } do
      local function bom(body) return BOM .. (shape == "nested" and with_nested(body) or body) end

      it("is accepted on add (" .. shape .. ")", function()
        local client = panel{ actions = { add = hostile.json(bom('{"order":23501}')) } }
        placed(23501, client:add(ORDER))
      end)

      it("is accepted on balance and status (" .. shape .. ")", function()
        local client = panel{ actions = {
          balance = hostile.json(bom('{"balance":"3.10","currency":"USD"}')),
          status = hostile.json(bom('{"5":' .. status_entry() .. "}")) } }
        local res, err = client:balance()
        assert.is_nil(err and tostring(err))
        assert.equal("3.10", res.balance)
        res, err = client:status{ 5 }
        assert.is_nil(err and tostring(err))
        assert.equal("Completed", res[5].status)
      end)
    end

    it("is accepted before whitespace and a list", function()
      local client = panel{ default = hostile.json(BOM .. '\n [{"service":1,"name":"x","rate":"0.90",' ..
        '"min":"10","max":"100","type":"Default","category":"c"}]') }
      local res, err = client:services()
      assert.is_nil(err and tostring(err))
      assert.equal(1, res[1].service)
    end)

    it("a BOM alone or in the middle is no JSON", function()
      local client = panel{ actions = { add = hostile.json(BOM), balance = hostile.json('{"balance":' .. BOM .. '"1"}') } }
      ambiguous(client:add(ORDER))
      local res, err = client:balance()
      assert.is_nil(res)
      assert.equal("decode", err.kind)
    end)
  end)

  describe("a gzip answer whose trailer is cut (point 16)", function()
    -- one rule on both transports: what inflates is used whatever the gzip trailer says (libcurl
    -- does not check a trailer that is cut); the JSON decoder then refuses an answer that is not
    -- whole, which leaves an add ambiguous.
    local add_gz = gzip('{"order":23501}')
    local balance_gz = gzip('{"balance":"7.25","currency":"USD"}')

    for _, cut in ipairs{ 8, 4, 1 } do
      it("with " .. cut .. " trailer bytes cut, the answer is used", function()
        local client = panel{ actions = { add = gzipped(add_gz:sub(1, -1 - cut)),
                                          balance = gzipped(balance_gz:sub(1, -1 - cut)) } }
        placed(23501, client:add(ORDER))
        local res, err = client:balance()
        assert.is_nil(err and tostring(err))
        assert.equal("7.25", res.balance)
      end)
    end

    it("whole, the answer is used", function()
      local client = panel{ actions = { add = gzipped(add_gz) } }
      placed(23501, client:add(ORDER))
    end)

    it("with the compressed data itself cut, an add is ambiguous", function()
      local client, srv = panel{ actions = { add = gzipped(add_gz:sub(1, -14)),
                                             balance = gzipped(balance_gz:sub(1, -14)) } }
      ambiguous(client:add(ORDER))
      assert.equal(1, srv:count("add"))
      local res, err = client:balance()
      assert.is_nil(res)
      assert.equal("decode", err.kind)
    end)
  end)
end)
