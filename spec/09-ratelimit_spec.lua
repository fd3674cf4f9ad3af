-- The client-side rate limit: a token bucket in front of the transport.
local env = require "helpers.env"
local smm = require "smm"

describe("rate_limit", function()
  local sb

  setup(function() sb = env.sandbox() end)
  teardown(function() sb:stop() end)

  -- The curl transport, with the moment each request left (ms, monotonic) and the waits it
  -- was asked for written down (it still sleeps them).
  local function recording_transport()
    local curl = require("smm.transport.curl").new{ timeout = 5000 }
    local t = { started = {}, slept = 0 }
    function t:sleep(ms)
      self.slept = self.slept + ms
      return curl:sleep(ms)
    end
    function t:request(...)
      self.started[#self.started + 1] = curl:now()
      return curl:request(...)
    end
    function t.request_many(_, ...) return curl:request_many(...) end
    function t.now() return curl:now() end
    function t.close() return curl:close() end
    return t
  end

  it("lets a burst of `requests` through, then spaces calls to the rate", function()
    local transport = recording_transport()
    local client = smm.new{ url = sb.url, key = env.KEY, transport = transport,
                            rate_limit = { requests = 3, per = 300 } }
    for _ = 1, 3 do assert.is_table(client:balance()) end
    assert.equal(0, transport.slept, "the first burst was held back")
    for _ = 4, 6 do assert.is_table(client:balance()) end
    local started = transport.started
    assert.equal(6, #started)
    -- The bucket's promise, whatever the speed of the machine: any n consecutive requests
    -- span at least (n - 3) x 100 ms (a burst of 3, then 1 token per 100 ms), so the six
    -- span 300 ms. A slow machine (valgrind) only widens the gaps.
    for i = 1, 6 do
      for j = i + 3, 6 do
        local span, least = started[j] - started[i], (j - i - 2) * 100
        assert.is_true(span >= least - 5,
                       ("requests %d..%d spanned %.1f ms, less than %d"):format(i, j, span, least))
      end
    end
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
