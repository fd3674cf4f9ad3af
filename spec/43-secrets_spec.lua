-- Secrets: the API key (the sentinel env.KEY) never comes back out of the library: not in an
-- error of any kind (message, body excerpt, tostring), not in tostring(client), not in what
-- smm.new raises, not when a panel, a page or a redirect echoes it back.
-- (bin/smm's output and order books: spec/30-cli_spec.lua and spec/31-batch_spec.lua, with
-- the same sentinel.)
local env = require "helpers.env"
local echo = require "helpers.echo"
local smm = require "smm"
local http = require "socket.http"
local ltn12 = require "ltn12"

local KEY = env.KEY
-- a key with characters that a form body percent-encodes: an echo shows it encoded
local ODD_KEY = "ODDSECRET+q4/Zx=81b6d0"
local ODD_ENCODED = "ODDSECRET%2Bq4%2FZx%3D81b6d0"

-- No piece of the key of 8 bytes or more, raw or encoded, anywhere in s.
local function leaks(s, key)
  key = key or KEY
  s = tostring(s)
  if s:find(key, 1, true) then return true end
  for i = 1, #key - 7 do
    if s:find(key:sub(i, i + 7), 1, true) then return true end
  end
  return false
end

-- Every string in a value (an error: its fields and tostring), searched as `leaks` does.
local function deep_leaks(v, key, seen)
  seen = seen or {}
  if type(v) == "string" then return leaks(v, key) end
  if type(v) ~= "table" or seen[v] then return false end
  seen[v] = true
  local mt = getmetatable(v)
  if mt and mt.__tostring and leaks(tostring(v), key) then return true end
  for k, x in pairs(v) do
    if deep_leaks(k, key, seen) or deep_leaks(x, key, seen) then return true end
  end
  return false
end

local function no_leak(err, key, what)
  assert.is_false(deep_leaks(err, key), (what or "") .. ": " .. tostring(err))
  if type(err) == "table" then
    assert.is_false(leaks(tostring(err), key))
    assert.is_false(leaks(err.body or "", key))
    if key ~= ODD_KEY then assert.is_false(leaks(err.body or "", ODD_ENCODED)) end
  end
end

-- every action, single and multi forms
local ACTIONS = {
  { "services", function(c) return c:services{ refresh = true } end },
  { "add", function(c) return c:add{ service = 1, link = "https://x.test/s", quantity = 100 } end },
  { "status", function(c) return c:status(1) end },
  { "status multi", function(c) return c:status{ 1, 2 } end },
  { "refill", function(c) return c:refill(1) end },
  { "refill multi", function(c) return c:refill{ 1, 2 } end },
  { "refill_status", function(c) return c:refill_status(1) end },
  { "refill_status multi", function(c) return c:refill_status{ 1, 2 } end },
  { "cancel", function(c) return c:cancel(1) end },
  { "cancel multi", function(c) return c:cancel{ 1, 2 } end },
  { "balance", function(c) return c:balance() end },
  { "call", function(c) return c:call("balance", { extra = "x" }) end },
}

