-- The client-side rate limit: a token bucket in front of the transport.
local env = require "helpers.env"
local smm = require "smm"

describe("rate_limit", function()
  local sb

  setup(function() sb = env.sandbox() end)
  teardown(function() sb:stop() end)

  -- The curl transport, with the waits it is asked for written down (it still sleeps them).
  local function recording_transport()
    local t = require("smm.transport.curl").new{ timeout = 5000 }
    t.slept = 0
    local sleep = t.sleep
    function t:sleep(ms)
      self.slept = self.slept + ms
      return sleep(self, ms)
    end
    return t
  end

  it("lets a burst of `requests` through, then spaces calls to the rate", function()
    local transport = recording_transport()
    local client = smm.new{ url = sb.url, key = env.KEY, transport = transport,
                            rate_limit = { requests = 3, per = 300 } }
    for _ = 1, 3 do assert.is_table(client:balance()) end
    assert.is_true(transport.slept < 20, "the first burst waited " .. transport.slept .. " ms")
    for _ = 1, 3 do assert.is_table(client:balance()) end
    -- three more tokens at 1 per 100 ms: about 300 ms of waiting
    assert.is_true(transport.slept >= 250, "waited only " .. transport.slept .. " ms")
    assert.equal(6, env.count(sb, "balance"))
    client:close()
  end)

  it("refuses a malformed rate_limit", function()
    assert.has_error(function()
      smm.new{ url = sb.url, key = env.KEY, rate_limit = { requests = 0, per = 1 } }
    end)
    assert.has_error(function() smm.new{ url = sb.url, key = env.KEY, rate_limit = 120 } end)
  end)
end)
