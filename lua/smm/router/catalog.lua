-- The catalog of several panels: each panel's service list (through its client's cache) and the
-- products, groups of equivalent services across panels named by an explicit map:
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
-- (A first cut: snapshots in the book, suggestions and the watch diff come on top of this.)
local M = {}

local Catalog = {}
Catalog.__index = Catalog

function M.new(opts)
  if type(opts) ~= "table" or type(opts.panels) ~= "table" then
    error("smm.router.catalog: new{ panels = {...}, products = {...} }", 2)
  end
  local self = setmetatable({ panels = {}, order = {}, products = opts.products or {}, book = opts.book },
    Catalog)
  for _, p in ipairs(opts.panels) do
    self.panels[p.name] = p
    self.order[#self.order + 1] = p.name
  end
  return self
end

function Catalog:list(name, opts)
  local p = self.panels[name]
  if not p then error("smm.router.catalog: no panel named '" .. tostring(name) .. "'", 2) end
  return p.client:services(opts)
end

function Catalog:offers(product)
  local map = self.products[product]
  if type(map) ~= "table" then
    error("smm.router.catalog: no product named '" .. tostring(product) .. "'", 2)
  end
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

return M
