-- The service list as a cache: fetched once, kept for `services_ttl` ms, indexed by id and
-- searched by text. Inside nginx a lua_shared_dict (option `shared_dict`, M.shared_store) lets
-- every worker share one fetch.
local shared = require "smm.shared"

local M = {}

local Cache = {}
Cache.__index = Cache

-- ttl in ms; clock: a function returning ms; store: nil or a table with get/set (ngx.shared.X)
-- plus encode/decode functions for it.
function M.cache(ttl, clock, store)
  return setmetatable({ ttl = ttl, clock = clock, store = store }, Cache)
end

local function index(list)
  local by_id = {}
  for _, s in ipairs(list) do
    if type(s) == "table" and s.service ~= nil then by_id[s.service] = s end
  end
  return by_id
end

function Cache:get()
  if self.list and self.clock() - self.fetched < self.ttl then return self.list end
  if self.store then
    local list, fetched = self.store.load()
    if list and self.clock() - fetched < self.ttl then
      self.list, self.by_id, self.fetched = list, nil, fetched
      return list
    end
  end
  return nil
end

function Cache:put(list)
  -- the index is built on the first lookup: a caller that only lists services never pays for it
  self.list, self.by_id, self.fetched = list, nil, self.clock()
  if self.store then self.store.save(list, self.fetched, self.ttl) end
end

function Cache:lookup(id)
  local list = self:get()
  if not list then return nil end
  if not self.by_id then self.by_id = index(list) end
  return self.by_id[id]
end

-- A store for the service list in a lua_shared_dict, shared by every nginx worker:
--   http { lua_shared_dict smm_cache 1m; }   smm.new{ ..., shared_dict = "smm_cache" }
-- It belongs to the API, not to a transport: any transport (the cosockets, a custom one) gets
-- it. Outside nginx there are no shared dicts: nil, and the list is kept by the client alone.
-- Panels price per account, so each account (url and key) has its own entry, named as
-- smm.shared.entry names them: never by the key, nor by the URL's credentials.
function M.shared_store(dict_name, url, key)
  local dict = shared.dict(dict_name, 3)
  if not dict then return nil end
  local cjson = require "cjson.safe"
  local entry = shared.entry("services", url, key)
  return {
    load = function()
      local text = dict:get(entry)
      if not text then return nil end
      local v = cjson.decode(text)
      if type(v) ~= "table" or type(v.list) ~= "table" or type(v.fetched) ~= "number" then return nil end
      return v.list, v.fetched
    end,
    save = function(list, fetched_ms, ttl_ms)
      local text = cjson.encode({ list = list, fetched = fetched_ms })
      if not text then return end
      local exptime = ttl_ms and ttl_ms > 0 and ttl_ms / 1000 or 0
      dict:set(entry, text, exptime)
    end,
    clear = function()
      dict:delete(entry)
    end,
  }
end

function Cache:clear()
  self.list, self.by_id, self.fetched = nil, nil, nil
  if self.store then self.store.clear() end
end

local function lower(v)
  return type(v) == "string" and v:lower() or ""
end

-- The names a filter of M.find may hold.
M.FILTERS = { "search", "category", "type", "refill", "cancel" }

-- filter: { search = text in name or category, category = exact (any case), type = exact
-- (any case), refill = bool, cancel = bool }. Sorted by id.
function M.find(list, filter)
  filter = filter or {}
  local search = filter.search and lower(filter.search)
  local category = filter.category and lower(filter.category)
  local kind = filter.type and lower(filter.type)
  local out = {}
  for _, s in ipairs(list) do
    local ok = (not search or lower(s.name):find(search, 1, true) or lower(s.category):find(search, 1, true))
      and (not category or lower(s.category) == category)
      and (not kind or lower(s.type) == kind)
      and (filter.refill == nil or s.refill == filter.refill)
      and (filter.cancel == nil or s.cancel == filter.cancel)
    if ok then out[#out + 1] = s end
  end
  table.sort(out, function(a, b)
    if type(a.service) == type(b.service) then return a.service < b.service end
    return tostring(a.service) < tostring(b.service)
  end)
  return out
end

return M
