-- smm.router: several panels behind one API. Each order goes to the cheapest panel whose service
-- takes it, and to the next one only when the failure proves that nothing was placed; calls for
-- an existing order go to the panel that holds it (the book knows each ref's panel and id).
--
--   local router = require("smm.router").new{
--     book = smm.book.open("sqlite:/var/lib/smm/orders.db"),
--     panels = { { name = "a", url = "https://a.example/api/v2", key = KEY_A, low_balance = "5.00" },
--                { name = "b", url = "https://b.example/api/v2", key = KEY_B, timeout = 20000 } },
--     products = { ["ig-followers"] = { a = 1, b = 17 } },
--     [breaker = { failures = 3, cool_off = 60000 }], [clock = function() return ms end],
--     [balance_ttl = 300], [currency = "USD"] }
-- currency: what prices, max_cost and balances are in. Prices in two currencies are not
-- comparable, so a panel whose currency (its entry's `currency`, else the one its balance
-- answers gave) differs from the router's is left out ("other_currency"); without the option,
-- panels known to price in different currencies make quote and add fail (field currency)
-- rather than pick the "cheapest" of incomparable numbers.
-- balance_ttl (seconds, the book's clock): a balance known to be short of an order's price and
-- older than this is asked anew before the panel is left out for it.
--   local q = router:quote{ product = "ig-followers", quantity = 1000 }
--   local order, err = router:add{ product = "ig-followers", link = L, quantity = 1000, ref = "shop-1" }
--
-- Money rules (smm.router.placement): an add fails over only on a failure that proves this
-- panel placed nothing (never reached it; refused for funds, a service gone, bounds, its key).
-- An ambiguous failure leaves the order in doubt with that panel, and the same ref is then
-- refused (in_doubt) without sending anything anywhere. A ref placed with any panel is returned
-- as recorded, nothing sent. Each choice and its reason are recorded with the order (the
-- book's orders.route); each panel's health and balance in the book's `panels` table.
local smm = require "smm"
local errors = require "smm.errors"
local money = require "smm.money"
local price = require "smm.price"
local json = require "smm.json"
local validate = require "smm.validate"
local catalog = require "smm.router.catalog"
local health = require "smm.router.health"
local placement = require "smm.router.placement"

local M = {}

local Router = {}
Router.__index = Router
M.Router = Router

local function usage(message, level) error("smm.router: " .. message, (level or 2) + 1) end

local NEW_OPTIONS = { "book", "panels", "products", "breaker", "clock", "balance_ttl", "currency" }
local ROUTER_KEYS = { name = true, low_balance = true, currency = true } -- the rest is smm.new's
local NAME_PATTERN = "^[%w_%.%-]+$"

local function default_clock()
  local ngx = rawget(_G, "ngx")
  if ngx and ngx.now then return math.floor(ngx.now() * 1000) end
  return os.time() * 1000 -- the wall clock: down_until is compared across processes
end

local function check_products(products, by_name)
  if type(products) ~= "table" then
    usage("new: 'products' must be a table { [product] = { [panel] = service id } }", 3)
  end
  for product, map in pairs(products) do
    if type(product) ~= "string" or product == "" then
      usage("new: a product name must be a non-empty string", 3)
    end
    if type(map) ~= "table" then
      usage("new: product '" .. product .. "' must map panel names to service ids", 3)
    end
    for name, id in pairs(map) do
      if not by_name[name] then
        usage("new: product '" .. product .. "' names panel '" .. tostring(name) ..
          "', which is not in 'panels'", 3)
      end
      if not validate.id(id, "service", "add") then
        usage("new: product '" .. product .. "' on panel '" .. name ..
          "': service must be a whole number >= 1, got " .. validate.shown(id), 3)
      end
    end
  end
end

-- syntax: router = smm.router.new{ book =, panels = {...}, products = {...}, [breaker =], [clock =] }
-- Raises on misuse (an unknown option, a panel without a name, a product naming no panel).
function M.new(opts)
  if type(opts) ~= "table" then usage("new(opts): opts must be a table") end
  validate.options(opts, NEW_OPTIONS, "smm.router.new(opts)", 2)
  local book = opts.book
  if type(book) ~= "table" or type(book.panel) ~= "function" or type(book.get) ~= "function" then
    usage("new: 'book' must be an order book (smm.book.open(url))")
  end
  if type(opts.panels) ~= "table" or #opts.panels == 0 then
    usage("new: 'panels' must be a non-empty array of { name =, url =, key =, ... }")
  end
  local breaker = opts.breaker or {}
  if type(breaker) ~= "table" then usage("new: 'breaker' must be a table { failures =, cool_off = }") end
  validate.options(breaker, { "failures", "cool_off" }, "smm.router.new: breaker", 2)
  local failures, cool_off = breaker.failures or 3, breaker.cool_off or 60000
  if type(failures) ~= "number" or failures < 1 or failures ~= math.floor(failures) then
    usage("new: breaker.failures must be a whole number >= 1, got " .. tostring(failures))
  end
  if type(cool_off) ~= "number" or cool_off < 0 then
    usage("new: breaker.cool_off must be a number of milliseconds >= 0, got " .. tostring(cool_off))
  end
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    usage("new: 'clock' must be a function (ms)")
  end
  local balance_ttl = opts.balance_ttl or 300
  if type(balance_ttl) ~= "number" or balance_ttl < 0 then
    usage("new: 'balance_ttl' must be a number of seconds >= 0, got " .. tostring(balance_ttl))
  end

  local function currency_of(v, where)
    if v ~= nil and (type(v) ~= "string" or not v:find("^%a+$")) then
      usage("new: " .. where .. "currency must be a currency code like \"USD\", got " .. validate.shown(v), 3)
    end
    return v and v:upper()
  end
  local self = setmetatable({ book = book, order = {}, by_name = {}, by_url = {},
                              products = opts.products or {}, balance_ttl = balance_ttl,
                              currency = currency_of(opts.currency, "") }, Router)
  local listed = {}
  for i, entry in ipairs(opts.panels) do
    if type(entry) ~= "table" then usage("new: panels[" .. i .. "] must be a table") end
    local name = entry.name
    if type(name) ~= "string" or not name:find(NAME_PATTERN) then
      usage("new: panels[" .. i .. "].name must be letters, digits, _ . or -, got " .. validate.shown(name))
    end
    if self.by_name[name] then usage("new: two panels are named '" .. name .. "'") end
    local low = entry.low_balance
    if low ~= nil and (type(low) ~= "string" or not money.is_decimal(low)) then
      usage("new: panel '" .. name .. "': low_balance must be a decimal string like \"5.00\", got " ..
        validate.shown(low))
    end
    local client_opts = { book = book }
    for k, v in pairs(entry) do
      if not ROUTER_KEYS[k] then
        if k == "book" then usage("new: panel '" .. name .. "': the router's book is every panel's") end
        client_opts[k] = v
      end
    end
    local client = smm.new(client_opts) -- raises on a misspelled option, as smm.new does
    local url = client.url -- printable: no key, no credentials
    if self.by_url[url] then
      usage("new: panels '" .. self.by_url[url].name .. "' and '" .. name .. "' have the same URL " .. url ..
        ": the book keys orders by URL and order id, so one URL is one panel")
    end
    local p = { name = name, url = url, low_balance = low, client = client,
                currency = currency_of(entry.currency, "panel '" .. name .. "': ") }
    self.order[i], self.by_name[name], self.by_url[url] = p, p, p
    listed[i] = { name = name, client = client }
  end
  check_products(self.products, self.by_name)
  self.clock = opts.clock or default_clock
  self.health = health.new{ book = book, clock = self.clock, failures = failures, cool_off = cool_off }
  self.catalog = catalog.new{ panels = listed, products = self.products, book = book }
  return self
end

function Router:__tostring()
  local names = {}
  for i, p in ipairs(self.order) do names[i] = p.name end
  return "smm.router: " .. table.concat(names, ", ")
end

-- syntax: client = router:panel(name)   -- that panel's client (made with the router's book)
function Router:panel(name)
  local p = self.by_name[name]
  if not p then usage("panel(name): no panel named " .. validate.shown(name)) end
  return p.client
end

-- syntax: list, err = router:panels()
-- Each panel in the router's order with its health from the book: { name =, url =, state =
-- "up" | "down" | "probing", balance =, currency =, failures =, last_error =, down_until = (ms),
-- balance_at = (UTC seconds) }. A panel the book has not seen yet is up.
function Router:panels()
  local rows, err = self.book:panels()
  if not rows then return nil, err end
  local by = {}
  for _, row in ipairs(rows) do by[row.name] = row end
  local out = {}
  for i, p in ipairs(self.order) do
    local row = by[p.name] or {}
    out[i] = { name = p.name, url = p.url, state = row.state or "up", balance = row.balance,
               currency = row.currency, failures = row.failures or 0, last_error = row.last_error,
               down_until = row.down_until, balance_at = row.balance_at }
  end
  return out
end

---------------------------------------------------------------------------------------------
-- quote

local QUOTE_OPTIONS = { "product", "quantity", "refill", "cancel", "prefer", "avoid", "max_cost" }
local ROUTING_KEYS = { product = true, refill = true, cancel = true, prefer = true, avoid = true,
                       max_cost = true, ref = true }
local ROUTING_NAMES = { "avoid", "cancel", "max_cost", "prefer", "product", "ref", "refill" }

local function invalid(field, message, action)
  return errors.invalid(field, message, action)
end

-- The routing options of a quote or an add, checked: -> q, or nil, err (bad input).
local function routing(self, q, action)
  local product = q.product
  if type(product) ~= "string" or type(self.products[product]) ~= "table" then
    local known = {}
    for name in pairs(self.products) do known[#known + 1] = name end
    table.sort(known)
    return nil, invalid("product", "must be one of the router's products (" .. table.concat(known, ", ") ..
      "), got " .. validate.shown(product), action)
  end
  local quantity, qerr = validate.id(q.quantity, "quantity", action)
  if not quantity then return nil, errors.new(qerr) end
  for _, flag in ipairs{ "refill", "cancel" } do
    if q[flag] ~= nil and type(q[flag]) ~= "boolean" then
      return nil, invalid(flag, "must be true or false, got " .. validate.shown(q[flag]), action)
    end
  end
  local ranks = {}
  for _, list_name in ipairs{ "prefer", "avoid" } do
    local list = q[list_name]
    if list ~= nil then
      if type(list) ~= "table" then
        return nil, invalid(list_name, "must be a list of panel names, got " .. validate.shown(list), action)
      end
      -- a list only: { a = true } would be read as no list at all, its panels silently let in
      for k in pairs(list) do
        if type(k) ~= "number" or k < 1 or k > #list or k ~= math.floor(k) then
          return nil, invalid(list_name, "must be a list of panel names like { \"a\", \"b\" }, got a key " ..
            validate.shown(k), action)
        end
      end
      for i, name in ipairs(list) do
        if not self.by_name[name] then
          return nil, invalid(list_name, "names no panel of the router: " .. validate.shown(name), action)
        end
        if list_name == "prefer" and not ranks[name] then ranks[name] = i end
      end
    end
  end
  local max_cost = q.max_cost
  if max_cost ~= nil and (type(max_cost) ~= "string" or not money.is_decimal(max_cost) or
      money.compare(max_cost, "0") < 0) then
    return nil, invalid("max_cost", "must be a decimal amount like \"5.00\" (quoted: money is never a " ..
      "float), got " .. validate.shown(max_cost), action)
  end
  local avoided = {}
  for _, name in ipairs(q.avoid or {}) do avoided[name] = true end
  return { product = product, quantity = quantity, refill = q.refill, cancel = q.cancel, ranks = ranks,
           avoided = avoided, max_cost = max_cost, action = action }
end

-- A list's services by id, made once per list (a client's cached list is the same table until
-- it is fetched anew): a 10,000-service list is not scanned at every add.
local indexes = setmetatable({}, { __mode = "k" })
local function find_service(list, id)
  local index = indexes[list]
  if not index then
    index = {}
    for _, s in ipairs(list) do
      if s.service ~= nil and index[s.service] == nil then index[s.service] = s end
    end
    indexes[list] = index
  end
  return index[id]
end

-- Why service s (id) does not take the order's checked fields (validate.for_service's message),
-- or nil when it does.
local function unfit(checked, id, s)
  local fields = {}
  for k, v in pairs(checked) do fields[k] = v end
  fields.service = id
  local ok, err = validate.for_service(fields, s, "add")
  if ok then return nil end
  return err.message
