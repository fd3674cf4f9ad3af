-- Multi forms past 100 ids: chunked, sent in parallel, merged; a failed chunk loses nothing else.
local env = require "helpers.env"

describe("batching", function()
  local sb, client

  setup(function()
    sb = env.sandbox()
    client = env.client(sb, { retries = 0, concurrency = 4 })
  end)

  teardown(function()
    client:close()
    sb:stop()
  end)

  before_each(function()
    sb:reset()
  end)

  local function place(n)
    local ids = {}
    for i = 1, n do
      ids[i] = assert(client:add{ service = 5, link = "https://x.test/" .. i, quantity = 100 }).order
    end
    return ids
  end

  it("status of 250 ids goes out as 3 requests and comes back as one table", function()
    local ids = place(3)
    local asked = {}
    for i = 1, 250 do asked[i] = ids[(i - 1) % 3 + 1] + math.floor((i - 1) / 3) * 100000 end
    local by_id, err = client:status(asked)
    assert.is_nil(err)
    assert.equal(3, env.count(sb, "status"))
    local n = 0
    for id, entry in pairs(by_id) do
      n = n + 1
      assert.is_true(env.is_integer(id))
      assert.is_table(entry)
    end
    assert.equal(250, n)
    for _, id in ipairs(ids) do assert.is_string(by_id[id].status) end
    assert.equal("Incorrect order ID", by_id[asked[250]].error)
  end)

  it("removes duplicate ids before sending", function()
    local ids = place(2)
    local asked = {}
    for i = 1, 150 do asked[i] = ids[(i - 1) % 2 + 1] end
    local by_id = client:status(asked)
    assert.equal(1, env.count(sb, "status"))
    assert.is_string(by_id[ids[1]].status)
  end)

  it("a chunk that fails leaves its ids with errors and reports partial failure", function()
    local asked = {}
    for i = 1, 250 do asked[i] = i end
    sb:fault("html503", { action = "status", times = 1 })
    local by_id, err = client:status(asked)
    assert.is_table(by_id)
    assert.is_table(err)
    assert.is_true(err.partial)
    -- whichever chunk reached the panel first failed: 100 ids, or the last 50
    local n = #err.failed
    assert.is_true(n == 100 or n == 50, "failed ids: " .. n)
    local failed, answered = 0, 0
    for _, entry in pairs(by_id) do
      if entry.kind then failed = failed + 1 else answered = answered + 1 end
    end
    assert.equal(n, failed)
    assert.equal(250 - n, answered)
    for _, id in ipairs(err.failed) do assert.equal("http", by_id[id].kind) end
  end)

  it("runs chunks in parallel over reused connections", function()
    sb:config{ latency = 100 }
    local asked = {}
    for i = 1, 800 do asked[i] = i end
    client:status(asked)
    client:status(asked)
    local stats = sb:stats()
    assert.is_true(stats.peak_in_flight >= 3, "peak in flight " .. stats.peak_in_flight)
    assert.is_true(stats.connections <= 6, "connections " .. stats.connections)
  end)

  it("cancel and refill take any number of ids too", function()
    local ids = place(3)
    local asked = { ids[1], ids[2], ids[3] }
    for i = 4, 150 do asked[i] = 900000 + i end
    local by_id, err = client:cancel(asked)
    assert.is_nil(err)
    assert.equal(2, env.count(sb, "cancel"))
    assert.same({ cancel = true }, by_id[ids[1]])
    assert.is_string(by_id[900150].error)
  end)

  it("client:batch runs independent calls together and answers each as its method would", function()
    local ids = place(2)
    sb:config{ latency = 50 }
    local before = env.count(sb)
    local results = client:batch{
      { "balance" },
      { "status", ids },
      { "status", ids[1] },
      { "add", { service = 1, link = "https://x.test/batch", quantity = 100 } },
      { "add", { service = 1, quantity = 100 } },
      { "services", { refresh = true } },
    }
    assert.equal(6, #results)
    assert.is_string(results[1].value.balance)
    assert.is_string(results[2].value[ids[1]].status)
    assert.is_string(results[3].value.status)
    assert.is_true(env.is_integer(results[4].value.order))
    assert.is_nil(results[5].value)
    assert.equal("invalid", results[5].err.kind)
    assert.equal("link", results[5].err.field)
    assert.is_true(#results[6].value > 0)
    assert.equal(5, env.count(sb) - before, "one request per call, none for the refused one")
    assert.is_true(sb:stats().peak_in_flight >= 2)
    assert.equal(3, sb:stats().orders)
  end)

  it("client:batch refuses calls it cannot run", function()
    assert.has_error(function() client:batch{ { "wait", 1 } } end)
    assert.has_error(function() client:batch("balance") end)
  end)
end)
