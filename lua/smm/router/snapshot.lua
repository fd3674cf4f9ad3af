-- A panel's service list as the book keeps it (table catalog_snapshots, migration 6): the
-- normalised records (only the API's own fields: service, name, type, category, rate, min,
-- max, refill, cancel, dripfeed), sorted by id, as deterministic JSON (smm.json), with a
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

-- The stored form of a list: plain records of FIELDS, by id.
function M.canonical(list)
  local out = {}
  for _, s in ipairs(list) do
    if type(s) == "table" and s.service ~= nil then
      local r = {}
      for i = 1, #FIELDS do
        local f = FIELDS[i]
        r[f] = s[f]
      end
      out[#out + 1] = r
    end
  end
  table.sort(out, function(a, b)
    if type(a.service) == type(b.service) then return a.service < b.service end
    return tostring(a.service) < tostring(b.service)
  end)
  return out
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
  local text = json.encode(json.array(M.canonical(list)))
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
