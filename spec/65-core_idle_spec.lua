-- smm.core's idle function (ropts.idle of request_many, client:while_waiting): the caller's
-- own work done while parallel requests wait for the network, as smm.book's sync does with one
-- page's writes while the next page's statuses travel. Real requests against the sandbox with
-- a 30 ms latency, so that every run waits.
local core = require "smm.core"
local smm = require "smm"
local sandbox = require "helpers.sandbox"

local KEY = "idle-key"

describe("smm.core: request_many's idle function", function()
  local sb, url, bodies

  setup(function()
    sb = sandbox.start{ key = KEY, latency = 30 }
    url = sb.url
    bodies = {}
    for i = 1, 12 do bodies[i] = { key = KEY, action = "balance", n = i } end
  end)
  teardown(function() sb:stop() end)

  local function handle() return core.new{ timeout = 5000, concurrency = 4 } end

  it("is called while the requests wait, until it says it is done, and changes no answer", function()
    local h = handle()
    local plain = h:request_many(url, bodies, { concurrency = 4 })
    local calls = 0
    local results = h:request_many(url, bodies, { concurrency = 4, idle = function()
      calls = calls + 1
      return calls < 5
    end })
    h:close()
    assert.equal(5, calls)
    assert.equal(#plain, #results)
    for i = 1, #results do
      assert.equal(200, results[i].status)
      assert.same(plain[i].json, results[i].json)
    end
  end)

  it("is first called once every request in flight has been sent, on new connections too", function()
    -- a request on a new connection (not idempotent: never a reused one) leaves only after its
    -- connect, at a later turn of the loop: an idle step run before would hold it back
    sb:config{ latency = 600 }
    finally(function() sb:config{ latency = 30 } end)
    local h = handle()
    local seen
    local results = h:request_many(url, { bodies[1], bodies[2], bodies[3], bodies[4] },
      { concurrency = 4, idempotent = false, idle = function()
        if seen == nil then
          -- the loop waits while this runs: what the panel holds now was sent before it
          for _ = 1, 50 do
            seen = sb:stats().in_flight
            if seen >= 4 then break end
            require("socket").sleep(0.01)
          end
        end
        return false
      end })
    h:close()
    assert.equal(4, seen)
    for i = 1, 4 do assert.equal(200, results[i].status) end
  end)

  it("keeps being called while it has more to do (the run only looks at the network then)", function()
    local h = handle()
    local calls = 0
    h:request_many(url, bodies, { concurrency = 4, idle = function()
      calls = calls + 1
      return true
    end })
    h:close()
    -- 3 rounds of 30 ms: many more calls than rounds, since none of them waits
    assert.is_true(calls > 20, "idle was called " .. calls .. " times")
  end)

  it("is not called again after it raises, the error dropped and every request answered", function()
    local h = handle()
    local calls = 0
    local results = h:request_many(url, bodies, { concurrency = 4, idle = function()
      calls = calls + 1
      error("the caller's own failure")
    end })
    assert.equal(1, calls)
    for i = 1, #bodies do assert.equal(200, results[i].status) end
    -- the handle is whole afterwards
    assert.equal(200, h:request(url, { key = KEY, action = "balance" }).status)
    h:close()
  end)

  it("cannot use the handle it runs under: refused cleanly, the run goes on", function()
    local h = handle()
    local inner
    local results = h:request_many(url, bodies, { concurrency = 4, idle = function()
      inner = { pcall(h.request, h, url, { key = KEY, action = "balance" }) }
      return false
    end })
    assert.is_false(inner[1])
    assert.matches("busy", tostring(inner[2]))
    for i = 1, #bodies do assert.equal(200, results[i].status) end
    h:close()
  end)

  it("must be a function, and only request_many takes it", function()
    local h = handle()
    assert.has_error(function() h:request_many(url, bodies, { idle = true }) end,
      "smm.core: request option 'idle' must be a function")
    assert.has_error(function() h:request(url, bodies[1], { idle = function() end }) end)
    h:close()
  end)
end)

describe("client:while_waiting", function()
  local sb

  setup(function() sb = sandbox.start{ key = KEY, latency = 30 } end)
  teardown(function() sb:stop() end)

  it("runs the idle function during the client's parallel requests only, and restores none after", function()
    local client = smm.new{ url = sb.url, key = KEY, concurrency = 2 }
    -- 250 orders: three chunks of ids, so parallel requests (one chunk would be one request)
    local made = sb:admin("bulk", { count = 250, service = 1, link = "https://x.test/p", quantity = 100 })
    local ids = {}
    for id = math.floor(made.first), math.floor(made.last) do ids[#ids + 1] = id end
    local calls = 0
    local idle = function() calls = calls + 1 return false end
    local by_id = assert(client:while_waiting(idle, client.status, client, ids))
    assert.is_true(calls >= 1)
    for _, id in ipairs(ids) do assert.truthy(by_id[id].status) end
    calls = 0
    assert(client:status(ids))
    assert.equal(0, calls)
  end)

  it("passes an error of the function it runs on, after restoring", function()
    local client = smm.new{ url = sb.url, key = KEY }
    assert.has_error(function() client:while_waiting(function() return false end, error, "inner") end, "inner")
  end)
end)
