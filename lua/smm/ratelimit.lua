-- A client-side token bucket: at most `requests` per `per` ms on average, bursts up to
-- `requests`. Panels document about 120 requests a minute per key and answer 429 beyond.
local M = {}

local Bucket = {}
Bucket.__index = Bucket

-- spec: { requests = n, per = ms }; clock: an object with now() (ms) and sleep(ms).
function M.new(spec, clock)
  return setmetatable({
    capacity = spec.requests, rate = spec.requests / spec.per, tokens = spec.requests,
    clock = clock, last = clock:now(),
  }, Bucket)
end

function Bucket:refill()
  local now = self.clock:now()
  self.tokens = math.min(self.capacity, self.tokens + (now - self.last) * self.rate)
  self.last = now
end

-- Takes n tokens (default 1), sleeping until they are there.
function Bucket:take(n)
  n = n or 1
  while n > 0 do
    local want = math.min(n, self.capacity)
    self:refill()
    if self.tokens < want then
      self.clock:sleep(math.ceil((want - self.tokens) / self.rate))
      self:refill()
    end
    self.tokens = self.tokens - want
    n = n - want
  end
end

return M