describe("secrets", function()
  local sb, srv

  setup(function()
    sb = env.sandbox()
    srv = echo.start()
  end)

  teardown(function()
    srv:stop()
    sb:stop()
  end)

  before_each(function() sb:reset() end)

  it("no error kind carries the key: every fault, every action", function()
    local c = env.client(sb, { retries = 1, retry_base = 1, timeout = 300, max_body = 2048 })
    local faults = { "html503", "html200", "rate429", "error500", "redirect", "reset_before_read",
      "reset_after_read", "truncated", "empty", "slow", "big" }
    local kinds = {}
    for _, fault in ipairs(faults) do
      for _, a in ipairs(ACTIONS) do
        sb:fault(fault, { times = 5, delay = 1500, size = 100000, retry_after = 0 })
        local res, err = a[2](c)
        sb:reset()
        assert.is_nil(res, fault .. " " .. a[1])
        kinds[err.kind] = true
        no_leak(err, KEY, fault .. " " .. a[1])
      end
    end
    -- invalid
    local _, err = c:add{ service = 1, link = KEY .. "\0", quantity = 100 }
    kinds[err.kind] = true
    no_leak(err, KEY, "invalid")
    -- network: a panel that is down
    local down = smm.new{ url = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2?key=" .. KEY,
                          key = KEY, retries = 0 }
    for _, a in ipairs(ACTIONS) do
      local res
      res, err = a[2](down)
      assert.is_nil(res)
      kinds[err.kind] = true
      no_leak(err, KEY, "down " .. a[1])
    end
    assert.is_false(leaks(tostring(down)))
    down:close()
    -- api: a refusal
    _, err = c:status(999999)
    kinds[err.kind] = true
    no_leak(err, KEY, "api")
    c:close()
    for _, kind in ipairs{ "invalid", "network", "timeout", "http", "decode", "api" } do
      assert.is_true(kinds[kind], kind .. " not produced")
    end
  end)

  it("a panel that echoes the key in its error: scrubbed, every action", function()
    -- the sandbox echoes a key it does not know: make the sentinel unknown to it
    sb:config{ key = "another-key", echo_key = 1 }
    -- the raw answer really holds the key
    local out = {}
    local body = "action=balance&key=" .. KEY
    http.request{ url = sb.url, method = "POST", source = ltn12.source.string(body),
      headers = { ["content-type"] = "application/x-www-form-urlencoded", ["content-length"] = #body },
      sink = ltn12.sink.table(out) }
    assert.truthy(table.concat(out):find(KEY, 1, true))
    local c = env.client(sb, { retries = 0 })
    for _, a in ipairs(ACTIONS) do
      local res, err = a[2](c)
      assert.is_nil(res, a[1])
      assert.equal("api", err.kind)
      assert.equal("invalid_key", err.code)
      no_leak(err, KEY, a[1])
    end
    c:close()
  end)

  it("a server that echoes the raw request (the key in the body): excerpts are scrubbed", function()
    for _, key in ipairs{ KEY, ODD_KEY } do
      for _, a in ipairs(ACTIONS) do
        -- a client per action: the echo server serves one connection at a time
        local c = smm.new{ url = srv.url, key = key, retries = 0 }
        local res, err = a[2](c)
        c:close()
        assert.is_nil(res, a[1])
        assert.equal("decode", err.kind)
        assert.is_string(err.body)
        no_leak(err, key, a[1])
        if key == ODD_KEY then no_leak(err, ODD_ENCODED, a[1]) end
      end
    end
  end)

  it("HTML pages holding the key: in the title, in the body, across the excerpt's cut", function()
    local c = smm.new{ url = srv.url, key = KEY, retries = 0 }
    local pages = {
      { "<html><head><title>" .. KEY .. "</title></head><body>x</body></html>", 200 },
      { "<html><head><title>Error " .. KEY .. "</title></head></html>", 503 },
      { "<html><body>" .. string.rep("a", 140) .. KEY .. string.rep("b", 60) .. "</body></html>", 503 },
      { "<html><body>" .. string.rep("a", 140) .. KEY .. string.rep("b", 60) .. "</body></html>", 200 },
      { string.rep(" ", 150) .. "<p>" .. KEY .. "</p>", 200 },
      { '{"balance": "' .. KEY, 200 }, -- truncated JSON holding the key
    }
    for i = 0, 30 do -- the key at every offset around the cut
      pages[#pages + 1] = { "<p>" .. string.rep("x", 130 + i) .. KEY .. "</p>", 502 }
    end
    for i, page in ipairs(pages) do
      local res, err = c:call("balance", { reply = page[1], status = page[2], ctype = "text/html" })
      assert.is_nil(res, "page " .. i)
      no_leak(err, KEY, "page " .. i)
    end
    c:close()
  end)

  it("a redirect whose Location holds the key: not followed, scrubbed", function()
    for _, case in ipairs{ { KEY, "http://evil.test/api/v2?key=" .. KEY },
                           { KEY, "https://u:" .. KEY .. "@evil.test/" },
                           { ODD_KEY, "http://evil.test/?k=" .. ODD_ENCODED },
                           { ODD_KEY, "http://evil.test/?k=" .. ODD_ENCODED:lower() } } do
      local c = smm.new{ url = srv.url, key = case[1], retries = 0 }
      local res, err = c:call("balance", { reply = "", status = 302, header = "Location: " .. case[2] })
      c:close()
      assert.is_nil(res)
      assert.equal("http", err.kind)
      assert.equal(302, err.status)
      no_leak(err, case[1], case[2])
      no_leak(err, ODD_ENCODED, case[2])
    end
  end)

  it("tostring(client) and the client table hold no key, no user:pass@, no ?key=", function()
    local c = env.client(sb)
    assert.is_false(leaks(tostring(c)))
    assert.is_false(env.leaks_key(c))
    c:close()
    for _, url in ipairs{
      "http://user:" .. KEY .. "@127.0.0.1:1/api/v2",
      "http://127.0.0.1:1/api/v2?key=" .. KEY,
      "http://127.0.0.1:1/api/v2?x=1&key=" .. KEY .. "#frag",
      "https://" .. KEY .. "@127.0.0.1:1/api/v2",
      "http://user:pa@ss" .. KEY .. "@127.0.0.1:1/api/v2", -- an unencoded @ in the password
    } do
      c = smm.new{ url = url, key = KEY }
      local s = tostring(c)
      assert.is_false(leaks(s), s)
      assert.truthy(s:find("127.0.0.1:1/api/v2", 1, true), s)
      c:close()
    end
  end)

  it("what smm.new raises on misuse holds no key", function()
    local bad = {
      { url = "ftp://u:" .. KEY .. "@h/api/v2" },
      { url = "http://h/api/v2?key=" .. KEY, timeout = -1 },
      { url = "http://h/api/v2", timeout = "1" },
      { url = "http://h/api/v2", proxy = "ftp://u:" .. KEY .. "@proxy:1" },
      { url = "http://h/api/v2", ssl_verify = "no" },
      { url = "http://h/api/v2", bogus = KEY },
      { url = "http://h/api/v2", max_body = 0 },
      { url = "http://h/api/v2", rate_limit = { requests = KEY } },
      { url = "http://h/api/v2", transport = KEY },
      { url = "http://h/api/v2", key = KEY .. " " },
      { url = "http://h/api/v2", key = KEY .. "\n" },
      { url = 42 },
      -- url and key swapped by mistake (from two environment variables, say)
      { url = KEY, key = "http://h/api/v2" },
    }
    for i, opts in ipairs(bad) do
      if opts.key == nil then opts.key = KEY end
      local ok, msg = pcall(smm.new, opts)
      assert.is_false(ok, "case " .. i)
      assert.is_string(msg)
      assert.is_false(leaks(msg), "case " .. i .. ": " .. msg)
      assert.is_false(leaks(msg, "u:" .. KEY), "case " .. i .. ": " .. msg)
    end
  end)

  it("what client methods raise on misuse holds no key", function()
    local c = env.client(sb)
    for i, f in ipairs{
      function() return c:call(KEY .. " x", {}) end,
      function() return c:call("balance", KEY) end,
      function() return c:wait(1, KEY) end,
      function() return c:find_services(KEY) end,
    } do
      local ok, msg = pcall(f)
      assert.is_false(ok, "case " .. i)
      assert.is_false(leaks(tostring(msg)), "case " .. i .. ": " .. tostring(msg))
    end
    c:close()
  end)
end)
