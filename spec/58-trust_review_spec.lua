-- A cold review of issue 10's fixes: what still slipped through. Refill and cancel answers read
-- as strictly as add's (an empty error is no error, a refill id is a real id, a cancel answer
-- is a flag, a missing entry proves nothing), a JSON error proves a refusal only at a 2xx or
-- 4xx, URL credentials with an unencoded / are kept out of sight, only credential-like or long
-- query values are secrets, and max_cost is a decimal string. Only smm.new is used, so spec/21
-- runs this file again over the cosocket transport.
local hostile = require "helpers.hostile"
local env = require "helpers.env"
local smm = require "smm"

local KEY = env.KEY
local ORDER = { service = 1, link = "https://x.test/p", quantity = 100 }
local J = hostile.json

local function answer(status, reason, body)
  return ("HTTP/1.1 %d %s\r\nLocation: /elsewhere\r\nContent-Type: application/json\r\n" ..
    "Content-Length: %d\r\n\r\n%s"):format(status, reason, #body, body)
end

describe("trust review", function()
  local servers = {}

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

  local function ambiguous(res, err, kind)
    assert.is_nil(res)
    assert.is_true(smm.is_error(err), tostring(err))
    if kind then assert.equal(kind, err.kind, tostring(err)) end
    assert.is_true(err.ambiguous, tostring(err))
    assert.is_false(env.leaks_key(err))
  end

  local function ambiguous_entry(entry)
    assert.is_table(entry)
    assert.is_string(entry.error)
    assert.equal("decode", entry.kind)
    assert.is_true(entry.ambiguous)
  end

  describe("refill answers (A)", function()
    for _, body in ipairs{ '{"refill":{"error":null}}', '{"refill":{"error":""}}', '{"refill":1.5}',
                           '{"refill":true}', '{"refill":-1}', '{"refill":0}', '{"refill":"abc"}' } do
      it("refill(5) answered " .. body .. " is ambiguous", function()
        local client = panel{ default = J(body) }
        ambiguous(client:refill(5))
      end)
    end

    it("refill(5) answered {\"refill\":77,\"error\":null} is refill 77", function()
      local client = panel{ default = J('{"refill":77,"error":null}') }
      local res, err = client:refill(5)
      assert.is_nil(err and tostring(err))
      assert.equal(77, res.refill)
      assert.is_true(env.is_integer(res.refill))
      assert.is_nil(res.error)
    end)

    it("refill(5) answered {\"refill\":{\"error\":\"Refill not found\"}} is a definite api error", function()
      local client = panel{ default = J('{"refill":{"error":"Refill not found"}}') }
      local res, err = client:refill(5)
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("refill_not_found", err.code)
      assert.is_false(err.ambiguous)
    end)

    for _, body in ipairs{ '{"5":{"refill":{"error":null}},"6":{"refill":8}}',
                           '[{"order":5,"refill":1.5},{"order":6,"refill":8}]',
                           '[{"order":5,"refill":true},{"order":6,"refill":"8"}]',
                           '[{"order":5,"refill":-1},{"order":6,"refill":8}]' } do
      it("refill{5, 6} answered " .. body .. ": 5 is ambiguous, 6 is refill 8", function()
        local client = panel{ default = J(body) }
        local res = client:refill{ 5, 6 }
        assert.is_table(res)
        ambiguous_entry(res[5])
        assert.same({ refill = 8 }, res[6])
      end)
    end

    it("a multi entry naming a refill id and a real error is ambiguous", function()
      local client = panel{ default = J('[{"order":5,"refill":9,"error":"Refill not found"}]') }
      local res = client:refill{ 5 }
      ambiguous_entry(res[5])
    end)
  end)

  describe("cancel answers (A)", function()
    for _, body in ipairs{ '[{"order":5,"cancel":{"error":null}}]', '[{"order":5,"cancel":"maybe"}]',
                           '[{"order":5,"cancel":null}]', '{"5":{"cancel":{"error":""}}}' } do
      it("cancel(5) answered " .. body .. " is ambiguous", function()
        local client = panel{ default = J(body) }
        local res, err = client:cancel(5)
        ambiguous(res, err, "decode")
      end)
    end

    it("cancel(5) answered [{\"order\":5,\"cancel\":1}] is cancelled", function()
      local client = panel{ default = J('[{"order":5,"cancel":1}]') }
      local res, err = client:cancel(5)
      assert.is_nil(err and tostring(err))
      assert.same({ cancel = true }, res)
    end)

    it("cancel(5) answered with an error for the id is a definite api error", function()
      local client = panel{ default = J('[{"order":5,"cancel":{"error":"Incorrect order ID"}}]') }
      local res, err = client:cancel(5)
      assert.is_nil(res)
      assert.equal("api", err.kind)
      assert.equal("incorrect_order", err.code)
      assert.is_false(err.ambiguous)
    end)
  end)

  describe("an answer with no entry for the id (C)", function()
    for _, body in ipairs{ "[]", "{}" } do
      it("cancel(5) answered " .. body .. " is ambiguous", function()
        local client = panel{ default = J(body) }
        local res, err = client:cancel(5)
        ambiguous(res, err, "decode")
      end)

      it("refill{5, 6} answered " .. body .. ": both ambiguous", function()
        local client = panel{ default = J(body) }
        local res = client:refill{ 5, 6 }
        assert.is_table(res)
        ambiguous_entry(res[5])
        ambiguous_entry(res[6])
      end)
    end

    it("cancel{5, 6} answered for 5 only: 6 is ambiguous", function()
      local client = panel{ default = J('[{"order":5,"cancel":1}]') }
      local res = client:cancel{ 5, 6 }
      assert.same({ cancel = true }, res[5])
      ambiguous_entry(res[6])
    end)

    it("status{5, 6} answered for 5 only: 6 is a definite per-id error (reading proves nothing was changed)", function()
      local client = panel{ default = J('{"5":{"status":"Completed","charge":"0.90","remains":"0"}}') }
      local res = client:status{ 5, 6 }
      assert.equal("Completed", res[5].status)
      assert.is_string(res[6].error)
      assert.is_nil(res[6].kind)
      assert.is_nil(res[6].ambiguous)
    end)
  end)

  -- One rule: for a changing action, a JSON error proves the refusal at a 2xx or a 4xx; a 3xx
  -- or a 5xx (or a 1xx) proves nothing.
  describe("a JSON error and its HTTP status (B)", function()
    local ROWS = {
      { 200, "OK", '{"error":"Not enough funds"}', false, "not_enough_funds" },
      { 400, "Bad Request", '{"error":"Not enough funds"}', false, "not_enough_funds" },
      { 400, "Bad Request", '{"error":"Something only this panel says"}', false, "unknown" },
      { 403, "Forbidden", '{"error":"Invalid API key"}', false, "invalid_key" },
      { 429, "Too Many", '{"error":"Too many requests"}', false, "rate_limited" },
      { 301, "Moved", '{"error":"blocked"}', true },
      { 302, "Found", '{"error":"Not enough funds"}', true },
      { 303, "See Other", '{"error":"blocked"}', true },
      { 500, "Oops", '{"error":"Not enough funds"}', true },
      { 503, "Busy", '{"error":"blocked"}', true },
    }
    for _, row in ipairs(ROWS) do
      local status, reason, body, is_ambiguous, code = row[1], row[2], row[3], row[4], row[5]
      it("add answered " .. status .. " " .. body .. " is " ..
         (is_ambiguous and "ambiguous" or "a definite " .. code), function()
        local client, srv = panel{ default = answer(status, reason, body) }
        local res, err = client:add(ORDER)
        assert.is_nil(res)
        assert.equal("api", err.kind, tostring(err))
        assert.equal(is_ambiguous, err.ambiguous, tostring(err))
        if code then assert.equal(code, err.code) end
        assert.equal(1, srv:count("add"))
      end)
    end

    it("refill and cancel answered 303 with a JSON error are ambiguous", function()
      local client = panel{ default = answer(303, "See Other", '{"error":"blocked"}') }
      local res, err = client:refill(5)
      ambiguous(res, err, "api")
      res, err = client:cancel(5)
      ambiguous(res, err, "api")
    end)

    it("status answered 303 with a JSON error is not ambiguous (it changes nothing)", function()
      local client = panel{ default = answer(303, "See Other", '{"error":"blocked"}') }
      local res, err = client:status(5)
      assert.is_nil(res)
      assert.is_false(err.ambiguous)
    end)
  end)

  describe("credentials in the URL (E1)", function()
    local CASES = {
      { "https://user:pa/ss@host/api/v2", "https://host/api/v2", { "pa/ss", "pa", "ss@" } },
      { "https://user:p@ss@host/api/v2", "https://host/api/v2", { "p@ss", "ss@" } },
      { "https://user:p/a@s/s@host:8443/api/v2", "https://host:8443/api/v2", { "p/a", "s/s" } },
      { "https://u:pw@[::1]:8/x", "https://[::1]:8/x", { "pw" } },
      { "https://host/api/v2?email=a@b.example", "https://host/api/v2", { "email", "b.example" } },
      { "https://host/api/v2#x@y", "https://host/api/v2", { "x@y" } },
    }
    for _, c in ipairs(CASES) do
      it(c[1] .. " is shown as " .. c[2], function()
        assert.equal(c[2], smm.printable_url(c[1]))
        local client = smm.new{ url = c[1], key = KEY }
        for _, where in ipairs{ tostring(client), client.url } do
          for _, hidden in ipairs(c[3]) do
            assert.is_nil(where:find(hidden, 1, true), where .. " shows " .. hidden)
          end
        end
      end)
    end

    -- where the password holds a ? or a # before its @, which part is the host cannot be told
    for _, url in ipairs{ "https://user:pa?ss@host/api/v2", "https://user:pa#ss@host/api/v2",
                          "https://user:pa/ss?x@host/api/v2" } do
      it(url .. " shows no part of the password", function()
        local shown = smm.printable_url(url)
        assert.is_nil(shown:find("pa", 1, true), shown)
        assert.is_nil(shown:find("ss", 1, true), shown)
      end)
    end

    it("a password with an unencoded / is scrubbed from errors", function()
      local list = smm.secrets(KEY, "https://user:pa/ss@host/api/v2")
      assert.equal("see ***", smm.redact("see pa/ss", list))
    end)
  end)

  describe("query values as secrets (E2)", function()
    it("credential-like names at any length, other values from 8 characters", function()
      local list = smm.secrets(KEY, "http://127.0.0.1:9/api/v2?key=Kq&x=1&api_token=ab&page=2&sess=abcdefgh1")
      local set = {}
      for _, s in ipairs(list) do set[s] = true end
      assert.is_true(set.Kq)
      assert.is_true(set.ab)
      assert.is_true(set.abcdefgh1)
      assert.is_nil(set["1"])
      assert.is_nil(set["2"])
      assert.is_nil(set["x=1"])
    end)

    it("a short plain query value does not mangle a network error", function()
      local client = smm.new{ url = "http://127.0.0.1:9/api/v2?key=Kq&x=1", key = KEY, retries = 0,
                              timeout = 3000 }
      local res, err = client:balance()
      assert.is_nil(res)
      assert.is_nil(err.message:find("***", 1, true), err.message)
      assert.is_nil(err.message:find("Kq", 1, true), err.message)
    end)
  end)

  it("a secret with a space is scrubbed when echoed form-encoded (E3)", function()
    assert.equal("echo *** end", smm.redact("echo a+b%2Bc end", "a b+c"))
    assert.equal("echo *** end", smm.redact("echo a%20b+c end", "a b+c"))
  end)

  describe("max_cost is a decimal string, not negative (E5)", function()
    for _, c in ipairs{ { 0.01, "0.01", "decimal string" }, { "-1", "-1", "negative" },
                        { "-0.50", "-0.50", "negative" } } do
      it("max_cost = " .. tostring(c[1]) .. " (" .. type(c[1]) .. ") is refused before sending", function()
        local client, srv = panel{ default = J('{"order":23501}') }
        local res, err = client:add(ORDER, { max_cost = c[1] })
        assert.is_nil(res)
        assert.equal("invalid", err.kind)
        assert.equal("max_cost", err.field)
        assert.truthy(err.message:find(c[2], 1, true), err.message)
        assert.truthy(err.message:find(c[3], 1, true), err.message)
        assert.equal(0, srv:count())
      end)
    end
  end)
end)
