-- Test helper for smm.router's specs: three sandbox panels, each its own process with its own
-- key, whose prices differ by their per-account rate factor (the sandbox's rates_for): a sells
-- at the list's rates, b at twice them, c at three times. Every key holds the suite's sentinel
-- (helpers.env), so env.leaks_key finds any of them.
--
--   local rt = require "helpers.router"
--   local sbs = rt.start()                       -- { a = sb, b = sb, c = sb }
--   local router = rt.router(book, sbs, { products = ..., breaker = ..., clock = ..., client = {...} })
--   rt.adds(sbs)                                 -- { a = n, b = n, c = n } add requests received
--   rt.stop(sbs)
local sandbox = require "helpers.sandbox"
local env = require "helpers.env"

local M = {}

M.NAMES = { "a", "b", "c" }
M.KEYS = { a = env.KEY .. "-a", b = env.KEY .. "-b", c = env.KEY .. "-c" }
M.FACTOR = { a = 1, b = 2, c = 3 }

-- the same service id on every panel: 1000 of service 1 costs 0.90 on a, 1.80 on b, 2.70 on c
M.PRODUCTS = { followers = { a = 1, b = 1, c = 1 } }

function M.start(opts)
  local sbs = {}
  for _, name in ipairs(M.NAMES) do
    local o = { key = M.KEYS[name], balance = "1000.00" }
    if M.FACTOR[name] > 1 then o.rates_for = M.KEYS[name] .. "=" .. M.FACTOR[name] end
    for k, v in pairs(opts or {}) do o[k] = v end
    sbs[name] = sandbox.start(o)
  end
  return sbs
end

function M.stop(sbs)
  for _, name in ipairs(M.NAMES) do
    if sbs and sbs[name] then sbs[name]:stop() end
  end
end

-- opts: products (default M.PRODUCTS), breaker, clock, currency, client (options for every panel's client),
-- order (the panels' order, default a, b, c), panel = { [name] = { extra entry fields } }
function M.router(book, sbs, opts)
  opts = opts or {}
  local panels = {}
  for i, name in ipairs(opts.order or M.NAMES) do
    local entry = { name = name, url = sbs[name].url, key = M.KEYS[name], retries = 1, retry_base = 1,
                    timeout = 5000 }
    for k, v in pairs(opts.client or {}) do entry[k] = v end
    for k, v in pairs((opts.panel or {})[name] or {}) do entry[k] = v end
    panels[i] = entry
  end
  return require("smm.router").new{ book = book, panels = panels, products = opts.products or M.PRODUCTS,
    breaker = opts.breaker, clock = opts.clock, currency = opts.currency }
end

-- add requests each panel received (the sandbox's own counter)
function M.adds(sbs)
  local out = {}
  for _, name in ipairs(M.NAMES) do out[name] = env.count(sbs[name], "add") end
  return out
end

-- every order each panel holds: { a = { [link] = n, ... }, ... } and the list itself
function M.orders(sbs)
  local out = {}
  for _, name in ipairs(M.NAMES) do out[name] = sbs[name]:orders() end
  return out
end

return M
