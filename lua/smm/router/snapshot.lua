-- A panel's service list as the book keeps it (table catalog_snapshots, migration 6): the
-- normalised records (only the API's own fields: service, name, type, category, rate, min,
-- max, refill, cancel, dripfeed, in that order), sorted by id, as deterministic JSON, with a
-- digest of that text. A list is stored again only when its digest changed, so the table grows
-- with the changes, not with the fetches.
--
-- The digest is SHA-256 through luaossl when it is there (the book's webhooks use it too), else
-- a slower 64-bit pure Lua hash (two polynomial hashes mod primes < 2^32, exact in a double):
-- it only tells a changed list from an unchanged one. Its prefix says which.
local json = require "smm.json"
local normalize = require "smm.normalize"

local M = {}

local FIELDS = require("smm.router.watch").FIELDS

local function before(a, b)
  if type(a.service) == type(b.service) then return a.service < b.service end
  return tostring(a.service) < tostring(b.service)
end

-- The records of a list in the stored order, by id (panels list by id already: sorted only when
-- they did not).
local function ordered(list)
  local out, sorted = {}, true
  for _, s in ipairs(list) do
    if type(s) == "table" and s.service ~= nil then
      local n = #out
      if n > 0 and sorted and not before(out[n], s) then sorted = false end
      out[n + 1] = s
    end
  end
  if not sorted then table.sort(out, before) end
  return out
end

-- The stored form of a list: plain records of FIELDS, by id.
function M.canonical(list)
  local out = ordered(list)
  for i, s in ipairs(out) do
    local r = {}
    for k = 1, #FIELDS do
      local f = FIELDS[k]
      r[f] = s[f]
    end
    out[i] = r
  end
  return out
end

local str, format, math_type = json.str, string.format, math.type
local function value(v)
  local t = type(v)
  if t == "string" then return str(v) end
  if t == "boolean" then return v and "true" or "false" end
  if t == "number" and (math_type and math_type(v) == "integer") then return format("%d", v) end
  return json.encode(v) -- a float, or whatever a panel sent that normalising left alone
end

-- The text of a list: each record's FIELDS in FIELDS' order (a field left out when nil), as JSON.
-- Written here rather than by json.encode (which sorts every object's keys): 10,000 services
-- in a tenth of the time.
local NAMES = {}
for k = 1, #FIELDS do NAMES[k] = '"' .. FIELDS[k] .. '":' end
local floor = math.floor
local function whole(v)
  if type(v) ~= "number" then return false end
  if math_type then return math_type(v) == "integer" end
  return v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53
end
local ONE = '{"service":%d,"name":%s,"type":%s,"category":%s,"rate":%s,"min":%d,"max":%d,' ..
  '"refill":%s,"cancel":%s'

local function text_of(list)
  local items = {}
  for i, s in ipairs(ordered(list)) do
    local name, type_, category, rate = s.name, s.type, s.category, s.rate
    local refill, cancel, dripfeed = s.refill, s.cancel, s.dripfeed
    if whole(s.service) and whole(s.min) and whole(s.max) and type(name) == "string" and
        type(type_) == "string" and type(category) == "string" and type(rate) == "string" and
        type(refill) == "boolean" and type(cancel) == "boolean" and
        (dripfeed == nil or type(dripfeed) == "boolean") then
      -- the usual record, in one format
      local item = format(ONE, s.service, str(name), str(type_), str(category), str(rate), s.min,
        s.max, refill and "true" or "false", cancel and "true" or "false")
      if dripfeed == nil then
        items[i] = item .. "}"
      else
        items[i] = item .. (dripfeed and ',"dripfeed":true}' or ',"dripfeed":false}')
      end
    else
      local parts, n = {}, 0
      for k = 1, #FIELDS do
        local v = s[FIELDS[k]]
        if v ~= nil then
          n = n + 1
          parts[n] = NAMES[k] .. value(v)
        end
      end
      items[i] = "{" .. table.concat(parts, ",") .. "}"
    end
  end
  return "[" .. table.concat(items, ",") .. "]"
end

local sha256
do
  local ok, digest = pcall(require, "openssl.digest")
  if ok and type(digest) == "table" and digest.new then
    sha256 = function(text)
      local raw = digest.new("sha256"):final(text)
      return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
    end
  end
end

local function poly(text, mul, mod)
  local h, byte = 0, string.byte
  for i = 1, #text, 8 do
    local a, b, c, d, e, f, g, k = byte(text, i, i + 7)
    h = (h * mul + a) % mod
    if b then h = (h * mul + b) % mod end
    if c then h = (h * mul + c) % mod end
    if d then h = (h * mul + d) % mod end
    if e then h = (h * mul + e) % mod end
    if f then h = (h * mul + f) % mod end
    if g then h = (h * mul + g) % mod end
    if k then h = (h * mul + k) % mod end
  end
  return h
end

-- The pure Lua digest (also when luaossl is there: see the specs).
function M.plain_digest(text)
  return string.format("poly64:%d:%08x%08x", #text, poly(text, 131, 4294967291),
    poly(text, 257, 4294967279))
end

function M.digest(text)
  if sha256 then return "sha256:" .. sha256(text) end
  return M.plain_digest(text)
end

-- list -> text, digest
function M.encode(list)
  local text = text_of(list)
  return text, M.digest(text)
end

-- The last snapshot of a panel without its list: { id, taken_at, digest } or nil.
function M.last(db, panel)
  return db:row("SELECT " .. db:columns("id taken_at") .. ", digest FROM catalog_snapshots " ..
    "WHERE panel = ? ORDER BY id DESC LIMIT 1", panel)
end

-- A snapshot's list (normalised again: ids and bounds integers on every Lua).
function M.load(db, id)
  local row = db:row("SELECT services FROM catalog_snapshots WHERE id = ?", id)
  if not row then return nil end
  local cjson = require "cjson"
  return normalize.services(cjson.decode(row.services))
end

-- Stores a snapshot; returns its id.
function M.store(db, now, panel, text, digest)
  db:run("INSERT INTO catalog_snapshots (panel, taken_at, digest, services) VALUES (?, ?, ?, ?)",
    panel, now, digest, text)
  return M.last(db, panel).id
end

return M
