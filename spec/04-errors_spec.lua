-- Each kind of failure comes back as nil, err with the right kind and fields; misuse raises;
-- the API key shows up nowhere.
local env = require "helpers.env"
local smm = require "smm"

describe("errors", function()
  local sb, client

  setup(function()
    sb = env.sandbox()
    client = env.client(sb, { retries = 0 })
  end)

  teardown(function()
    client:close()
    sb:stop()
  end)

  before_each(function()
    sb:reset()
  end)

  local function fails(kind, err)
    assert.is_table(err)
    assert.equal(kind, err.kind, tostring(err))
    assert.is_string(err.message)
    assert.is_true(smm.is_error(err))
    local line = tostring(err)
    assert.is_nil(line:find("\n"), "tostring is one line")
    assert.truthy(line:find(kind, 1, true))
    assert.is_false(env.leaks_key(err))
  end

  it("api: the panel's {error} answer, whatever the HTTP status", function()
    local bad = env.client(sb, { key = "wrong-key" })
    local b, err = bad:balance()
    assert.is_nil(b)
    fails("api", err)
    assert.equal("invalid_key", err.code)
    assert.equal(200, err.status)
    bad:close()
    sb:config{ error_status = 400 }
    local res
    res, err = client:add{ service = 1, link = "https://x.test/a", quantity = 1 }
    assert.is_nil(res)
    fails("api", err)
    assert.equal(400, err.status)
    assert.equal("min_quantity", err.code)
  end)

  it("api: not enough funds, with its code", function()
    local res, err = client:add{ service = 4, link = "https://x.test/a", quantity = 1000000 }
    assert.is_nil(res)
    fails("api", err)
    assert.equal("not_enough_funds", err.code)
    assert.is_false(err.retryable)
  end)

  it("api: raw translation keys are understood", function()
    sb:config{ error_style = "keys" }
    local _, err = client:add{ service = 4, link = "https://x.test/a", quantity = 1000000 }
    assert.equal("not_enough_funds", err.code)
    _, err = client:add{ service = 9999, link = "https://x.test/a", quantity = 100 }
    assert.equal("incorrect_service", err.code)
  end)

  it("http: an HTML 503 page, with the status and a short excerpt", function()
    sb:fault("html503", { action = "balance" })
    local b, err = client:balance()
    assert.is_nil(b)
    fails("http", err)
    assert.equal(503, err.status)
    assert.is_true(err.retryable)
    assert.is_string(err.body)
    assert.is_true(#err.body <= 200)
  end)

  it("http: 429 carries retry_after", function()
    sb:fault("rate429", { action = "balance", retry_after = 7 })
    local _, err = client:balance()
    assert.equal(429, err.status)
    assert.equal(7, err.retry_after)
    assert.is_true(err.retryable)
  end)

  it("decode: an HTML page with status 200 (a CDN challenge)", function()
    sb:fault("html200", { action = "balance" })
    local b, err = client:balance()
    assert.is_nil(b)
    fails("decode", err)
    assert.equal(200, err.status)
  end)

  it("decode: truncated JSON", function()
    sb:fault("truncated", { action = "services" })
    local list, err = client:services{ refresh = true }
    assert.is_nil(list)
    fails("decode", err)
  end)

  it("decode: an empty body", function()
    sb:fault("empty", { action = "balance" })
    local _, err = client:balance()
    fails("decode", err)
  end)

  it("timeout: an answer slower than the timeout", function()
    local impatient = env.client(sb, { timeout = 200, retries = 0 })
    sb:fault("slow", { action = "balance", delay = 1500 })
    local b, err = impatient:balance()
    assert.is_nil(b)
    fails("timeout", err)
    impatient:close()
  end)

  it("network: a panel that is down", function()
    local down = smm.new{ url = "http://127.0.0.1:" .. env.closed_port() .. "/api/v2", key = env.KEY,
                          retries = 0 }
    local b, err = down:balance()
    assert.is_nil(b)
    fails("network", err)
    assert.is_false(err.sent)
    down:close()
  end)

  it("http: a redirect is not followed (the key is in the body)", function()
    sb:fault("redirect", { action = "balance" })
    local _, err = client:balance()
    fails("http", err)
    assert.truthy(err.message:find("redirect", 1, true))
    assert.equal(1, env.count(sb, "balance"))
  end)

  it("http: an answer larger than max_body", function()
    local small = env.client(sb, { max_body = 1000, retries = 0 })
    sb:fault("big", { action = "services", size = 5000 })
    local _, err = small:services{ refresh = true }
    fails("http", err)
    assert.truthy(err.message:find("max_body", 1, true))
    small:close()
  end)

  it("gzip answers are decoded", function()
    sb:fault("gzip", { action = "balance" })
    local b, err = client:balance()
    assert.is_nil(err)
    assert.equal("100.00", b.balance)
  end)

  it("misuse of the API raises, naming the option", function()
    assert.has_error(function() smm.new{ key = "k" } end)
    assert.has_error(function() smm.new{ url = "ftp://x", key = "k" } end)
    assert.has_error(function() smm.new{ url = sb.url } end)
    local ok, msg = pcall(smm.new, { url = sb.url, key = "k", timeout = "30s" })
    assert.is_false(ok)
    assert.truthy(msg:find("timeout", 1, true))
    ok, msg = pcall(smm.new, { url = sb.url, key = "k", retires = 3 })
    assert.is_false(ok)
    assert.truthy(msg:find("retires", 1, true))
    assert.has_error(function() client:call(42) end)
  end)

  it("never shows the key: tostring(client), errors, the client table", function()
    local keyed = smm.new{ url = "https://user:pw@panel.invalid/api/v2?key=" .. env.KEY, key = env.KEY }
    assert.is_nil(tostring(keyed):find(env.KEY, 1, true))
    assert.is_nil(tostring(keyed):find("pw", 1, true))
    assert.is_false(env.leaks_key(client))
    -- a panel that echoes the key back in its error message
    sb:config{ echo_key = 1 }
    local bad = env.client(sb, { key = env.KEY .. "x" })
    local _, err = bad:balance()
    assert.is_false(env.leaks_key(err))
    bad:close()
    keyed:close()
  end)

  it("close is safe twice", function()
    local c = env.client(sb)
    assert.is_table(c:balance())
    c:close()
    c:close()
  end)
end)
