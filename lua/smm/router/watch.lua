-- What changed between two of a panel's service lists (normalised records, as client:services
-- gives and the catalog's snapshots keep), as events for the book's outbox:
--
--   local changes = watch.diff(old_list, new_list)
--   -- { { type = "service.rate", service = 17, data = { ... } }, ... }  by id, then type
--
--   service.added     the new record's fields (service, service_name, type, category, rate,
--                     min, max, refill, cancel, dripfeed)
--   service.removed   the old record's fields
--   service.rate      service, service_name, old, new, change ("0.05" / "-0.05"), percent ("5.56" /
--                     "-5.26": of the old rate, rounded half away from zero to 2 decimals,
--                     nil when the old rate was 0), direction ("up" / "down")
--   service.bounds    service, service_name, old_min, new_min, old_max, new_max
--   service.flags     service, service_name, changed ({ "refill", ... }), old_refill, new_refill,
--                     old_cancel, new_cancel, old_dripfeed, new_dripfeed
-- Money is exact decimal text throughout (smm.money), never a float: "0.9" and "0.90" are one
-- rate. A name, type or category change alone is no event (the snapshot still changes).
-- (The service's name is service_name: in the book's events, name is the panel's, as in the
-- router's panel events.)
-- The product events (product.orphaned, product.cheapest) need every panel's lists: see
-- smm.router.catalog, which also writes these into the outbox with the snapshot.
local money = require "smm.money"

local M = {}

M.FIELDS = { "service", "name", "type", "category", "rate", "min", "max", "refill", "cancel",
  "dripfeed" }
local KIND_ORDER = { ["service.added"] = 1, ["service.removed"] = 2, ["service.rate"] = 3,
  ["service.bounds"] = 4, ["service.flags"] = 5 }
local FLAGS = { "refill", "cancel", "dripfeed" }

local function record_data(s)
  local d = {}
  for _, f in ipairs(M.FIELDS) do d[f] = s[f] end
  d.service_name, d.name = d.name, nil
  return d
end

local function exact(rate) return type(rate) == "string" and money.is_decimal(rate) end

-- a / b (b > 0, both exact decimals) rounded half away from zero to `decimals` places, by long
-- division on the decimals themselves: no float anywhere.
function M.divide(a, b, decimals)
  a, b = money.format(a, 0), money.format(b, 0)
  local neg = money.compare(a, "0") < 0
  if neg then a = money.format(money.sub("0", a), 0) end
  -- both made whole numbers: shift the point of each by the larger scale
  local scale = math.max(#(a:match("%.(%d*)$") or ""), #(b:match("%.(%d*)$") or ""))
  local unit = "1" .. string.rep("0", scale)
  local A = money.format(money.mul(a, unit), 0):gsub("%.%d*$", "")
  local B = money.format(money.mul(b, unit), 0):gsub("%.%d*$", "")
  -- A x 10^(decimals + 1) / B digit by digit; the last digit rounds
  A = A .. string.rep("0", decimals + 1)
  local digits, rest = {}, "0"
  for i = 1, #A do
    rest = money.format(money.add(money.mul(rest, "10"), A:sub(i, i)), 0)
    local q = 0
    while money.compare(rest, B) >= 0 do
      rest = money.format(money.sub(rest, B), 0)
      q = q + 1
    end
    digits[#digits + 1] = tostring(q)
  end
  local q = table.concat(digits):gsub("^0+(%d)", "%1")
  local last = tonumber(q:sub(-1))
  q = q:sub(1, -2)
  if q == "" then q = "0" end
  if last >= 5 then q = money.format(money.add(q, "1"), 0) end
  local out = money.format(money.shift(q, decimals), decimals)
  if neg and money.compare(out, "0") ~= 0 then out = "-" .. out end
  return out
end

-- The rate change from old to new: change, percent (nil when old is 0), direction.
function M.rate_change(old, new)
  local change = money.sub(new, old)
  local c = money.compare(change, "0")
  local pct
  if money.compare(old, "0") > 0 then pct = M.divide(money.format(money.mul(change, "100"), 0), old, 2) end
  return money.format(change), pct, c > 0 and "up" or "down"
end

local function by_id(list)
  local t = {}
  for _, s in ipairs(list or {}) do
    if type(s) == "table" and s.service ~= nil then t[s.service] = s end
  end
  return t
end

-- diff(old_list, new_list) -> changes (see the top of this file)
function M.diff(old_list, new_list)
  if type(old_list) ~= "table" or type(new_list) ~= "table" then
    error("smm.router.watch: diff(old_list, new_list): two lists expected", 2)
  end
  local old, new = by_id(old_list), by_id(new_list)
  local out = {}
  local function add(type_, id, data)
    out[#out + 1] = { type = type_, service = id, data = data }
  end
  for id, s in pairs(new) do
    local o = old[id]
    if not o then
      add("service.added", id, record_data(s))
    else
      local same_rate = s.rate == o.rate or
        (exact(s.rate) and exact(o.rate) and money.compare(s.rate, o.rate) == 0)
      if not same_rate then
        local d = { service = id, service_name = s.name, old = o.rate, new = s.rate }
        if exact(s.rate) and exact(o.rate) then
          d.change, d.percent, d.direction = M.rate_change(o.rate, s.rate)
        end
        add("service.rate", id, d)
      end
      if s.min ~= o.min or s.max ~= o.max then
        add("service.bounds", id, { service = id, service_name = s.name, old_min = o.min,
          new_min = s.min, old_max = o.max, new_max = s.max })
      end
      local changed = {}
      for _, f in ipairs(FLAGS) do
        if (s[f] == true) ~= (o[f] == true) then changed[#changed + 1] = f end
      end
      if #changed > 0 then
        local d = { service = id, service_name = s.name, changed = changed }
        for _, f in ipairs(FLAGS) do
          d["old_" .. f], d["new_" .. f] = o[f] == true, s[f] == true
        end
        add("service.flags", id, d)
      end
    end
  end
  for id, o in pairs(old) do
    if not new[id] then add("service.removed", id, record_data(o)) end
  end
  table.sort(out, function(a, b)
    if a.service ~= b.service then
      if type(a.service) == type(b.service) then return a.service < b.service end
      return tostring(a.service) < tostring(b.service)
    end
    return KIND_ORDER[a.type] < KIND_ORDER[b.type]
  end)
  return out
end

return M
