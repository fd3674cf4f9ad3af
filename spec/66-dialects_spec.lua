-- Issue 13, panel dialects (the curl transport): every action in every dialect against a
-- sandbox speaking it (its request log shows what went on the wire), a client of one dialect
-- against a panel of another fails clearly, the key sent in a header never comes back out (in
-- an error, the sandbox's log, a printed client), and an `errors` answer is an api error
-- classified as an `error` one is. The ngx transport: spec/67-dialects_ngx_spec.lua.
local env = require "helpers.env"
local echo = require "helpers.echo"
local smm = require "smm"
local cjson = require "cjson"

local KEY = env.KEY
local DIALECTS = { "perfectpanel", "api_token", "x_api_key", "bearer" }

-- Where each dialect puts what, as the sandbox's request log shows it.
local WIRE = {
  perfectpanel = { key_field = "key", service = "service" },
  api_token = { key_field = "api_token", service = "package" },
  x_api_key = { header = "x_api_key", service = "service" },
  bearer = { header = "authorization", service = "service" },
}

local function leaks(s, key)
  key = key or KEY
  s = tostring(s)
  for i = 1, #key - 7 do
    if s:find(key:sub(i, i + 7), 1, true) then return true end
  end
  return false
end

local function deep_leaks(v, seen)
  seen = seen or {}
  if type(v) == "string" then return leaks(v) end
  if type(v) ~= "table" or seen[v] then return false end
  seen[v] = true
  local mt = getmetatable(v)
  if mt and mt.__tostring and leaks(tostring(v)) then return true end
  for k, x in pairs(v) do
    if deep_leaks(k, seen) or deep_leaks(x, seen) then return true end
  end
  return false
end

local function client(sb, dialect, more)
  local o = { dialect = dialect, retries = 0 }
  for k, v in pairs(more or {}) do o[k] = v end
  return env.client(sb, o)
end

describe("dialects: every action in every dialect", function()
  for _, dialect in ipairs(DIALECTS) do
    describe(dialect, function()
      local sb, c
      setup(function()
        sb = env.sandbox{ dialect = dialect }
        c = client(sb, dialect)
      end)
      teardown(function()
        if c then c:close() end
        if sb then sb:stop() end
      end)
      before_each(function() sb:reset() end)

      it("services, balance, add, status, refill, refill_status, cancel, wait, call", function()
        local list = assert(c:services{ refresh = true })
        assert.is_true(#list > 0)
        assert.is_true(env.is_integer(list[1].service))
        local s1 = assert(c:service(1))
        assert.equal("1", tostring(s1.service))
        assert.equal("100.00", assert(c:balance()).balance)

        local placed = assert(c:add{ service = 1, link = "https://x.test/a", quantity = 100 })
        assert.is_true(env.is_integer(placed.order))
        local other = assert(c:add{ service = 1, link = "https://x.test/b", quantity = 100 })
        assert.equal(2, sb:stats().orders)

        local entry = assert(c:status(placed.order))
        assert.is_string(entry.status)
        local many = assert(c:status{ placed.order, other.order, 999 })
        assert.is_string(many[placed.order].status)
        assert.equal("Incorrect order ID", many[999].error)

        local done = assert(c:wait({ placed.order, other.order }, { interval = 1, timeout = 5000 }))
        assert.equal("Completed", done[placed.order].status)
        local refill = assert(c:refill(placed.order))
        assert.is_true(env.is_integer(refill.refill))
        local refills = assert(c:refill{ other.order, 999 })
        assert.is_true(env.is_integer(refills[other.order].refill))
        assert.is_string(refills[999].error)
        assert.is_string(assert(c:refill_status(refill.refill)).status)
        local rs = assert(c:refill_status{ refill.refill, 999 })
        assert.is_string(rs[refill.refill].status)
        assert.equal("Refill not found", rs[999].error)

        local third = assert(c:add{ service = 1, link = "https://x.test/c", quantity = 100 })
        local cancel = assert(c:cancel(third.order))
        assert.is_true(cancel.cancel)
        local cancels = assert(c:cancel{ placed.order, 999 })
        assert.is_string(cancels[999].error)

        assert.is_not_nil(assert(c:call("balance")).balance)

        -- a batch: its requests go in parallel, in the dialect too
        local results = c:batch{ { "balance" }, { "add", { service = 1, link = "https://x.test/d",
          quantity = 100 } }, { "status", { placed.order } } }
        for i = 1, 3 do assert.is_nil(results[i].err, tostring(results[i].err)) end
        assert.is_true(env.is_integer(results[2].value.order))
        assert.equal(4, sb:stats().orders)
      end)

      it("sends the key and the service where the dialect has them, and only there", function()
        -- a large body too (Expect: off) and a gzip-worthy one (the service list): smm.core
        -- sends the extra header line with each of its header lists
        local comments = ("a comment of some length\n"):rep(80)
        assert(c:add{ service = 2, link = "https://x.test/big", comments = comments })
        assert(c:add{ service = 1, link = "https://x.test/e", quantity = 100 })
        assert(c:services{ refresh = true })
        assert(c:balance())
        local log = sb:requests()
        assert.equal(4, #log)
        local w = WIRE[dialect]
        for _, r in ipairs(log) do
          assert.is_true(r.key_ok, cjson.encode(r))
          for _, name in ipairs{ "key", "api_token" } do
            if name == w.key_field then
              assert.equal("***", r.fields[name])
            else
              assert.is_nil(r.fields[name], name .. " sent in " .. dialect)
            end
          end
          for _, name in ipairs{ "x_api_key", "authorization" } do
            if name == w.header then assert.equal("***", r[name]) else assert.is_nil(r[name]) end
          end
          if r.action == "add" then
            assert.is_string(r.fields[w.service])
            if w.service ~= "service" then assert.is_nil(r.fields.service) end
          end
        end
        assert.is_false(leaks(cjson.encode(log)))
      end)

      it("an api error in the dialect: refusals are classified as before", function()
        sb:config{ balance = "0.00" }
        local res, err = c:add{ service = 1, link = "https://x.test/f", quantity = 100 }
        assert.is_nil(res)
        assert.equal("api", err.kind)
        assert.equal("not_enough_funds", err.code)
        assert.is_false(err.ambiguous)
        assert.is_false(err.retryable)
        assert.equal(0, sb:stats().orders)
        -- not checked against the cached list: the panel's own refusal
        res, err = c:add({ service = 999, link = "https://x.test/f", quantity = 100 }, { validate = false })
        assert.is_nil(res)
        assert.equal("incorrect_service", err.code)
        res, err = c:status(12345)
        assert.is_nil(res)
        assert.equal("incorrect_order", err.code)
      end)

      it("an error answer that may follow a placed order stays ambiguous", function()
        sb:fault("error500", { action = "add", perform = 1 })
        local res, err = c:add{ service = 1, link = "https://x.test/g", quantity = 100 }
        assert.is_nil(res)
        assert.is_true(err.ambiguous)
        assert.equal(1, sb:stats().orders)
      end)

      it("the key in no error, log or printed client, when the panel echoes it", function()
        sb:config{ key = "another-key", echo_key = 1 }
        local calls = {
          function() return c:balance() end,
          function() return c:services{ refresh = true } end,
          function() return c:add{ service = 1, link = "https://x.test/h", quantity = 100 } end,
          function() return c:status{ 1, 2 } end,
          function() return c:cancel(1) end,
        }
        for i, call in ipairs(calls) do
          local res, err = call()
          assert.is_nil(res)
          assert.equal("invalid_key", err.code, tostring(err))
          assert.is_false(deep_leaks(err), i .. ": " .. tostring(err))
          assert.truthy(tostring(err):find("***", 1, true), tostring(err))
        end
        assert.is_false(leaks(cjson.encode(sb:requests())))
        assert.is_false(leaks(tostring(c)))
        assert.is_false(deep_leaks(c))
        assert.is_false(deep_leaks(c.options))
      end)
    end)
  end
end)

describe("dialects: a client of one dialect against a panel of another", function()
  local panels = {}
  setup(function()
    for _, d in ipairs(DIALECTS) do panels[d] = env.sandbox{ dialect = d } end
  end)
  teardown(function()
    for _, sb in pairs(panels) do sb:stop() end
  end)

  for _, mine in ipairs(DIALECTS) do
    for _, theirs in ipairs(DIALECTS) do
      if mine ~= theirs then
        it(mine .. " against a " .. theirs .. " panel: refused as a bad key, nothing placed", function()
          local sb = panels[theirs]
          sb:reset()
          local c = client(sb, mine)
          local res, err = c:balance()
          assert.is_nil(res)
          assert.equal("api", err.kind)
          assert.equal("invalid_key", err.code)
          -- the message says which dialect may be meant, unless the panel's answer is the
          -- common form's and the client's too (a key refused: all that can be told)
          if mine ~= "perfectpanel" or theirs == "api_token" then
            assert.truthy(tostring(err):find("dialect", 1, true), tostring(err))
          end
          res, err = c:add{ service = 1, link = "https://x.test/w", quantity = 100 }
          assert.is_nil(res)
          assert.equal("invalid_key", err.code)
          assert.is_false(err.ambiguous)
          assert.equal(0, sb:stats().orders)
          assert.is_false(deep_leaks(err))
          c:close()
        end)
      end
    end
  end
end)

describe("dialects: the shapes of `errors`", function()
  local srv
  setup(function() srv = echo.start() end)
  teardown(function() if srv then srv:stop() end end)

  -- an answer of the echo server's choosing, read as the dialect reads it
  local function answer(dialect, reply, status)
    local c = smm.new{ url = srv.url, key = KEY, dialect = dialect, retries = 0 }
    local res, err = c:call("add", { reply = reply, status = status or 200 })
    c:close()
    return res, err
  end

  it("a string, a list, an object of lists: the text of its messages, classified", function()
    local cases = {
      { '{"errors":"Not enough funds on balance"}', "not_enough_funds", "Not enough funds on balance" },
      { '{"errors":["Quantity less than minimal 100","Bad link"]}', "min_quantity",
        "Quantity less than minimal 100; Bad link" },
      { '{"errors":{"quantity":["Quantity more than maximum 10"],"link":"Incorrect link"}}', "bad_link",
        "Incorrect link; Quantity more than maximum 10" },
      { '{"errors":{"message":"Incorrect service ID"}}', "incorrect_service", "Incorrect service ID" },
    }
    for _, case in ipairs(cases) do
      local res, err = answer("api_token", case[1])
      assert.is_nil(res, case[1])
      assert.equal("api", err.kind)
      assert.equal(case[2], err.code, case[1])
      assert.equal(case[3], err.message)
      assert.is_false(err.ambiguous)
    end
  end)

  it("an empty `errors` is no error; a plain `error` is still one", function()
    local res = assert(answer("api_token", '{"order":17,"errors":[]}'))
    assert.equal(17, res.order)
    res = assert(answer("api_token", '{"order":18,"errors":0}'))
    assert.equal(18, res.order)
    res = assert(answer("perfectpanel", '{"order":19,"errors":{"count":2}}'))
    assert.equal(19, res.order)
    assert.equal(2, res.errors.count) -- not an error: the answer keeps it
    local _, err = answer("api_token", '{"error":"Incorrect request"}')
    assert.equal("incorrect_request", err.code)
  end)

  it("`errors` at a 5xx proves nothing for an add: ambiguous, as `error` is", function()
    local _, err = answer("api_token", '{"errors":["Internal error"]}', 500)
    assert.equal("api", err.kind)
    assert.is_true(err.ambiguous)
  end)

  it("a perfectpanel client that gets `errors` reads an error and names the dialect", function()
    local _, err = answer("perfectpanel", '{"errors":["Invalid API key"]}')
    assert.equal("invalid_key", err.code)
    assert.truthy(err.message:find('dialect = "api_token"', 1, true), err.message)
    local res = assert(answer("perfectpanel", '{"order":5,"errors":""}'))
    assert.equal(5, res.order)
  end)
end)

describe("dialects: the option", function()
  local url = "http://127.0.0.1:9/api/v2"

  it("a misspelled dialect raises naming the value and the choices", function()
    local ok, err = pcall(smm.new, { url = url, key = KEY, dialect = "bearerr" })
    assert.is_false(ok)
    assert.truthy(err:find("option 'dialect'", 1, true), err)
    assert.truthy(err:find('"bearerr"', 1, true), err)
    assert.truthy(err:find("perfectpanel, api_token, x_api_key, bearer", 1, true), err)
    ok, err = pcall(smm.new, { url = url, key = KEY, dialect = 7 })
    assert.is_false(ok)
    assert.truthy(err:find("got number", 1, true), err)
  end)

  it("a custom table: checked field by field", function()
    local bad = {
      { { key_feild = "token" }, "unknown field 'key_feild'" },
      { { key_field = false }, "sends the key nowhere" },
      { { key_header = "Bad Header" }, "header name" },
      { { key_header = "Content-Length" }, "the transport writes that header" },
      { { key_header = "X-Token", key_prefix = "a\r\nb" }, "key_prefix" },
      { { service_field = "a b" }, "service_field" },
      { { key_field = "action" }, "cannot be 'action'" },
    }
    for _, case in ipairs(bad) do
      local ok, err = pcall(smm.new, { url = url, key = KEY, dialect = case[1] })
      assert.is_false(ok)
      assert.truthy(err:find(case[2], 1, true), err)
    end
  end)

  it("the Authorization header cannot carry both the key and the URL's user:password", function()
    local ok, err = pcall(smm.new, { url = "http://u:p@127.0.0.1:9/api/v2", key = KEY, dialect = "bearer" })
    assert.is_false(ok)
    assert.truthy(err:find("Authorization", 1, true), err)
    assert.is_false(leaks(err, "u:p@"))
    assert(smm.new{ url = "http://u:p@127.0.0.1:9/api/v2", key = KEY, dialect = "x_api_key" })
  end)

  it("a header dialect needs a transport it can give the header to", function()
    local t = { request = function() end, request_many = function() end, sleep = function() end,
                now = function() return 0 end, close = function() end }
    local ok, err = pcall(smm.new, { url = url, key = KEY, dialect = "x_api_key", transport = t })
    assert.is_false(ok)
    assert.truthy(err:find("transport", 1, true), err)
    assert(smm.new{ url = url, key = KEY, dialect = "api_token", transport = t })
  end)

  it("smm.core's option headers: lines \"Name: value\" only, never shown in its refusals", function()
    local core = require "smm.core"
    local bad = {
      { "X-Api-Key: " .. KEY .. "\r\nHost: evil", "must not contain CR, LF or NUL" },
      { "X-Api-Key: " .. KEY .. "\0", "must not contain CR, LF or NUL" },
      { "X-Api-Key:", "has an empty value" },
      { "X-Api-Key:   ", "has an empty value" },
      { "Bad Name: " .. KEY, "token name" },
      { KEY, "token name" },
      { 42, "must be a string" },
    }
    for _, case in ipairs(bad) do
      local ok, err = pcall(core.new, { headers = { "X-Ok: 1", case[1] } })
      assert.is_false(ok)
      assert.truthy(err:find("item 2 ", 1, true) and err:find(case[2], 1, true), err)
      assert.is_false(leaks(err))
    end
    local many = {}
    for i = 1, 17 do many[i] = "X-" .. i .. ": v" end
    assert.is_false(pcall(core.new, { headers = many }))
    assert.is_false(pcall(core.new, { headers = "X-Api-Key: v" }))
    local h = core.new{ headers = { "X-Api-Key: v" } }
    h:close()
  end)

  it("the key header never goes into a proxy's CONNECT request", function()
    -- a proxy that prints the head of the one request it gets (the CONNECT), then closes
    local script = [=[
      local socket = require "socket"
      local srv = assert(socket.bind("127.0.0.1", 0))
      local _, port = srv:getsockname()
      io.stdout:write(port, "\n"); io.stdout:flush()
      srv:settimeout(10)
      local conn = srv:accept()
      if conn then
        conn:settimeout(5)
        while true do
          local line = conn:receive("*l")
          if not line or line == "" then break end
          io.stdout:write(line, "\n")
        end
        conn:close()
      end
      io.stdout:write("END\n")
    ]=]
    local pipe = assert(io.popen("lua5.4 -e " .. ("%q"):format(script):gsub("\\\n", "\n"), "r"))
    local port = assert(tonumber(pipe:read("*l")))
    local c = smm.new{ url = "https://panel.test/api/v2", key = KEY, dialect = "x_api_key", retries = 0,
                       proxy = "http://127.0.0.1:" .. port, timeout = 5000 }
    local res, err = c:balance()
    c:close()
    local head = pipe:read("*a")
    pipe:close()
    assert.is_nil(res)
    assert.is_false(deep_leaks(err))
    assert.truthy(head:find("^CONNECT panel.test:443"), head)
    assert.is_nil(head:lower():find("x-api-key", 1, true), head)
    assert.is_false(leaks(head))
  end)

  it("client:call refuses the dialect's key field as a field", function()
    local c = smm.new{ url = url, key = KEY, dialect = "api_token" }
    local res, err = c:call("balance", { api_token = "x" })
    assert.is_nil(res)
    assert.equal("invalid", err.kind)
    assert.equal("api_token", err.field)
  end)

  it("the sandbox's dialect can be changed by POST /sandbox/config", function()
    local sb = env.sandbox()
    local c = env.client(sb, { dialect = "bearer", retries = 0 })
    local _, err = c:balance()
    local bad = sb:config{ dialect = "bearerr" }
    local good = sb:config{ dialect = "bearer" }
    local b = c:balance()
    sb:stop()
    assert.equal("invalid_key", err and err.code)
    assert.is_false(bad.ok)
    assert.truthy(bad.error:find("bearerr", 1, true))
    assert.is_true(good.ok)
    assert.equal("bearer", good.config.dialect)
    assert.equal("100.00", b and b.balance)
  end)

  it("a custom dialect works against a panel that speaks it", function()
    local sb = env.sandbox{ dialect = "x_api_key" }
    local c = env.client(sb, { dialect = { name = "my-panel", key_header = "X-API-KEY" } })
    local ok, b = pcall(c.balance, c)
    sb:stop()
    assert.is_true(ok)
    assert.equal("100.00", b and b.balance)
    assert.equal("my-panel", c.options.dialect.name)
  end)
end)