end

-- Is the panel's balance known to be below `total`? A balance older than balance_ttl is asked
-- anew first (one balance request): a panel topped up since must not stay left out. row.balance
-- is then the answer's.
local function short(self, p, row, total)
  if not (row and row.balance and money.is_decimal(row.balance)) then return false end
  if money.compare(row.balance, total) >= 0 then return false end
  if self.book:now() - (row.balance_at or 0) > self.balance_ttl then
    local b = self:balance(p.name)[p.name]
    if not (b.balance and money.is_decimal(b.balance)) then return false end
    row.balance = b.balance
    return money.compare(b.balance, total) < 0
  end
  return true
end

-- Candidates and exclusions for checked routing options `r` and the order's fields (priced as
-- they would be sent). Lists are fetched only for panels that may take the order. checked (an
-- add: the order's fields as validate.add cleaned them): each service is also asked whether it
-- takes them (drip-feed, the fields of its kind), as the client would before sending: a panel
-- whose service cannot is left out ("unfit"), rather than the order refused at that panel's
-- client when another panel can take it.
local function offers(self, r, order, checked)
  local rows, err = self.book:panels()
  if not rows then return nil, err end
  local by = {}
  for _, row in ipairs(rows) do by[row.name] = row end
  local map = self.products[r.product]
  local candidates, excluded = {}, {}
  local function exclude(p, id, reason, message)
    excluded[#excluded + 1] = { panel = p.name, service = id, reason = reason, message = message }
  end
  for index, p in ipairs(self.order) do
    local id = map[p.name]
    if id ~= nil then
      local row = by[p.name]
      local cur = p.currency or (row and type(row.currency) == "string" and row.currency:upper()) or nil
      if r.avoided[p.name] then
        exclude(p, id, "avoided", "avoided by the caller")
      elseif self.currency and cur and cur ~= self.currency then
        exclude(p, id, "other_currency", "prices in " .. cur .. ", the router in " .. self.currency)
      elseif self.health:view(row) == "down" then
        exclude(p, id, "down", "down after " .. tostring(row.failures) .. " failures (" ..
          tostring(row.last_error) .. "), until " .. tostring(row.down_until))
      else
        local list, lerr = self.catalog:list(p.name)
        local s = list and find_service(list, id)
        if not list then
          self.health:outcome(p, false, lerr)
          exclude(p, id, "list_unavailable", "its service list could not be fetched: " .. tostring(lerr))
        elseif not s then
          exclude(p, id, "service_gone", "service " .. id .. " is not in its service list")
        elseif s.min and r.quantity < s.min then
          exclude(p, id, "below_min", "quantity " .. r.quantity .. " is below its minimum " .. s.min)
        elseif s.max and r.quantity > s.max then
          exclude(p, id, "above_max", "quantity " .. r.quantity .. " is above its maximum " .. s.max)
        elseif r.refill and not s.refill then
          exclude(p, id, "no_refill", "service " .. id .. " has no refill")
        elseif r.cancel and not s.cancel then
          exclude(p, id, "no_cancel", "service " .. id .. " cannot be canceled")
        elseif checked and unfit(checked, id, s) then
          exclude(p, id, "unfit", unfit(checked, id, s))
        else
          local total, field, problem = price.quote(s, order)
          if not total then
            exclude(p, id, "unpriced", "service " .. id .. " cannot price this order (" .. tostring(field) ..
              (problem and (" " .. problem) or "") .. ")")
          elseif r.max_cost and money.compare(total, r.max_cost) > 0 then
            exclude(p, id, "over_max_cost", "costs " .. total .. ", more than max_cost " .. r.max_cost)
          elseif short(self, p, row, total) then
            exclude(p, id, "short_of_funds", "costs " .. total .. ", more than its balance " .. row.balance)
          else
            candidates[#candidates + 1] = { panel = p.name, service = id, name = s.name, rate = s.rate,
              price = total, currency = cur, min = s.min, max = s.max, refill = s.refill, cancel = s.cancel,
              index = index, rank = r.ranks[p.name] or math.huge }
          end
        end
      end
    end
  end
  if not self.currency then
    local seen, first = {}, nil
    for _, c in ipairs(candidates) do
      if c.currency and not seen[c.currency] then
        seen[c.currency] = c.panel
        if first and first ~= c.currency then
          return nil, invalid("currency", "panels price in different currencies (" .. seen[first] .. " " ..
            first .. ", " .. c.panel .. " " .. c.currency .. "): give the router a currency, or each " ..
            "panel its own, to compare like with like", r.action)
        end
        first = first or c.currency
      end
    end
  end
  -- prefer names panels the caller trusts more than a lower price: they go first when they can
  -- take the order (within max_cost, in funds, up), in prefer's order; the rest cheapest first
  table.sort(candidates, function(a, b)
    if a.rank ~= b.rank then return a.rank < b.rank end
    local c = money.compare(a.price, b.price)
    if c ~= 0 then return c < 0 end
    return a.index < b.index
  end)
  for _, c in ipairs(candidates) do c.index, c.rank = nil, nil end
  return { candidates = candidates, excluded = excluded }, by
end

-- syntax: q, err = router:quote{ product =, quantity =, [refill = true], [cancel = true],
--                                [prefer = { names }], [avoid = { names }], [max_cost = "1.50"] }
-- -> { candidates = { { panel =, service =, name =, rate =, price =, min =, max =, refill =,
--      cancel = }, ... } (those in `prefer` first, in its order; then cheapest first, equal
--      prices in the panels' order),
--      excluded = { { panel =, service =, reason =, message = }, ... } }
-- reasons: avoided, down, list_unavailable, service_gone, below_min, above_max, no_refill,
-- no_cancel, unfit (add only: the service does not take the order's fields, e.g. drip-feed),
-- unpriced, over_max_cost, short_of_funds (the balance known is below the price).
function Router:quote(q)
  if type(q) ~= "table" then usage("quote(q): q must be a table") end
  validate.options(q, QUOTE_OPTIONS, "router:quote(q)", 2)
  local r, err = routing(self, q, "quote")
  if not r then return nil, err end
  local out, oerr = offers(self, r, { quantity = r.quantity })
  if not out then return nil, oerr end
  return out
end

---------------------------------------------------------------------------------------------
-- add

local function no_panel(product, passed_over)
  local why = {}
  for i, e in ipairs(passed_over) do why[i] = e.panel .. ": " .. e.reason end
  return errors.new{ kind = "api", code = "no_panel", action = "add", ambiguous = false, retryable = true,
    passed_over = passed_over,
    message = "no panel could take this order of " .. product ..
      (#why > 0 and (" (" .. table.concat(why, "; ") .. ")") or " (no panel offers it)") }
end

-- The answer for a ref the book already holds: the order as recorded (placed with any panel),
-- or the refusal of one in doubt. nil: the ref is free (unknown, or provably not placed).
-- (An add finds out at its claim, in the book's one transaction: a routed ref is the same order
-- on any panel, see smm.book's claim; only an add that tried no panel asks here.)
local function recorded(self, row)
  if not row or row.state == "failed" then return nil end
  local p = self.by_url[row.panel]
  if row.state == "sending" or row.state == "in_doubt" then
    return nil, errors.new{ kind = "book", code = "in_doubt", action = "add", ref = row.ref,
      state = row.state, book = self.book.name, panel = p and p.name or row.panel,
      message = "order " .. string.format("%q", row.ref) .. " is in doubt with panel " ..
        (p and p.name or row.panel) ..
        ": nothing was sent; settle it with book:resolve(ref, order_id | false)" }
  end
  return { order = row.order_id, ref = row.ref, recorded = true, state = row.state, status = row.status,
           panel = p and p.name or row.panel, route = type(row.route) == "table" and row.route or nil }
end

local function copy_list(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  return out
end

-- syntax: order, err = router:add{ product =, link =, quantity =, [ref =], [max_cost =],
--                                  [prefer =], [avoid =], [refill =], [cancel =], [other fields] }
-- The order as client:add returns it, with panel = name and route = { product, panel, service,
-- price, reason, passed_over = { { panel, service, reason, message }, ... } }. err.code
-- "no_panel" (err.passed_over: why each was left) when none took it; "in_doubt" for a ref in
-- doubt; any other error is the chosen panel's (err.panel names it, err.ref the order's ref:
-- without a ref given, the one made for it, which book:resolve(ref, ...) settles).
function Router:add(a)
  if type(a) ~= "table" then usage("add(order): order must be a table") end
  if a.service ~= nil then usage("add(order): a routed order names a product, not a service") end
  if a.key ~= nil or a.action ~= nil then usage("add(order): 'key' and 'action' are not order fields") end
  local r, err = routing(self, a, "add")
  if not r then return nil, err end
  local ref, rerr = validate.ref(a.ref)
  if not ref then return nil, rerr end
  local order = {}
  for k, v in pairs(a) do
    if not ROUTING_KEYS[k] then
      -- a misspelled routing option would pass as a panel's extra field, sent along while the
      -- guarantee or the cap it asked for is silently dropped ("refil = true": no refill asked)
      local meant = type(k) == "string" and not validate.ADD_FIELDS[k] and
        validate.did_you_mean(k, ROUTING_NAMES)
      if meant then
        return nil, invalid(k, "= " .. validate.shown(v) .. " looks like a misspelling of the router's " ..
          "option '" .. meant .. "': nothing was sent", "add")
      end
      order[k] = v
    end
  end
  order.quantity = r.quantity
  -- the order's fields checked before anything is sent (a typo is refused here, not at the
  -- first panel's client, after lists and balances were asked and a down panel's probe taken)
  local checked, verr
  do
    local fields = {}
    for k, v in pairs(order) do fields[k] = v end
    fields.service = 1 -- any id: the service is the router's to choose
    checked, verr = validate.add(fields, "add")
    if not checked then return nil, verr end
  end

  local q, rows = offers(self, r, order, checked)
  if not q then return nil, rows end -- the book's error
  local passed_over = copy_list(q.excluded)
  local first = #passed_over
  for _, c in ipairs(q.candidates) do
    local p = self.by_name[c.panel]
    -- the breaker is asked (a write) only of a panel the book did not show up: most adds
    -- cost the book one read of the panels, not a transaction each
    local row, state = rows[p.name], "up"
    if row and row.state ~= "up" then
      local terr
      state, terr = self.health:try(p)
      if not state then return nil, terr end
    end
    if state == "down" then
      passed_over[#passed_over + 1] = { panel = p.name, service = c.service, reason = "down",
        message = "went down before this order" }
    else
      local reason = "cheapest"
      if #passed_over > first then
        local after = {}
        for i = first + 1, #passed_over do
          after[#after + 1] = passed_over[i].panel .. " " .. passed_over[i].reason
        end
        reason = "cheapest left (" .. table.concat(after, ", ") .. ")"
      end
      if state == "probe" then reason = reason .. ", probing a panel that was down" end
      local route = { product = r.product, panel = p.name, service = c.service, price = c.price,
                      reason = reason, passed_over = json.array(copy_list(passed_over)) }
      order.service = c.service
      local res, aerr = p.client:add(order, { ref = ref, route = route })
      if res then
        if res.recorded then -- another process placed this ref meanwhile: as the book has it
          local rrow = self.book:get(ref)
          return recorded(self, rrow) or res
        end
        if state ~= "up" or (row and row.failures ~= 0) then self.health:outcome(p, true) end
        if row and row.balance then self.health:spent(p, c.price) end
        res.panel, res.route = p.name, route
        return res
      end
      if aerr.kind == "book" then -- in doubt, a ref used for another order, the book failing
        if aerr.code == "in_doubt" then -- as the book has it, naming the panel that holds it
          local done, derr = recorded(self, (self.book:get(ref)))
          if done or derr then return done, derr end
        end
        return nil, aerr
      end
      self.health:outcome(p, false, aerr)
      local why = placement.not_placed_here(aerr)
      if not why then
        -- the ref (made here when the caller gave none) is what settles an order in doubt
        aerr.panel, aerr.route, aerr.ref = p.name, route, ref
        return nil, aerr
      end
      passed_over[#passed_over + 1] = { panel = p.name, service = c.service, reason = why,
                                        message = tostring(aerr) }
      if why == "short_of_funds" then self:balance(p.name) end -- what it has, for the next quotes
    end
  end
  -- nothing was tried: a ref the book holds is still answered as the book has it
  local done, derr = recorded(self, (self.book:get(ref)))
  if done or derr then return done, derr end
  return nil, no_panel(r.product, passed_over)
end

---------------------------------------------------------------------------------------------
-- existing orders, by ref

-- refs -> groups per panel { [p] = { ids = {...}, refs = { [id] = { ref, ... } } } } and the
-- results of refs that name no order of a panel of the router.
local function grouped(self, refs, action)
  local list = type(refs) == "table" and refs or { refs }
  if #list == 0 then usage(action .. "(refs): refs must be a ref or a non-empty list of refs", 3) end
  local groups, order, results = {}, {}, {}
  for _, ref in ipairs(list) do
    if type(ref) ~= "string" then
      usage(action .. "(refs): each ref must be a string, got " .. type(ref), 3)
    end
    local row, err = self.book:get(ref)
    if err then
      results[ref] = { error = err }
    elseif not row then
      results[ref] = { error = errors.new{ kind = "book", code = "not_found", action = action, ref = ref,
        message = "no order with ref " .. string.format("%q", ref) } }
    elseif not row.order_id then
      results[ref] = { error = errors.new{ kind = "book",
        code = row.state == "failed" and "not_placed" or "in_doubt", action = action, ref = ref,
        state = row.state,
        message = "order " .. string.format("%q", ref) .. " has no order id (" .. row.state .. ")" } }
    else
      local p = self.by_url[row.panel]
      if not p then
        results[ref] = { error = errors.new{ kind = "book", code = "unknown_panel", action = action,
          ref = ref, message = "order " .. string.format("%q", ref) .. " is on " .. row.panel ..
            ", not a panel of this router" } }
      else
        local g = groups[p]
        if not g then
          g = { ids = {}, refs = {} }
          groups[p], order[#order + 1] = g, p
        end
        if not g.refs[row.order_id] then
          g.ids[#g.ids + 1] = row.order_id
          g.refs[row.order_id] = {}
        end
        table.insert(g.refs[row.order_id], ref)
      end
    end
  end
  return groups, order, results
end

-- Runs fn(client, ids) per panel and spreads its by_id answer over the refs.
local function by_ref(self, refs, action, fn)
  local groups, order, results = grouped(self, refs, action)
  for _, p in ipairs(order) do
    local g = groups[p]
    local by_id, err = fn(p.client, g.ids)
    for id, owners in pairs(g.refs) do
      local entry = by_id and by_id[id]
      if entry == nil then
        entry = { error = err or errors.new{ kind = "api", code = "unknown", action = action,
          message = "panel " .. p.name .. " answered nothing for order " .. id } }
      end
      for _, ref in ipairs(owners) do
        results[ref] = entry
        if type(entry) == "table" and entry.panel == nil then entry.panel = p.name end
      end
    end
  end
  if type(refs) ~= "table" then
    local entry = results[refs]
    if type(entry) == "table" and errors.is(entry.error) then return nil, entry.error end
    return entry
  end
  return results
end

-- syntax: by_ref = router:status{ ref, ... }   |   entry, err = router:status(ref)
-- Each ref's order asked of the panel that holds it (one request per panel); by_ref[ref] is
-- what client:status gives for its id, or { error = err } (unknown ref, not placed, ...).
function Router:status(refs)
  return by_ref(self, refs, "status", function(client, ids) return client:status(ids) end)
end

-- syntax: by_ref = router:refill{ ref, ... }   |   entry, err = router:refill(ref)
function Router:refill(refs)
  return by_ref(self, refs, "refill", function(client, ids) return client:refill(ids) end)
end

-- syntax: by_ref = router:cancel{ ref, ... }   |   entry, err = router:cancel(ref)
function Router:cancel(refs)
  return by_ref(self, refs, "cancel", function(client, ids) return client:cancel(ids) end)
end

-- syntax: by_ref = router:wait({ ref, ... }, opts)   |   entry, err = router:wait(ref, opts)
-- client:wait per panel, one panel after another (opts as client:wait's; timeout per panel).
-- A panel that timed out gives its refs its last entries (err.entries) or { error = err }.
function Router:wait(refs, opts)
  return by_ref(self, refs, "wait", function(client, ids)
    local by_id, err = client:wait(ids, opts)
    if by_id then return by_id end
    if err and err.entries then
      local out = {}
      for id, entry in pairs(err.entries) do out[id] = entry end
      for _, id in ipairs(err.pending or {}) do
        if out[id] == nil then out[id] = { error = err } end
      end
      return out, err
    end
    return nil, err
  end)
end

-- syntax: by_name = router:balance([name])
-- { [name] = { balance =, currency = } | { err = err } }; each balance is kept in the book (and
-- a low one emits panel.low_balance).
function Router:balance(name)
  local list = self.order
  if name ~= nil then
    list = { self.by_name[name] or usage("balance(name): no panel named " .. validate.shown(name)) }
  end
  local out = {}
  for _, p in ipairs(list) do
    local b, err = p.client:balance()
    if b then
      self.health:outcome(p, true)
      self.health:balance(p, b.balance, b.currency)
      out[p.name] = { balance = b.balance, currency = b.currency }
    else
      self.health:outcome(p, false, err)
      out[p.name] = { err = err }
    end
  end
  return out
end

return M
