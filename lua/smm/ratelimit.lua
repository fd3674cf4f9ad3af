-- A client-side token bucket: at most `requests` per `per` ms on average, bursts up to
-- `requests`. Panels document about 120 requests a minute per key and answer 429 beyond.
-- M.new is one client's bucket; M.shared is one account's bucket in a lua_shared_dict, taken
-- by every nginx worker (the limit is the key's, not a worker's).
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


-- The shared bucket is the same token bucket, written as GCRA: its whole state is one number,
-- `tat` (ms), the moment the bucket would be full again. Taking n tokens moves it to
-- max(tat, now) + n * per / requests, and the taker may go once tat - per <= now: it sleeps
-- until then. So it keeps M.new's promise exactly (a burst of `requests`, then the rate),
-- and takers that wait are served in the order they came.
--
-- Why a lock: that step reads tat, takes a max and writes it back, and a worker is a process
-- of its own, so it must not interleave with another worker's. ngx.shared offers no
-- compare-and-set, and incr cannot take the max (a bucket left idle must not bank credit), so
-- a dict:add mutex guards the step. The simpler incr counter per fixed window would let twice
-- `requests` through around a window's edge (a full window's worth at its end, another at the
-- next one's start), which the documented burst forbids. The lock is held only across a few
-- dict calls that never yield (microseconds); it expires on its own should its worker die in
-- between. Time is nginx's clock (ngx.now, the same in every worker), not the client's,
-- which may be a transport's own; the waits are the client's sleep (ngx.sleep in nginx).
local LOCK_TTL = 1 -- s: far above the time the lock is held, only there for a worker's crash
local LOCK_RETRY = 1 -- ms

local Shared = {}
Shared.__index = Shared

-- spec: as M.new; clock: its sleep(ms) waits; dict: the ngx.shared dict; entry: the account's
-- name in it (smm.shared.entry).
function M.shared(spec, clock, dict, entry)
  return setmetatable({ per = spec.per, interval = spec.per / spec.requests, clock = clock,
    dict = dict, entry = entry, lock = entry .. ":lock" }, Shared)
end

local function now_ms()
  local ngx = rawget(_G, "ngx")
  ngx.update_time()
  return ngx.now() * 1000
end

-- A dict too small to hold even these few bytes (after evicting what it may) is a mistake in
-- nginx.conf: carrying on would let requests through uncounted.
local function full(self, err)
  error("smm: rate limit: the lua_shared_dict holding '" .. self.entry .. "' cannot take it (" ..
    tostring(err) .. "): make it larger", 3)
end

function Shared:take(n)
  n = n or 1
  local dict = self.dict
  while true do
    local ok, err = dict:add(self.lock, true, LOCK_TTL)
    if ok then break end
    if err ~= "exists" then full(self, err) end
    self.clock:sleep(LOCK_RETRY)
  end
  local now = now_ms()
  local tat = math.max(dict:get(self.entry) or now, now) + n * self.interval
  -- gone a second after the bucket is full again: an idle account costs the dict nothing
  local ok, err = dict:set(self.entry, tat, (tat - now) / 1000 + 1)
  dict:delete(self.lock)
  if not ok then full(self, err) end
  local wait = tat - self.per - now
  if wait > 0 then self.clock:sleep(math.ceil(wait)) end
end

return M
