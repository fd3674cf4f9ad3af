-- The catalog of several panels: each panel's service list (through its client's cache),
-- snapshotted in the book, and the products, groups of equivalent services across panels
-- named by an explicit map:
--   products = { ["ig-followers"] = { a = 1, b = 17 } }   -- product -> panel name -> service id
--
-- Interface the router relies on (smm.router):
--   local cat = catalog.new{ panels = { { name = "a", client = c }, ... }, products = map,
--                            [book = book] }
--   cat:list(name [, { refresh = true }]) -> list | nil, err   a panel's normalised services
--   cat:offers(product) -> { { panel = name, service_id = id, service = record | nil,
--                              err = err | nil }, ... }          in the panels' order
--     service is nil when the panel's list lacks the id (the service is gone); err is set when
--     the list could not be fetched. An unknown product is a programming error: it raises.
--
-- Snapshots (with a book): every list fetched anew (by list, refresh or watch) is compared with
-- the panel's last snapshot in the book (table catalog_snapshots) and stored only when it
-- changed (smm.router.snapshot: by digest); a changed list's events are written into the
-- book's outbox in the same transaction (below), whichever call fetched it, so no change is
-- ever stored without being told. A panel's first snapshot is its baseline: no events.
--   cat:refresh(name) -> list, { changed = bool, snapshot = id, events = n } | nil, err
--     (without a book, or with a thread-pool book: the fetch alone, changed = false)
--     (list(name, { refresh = true }) is the same fetch; it returns the list even when the
--     book could not store it: the next refresh or watch stores it and tells its changes)
--   cat:snapshot(name) -> { id, panel, taken_at, digest, services = list } | nil (none yet)
--                         | nil, err
--
-- Products (the map is cat.map: cat.products is the method):
--   cat:products() -> { { product = name, services = { [panel] = id } }, ... }  by name
--   cat:suggest([{ min_score = 60 }]) -> suggestions (smm.router.match, every field worked
--     out), errs ({ [panel] = err } for lists that could not be fetched, or nil)
--
-- Watch: cat:watch() fetches every panel's list anew and, in ONE transaction of the book,
-- stores each changed list and writes its events (smm.router.watch: service.added,
-- service.removed, service.rate, service.bounds, service.flags) and the products' events:
--   product.orphaned  a product none of whose panels sells its service any more: product,
--                     panels (those that did), services (its map)
--   product.cheapest  a product whose cheapest panel changed: product, old_panel, old_rate,
--                     new_panel, new_rate, service (the new panel's id); rates per 1000, exact
-- (a panel whose list could not be fetched counts with its last snapshot). A service event names
-- its panel as the router's panel events do: the panel's URL in the column panel (and
-- data.panel), its name in data.name (the service's name is data.service_name); the book's
-- hooks deliver them like order events.
--   -> { panels = { { name =, changed =, snapshot = id | nil, events = n, err = err | nil },
--        ... }, events = { { type =, panel =, data = }, ... } } | nil, err (the book failed)
local money = require "smm.money"
local match = require "smm.router.match"
local watch = require "smm.router.watch"
local snapshot = require "smm.router.snapshot"
local events = require "smm.book.events"

local M = {}

local Catalog = {}
Catalog.__index = Catalog

local function book_module() return require("smm.book") end

local OPTIONS = { panels = "table", products = "table", book = "table" }
local MEMO_BOUND = 200000 -- names worked out and kept for the next suggest

local function usage(message, level) error("smm.router.catalog: " .. message, (level or 1) + 1) end

local function positive_id(v)
  return type(v) == "number" and v >= 1 and v == math.floor(v) and v < 2 ^ 53
end

function M.new(opts)
  if type(opts) ~= "table" or type(opts.panels) ~= "table" then
    usage("new{ panels = {...}, products = {...} }", 2)
  end
  for k, v in pairs(opts) do
    if not OPTIONS[k] then usage("new: unknown option '" .. tostring(k) .. "'", 2) end
    if type(v) ~= OPTIONS[k] then usage("new: option '" .. k .. "' must be a " .. OPTIONS[k], 2) end
  end
  local self = setmetatable({ panels = {}, order = {}, map = opts.products or {},
    book = opts.book, seen = {}, snaps = {}, memo = match.memo() }, Catalog)
  -- Snapshots need the book's connection in this process: a book of nginx's worker threads
  -- (thread_pool) keeps it in the threads. With such a book lists are not snapshotted, and
  -- refresh, snapshot and watch refuse (the router's own use of the book is unaffected).
  self.snapshots = opts.book ~= nil and book_module().connections[opts.book] ~= nil
  for i, p in ipairs(opts.panels) do
    if type(p) ~= "table" or type(p.name) ~= "string" or p.name == "" or p.client == nil then
      usage("new: panels[" .. i .. "] must be { name = text, client = client }", 2)
    end
    if self.panels[p.name] then usage("new: two panels named '" .. p.name .. "'", 2) end
    -- events name a panel as the router's do: its URL (no key, no credentials), data.name
    local url = type(p.client) == "table" and p.client.url
    self.panels[p.name] = { name = p.name, client = p.client, url = type(url) == "string" and url or p.name }
    self.order[#self.order + 1] = p.name
  end
  for product, map in pairs(self.map) do
    if type(product) ~= "string" or type(map) ~= "table" then
      usage("new: products must map a product name to { [panel] = service id }", 2)
    end
    for panel, id in pairs(map) do
      if not self.panels[panel] then
        usage("new: product '" .. product .. "' names no panel '" .. tostring(panel) .. "'", 2)
      end
      if not positive_id(id) then
        usage("new: product '" .. product .. "': panel '" .. panel .. "' service id must be a"
          .. " whole number >= 1, not " .. tostring(id), 2)
      end
    end
  end
  return self
end

local function panel_of(self, name, level)
  local p = self.panels[name]
  if not p then usage("no panel named '" .. tostring(name) .. "'", level + 1) end
  return p
end

------------------------------------------------------------------------------------------
-- snapshots


-- The last snapshot's list of a panel, from the cache when its id is the book's last.
local function last_list(self, db, name, last)
  if not last then return nil end
  local c = self.snaps[name]
  if c and c.id == last.id then return c.list end
  local list = snapshot.load(db, last.id) or {}
  self.snaps[name] = { id = last.id, list = list }
  return list
end

-- A list indexed by id (kept while the list lives).
local indexes = setmetatable({}, { __mode = "k" })
local function index(list)
  if not list then return nil end
  local t = indexes[list]
  if t then return t end
  t = {}
  for _, s in ipairs(list) do t[s.service] = s end
  indexes[list] = t
  return t
end

-- The product's offering panels and its cheapest (by rate, the panels' order breaking ties),
-- given each panel's list (nil: nothing known of the panel).
local function standing(self, map, lists)
  local panels, cheapest, rate, id = {}, nil, nil, nil
  for _, name in ipairs(self.order) do
    local sid = map[name]
    local s = sid and lists[name] and index(lists[name])[sid]
    if s then
      panels[#panels + 1] = name
      if type(s.rate) == "string" and money.is_decimal(s.rate) and
          (not rate or money.compare(s.rate, rate) < 0) then
        cheapest, rate, id = name, s.rate, sid
      end
    end
  end
  return panels, cheapest, rate, id
end

-- Stores the fetched lists (name -> list) that changed, with their events, in one transaction.
-- Returns { [name] = { changed, snapshot, events } }, the events written | raises a book error.
local function record(self, db, now, fetched)
  -- the CPU work (canonical JSON, digests) before the transaction
  local encoded = {}
  for _, name in ipairs(self.order) do
    local list = fetched[name]
    if list then
      local text, digest = snapshot.encode(list)
      encoded[name] = { text = text, digest = digest, list = list }
    end
  end
  return db:transaction(function()
    if db.dialect.lock_catalog then db:rows(db.dialect.lock_catalog) end
    local result, written = {}, {}
    local before, after, known = {}, {}, {}
    local any = false
    for _, name in ipairs(self.order) do
      local e = encoded[name]
      if e then
        local last = snapshot.last(db, name)
        known[name] = true
        if last and last.digest == e.digest then
          result[name] = { changed = false, snapshot = last.id, events = 0 }
          before[name], after[name] = e.list, e.list
        else
          local old = last_list(self, db, name, last)
          local id = snapshot.store(db, now, name, e.text, e.digest)
          self.snaps[name] = { id = id, list = e.list }
          local n = 0
          if old then
            local url = self.panels[name].url
            for _, c in ipairs(watch.diff(old, e.list)) do
              c.data.name = name
              events.emit(db, now, c.type, nil, url, c.data)
              written[#written + 1] = { type = c.type, panel = name, data = c.data }
              n = n + 1
            end
            before[name], after[name] = old, e.list
            any = true
          else
            -- a baseline: before and after alike, nothing to tell
            before[name], after[name] = e.list, e.list
          end
          result[name] = { changed = true, snapshot = id, events = n }
        end
      end
    end
    if any then
      -- the panels not fetched now count with their last snapshot (read only when needed)
      for _, name in ipairs(self.order) do
        if not known[name] then
          local old = last_list(self, db, name, snapshot.last(db, name))
          before[name], after[name] = old, old
        end
      end
    end
    if any then
      local names = {}
      for product in pairs(self.map) do names[#names + 1] = product end
      table.sort(names)
      for _, product in ipairs(names) do
        local map = self.map[product]
        local was, old_cheap, old_rate = standing(self, map, before)
        local now_panels, new_cheap, new_rate, new_id = standing(self, map, after)
        local data, type_
        if #was > 0 and #now_panels == 0 then
          local services = {}
          for k, v in pairs(map) do services[k] = v end
          type_, data = "product.orphaned", { product = product, panels = was, services = services }
        elseif old_cheap and new_cheap and old_cheap ~= new_cheap then
          type_, data = "product.cheapest", { product = product, old_panel = old_cheap,
            old_rate = old_rate, new_panel = new_cheap, new_rate = new_rate, service = new_id }
        end
        if type_ then
          events.emit(db, now, type_, nil, nil, data)
          written[#written + 1] = { type = type_, data = data }
        end
      end
    end
    return result, written
  end)
end

-- Runs record() through the book's guard: nil, err when the book failed.
local function recorded(self, fetched)
  local book = self.book
  if not book then return {}, {} end
  return book_module().guarded(book, function(db, now) return record(self, db, now, fetched) end)
end

-- A list the client fetched anew (not its cached table) is recorded.
local function fetched_anew(self, name, list)
  if self.seen[name] == list then return false end
  self.seen[name] = list
  return true
end

local function need_snapshots(self, what)
  if not self.book then usage(what .. ": the catalog has no book", 3) end
  if not self.snapshots then
    usage(what .. ": snapshots need a book opened in this process (smm.book.open without"
      .. " thread_pool)", 3)
  end
end

function Catalog:refresh(name)
  local p = panel_of(self, name, 2)
  local list, err = p.client:services{ refresh = true }
  if not list then return nil, err end
  self.seen[name] = list
  if not self.snapshots then return list, { changed = false, events = 0 } end -- nowhere to store
  local result, rerr = recorded(self, { [name] = list })
  if not result then return nil, rerr end
  return list, result[name] or { changed = false, events = 0 }
end

function Catalog:list(name, opts)
  local p = panel_of(self, name, 2)
  if opts ~= nil and type(opts) ~= "table" then usage("list(name, opts): opts must be a table", 2) end
  local list, err = p.client:services(opts)
  if not list then return nil, err end
  if self.snapshots and fetched_anew(self, name, list) then
    -- best effort here: a list that could not be stored is stored by the next refresh/watch
    local ok = recorded(self, { [name] = list })
    if not ok then self.seen[name] = nil end
  end
  return list
end

function Catalog:snapshot(name)
  panel_of(self, name, 2)
  need_snapshots(self, "snapshot(name)")
  return book_module().guarded(self.book, function(db)
    local row = db:row("SELECT " .. db:columns("id taken_at") .. ", panel, digest " ..
      "FROM catalog_snapshots WHERE panel = ? ORDER BY id DESC LIMIT 1", name)
    if not row then return nil end
    row.services = last_list(self, db, name, row)
    return row
  end)
end

function Catalog:watch()
  need_snapshots(self, "watch()")
  local fetched, errs = {}, {}
  for _, name in ipairs(self.order) do
    local list, err = self.panels[name].client:services{ refresh = true }
    if list then
      fetched[name] = list
      self.seen[name] = list
    else
      errs[name] = err
    end
  end
  local result, written = recorded(self, fetched)
  if not result then return nil, written end
  local out = { panels = {}, events = written }
  for _, name in ipairs(self.order) do
    local r = result[name] or {}
    out.panels[#out.panels + 1] = { name = name, changed = r.changed == true,
      snapshot = r.snapshot, events = r.events or 0, err = errs[name] }
  end
  return out
end

------------------------------------------------------------------------------------------
-- products

function Catalog:products()
  local out = {}
  for product, map in pairs(self.map) do
    local services = {}
    for k, v in pairs(map) do services[k] = v end
    out[#out + 1] = { product = product, services = services }
  end
  table.sort(out, function(a, b) return a.product < b.product end)
  return out
end

function Catalog:offers(product)
  local map = self.map[product]
  if type(map) ~= "table" then usage("no product named '" .. tostring(product) .. "'", 2) end
  local out = {}
  for _, name in ipairs(self.order) do
    local id = map[name]
    if id ~= nil then
      local list, err = self:list(name)
      local offer = { panel = name, service_id = id, err = err }
      if list then
        for _, s in ipairs(list) do
          if s.service == id then offer.service = s break end
        end
      end
      out[#out + 1] = offer
    end
  end
  return out
end

function Catalog:suggest(opts)
  opts = opts or {}
  if type(opts) ~= "table" then usage("suggest(opts): opts must be a table", 2) end
  for k in pairs(opts) do
    if k ~= "min_score" then usage("suggest: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local lists, errs = {}, nil
  for _, name in ipairs(self.order) do
    local list, err = self:list(name)
    if list then
      lists[#lists + 1] = { name = name, services = list }
    else
      errs = errs or {}
      errs[name] = err
    end
  end
  -- the memo lives across calls (names rarely change between two fetches), within bounds
  if self.memo.size > MEMO_BOUND then self.memo = match.memo() end
  local out = match.suggest(lists, { products = self.map, min_score = opts.min_score,
    memo = self.memo })
  return match.plain(out), errs
end

return M
