-- Issue 11, the shape of the library: one builder of the panel's errors, defaults only in
-- options.DEFAULTS, one retry loop (retry's Policy:run) for send and exchange, actions that
-- only build (from a small context, never sending), the client's clock and sleep, and the
-- shared-dict service store in services.lua instead of the ngx transport.
local smm = require "smm"
local env = require "helpers.env"
local hostile = require "helpers.hostile"
local nginx = require "helpers.nginx"
local options = require "smm.options"
local retry = require "smm.retry"
local errors = require "smm.errors"
local actions = require "smm.actions"
local services = require "smm.services"
local normalize = require "smm.normalize"
local eval = require "helpers.nginx_eval"
local cjson = require "cjson.safe"

local KEY = "SHAPE-KEY-1"
local ORDER = { service = 1, link = "https://example.com/p", quantity = 100 }
local SERVICE = '{"service":1,"name":"Followers","type":"Default","category":"Instagram",' ..
  '"rate":"0.90","min":"50","max":"10000","refill":false,"cancel":false}'

local servers = {}
local function panel(script)
  local s = hostile.start(script)
  servers[#servers + 1] = s
  return s
end

local function client(url, more)
  local o = { url = url, key = KEY, retries = 0, timeout = 3000, transport = "curl" }
  for k, v in pairs(more or {}) do o[k] = v end
  return smm.new(o)
end

-- Replaces a table's fields for the length of f, then puts them back.
local function with(t, changes, f)
  local saved = {}
  for k, v in pairs(changes) do saved[k] = t[k]; t[k] = v end
  local ok, err = pcall(f)
  for k in pairs(changes) do t[k] = saved[k] end
  if not ok then error(err, 0) end
end

describe("shape: the library", function()
  after_each(function()
    for _, s in ipairs(servers) do s:stop() end
    servers = {}
  end)

  describe("one builder of the panel's errors", function()
    -- the same `error` value, once as the whole answer and once as one id's entry
    local VALUES = { '"Not enough funds"', '{"message":"Incorrect order ID"}', '{"code":5}',
                     '{"message":{"text":"nested"}}', '12', 'true', '"  rate limit  "' }

    for _, value in ipairs(VALUES) do
      it("an error of " .. value .. " reads the same in a whole answer and in one id's entry", function()
        local srv = panel{ actions = {
          balance = hostile.json('{"error":' .. value .. '}'),
          refill = hostile.json('{"refill":{"error":' .. value .. '}}'),
          refill_status = hostile.json('{"status":{"error":' .. value .. '}}'),
        } }
        local c = client(srv.url)
        local _, whole = c:balance()
        local _, refill = c:refill(7)
        local _, refill_status = c:refill_status(8)
        for _, err in ipairs{ whole, refill, refill_status } do
          assert.equal("api", err.kind)
          assert.equal(whole.message, err.message)
          assert.equal(whole.code, err.code)
          assert.equal(whole.retryable, err.retryable)
          assert.is_nil(err.message:find("table: ", 1, true))
        end
        assert.equal(errors.api_code(whole.message), whole.code)
      end)
    end

    it("errors.api reads the code from the panel's text, whatever message tells it", function()
      local err = errors.api("Not enough funds", { action = "add", message = "told otherwise" })
      assert.equal("not_enough_funds", err.code)
      assert.equal("told otherwise", err.message)
      assert.is_false(err.retryable)
      assert.is_true(errors.api("Too many requests", { action = "status" }).retryable)
      assert.is_false(errors.api("Too many requests", { action = "add", retryable = false }).retryable)
    end)
  end)

  describe("defaults only in options.DEFAULTS", function()
    it("the retry policy takes what is not given from options.DEFAULTS", function()
      assert.is_nil(retry.DEFAULTS)
      with(options.DEFAULTS, { retries = 7, retry_base = 123, retry_max = 4567 }, function()
        local p = retry.policy{}
        assert.same({ 7, 123, 4567 }, { p.retries, p.base, p.budget })
      end)
    end)

    it("smm.new's client carries options.DEFAULTS for every option not given", function()
      local c = client("http://127.0.0.1:9/api/v2", { retries = nil })
      for name, value in pairs(options.DEFAULTS) do
        local expected = ({ retries = 0, timeout = 3000 })[name]
        if expected == nil then expected = value end
        assert.equal(expected, c.options[name], name)
      end
    end)

    it("the C core's own defaults equal options.DEFAULTS", function()
      -- src/options.c keeps DEFAULT_TIMEOUT_MS & co. for direct users of smm.core (smm.new
      -- always passes every option); smm.core.DEFAULTS shows them
      local core = require "smm.core"
      assert.is_table(core.DEFAULTS)
      for _, name in ipairs{ "timeout", "connect_timeout", "max_body", "concurrency", "ssl_verify" } do
        assert.is_not_nil(options.DEFAULTS[name], name)
        assert.equal(options.DEFAULTS[name], core.DEFAULTS[name], name)
        if math.type then -- 5.3+: an integer default stays an integer
          assert.equal(math.type(options.DEFAULTS[name]), math.type(core.DEFAULTS[name]), name)
        end
      end
      assert.equal("lua-smm/" .. core._VERSION, core.DEFAULTS.user_agent)
    end)
  end)

  describe("one retry loop", function()
    it("client:send returns json, normalized, or nil, err", function()
      local srv = panel{ actions = { balance = hostile.json('{"balance":"1.50","currency":"USD"}'),
                                     status = hostile.json('{"error":"Incorrect order ID"}') } }
      local c = client(srv.url)
      local json, normalized = c:send("balance", {}, normalize.BALANCE_SCHEMA)
      assert.equal("1.50", json.balance)
      assert.is_boolean(normalized)
      json, normalized = c:send("balance", {})
      assert.equal("1.50", json.balance)
      assert.is_false(normalized)
      local none, err = c:send("status", { order = 1 })
      assert.is_nil(none)
      assert.equal("incorrect_order", err.code)
    end)

    it("Policy:run: attempts, waits through the timer, the hook, giving up", function()
      local slept, heard = {}, {}
      local timer = { t = 0 }
      function timer.now(self) return self.t end
      function timer.sleep(self, ms) slept[#slept + 1] = ms; self.t = self.t + ms end
      local p = retry.policy{ retries = 3, retry_base = 100, retry_max = 100000,
        random = function() return 0.5 end,
        on_retry = function(info) heard[#heard + 1] = info.attempt .. "/" .. info.attempts .. " " .. info.action end }
      local tries = 0
      local function try(attempt, a, b, c)
        tries = tries + 1
        assert.equal(tries, attempt)
        assert.same({ "a", "b", "c" }, { a, b, c })
        if attempt < 3 then
          local err = errors.new{ kind = "timeout", action = "balance", retryable = true }
          return nil, err, err
        end
        return "done", attempt
      end
      assert.same({ "done", 3 }, { p:run(timer, try, "a", "b", "c") })
      assert.same({ 75, 150 }, slept)
      assert.same({ "2/4 balance", "3/4 balance" }, heard)
      -- a retry refused by the hook: the last attempt's values
      p.on_retry = function() return false end
      tries = 0
      local x, y = p:run(timer, try, "a", "b", "c")
      assert.is_nil(x)
      assert.equal("timeout", y.kind)
      assert.equal(1, tries)
    end)

    it("send and exchange retry the same way, hook and waits included, through the client's sleep", function()
      local srv = panel{ default = hostile.json('{"error":"server busy"}', 503) }
      local seen = {}
      local c = client(srv.url, { retries = 2, retry_base = 10,
        on_retry = function(info) seen[#seen + 1] = info.action .. " " .. info.attempt end })
      local slept = 0
      c.sleep = function(_, ms) slept = slept + 1; return c.transport:sleep(ms) end
      local _, err = c:balance()
      assert.equal(3, err.attempts)
      local results = c:batch{ { "balance" } }
      assert.equal(3, results[1].err.attempts)
      assert.same({ "balance 2", "balance 3", "balance 2", "balance 3" }, seen)
      assert.equal(4, slept)
      assert.equal(6, srv:count("balance"))
    end)
  end)

  describe("actions only build", function()
    local function context()
      local now = 0
      return { catalog = services.cache(600000, function() return now end), secrets = { KEY },
               options = {} }
    end

    it("an add checked against its service asks for it instead of fetching it", function()
      local ctx = context()
      local op = actions.add(ctx, ORDER, { validate = true })
      assert.same({ needs_service = 1 }, op)
      op = actions.add(ctx, ORDER, { max_cost = "5.00" })
      assert.same({ needs_service = 1 }, op)
      -- with the service at hand: checked and priced, then an operation of one request
      local s = normalize.services(cjson.decode("[" .. SERVICE .. "]"))[1]
      op = actions.add(ctx, ORDER, { max_cost = "0.01" }, s)
      assert.equal("max_cost", op.err.field)
      op = actions.add(ctx, { service = 1, link = "https://example.com/p", quantity = 10 }, { validate = true }, s)
      assert.equal("quantity", op.err.field)
      op = actions.add(ctx, ORDER, { max_cost = "5.00" }, s)
      assert.equal("add", op.action)
      assert.equal(1, #op.requests)
      -- bad input is refused before the service is asked for
      op = actions.add(ctx, { service = 1, link = "https://example.com/p", quantity = "lots" }, { validate = true })
      assert.equal("quantity", op.err.field)
    end)

    it("client:add fetches the service list as a step of its own, once", function()
      local srv = panel{ actions = { services = hostile.json("[" .. SERVICE .. "]"),
                                     add = hostile.json('{"order":23501}') } }
      local c = client(srv.url, { validate = true })
      assert.is_nil((c:add{ service = 1, link = "https://example.com/p", quantity = "lots" }))
      assert.equal(0, srv:count())
      assert.equal(23501, c:add(ORDER).order)
      assert.equal(23501, c:add(ORDER, { max_cost = "1.00" }).order)
      local results = c:batch{ { "add", ORDER }, { "add", ORDER, { max_cost = "0.01" } } }
      assert.equal(23501, results[1].value.order)
      assert.equal("max_cost", results[2].err.field)
      assert.equal(1, srv:count("services"))
      assert.equal(3, srv:count("add"))
      local _, err = c:add({ service = 2, link = "https://example.com/p", quantity = 100 })
      assert.equal("service", err.field)
      assert.equal(3, srv:count("add"))
    end)

    it("client:wait keeps time with the client's clock and sleep", function()
      local srv = panel{ default = hostile.json('{"1":{"status":"In progress","remains":"5",' ..
        '"charge":"1.00","start_count":"0","currency":"USD"}}') }
      local c = client(srv.url)
      local now, sleeps = 0, 0
      c.now = function() return now end
      c.sleep = function(_, ms) sleeps = sleeps + 1; now = now + ms end
      local started = os.time()
      local none, err = c:wait(1, { interval = 5000, timeout = 60000 })
      assert.is_nil(none)
      assert.equal("timeout", err.kind)
      assert.is_true(sleeps >= 10)
      assert.is_true(os.time() - started < 3)
    end)

    it("the shared-dict store is the service list's, not a transport's", function()
      assert.is_nil(require("smm.transport.ngx").Transport.shared_store)
      -- outside nginx there is no shared dict: the client keeps the list alone
      assert.is_nil(services.shared_store("smm_cache", "http://127.0.0.1/api/v2", KEY))
    end)
  end)
end)

describe("shape: inside nginx", function()
  local available, missing = nginx.available()
  if not available then
    it("needs nginx and its lua module", function()
      error(missing .. " (this spec installs nothing; CI installs them)")
    end)
    return
  end

  local ng, sb
  setup(function()
    ng = nginx.start{ locations = eval.LOCATION, http = "    lua_shared_dict t63_cache 1m;" }
    sb = env.sandbox()
  end)
  teardown(function()
    if ng then ng:stop() end
    if sb then sb:stop() end
  end)

  local function run(code, vars) return (eval.run(ng, code, vars)) end

  it("the ngx transport takes what it is not given from options.DEFAULTS", function()
    local v = run([[
      local options = require "smm.options"
      local ngx_transport = require "smm.transport.ngx"
      local d = options.DEFAULTS
      local t = ngx_transport.new{}
      local plain = { t.timeout, t.connect_timeout, t.max_body, t.concurrency, t.ssl_verify }
      local saved = { d.timeout, d.connect_timeout, d.max_body, d.concurrency }
      d.timeout, d.connect_timeout, d.max_body, d.concurrency = 1234, 567, 8910, 3
      local ok, changed = pcall(ngx_transport.new, {})
      d.timeout, d.connect_timeout, d.max_body, d.concurrency = saved[1], saved[2], saved[3], saved[4]
      assert(ok, changed)
      return { plain = plain, defaults = { d.timeout, d.connect_timeout, d.max_body, d.concurrency, d.ssl_verify },
               changed = { changed.timeout, changed.connect_timeout, changed.max_body, changed.concurrency } }
    ]])
    assert.same(v.defaults, v.plain)
    assert.same({ 1234, 567, 8910, 3 }, v.changed)
  end)

  it("a transport of the user's own shares the service list through the lua_shared_dict", function()
    local v = run([[
      local smm = require "smm"
      -- the cosocket transport's methods, and nothing else: no store of its own
      local inner = require("smm.transport.ngx").new{}
      local mine = {}
      for _, name in ipairs{ "request", "request_many", "sleep", "now", "close" } do
        mine[name] = function(_, ...) return inner[name](inner, ...) end
      end
      local c = smm.new{ url = url, key = key, transport = mine, shared_dict = "t63_cache" }
      local list, err = c:services()
      assert(list, tostring(err))
      local dict = ngx.shared.t63_cache
      local keys = dict:get_keys(0)
      local other = smm.new{ url = url, key = key, transport = mine, shared_dict = "t63_cache" }
      local again = assert(other:services())
      return { n = #list, again = #again, keys = keys }
    ]], { url = sb.url, key = env.KEY })
    assert.is_true(v.n > 3)
    assert.equal(v.n, v.again)
    assert.equal(1, #v.keys)
    assert.is_nil(v.keys[1]:find(env.KEY, 1, true))
    assert.equal(1, env.count(sb, "services"))
  end)
end)
