-- Trust (issue 10), keys and credentials, over whatever transport smm.new picks (this file also
-- runs inside nginx, spec/21): a short key scrubs free text but never the fixed vocabulary
-- (kind, code, action, field) that retries, wait and exit codes read; a key echoed JSON- or
-- HTML-escaped is scrubbed in that form too; URL credentials stay out of the client table and
-- out of errors; errors concatenate. (libcurl's proxy message and the CLI:
-- spec/51b-trust_secrets_curl_spec.lua.)
local env = require "helpers.env"
local hostile = require "helpers.hostile"
local smm = require "smm"

local ORDER = { service = 1, link = "https://x.test/p", quantity = 100 }

-- A raw answer with a correct Content-Length.
local function raw(status, ctype, body)
  return ("HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"):format(status, ctype,
    #body, body)
end

local find_any = env.find_any

-- Servers are stopped after each test however it ends: one left running would keep busted
-- waiting on its pipe at exit.
local running = {}
local function stop_all()
  for i = #running, 1, -1 do
    running[i]:stop()
    running[i] = nil
  end
end

local function sandbox(opts)
  local sb = env.sandbox(opts)
  running[#running + 1] = sb
  return sb
end

local function panel(script)
  local srv = hostile.start(script)
  running[#running + 1] = srv
  return srv
end

local function no_leak(v, needles, what)
  local hit = find_any(v, needles)
  assert.is_nil(hit, (what or "") .. ": '" .. tostring(hit) .. "' in " .. tostring(v))
end

describe("trust: a very short key scrubs free text, never kind/code/action/field", function()
  after_each(stop_all)

  it("an add that was never sent is retried with a 1-character key", function()
    local c = smm.new{ url = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2", key = "e",
                       retries = 2, retry_base = 1 }
    local res, err = c:add(ORDER)
    c:close()
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal("add", err.action)
    assert.is_false(err.sent)
    assert.is_false(err.ambiguous)
    assert.equal(3, err.attempts)
  end)

  it("an api refusal keeps its kind and code; the message is scrubbed", function()
    local sb = sandbox{ key = "e" }
    sb:config{ balance = "0.00" }
    local c = env.client(sb, { key = "e", retries = 0 })
    local res, err = c:add(ORDER)
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal("not_enough_funds", err.code)
    assert.equal("add", err.action)
    assert.is_nil(err.message:find("e", 1, true), err.message) -- free text: scrubbed
    -- "o": incorrect_order must stay what wait and the CLI compare against
    sb = sandbox{ key = "o" }
    c = env.client(sb, { key = "o", retries = 0 })
    res, err = c:status(999999)
    assert.is_nil(res)
    assert.equal("incorrect_order", err.code)
    assert.equal("status", err.action)
    -- invalid input: the field's name survives
    res, err = c:add{ service = 1, link = "https://x.test/p", quantity = "lots" }
    assert.is_nil(res)
    assert.equal("invalid", err.kind)
    assert.equal("quantity", err.field)
    c:close()
  end)

  it("wait stops on an api error with the key 'a' instead of polling to its timeout", function()
    local sb = sandbox{ key = "another-key" }
    local c = env.client(sb, { key = "a", retries = 0 })
    local res, err = c:wait({ 1, 2 }, { interval = 50, timeout = 4000 })
    assert.is_nil(res)
    assert.equal("api", err.kind)
    assert.equal("invalid_key", err.code)
    assert.is_true(env.count(sb, "status") <= 2, "polled " .. env.count(sb, "status") .. " times")
    c:close()
  end)

  it("a hostile panel's answers with short keys: every kind and code intact", function()
    local srv = panel{
      actions = {
        add = hostile.json('{"error":"Not enough funds on balance"}'),
        status = hostile.json('{"error":"Incorrect order ID"}'),
        refill = hostile.json('{"error":"Too many requests"}', 429, "Retry-After: 0\r\n"),
        cancel = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 9\r\n\r\n<p>no</p>",
        balance = hostile.json('{"error":"Invalid API key"}'),
      },
    }
    local cases = {
      { "e", function(c) return c:add(ORDER) end, "api", "not_enough_funds", "add" },
      { "d", function(c) return c:add(ORDER) end, "api", "not_enough_funds", "add" },
      { "or", function(c) return c:status(7) end, "api", "incorrect_order", "status" },
      { "at", function(c) return c:refill(7) end, "api", "rate_limited", "refill" },
      { "de", function(c) return c:cancel(7) end, "decode", nil, "cancel" },
      { "ey", function(c) return c:balance() end, "api", "invalid_key", "balance" },
      { "ap", function(c) return c:balance() end, "api", "invalid_key", "balance" },
    }
    for _, case in ipairs(cases) do
      local c = smm.new{ url = srv.url, key = case[1], retries = 0 }
      local res, err = case[2](c)
      c:close()
      local what = "key " .. case[1] .. ": " .. tostring(err)
      assert.is_nil(res, what)
      assert.equal(case[3], err.kind, what)
      assert.equal(case[4], err.code, what)
      assert.equal(case[5], err.action, what)
    end
  end)
end)

describe("trust: a key echoed JSON- or HTML-escaped is scrubbed in that form", function()
  after_each(stop_all)

  -- what PHP's json_encode (default flags, and with JSON_HEX_*) and htmlspecialchars make of
  -- a key holding / < > & ' " and a non-ASCII letter
  local KEY = "PHPSECRET/q4<x>&'\"\195\169Z9"
  local forms = {
    [[PHPSECRET\/q4<x>&'\"\u00e9Z9]],                           -- json_encode
    [[PHPSECRET\/q4\u003Cx\u003E\u0026\u0027\u0022\u00e9Z9]],   -- JSON_HEX_TAG|AMP|APOS|QUOT
    [[PHPSECRET/q4<x>&'\"]] .. "\195\169Z9",                    -- UNESCAPED_SLASHES|UNICODE
    [[PHPSECRET/q4&lt;x&gt;&amp;&#039;&quot;]] .. "\195\169Z9", -- htmlspecialchars
    [[PHPSECRET/q4&lt;x&gt;&amp;&#39;&quot;]] .. "\195\169Z9",
    [[PHPSECRET&#x2F;q4&lt;x&gt;&amp;&#x27;&quot;&#233;Z9]],
    [[PHPSECRET%2Fq4%3Cx%3E%26%27%22%C3%A9Z9]],
  }
  local NEEDLES = { "PHPSECRET", "q4", "Z9" }

  it("in a non-JSON body, an HTML page, a JSON error message, a truncated JSON answer", function()
    for i, form in ipairs(forms) do
      local srv = panel{
        actions = {
          balance = raw(200, "text/plain", "bad key " .. form .. " ..."),
          status = hostile.json('{"error":"Invalid API key ' .. form:gsub("\\", "\\\\"):gsub('"', '\\"') .. '"}'),
          add = hostile.json('{"error":"Invalid key ' .. form .. '", "trace": [', 500),
          refill = raw(503, "text/html", "<html><title>" .. form .. "</title><body>" .. form ..
            "</body></html>"),
        },
      }
      local c = smm.new{ url = srv.url, key = KEY, retries = 0 }
      for _, call in ipairs{ function() return c:balance() end, function() return c:status(1) end,
                             function() return c:add(ORDER) end, function() return c:refill(1) end } do
        local res, err = call()
        assert.is_nil(res)
        no_leak(err, NEEDLES, "form " .. i)
        assert.truthy(find_any(err, { "***" }), "nothing scrubbed in " .. tostring(err))
      end
      c:close()
    end
  end)

  it("a key with only a slash, echoed by PHP as \\/ in a body", function()
    local key = "abc/def123"
    local srv = panel{
      default = raw(500, "application/json", '{"error":"bad key abc\\/def123",'),
    }
    local c = smm.new{ url = srv.url, key = key, retries = 0 }
    local res, err = c:balance()
    c:close()
    assert.is_nil(res)
    assert.equal(500, err.status)
    no_leak(err, { "abc", "def123" })
  end)
end)

describe("trust: URL credentials are never printable", function()
  after_each(stop_all)

  it("the client table and tostring(client) hold no user:password@ and no query", function()
    local port = env.closed_port()
    for _, url in ipairs{
      "https://user:p@ss@127.0.0.1:" .. port .. "/api/v2",
      "http://user:PWSECRET@127.0.0.1:" .. port .. "/api/v2?key=QSECRET&x=1",
      "http://PWSECRET@127.0.0.1:" .. port .. "/api/v2#QSECRET",
    } do
      local c = smm.new{ url = url, key = "KEYSECRET", ssl_verify = false }
      no_leak(c, { "p@ss", "ss@", "user:", "PWSECRET", "QSECRET", "KEYSECRET" }, url)
      assert.equal("127.0.0.1:" .. port .. "/api/v2", c.url:match("://(.*)$"))
      assert.truthy(tostring(c):find("://127.0.0.1:" .. port .. "/api/v2 (", 1, true), tostring(c))
      c:close()
    end
  end)

  it("errors are scrubbed of URL passwords and query values a panel echoes", function()
    local srv = panel{
      actions = {
        balance = raw(404, "text/html", "<p>No route for /api/v2?key=QSECRET&amp;lang=xx</p>"),
        status = "HTTP/1.1 302 Found\r\nLocation: http://user:PWSECRET@elsewhere.test/api/v2\r\n" ..
          "Content-Length: 0\r\n\r\n",
        refill = hostile.json('{"error":"Unauthorized: user:PWSECRET"}', 403),
      },
    }
    local url = srv.url:gsub("^http://", "http://user:PWSECRET@") .. "?key=QSECRET"
    local c = smm.new{ url = url, key = "KEYSECRET", retries = 0 }
    for name, call in pairs{ balance = function() return c:balance() end,
                             status = function() return c:status(1) end,
                             refill = function() return c:refill(1) end } do
      local res, err = call()
      assert.is_nil(res, name)
      no_leak(err, { "PWSECRET", "QSECRET", "KEYSECRET" }, name)
    end
    c:close()
  end)
end)

describe("trust: errors concatenate", function()
  after_each(stop_all)

  it("on either side of .., like tostring(err)", function()
    local c = smm.new{ url = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2", key = "k0k0k0k0",
                       retries = 0 }
    local _, err = c:balance()
    c:close()
    assert.equal("failed: " .. tostring(err), "failed: " .. err)
    assert.equal(tostring(err) .. " (giving up)", err .. " (giving up)")
    assert.equal(tostring(err) .. tostring(err), err .. err)
    assert.equal("1" .. tostring(err), 1 .. err)
  end)
end)

describe("trust: a URL without a scheme", function()
  after_each(stop_all)

  it("says what is wrong and shows the value, credentials removed", function()
    local ok, msg = pcall(smm.new, { url = "panel.example/api/v2", key = "KEYSECRET" })
    assert.is_false(ok)
    assert.truthy(msg:find("'url' must start with http:// or https://, got \"panel.example/api/v2\"",
      1, true), msg)
    ok, msg = pcall(smm.new, { url = "user:PWSECRET@panel.example/api/v2?key=QSECRET", key = "KEYSECRET" })
    assert.is_false(ok)
    assert.truthy(msg:find("got \"panel.example/api/v2\"", 1, true), msg)
    assert.is_nil(msg:find("SECRET", 1, true), msg)
    -- a key given as the URL by mistake is not shown
    ok, msg = pcall(smm.new, { url = "KEYSECRET", key = "KEYSECRET" })
    assert.is_false(ok)
    assert.is_nil(msg:find("SECRET", 1, true), msg)
    ok, msg = pcall(smm.new, { url = "4f1c2a9e0b7d3c5e8a6f1b2d4c3e5a7f", key = "k" })
    assert.is_false(ok)
    assert.is_nil(msg:find("4f1c2a9e", 1, true), msg)
  end)
end)
