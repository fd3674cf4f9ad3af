-- Polling until orders are final.
local env = require "helpers.env"
local smm = require "smm"

describe("wait", function()
  local sb, client

  setup(function()
    sb = env.sandbox{ steps = 3 }
    client = env.client(sb)
  end)

  teardown(function()
    client:close()
    sb:stop()
  end)

  before_each(function()
    sb:reset()
  end)

  it("follows a full life cycle and reports every change", function()
    local a = client:add{ service = 1, link = "https://x.test/a", quantity = 1000 }.order
    local b = client:add{ service = 1, link = "https://x.test/partial", quantity = 1000 }.order
    local seen = {}
    local function on_update(id, status, previous, entry)
      seen[#seen + 1] = { id = id, status = status, previous = previous }
      assert.equal(status, entry.status)
    end
    local final, err = client:wait({ a, b }, { interval = 10, on_update = on_update })
    assert.is_nil(err)
    assert.equal("Completed", final[a].status)
    assert.equal(0, final[a].remains)
    assert.equal("Partial", final[b].status)
    assert.is_true(smm.is_final(final[b].status))
    local statuses = {}
    for _, s in ipairs(seen) do
      if s.id == a then statuses[#statuses + 1] = s.status end
    end
    assert.equal("Completed", statuses[#statuses])
    assert.is_true(#statuses >= 2)
    assert.is_nil(seen[1].previous)
  end)

  it("waits out a fresh order that the panel does not know yet", function()
    sb:config{ invisible_calls = 2 }
    local a = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }.order
    local entry, err = client:wait(a, { interval = 10, grace = 60000 })
    assert.is_nil(err)
    assert.equal("Completed", entry.status)
  end)

  it("reports an unknown id once the grace period is over", function()
    local a = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }.order
    local final, err = client:wait({ a, 999999 }, { interval = 10, grace = 0 })
    assert.is_nil(err)
    assert.equal("Completed", final[a].status)
    assert.equal("Incorrect order ID", final[999999].error)
  end)

  it("stops at its timeout with nil, an error, the last statuses in err.entries", function()
    local a = client:add{ service = 1, link = "https://x.test/a", quantity = 100 }.order
    local final, err = client:wait({ a }, { interval = 50, timeout = 0 })
    assert.is_nil(final)
    assert.equal("timeout", err.kind)
    assert.same({ a }, err.pending)
    assert.is_string(err.entries[a].status)
  end)

  it("smm.is_final knows every spelling of a final state", function()
    for _, s in ipairs{ "Completed", "completed", "Partial", "Canceled", "Cancelled", "CANCELED",
                        "Refunded", " partial " } do
      assert.is_true(smm.is_final(s), s)
    end
    for _, s in ipairs{ "Pending", "In progress", "in_progress", "Processing", "" } do
      assert.is_false(smm.is_final(s), s)
    end
  end)
end)
