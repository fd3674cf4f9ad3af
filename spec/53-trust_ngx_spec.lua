-- Issue 10, the cosocket transport against hostile panels (points 3, 10, 11, 17): the client
-- runs inside an nginx worker (code posted to /eval and run there), the panel is the hostile
-- one (spec/helpers/hostile.lua, exact raw bytes) or the sandbox with per-account rates.
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local hostile = require "helpers.hostile"
local eval = require "helpers.nginx_eval"

local available, missing = nginx.available()

local LOCATIONS = eval.LOCATION

-- Client-side helpers every chunk starts with.
local PRELUDE = [[
local smm = require "smm"
local function E(err)
  if err == nil then return nil end
  return { kind = err.kind, code = err.code, message = tostring(err.message), field = err.field,
    ambiguous = err.ambiguous, partial = err.partial, failed = err.failed and #err.failed }
end
local function client(url, more)
  local o = { url = url, key = "HOSTILE-KEY-1", retries = 0, timeout = 3000 }
  for k, v in pairs(more or {}) do o[k] = v end
  return smm.new(o)
end
]]

describe("trust: the ngx transport against hostile panels", function()
  if not available then
    it("needs nginx and its lua module", function()
      error(missing .. " (this spec installs nothing; CI installs them)")
    end)
    return
  end

  local ng
  local servers = {}

  setup(function()
    ng = nginx.start{ locations = LOCATIONS, http = "    lua_shared_dict t53_cache 1m;" }
  end)

  teardown(function()
    if ng then ng:stop() end
  end)

  after_each(function()
    for _, s in ipairs(servers) do s:stop() end
    servers = {}
  end)

  local function panel(script)
    local s = hostile.start(script)
    servers[#servers + 1] = s
    return s
  end

  -- Runs `code` (after PRELUDE) in the nginx worker. -> what it returned, and the seconds it took
  local function run(code, vars)
    return eval.run(ng, PRELUDE .. code, vars)
  end

  local function balance_with(answer)
    local p = panel{ default = answer }
    local v, seconds = run([[
      local res, err = client(url):balance()
      return { res = res, err = E(err) }
    ]], { url = p.url })
    return v, seconds, p
  end

  local BALANCE = '{"balance":"12.34","currency":"USD"}'

  describe("point 10: a hostile chunked answer is a classified failure, never a raise", function()
    it("a chunk size of zz after an add: network, ambiguous, sent once", function()
      local p = panel{ default = hostile.chunked{ "zz\r\n{}\r\n", "0\r\n\r\n" } }
      local v = run([[
        local res, err = client(url):add{ service = 1, link = "https://example.com/p", quantity = 100 }
        return { res = res, err = E(err) }
      ]], { url = p.url })
      assert.is_nil(v.res)
      assert.equal("network", v.err.kind)
      assert.is_true(v.err.ambiguous)
      assert.equal(1, p:count("add"))
    end)

    for _, size in ipairs{ "zz", "-5", "", "0x10", "1x", " ", ("1"):rep(9000) } do
      it(("a chunk size line %q is a network failure"):format(size:sub(1, 12)), function()
        local v = balance_with(hostile.chunked{ size .. "\r\n" .. BALANCE .. "\r\n", "0\r\n\r\n" })
        assert.is_nil(v.res)
        assert.is_table(v.err)
        assert.is_truthy(v.err.kind == "network" or v.err.kind == "http", v.err.kind)
      end)
    end

    it("a huge chunk size is refused as too large", function()
      local v = balance_with(hostile.chunked{ ("f"):rep(40) .. "\r\n" .. BALANCE .. "\r\n" })
      assert.is_nil(v.res)
      assert.is_table(v.err)
    end)

    it("chunk extensions and trailers are legal", function()
      local half = math.floor(#BALANCE / 2)
      local v = balance_with(hostile.chunked{
        ("%x;name=value\r\n%s\r\n"):format(half, BALANCE:sub(1, half)),
        ("%X ; ext\r\n%s\r\n"):format(#BALANCE - half, BALANCE:sub(half + 1)),
        "0;last\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n" })
      assert.is_nil(v.err)
      assert.equal("12.34", v.res.balance)
    end)

    it("chunk data shorter or longer than declared is a network failure", function()
      local v = balance_with(hostile.chunked{ ("%x\r\n%s"):format(#BALANCE + 10, BALANCE) })
      assert.equal("network", v.err.kind)
      v = balance_with(hostile.chunked{ ("%x\r\n%s\r\n"):format(#BALANCE - 5, BALANCE), "0\r\n\r\n" })
      assert.equal("network", v.err.kind)
    end)

    it("endless trailers are bounded", function()
      local v = balance_with(hostile.chunked{ ("%x\r\n%s\r\n"):format(#BALANCE, BALANCE), "0\r\n",
        ("X-T: " .. ("t"):rep(100) .. "\r\n"):rep(2000), "\r\n" })
      assert.is_nil(v.res)
      assert.equal("network", v.err.kind)
    end)

    it("a multi-id call keeps the chunks that were read when one answer is hostile", function()
      local p = panel{ [2] = hostile.chunked{ "-5\r\n{}\r\n", "0\r\n\r\n" }, default = hostile.json("{}") }
      local v = run([[
        local ids = {}
        for i = 1, 250 do ids[i] = i end
        local res, err = client(url):status(ids)
        local n = 0
        for _ in pairs(res or {}) do n = n + 1 end
        return { n = n, err = E(err) }
      ]], { url = p.url })
      assert.equal(250, v.n)
      assert.is_true(v.err.partial)
      assert.equal("network", v.err.kind)
      assert.is_truthy(v.err.failed == 100 or v.err.failed == 50, tostring(v.err.failed))
      assert.equal(3, p:count("status"))
    end)
  end)

  describe("point 10: the rest of the receive path", function()
    for _, case in ipairs{
      { "a garbage status line", "garbage\r\n\r\n" },
      { "a status that is not 3 digits", "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\n{}" },
      { "an empty answer", "" },
      { "a Content-Length that is not a number", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}" },
      { "a negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}" },
      { "conflicting Content-Lengths",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n" .. BALANCE },
      { "a body shorter than its Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" .. BALANCE },
      { "a header line without an end", "HTTP/1.1 200 OK\r\nX-A: " .. ("a"):rep(70000) },
    } do
      it(case[1] .. " is a classified failure (ambiguous for add)", function()
        local p = panel{ default = case[2] }
        local v = run([[
          local c = client(url)
          local res, err = c:balance()
          local placed, add_err = c:add{ service = 1, link = "https://example.com/p", quantity = 100 }
          return { res = res, err = E(err), placed = placed, add_err = E(add_err) }
        ]], { url = p.url })
        assert.is_nil(v.res)
        assert.is_table(v.err)
        assert.is_truthy(v.err.kind == "network" or v.err.kind == "http", v.err.kind)
        assert.is_nil(v.placed)
        assert.is_true(v.add_err.ambiguous)
      end)
    end

    it("two equal Content-Lengths are one", function()
      local v = balance_with(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n%s")
        :format(#BALANCE, #BALANCE, BALANCE))
      assert.is_nil(v.err)
      assert.equal("12.34", v.res.balance)
    end)
  end)

  describe("point 11: headers are bounded in time, count and size", function()
    it("a trickled answer ends at `timeout`, not when the panel is done", function()
      local p = panel{ default = { raw = "HTTP/1.1 200 OK\r\nX-Slow: abcdefgh\r\n\r\n", trickle = 1 } }
      local v, seconds = run([[
        local res, err = client(url, { timeout = 2000 }):balance()
        return { res = res, err = E(err) }
      ]], { url = p.url })
      assert.equal("timeout", v.err.kind)
      assert.is_true(seconds < 6, "took " .. seconds .. " s")
    end)

    it("12,000 lines of one header are refused quickly", function()
      local head = ("X-Repeat: " .. ("r"):rep(200) .. "\r\n"):rep(12000)
      local v, seconds = balance_with("HTTP/1.1 200 OK\r\n" .. head .. ("Content-Length: %d\r\n\r\n%s")
        :format(#BALANCE, BALANCE))
      assert.is_nil(v.res)
      assert.equal("network", v.err.kind)
      assert.truthy(v.err.message:find("header", 1, true), v.err.message)
      assert.is_true(seconds < 3, "took " .. seconds .. " s")
    end)

    it("many headers within the bounds are read, repeated names joined", function()
      local p = panel{ default = "HTTP/1.1 429 X\r\n" .. ("X-A: 1\r\n"):rep(80) ..
        "Retry-After: 0\r\nContent-Length: 2\r\n\r\n{}" }
      local v = run([[
        local t = require("smm.transport.ngx").new{ timeout = 3000 }
        local r = t:request(url, { action = "balance", key = "k" }, { idempotent = true })
        return { status = r.status, retry_after = r.retry_after, failure = r.failure }
      ]], { url = p.url })
      assert.is_nil(v.failure)
      assert.equal(429, v.status)
      assert.equal(0, v.retry_after)
    end)
  end)

  describe("point 17: control characters in the URL", function()
    for _, bad in ipairs{ "\r\nX-Evil: 1", "\n", "\t", "\0", "\127" } do
      it(("are refused by smm.new (%q), in nginx and with libcurl"):format(bad), function()
        local p = panel{ default = hostile.json(BALANCE) }
        local url = p.url .. bad
        local v = run([[
          local ok, err = pcall(smm.new, { url = url, key = "HOSTILE-KEY-1" })
          if not ok then return { raised = tostring(err) } end
          local res = ok and err:balance()
          return { res = res }
        ]], { url = url })
        assert.is_string(v.raised)
        assert.truthy(v.raised:find("'url'", 1, true), v.raised)
        assert.equal(0, p:count())
        local ok, err = pcall(require("smm").new, { url = url, key = "HOSTILE-KEY-1" })
        assert.is_false(ok)
        assert.truthy(tostring(err):find("'url'", 1, true), tostring(err))
        assert.is_nil(tostring(err):find("HOSTILE", 1, true))
      end)
    end
  end)

  describe("point 3: the shared service list is per account", function()
    local sb
    setup(function()
      -- account B pays ten times account A's rates
      sb = env.sandbox{ key = env.KEY .. ",ACCOUNT-B-KEY", rates_for = "ACCOUNT-B-KEY=10" }
    end)
    teardown(function()
      if sb then sb:stop() end
    end)

    it("account B is priced with its own list: max_cost holds", function()
      local v = run([[
        local function c(key) return smm.new{ url = url, key = key, shared_dict = "t53_cache", retries = 0 } end
        local a, b = c(key_a), c(key_b)
        local list = assert(a:services())
        local cost_a = assert(a:quote{ service = 1, link = "https://example.com/p", quantity = 1000 })
        local placed, err = b:add({ service = 1, link = "https://example.com/p", quantity = 1000 },
          { max_cost = "1.00" })
        local cost_b = b:quote{ service = 1, link = "https://example.com/p", quantity = 1000 }
        local dict = ngx.shared.t53_cache
        local keys, values = dict:get_keys(0), {}
        for i, k in ipairs(keys) do values[i] = dict:get(k) end
        return { n = #list, cost_a = cost_a, cost_b = cost_b, placed = placed, err = E(err),
                 keys = keys, values = values }
      ]], { url = sb.url, key_a = env.KEY, key_b = "ACCOUNT-B-KEY" })
      assert.is_true(v.n > 3)
      assert.equal("0.90", v.cost_a)
      assert.equal("9.00", v.cost_b)
      assert.is_nil(v.placed)
      assert.equal("invalid", v.err.kind)
      assert.equal("max_cost", v.err.field)
      assert.equal(0, env.count(sb, "add"))
      assert.equal(2, #v.keys)
      for _, text in ipairs(v.keys) do
        assert.is_nil(text:find(env.KEY, 1, true))
        assert.is_nil(text:find("ACCOUNT-B-KEY", 1, true))
      end
      for _, text in ipairs(v.values) do
        assert.is_nil(text:find(env.KEY, 1, true))
        assert.is_nil(text:find("ACCOUNT-B-KEY", 1, true))
      end
    end)
  end)
end)
