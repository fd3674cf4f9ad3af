-- The sandbox panel's API v2 state machine: services, balance, orders, refills, errors.
--
-- panel:call(fields) runs one API request (fields = decoded form, key and action
-- included) and returns the JSON text of the answer and whether it is an error object.
--
-- Life cycle (clock "calls"): the k-th status query of an order answers the order's state
-- after k-1 steps, then advances it by one step. With `steps` = S an order is Pending at
-- step 0, In progress at steps 1..S-2, final (Completed, or Partial when its link contains
-- "partial") from step S-1 on: the S-th status query is the first to answer Completed
-- (S = 3: Pending, In progress, Completed). Clock "real": one step every `tick` ms since
-- the order was placed, status queries do not advance. /sandbox/advance adds steps to
-- every order and refill. Refills follow the same rule with refill_status queries
-- (Pending, In progress, Completed; Rejected when the order's link contains "reject").
local decimal = require "smm.sandbox.decimal"
local json = require "smm.json"
local catalogue = require "smm.sandbox.services"

local M = {}
local Panel = {}
Panel.__index = Panel

local str, raw, object, array, encode = json.str, json.raw, json.object, json.array, json.encode
local gettime = require("socket").gettime

local ERR_KEYS = {
  ["Not enough funds on balance"] = "neworder.error.not_enough_funds",
  ["Incorrect service ID"] = "neworder.error.incorrect_service_id",
  ["You have active order with this link. Please wait until order being completed."] =
    "neworder.error.link_duplicate",
}
local DUP = "You have active order with this link. Please wait until order being completed."
local MAX_IDS = 100
local CHILD_BASE = 10000000

local NUMERIC_STATUS = { ["Pending"] = 0, ["In progress"] = 1, ["Completed"] = 2, ["Partial"] = 3,
  ["Canceled"] = 4, ["Processing"] = 5, ["Rejected"] = 3 }
local DELAYS = {}
for _, d in ipairs{ 0, 5, 10, 15, 20, 30, 40, 50, 60, 90, 120, 150, 180, 210, 240, 270, 300, 360,
  420, 480, 540, 600 } do DELAYS[tostring(d)] = true end

local function nonempty_lines(s)
  local n = 0
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("%S") then n = n + 1 end
  end
  return n
end

local function posint(s)
  if type(s) ~= "string" then return nil end
  local d = s:match("^%s*(%d+)%s*$")
  if not d or #d > 15 then return nil end
  return math.tointeger(tonumber(d))
end

-- cfg: keys (set), balance (decimal string), steps, clock, tick, numbers, status_style,
-- error_style, invisible_calls, dup_link, echo_key, services_count, rates_for ("KEY=N,...")
function M.new(cfg)
  local self = setmetatable({ cfg = cfg }, Panel)
  self.balance = assert(decimal.parse(cfg.balance or "100.00"), "bad balance")
  self.orders, self.order_list = {}, {}
  self.refills, self.refill_list = {}, {}
  self.next_order, self.next_refill, self.next_child = 1, 1, CHILD_BASE + 1
  self.placed = 0
  -- status requests per order id asked (any id, known or not): for "no order polled twice"
  self.polls, self.poll_total = {}, 0
  if cfg.services then
    self:use_services(cfg.services)
  else
    self:set_services(cfg.services_count)
  end
  return self
end

-- The catalogue in force: the panel's own copy of the records (so editing one never touches
-- the built-in list or another panel's), indexed by id; the answer caches start again.
function Panel:use_services(list)
  local own, byid = {}, {}
  for i, s in ipairs(list) do
    local c = {}
    for k, v in pairs(s) do c[k] = v end
    c.rate_units = c.rate_units or assert(decimal.parse(c.rate))
    own[i] = c
    byid[c.service] = c
  end
  self.services_list, self.services = own, byid
  self.services_cache = {}
end

-- n > 0: a generated catalogue of n services; else the built-in one.
function Panel:set_services(n)
  n = tonumber(n)
  self:use_services((n and n > 0) and catalogue.generate(math.tointeger(n) or 12) or catalogue.list)
end

-- POST /sandbox/services: change the catalogue between two fetches, as a panel's owner does.
--   list=JSON                  replace the whole list (the --services file's format)
--   count=N                    a generated list of N services (0: the built-in list)
--   service=ID remove=1        drop one service
--   service=ID + fields        edit one (rate, min, max, refill, cancel, dripfeed, name,
--                              category, type, kind); an unknown ID adds a service (name,
--                              type, rate, min, max needed)
-- Orders already placed keep the record they were placed with. Returns true or nil, message.
function Panel:edit_services(f, read_json)
  if f.list then
    local v, err = read_json(f.list)
    if err then return nil, "list: " .. err end
    local list, bad = catalogue.check_list(v)
    if not list then return nil, bad end
    self:use_services(list)
    return true
  elseif f.count then
    local n = math.tointeger(tonumber(f.count))
    if not n or n < 0 then return nil, "count: a whole number >= 0, not " .. f.count end
    self:set_services(n)
    return true
  end
  local id = math.tointeger(tonumber(f.service or ""))
  if not id then return nil, "service: an id, list= or count= expected" end
  local old = self.services[id]
  local list = {}
  if f.remove == "1" or f.remove == "true" then
    if not old then return nil, "service " .. id .. ": not in the list" end
    for _, s in ipairs(self.services_list) do
      if s ~= old then list[#list + 1] = s end
    end
  else
    local fields = {}
    for k, v in pairs(f) do if k ~= "remove" then fields[k] = v end end
    local rec, err = catalogue.apply(old, fields)
    if not rec then
      return nil, "service " .. id .. ": " .. err .. (old and "" or
        " (a new service needs name, type, rate, min, max)")
    end
    for _, s in ipairs(self.services_list) do list[#list + 1] = (s == old) and rec or s end
    if not old then list[#list + 1] = rec end
  end
  self:use_services(list)
  return true
end

-- The catalogue as JSON values (every record's fields, kind included), for GET /sandbox/services.
function Panel:services_view()
  local out = {}
  for i, s in ipairs(self.services_list) do
    out[i] = object("service", s.service, "name", s.name, "type", s.type, "kind", s.kind,
      "category", s.category, "rate", s.rate, "min", s.min, "max", s.max, "refill", s.refill,
      "cancel", s.cancel, "dripfeed", s.dripfeed)
  end
  return array(out, #out)
end

-- Apply one config key; returns true if the panel knows it.
function Panel:configure(name, value)
  local cfg = self.cfg
  if name == "balance" then
    local b = decimal.parse(value)
    if not b then return nil, "bad balance" end
    self.balance = b
  elseif name == "services_count" then
    cfg.services_count = tonumber(value)
    self:set_services(cfg.services_count)
  elseif name == "numbers" then
    if value ~= "string" and value ~= "number" and value ~= "mixed" then
      return nil, "numbers: string|number|mixed"
    end
    cfg.numbers = value
  elseif name == "status_style" then
    if value ~= "standard" and value ~= "british" and value ~= "lower" and value ~= "numeric" then
      return nil, "status_style: standard|british|lower|numeric"
    end
    cfg.status_style = value
  elseif name == "error_style" then
    cfg.error_style = value
  elseif name == "steps" or name == "invisible_calls" or name == "tick" then
    local n = tonumber(value)
    if not n then return nil, name .. ": number expected" end
    cfg[name] = math.tointeger(n) or n
    if name == "steps" and cfg.steps < 1 then cfg.steps = 1 end
  elseif name == "dup_link" or name == "echo_key" then
    cfg[name] = value == "1" or value == "true" or value == true or value == 1
  elseif name == "rates_for" then
    cfg.rates_for = value
    self.services_cache = {}
  elseif name == "clock" then
    if value ~= "calls" and value ~= "real" then return nil, "clock: calls|real" end
    cfg.clock = value
  else
    return false
  end
  return true
end

-- number formatting by style: S = a string in the reference, N = a number in the reference
function Panel:S(v)
  if self.cfg.numbers == "number" then return raw(tostring(v)) end
  return tostring(v)
end
function Panel:N(v)
  if self.cfg.numbers == "string" then return tostring(v) end
  return raw(tostring(v))
end
-- an id echoed back: a number if the client's text is one, else its text
function Panel:ID(text)
  local n = posint(text)
  if n then return self:N(n) end
  return text
end

function Panel:spell(status)
  local style = self.cfg.status_style
  if style == "british" then
    if status == "Canceled" then return "Cancelled" end
  elseif style == "lower" then
    return status:lower()
  elseif style == "numeric" then
    return self:S(NUMERIC_STATUS[status] or 7)
  end
  return status
end

local function err(msg)
  return '{"error":' .. str(msg) .. "}", true
end

function Panel:add_error(msg, n)
  if self.cfg.error_style == "keys" then
    if msg:find("^Quantity less") then return err("neworder.error.min_quantity") end
    if msg:find("^Quantity more") then return err("neworder.error.max_quantity") end
    if ERR_KEYS[msg] then return err(ERR_KEYS[msg]) end
  end
  if n then msg = msg .. " " .. n end
  return err(msg)
end

-- ids from "1, 2,3": list of trimmed texts (empty entries skipped); nil if more than 100
local function id_list(s)
  local ids = {}
  for part in s:gmatch("[^,]+") do
    local t = part:match("^%s*(.-)%s*$")
    if t ~= "" then
      ids[#ids + 1] = t
      if #ids > MAX_IDS then return nil end
    end
  end
  return ids
end

------------------------------------------------------------------------------------------
-- life cycle

local function progress(self, rec)
  local p = rec.p
  if self.cfg.clock == "real" then
    local tick = (tonumber(self.cfg.tick) or 1000) / 1000
    if tick > 0 then p = p + math.floor((gettime() - rec.t0) / tick) end
  end
  return p
end

local function start_count(id)
  return 1000 + (id * 7919) % 9000
end

-- Bring an order's status, remains and charge up to date; returns the order.
function Panel:update(o)
  if o.final then return o end
  local F = math.max(0, self.cfg.steps - 1)
  local p = progress(self, o)
  local total = o.total
  if p >= F then
    if o.link and o.link:lower():find("partial", 1, true) and total > 1 then
      local remains = math.max(1, total // 10)
      local charge = decimal.scale(o.charge, total - remains, total)
      self.balance = self.balance + (o.charge - charge)
      o.charge, o.remains, o.status = charge, remains, "Partial"
    else
      o.remains, o.status = 0, "Completed"
    end
    o.final = true
    o.start_count = o.start_count or start_count(o.id)
  elseif p <= 0 then
    o.status, o.remains = "Pending", total
  else
    o.status = "In progress"
    o.remains = total - (total * p) // F
    if o.remains <= 0 then o.remains = 1 end
    o.start_count = o.start_count or start_count(o.id)
  end
  return o
end

function Panel:advance(n)
  n = math.tointeger(tonumber(n) or 1) or 1
  for _, o in ipairs(self.order_list) do
    if not o.final then
      o.p = o.p + n
      self:update(o)
    end
  end
  for _, r in ipairs(self.refill_list) do r.p = r.p + n end
end

function Panel:refill_state(r)
  local F = math.max(0, self.cfg.steps - 1)
  local p = progress(self, r)
  if p >= F then return r.reject and "Rejected" or "Completed" end
  if p <= 0 then return "Pending" end
  return "In progress"
end

------------------------------------------------------------------------------------------
-- actions

-- Panels price per account: rates_for = "KEY=N,..." makes KEY's rates N times the list's.
function Panel:rate_factor(key)
  local spec = self.cfg.rates_for
  if type(spec) ~= "string" or key == nil then return 1 end
  for k, n in spec:gmatch("([^,=]+)=(%d+)") do
    if k:match("^%s*(.-)%s*$") == key then return math.max(1, math.tointeger(tonumber(n)) or 1) end
  end
  return 1
end

function Panel:rate_of(s, key)
  local factor = self:rate_factor(key)
  if factor == 1 then return s.rate_units end
  return decimal.mul(s.rate_units, factor) or s.rate_units
end

function Panel:services_answer(f)
  local style = self.cfg.numbers or "mixed"
  local key = f and f.key
  local factor = self:rate_factor(key)
  local cache_name = factor == 1 and style or (style .. "*" .. factor)
  local cached = self.services_cache[cache_name]
  if cached then return cached end
  local items = {}
  for i, s in ipairs(self.services_list) do
    local id, mn, mx, rate
    local s_rate = factor == 1 and s.rate or decimal.format(self:rate_of(s, key))
    if style == "string" then
      id, mn, mx, rate = str(tostring(s.service)), str(tostring(s.min)), str(tostring(s.max)),
        str(s_rate)
    elseif style == "number" then
      id, mn, mx, rate = tostring(s.service), tostring(s.min), tostring(s.max), s_rate
    else -- mixed, as the reference page: id a number, rate/min/max strings
      id, mn, mx, rate = tostring(s.service), str(tostring(s.min)), str(tostring(s.max)),
        str(s_rate)
    end
    local parts = { '{"service":', id, ',"name":', str(s.name), ',"type":', str(s.type),
      ',"category":', str(s.category), ',"rate":', rate, ',"min":', mn, ',"max":', mx,
      ',"refill":', tostring(s.refill), ',"cancel":', tostring(s.cancel) }
    if s.kind == "default" then
      parts[#parts + 1] = ',"dripfeed":'
      parts[#parts + 1] = tostring(s.dripfeed == true)
    end
    parts[#parts + 1] = "}"
    items[i] = table.concat(parts)
  end
  cached = "[" .. table.concat(items, ",") .. "]"
  self.services_cache[cache_name] = cached
  return cached
end

-- like panels: only the scheme and a host are checked (spaces, UTF-8, fragments pass)
local function valid_link(link)
  return link:find("^[Hh][Tt][Tt][Pp][Ss]?://[^%s/?#]") ~= nil
end

function Panel:add(f)
  if not f.service then return err("Incorrect request") end
  local sid = posint(f.service)
  local s = sid and self.services[sid]
  if not s then return self:add_error("Incorrect service ID") end
  local rate = self:rate_of(s, f.key)
  local kind = s.kind
  local link = f.link
  local quantity, total, multiplier
  multiplier = 1
  local charge
  local runs
  if kind == "subs" then
    if not f.username or f.username == "" or not f.min or not f.max then
      return err("Incorrect request")
    end
    local mn, mx = posint(f.min), posint(f.max)
    if not mn or not mx or mn > mx then return err("Incorrect request") end
    if f.posts and f.posts ~= "" and not posint(f.posts) then return err("Incorrect request") end
    if f.old_posts and f.old_posts ~= "" and not posint(f.old_posts) then
      return err("Incorrect request")
    end
    if f.delay and f.delay ~= "" and not DELAYS[f.delay] then return err("Incorrect request") end
    if f.expiry and f.expiry ~= "" and not f.expiry:match("^%d%d?/%d%d?/%d%d%d%d$") then
      return err("Incorrect request")
    end
    if mn < s.min then return self:add_error("Quantity less than minimal", s.min) end
    if mx > s.max then return self:add_error("Quantity more than maximum", s.max) end
    local posts = posint(f.posts or "")
    if posts == 0 then posts = nil end
    quantity = mx
    total = mx * (posts or 1)
    charge = decimal.per_thousand(rate, total)
  else
    if not link or link == "" then return err("Incorrect request") end
    if kind == "comments" then
      if not f.comments or not f.comments:match("%S") then return err("Incorrect request") end
      quantity = nonempty_lines(f.comments)
    elseif kind == "groups" then
      if not f.groups or not f.groups:match("%S") then return err("Incorrect request") end
      if f.quantity and f.quantity ~= "" then
        quantity = posint(f.quantity)
        if not quantity then return err("Incorrect request") end
      else
        quantity = nonempty_lines(f.groups)
      end
    elseif kind == "package" then
      quantity = 1
    else
      if not f.quantity or f.quantity == "" then return err("Incorrect request") end
      quantity = posint(f.quantity)
      if not quantity then return err("Incorrect request") end
      if kind == "username" and (not f.username or f.username == "") then
        return err("Incorrect request")
      end
      if kind == "poll" and not posint(f.answer_number or "") then
        return err("Incorrect request")
      end
      if kind == "default" and ((f.runs and f.runs ~= "") or (f.interval and f.interval ~= "")) then
        if not s.dripfeed then return err("Incorrect request") end
        runs = posint(f.runs or "")
        local interval = posint(f.interval or "")
        if not runs or runs < 1 or not interval or interval < 1 then
          return err("Incorrect request")
        end
        multiplier = runs
      end
    end
    if not valid_link(link) then return err("Incorrect link") end
    if kind ~= "package" then
      if quantity < s.min then return self:add_error("Quantity less than minimal", s.min) end
      if quantity > s.max then return self:add_error("Quantity more than maximum", s.max) end
    end
    if kind == "package" then
      total = 1
      charge = rate
    else
      total = quantity * multiplier
      charge = decimal.per_thousand(rate, total)
    end
  end
  if not charge then return self:add_error("Quantity more than maximum", s.max) end
  if self.cfg.dup_link and link then
    for _, o in ipairs(self.order_list) do
      if o.link == link and not self:update(o).final and o.status ~= "Canceled" then
        return self:add_error(DUP)
      end
    end
  end
  if self.balance - charge < 0 then return self:add_error("Not enough funds on balance") end
  self.balance = self.balance - charge

  local id = self.next_order
  self.next_order = id + 1
  local fields = {}
  for k, v in pairs(f) do
    if k ~= "key" and k ~= "action" then fields[k] = v end
  end
  local o = { id = id, service = s, fields = fields, link = link, quantity = quantity,
    total = total, charge = charge, paid = charge, p = 0, t0 = gettime(), status_calls = 0,
    runs = runs, posts = kind == "subs" and (posint(f.posts or "") or 0) or nil }
  if runs then
    o.children = {}
    for k = 1, runs do
      local cid = self.next_child
      self.next_child = cid + 1
      o.children[k] = cid
      self.orders[cid] = { child_of = o, run = k, id = cid }
    end
  end
  self.orders[id] = o
  self.order_list[#self.order_list + 1] = o
  self.placed = self.placed + 1
  self:update(o)
  return '{"order":' .. encode(self:N(id)) .. "}", false
end

-- The status object of one order (a JSON value), or nil + error message.
function Panel:status_of(text, advance)
  local id = posint(text)
  local o = id and self.orders[id]
  if not o then return nil, "Incorrect order ID" end
  if o.child_of then return self:child_status(o) end
  o.status_calls = o.status_calls + 1
  if o.status_calls <= (self.cfg.invisible_calls or 0) then return nil, "Incorrect order ID" end
  self:update(o)
  local ans = object("charge", self:S(decimal.format(o.charge)),
    "start_count", self:S(o.start_count or 0), "status", self:spell(o.status),
    "remains", self:S(o.remains), "currency", "USD",
    "runs", o.runs and self:S(o.runs) or nil,
    "orders", o.children and self:started_children(o) or (o.posts and array({}, 0)) or nil,
    "posts", o.posts and self:S(o.posts) or nil)
  if advance and self.cfg.clock ~= "real" and not o.final then
    o.p = o.p + 1
    self:update(o)
  end
  return ans
end

function Panel:started_children(o)
  local delivered = o.total - o.remains
  local started
  if o.status == "Completed" then
    started = o.runs
  elseif o.status == "In progress" then
    started = math.min(o.runs, delivered * o.runs // o.total + 1)
  else -- Pending, or Partial/Canceled: the runs that delivered something
    started = math.min(o.runs, (delivered * o.runs + o.total - 1) // o.total)
  end
  local ids = {}
  for k = 1, started do ids[k] = self:N(o.children[k]) end
  return array(ids, started)
end

function Panel:child_status(c)
  local o = self:update(c.child_of)
  local per = math.max(1, o.total // o.runs)
  local delivered = o.total - o.remains
  local done = delivered // per
  local status, remains
  if o.status == "Completed" or c.run <= done then
    status, remains = "Completed", 0
  elseif o.status == "Canceled" or o.status == "Partial" then
    status, remains = "Canceled", c.run == done + 1 and per - (delivered - done * per) or per
  elseif c.run == done + 1 and o.status == "In progress" then
    status, remains = "In progress", per - (delivered - done * per)
  else
    status, remains = "Pending", per
  end
  return object("charge", self:S(decimal.format(o.charge // o.runs)),
    "start_count", self:S(start_count(c.id)), "status", self:spell(status),
    "remains", self:S(remains), "currency", "USD")
end

function Panel:count_poll(text)
  local id = posint(text) or text
  self.polls[id] = (self.polls[id] or 0) + 1
  self.poll_total = self.poll_total + 1
end

function Panel:status(f)
  if f.orders then
    local ids = id_list(f.orders)
    if not ids then return err("Incorrect request") end
    local kv, seen = {}, {}
    for _, t in ipairs(ids) do
      if not seen[t] then
        seen[t] = true
        self:count_poll(t)
        local ans, e = self:status_of(t, true)
        kv[#kv + 1] = t
        kv[#kv + 1] = ans or object("error", e)
      end
    end
    return encode(object(table.unpack(kv))), false
  elseif f.order then
    self:count_poll(f.order)
    local ans, e = self:status_of(f.order, true)
    if not ans then return err(e) end
    return encode(ans), false
  end
  return err("Incorrect request")
end

-- The list form of refill, refill_status and cancel: an array with one entry per id asked,
-- `{id_name: id, value_name: value}`, a refused id's error inside its entry.
function Panel:per_id(text, id_name, value_name, one, value)
  local ids = id_list(text)
  if not ids then return err("Incorrect request") end
  local out = {}
  for i, t in ipairs(ids) do
    local v, e = one(self, t)
    out[i] = object(id_name, self:ID(t), value_name, v and value(self, v) or object("error", e))
  end
  return encode(array(out, #ids)), false
end

-- The order a refill or a cancel (`what`) acts on, brought up to date, or nil + error: a
-- drip-feed run is not an order of its own, and the service must offer `what`.
function Panel:order_for(text, what)
  local id = posint(text)
  local o = id and self.orders[id]
  if not o or o.child_of then return nil, "Incorrect order ID" end
  self:update(o)
  if not o.service[what] then return nil, "Service does not support " .. what end
  return o
end

-- Try to create a refill for order text; returns refill id or nil + error.
function Panel:refill_one(text)
  local o, e = self:order_for(text, "refill")
  if not o then return nil, e end
  if o.status ~= "Completed" and o.status ~= "Partial" then
    return nil, "Refill is not available for this order"
  end
  local rid = self.next_refill
  self.next_refill = rid + 1
  local r = { id = rid, order = o, p = 0, t0 = gettime(),
    reject = o.link and o.link:lower():find("reject", 1, true) ~= nil }
  self.refills[rid] = r
  self.refill_list[#self.refill_list + 1] = r
  return rid
end

function Panel:refill(f)
  if f.orders then
    return self:per_id(f.orders, "order", "refill", Panel.refill_one, Panel.N)
  elseif f.order then
    local rid, e = self:refill_one(f.order)
    if not rid then return err(e) end
    return '{"refill":' .. encode(self:S(rid)) .. "}", false
  end
  return err("Incorrect request")
end

function Panel:refill_status_of(text)
  local id = posint(text)
  local r = id and self.refills[id]
  if not r then return nil, "Refill not found" end
  local st = self:refill_state(r)
  if self.cfg.clock ~= "real" then r.p = r.p + 1 end
  return self:spell(st)
end

function Panel:refill_status(f)
  if f.refills then
    return self:per_id(f.refills, "refill", "status", Panel.refill_status_of, function(_, st) return st end)
  elseif f.refill then
    local st, e = self:refill_status_of(f.refill)
    if not st then return err(e) end
    return encode(object("status", st)), false
  end
  return err("Incorrect request")
end

function Panel:cancel_one(text)
  local o, e = self:order_for(text, "cancel")
  if not o then return nil, e end
  if o.final then return nil, "Order cannot be canceled in its current status" end
  local delivered = o.total - o.remains
  local charge = decimal.scale(o.charge, delivered, o.total)
  self.balance = self.balance + (o.charge - charge)
  o.charge, o.status, o.final = charge, "Canceled", true
  return 1
end

function Panel:cancel(f)
  local list = f.orders or f.order
  if not list then return err("Incorrect request") end
  return self:per_id(list, "order", "cancel", Panel.cancel_one, Panel.N)
end

function Panel:balance_answer()
  return '{"balance":' .. encode(self:S(decimal.format(self.balance))) .. ',"currency":"USD"}', false
end

local actions = {
  services = function(self, f) return self:services_answer(f), false end,
  add = Panel.add,
  status = Panel.status,
  refill = Panel.refill,
  refill_status = Panel.refill_status,
  cancel = Panel.cancel,
  balance = Panel.balance_answer,
}

function Panel:key_ok(key)
  return key ~= nil and self.cfg.keys[key] == true
end

-- One API request: returns JSON text, is_error.
function Panel:call(f)
  if not self:key_ok(f.key) then
    if self.cfg.echo_key and f.key then return err("Invalid API key: " .. f.key) end
    return err("Invalid API key")
  end
  local fn = actions[f.action or ""]
  if not fn then return err("Incorrect request") end
  return fn(self, f)
end

------------------------------------------------------------------------------------------
-- admin views

-- Status requests per id since the last reset (or clear): { total, distinct, max, by_id }.
function Panel:polls_view()
  local by_id, distinct, max = {}, 0, 0
  for id, n in pairs(self.polls) do
    by_id[tostring(id)] = n
    distinct = distinct + 1
    if n > max then max = n end
  end
  return { total = self.poll_total, distinct = distinct, max = max,
    by_id = distinct > 0 and by_id or json.object() }
end

function Panel:clear_polls() self.polls, self.poll_total = {}, 0 end

-- Places `count` copies of one order at once (a bench or a spec needing thousands of orders
-- the panel knows, without thousands of requests). Returns the first and last ids, or nil +
-- the first order's error.
function Panel:bulk(f, count)
  local first, last
  for _ = 1, count do
    local body, is_err = self:add(f)
    if is_err then return nil, body end
    last = self.next_order - 1
    first = first or last
  end
  return first, last
end

function Panel:dump_orders()
  local out = {}
  for i, o in ipairs(self.order_list) do
    self:update(o)
    local t = {}
    for k, v in pairs(o.fields) do t[k] = v end
    t.id, t.status, t.charge = o.id, o.status, decimal.format(o.charge)
    t.remains, t.start_count, t.type = o.remains, o.start_count or 0, o.service.type
    if o.children then t.children = array(o.children) end
    out[i] = t
  end
  return array(out, #self.order_list)
end

function Panel:dump_refills()
  local out = {}
  for i, r in ipairs(self.refill_list) do
    out[i] = { id = r.id, order = r.order.id, status = self:refill_state(r) }
  end
  return array(out, #self.refill_list)
end

return M
