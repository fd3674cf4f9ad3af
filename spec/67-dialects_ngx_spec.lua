-- Issue 13, panel dialects through the cosocket transport: the client runs inside an nginx
-- worker (code posted to /eval, spec/helpers/nginx_eval.lua) against sandboxes speaking each
-- dialect. The ngx transport builds its request head itself: the key header must be there,
-- once, on every request, and never in a printed client. (curl: spec/66-dialects_spec.lua.)
local env = require "helpers.env"
local nginx = require "helpers.nginx"
local eval = require "helpers.nginx_eval"
local cjson = require "cjson"

local available, missing = nginx.available()

local KEY = env.KEY
local DIALECTS = { "perfectpanel", "api_token", "x_api_key", "bearer" }

local PRELUDE = [[
local smm = require "smm"
local function E(err)
  if err == nil then return nil end
  return { kind = err.kind, code = err.code, message = tostring(err), ambiguous = err.ambiguous }
end
local function client(more)
  local o = { url = url, key = key, dialect = dialect, retries = 0, timeout = 3000, transport = "ngx" }
  for k, v in pairs(more or {}) do o[k] = v end
  return smm.new(o)
end
]]

local function leaks(s)
  s = tostring(s)
  for i = 1, #KEY - 7 do
    if s:find(KEY:sub(i, i + 7), 1, true) then return true end
  end
  return false
end

describe("dialects through the ngx transport", function()
  if not available then
    it("needs nginx and its lua module", function()
      error(missing .. " (this spec installs nothing; CI installs them)")
    end)
    return
  end

  local ng
  local panels = {}
  setup(function()
    ng = nginx.start{ locations = eval.LOCATION }
    for _, d in ipairs(DIALECTS) do panels[d] = env.sandbox{ dialect = d } end
  end)
  teardown(function()
    if ng then ng:stop() end
    for _, sb in pairs(panels) do sb:stop() end
  end)

  -- what the chunk returned (a raise in the worker fails the test)
  local function run(code, vars)
    return { value = eval.run(ng, PRELUDE .. code, vars) }
  end

  for _, dialect in ipairs(DIALECTS) do
    it(dialect .. ": every action, the key where the dialect puts it", function()
      local sb = panels[dialect]
      sb:reset()
      local v = run([[
        local c = client()
        local out = {}
        out.services = #assert(c:services())
        out.balance = assert(c:balance()).balance
        local a = assert(c:add{ service = 1, link = "https://x.test/a", quantity = 100 })
        local b = assert(c:add{ service = 2, link = "https://x.test/b",
                                comments = ("a comment of some length\n"):rep(80) })
        out.status = assert(c:status(a.order)).status
        local many = assert(c:status{ a.order, 999 })
        out.missing = many[999].error
        assert(c:wait({ a.order, b.order }, { interval = 1, timeout = 5000 }))
        local r = assert(c:refill(a.order))
        out.refill_status = assert(c:refill_status(r.refill)).status
        local x = assert(c:add{ service = 1, link = "https://x.test/c", quantity = 100 })
        out.cancel = assert(c:cancel(x.order)).cancel
        out.printed = tostring(c) .. require("cjson").encode(c.options) ..
          require("cjson").encode(getmetatable(c.transport) and c.transport or {})
        return out
      ]], { url = sb.url, key = KEY, dialect = dialect })
      local out = v.value
      assert.is_true(out.services > 0)
      assert.equal("100.00", out.balance)
      assert.is_string(out.status)
      assert.equal("Incorrect order ID", out.missing)
      assert.is_string(out.refill_status)
      assert.is_true(out.cancel)
      assert.is_false(leaks(out.printed))
      assert.equal(3, sb:stats().orders)

      local log = sb:requests()
      assert.is_true(#log >= 10)
      for _, r in ipairs(log) do
        assert.is_true(r.key_ok, cjson.encode(r))
        if dialect == "x_api_key" then assert.equal("***", r.x_api_key) else assert.is_nil(r.x_api_key) end
        if dialect == "bearer" then assert.equal("***", r.authorization) else assert.is_nil(r.authorization) end
        if dialect == "api_token" then
          assert.equal("***", r.fields.api_token)
          assert.is_nil(r.fields.key)
          if r.action == "add" then assert.is_nil(r.fields.service); assert.is_string(r.fields.package) end
        elseif dialect ~= "perfectpanel" then
          assert.is_nil(r.fields.key)
        end
      end
      assert.is_false(leaks(cjson.encode(log)))
    end)
  end

  it("a header dialect against a panel of another: refused as a bad key, nothing placed", function()
    local sb = panels.perfectpanel
    sb:reset()
    for _, dialect in ipairs{ "x_api_key", "bearer", "api_token" } do
      local v = run([[
        local c = client()
        local res, err = c:add{ service = 1, link = "https://x.test/w", quantity = 100 }
        return { res = res, err = E(err) }
      ]], { url = sb.url, key = KEY, dialect = dialect })
      assert.is_nil(v.value.res)
      assert.equal("invalid_key", v.value.err.code)
      assert.is_false(v.value.err.ambiguous)
      assert.truthy(v.value.err.message:find("dialect " .. dialect, 1, true), v.value.err.message)
    end
    assert.equal(0, sb:stats().orders)
  end)

  it("the key sent in a header is scrubbed from what the panel echoes", function()
    for _, dialect in ipairs{ "x_api_key", "bearer" } do
      local sb = panels[dialect]
      sb:reset()
      sb:config{ key = "another-key", echo_key = 1 }
      local v = run([[
        local c = client()
        local res, err = c:balance()
        return { res = res, err = E(err) }
      ]], { url = sb.url, key = KEY, dialect = dialect })
      assert.equal("invalid_key", v.value.err.code)
      assert.truthy(v.value.err.message:find("***", 1, true), v.value.err.message)
      assert.is_false(leaks(cjson.encode(v.value)))
      sb:reset()
    end
  end)
end)
