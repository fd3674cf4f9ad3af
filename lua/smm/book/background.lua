-- The book's background work inside nginx: one worker at a time follows the open orders
-- (book:sync) and delivers the events (book:deliver), from an ngx.timer.every.
--
--   init_worker_by_lua_block {
--     require("smm.book.background").start{
--       book = function() return app.book() end,      -- or the book itself
--       client = function() return app.client() end,  -- or the client itself
--       dict = "smm_cache",                           -- a lua_shared_dict: who leads
--       every = 10,                                   -- seconds between rounds
--       hooks = { { webhook = "https://shop.example/smm-events", secret = "..." } },
--     }
--   }
--
-- Every worker starts the timer; at each tick, the worker whose pid holds the dict's leader key
-- runs the round, the others do nothing. The leader renews the key at each tick; a leader that
-- dies lets it expire (3 rounds), and the next worker to tick takes it. Two leaders at once (a
-- tick racing an expiry) cost a duplicate round, not a duplicate order: the book's leases keep
-- any order from being asked twice. The book should be opened with { thread_pool = }: then
-- its SQL runs in worker threads and the panel and the webhooks are reached over cosockets.
local M = {}

local KEY = "smm:book:sync-leader"

local function value(v) if type(v) == "function" then return v() end return v end

-- syntax: ok, err = background.start(opts)   (in init_worker_by_lua*)
-- opts: book, client (each a value or a function returning it, called at each round), dict
-- (the shared dict's name), every (seconds, default 10), hooks (book:deliver's list, optional),
-- sync (book:sync's options), deliver (book:deliver's options), log (function(level, ...),
-- default ngx.log).
function M.start(opts)
  if type(opts) ~= "table" or opts.book == nil or opts.client == nil or type(opts.dict) ~= "string" then
    error("smm.book.background.start{ book =, client =, dict = }: book, client and dict are required", 2)
  end
  local dict = ngx.shared[opts.dict]
  if not dict then error("smm.book.background: no lua_shared_dict named '" .. opts.dict .. "'", 2) end
  local every = opts.every or 10
  local log = opts.log or ngx.log
  local me = ngx.worker.pid()
  local running = false

  local function leads()
    local ttl = every * 3
    if dict:add(KEY, me, ttl) then return true end
    if dict:get(KEY) == me then
      dict:set(KEY, me, ttl)
      return true
    end
    return false
  end

  local function round(premature)
    if premature or running or not leads() then return end
    running = true
    local ok, failure = pcall(function()
      local book, client = value(opts.book), value(opts.client)
      local summary, err = book:sync(client, opts.sync)
      if not summary then log(ngx.ERR, "smm sync: ", tostring(err))
      elseif err then log(ngx.WARN, "smm sync ended early: ", tostring(err)) end
      if opts.hooks then
        local delivered, derr = book:deliver(opts.hooks, opts.deliver)
        if not delivered then log(ngx.ERR, "smm deliver: ", tostring(derr)) end
      end
    end)
    running = false
    if not ok then log(ngx.ERR, "smm background round failed: ", tostring(failure)) end
  end

  return ngx.timer.every(every, round)
end

M.LEADER_KEY = KEY

return M
