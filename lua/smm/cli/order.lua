-- One order as the command line builds it: from --flags (smm add, smm quote) or from a CSV row
-- (smm batch). Checked with the library's own rules before anything is sent, priced exactly,
-- and fingerprinted so that a journal can tell when a row has changed.
local validate = require "smm.validate"

local M = {}

-- Flag name -> API field name.
M.FLAG_FIELDS = {
  service = "service", link = "link", quantity = "quantity", runs = "runs", interval = "interval",
  username = "username", min = "min", max = "max", posts = "posts", ["old-posts"] = "old_posts",
  delay = "delay", expiry = "expiry", ["answer-number"] = "answer_number",
}

-- Fields holding one entry a line.
M.LINES = { comments = true, groups = true, usernames = true, hashtags = true, keywords = true }

local function read_lines_file(path)
  local f, err = io.stdin, nil
  if path ~= "-" then f, err = io.open(path, "r") end
  if not f then return nil, "cannot read " .. tostring(err) end
  local lines = {}
  for line in f:lines() do
    line = line:gsub("\r$", "")
    if line:find("%S") then lines[#lines + 1] = line end
  end
  if f ~= io.stdin then f:close() end
  return lines
end

-- A list cell or flag value: "a|b|c", or lines separated by newlines (then '|' is literal).
function M.split_lines(text)
  local out = {}
  local sep = text:find("[\r\n]") and "[^\r\n]+" or "[^|]+"
  for part in text:gmatch(sep) do
    part = part:gsub("^%s+", ""):gsub("%s+$", "")
    if part ~= "" then out[#out + 1] = part end
  end
  return out
end

-- flags -> order table (strings as given; the library checks them) or nil, message
function M.from_flags(flags)
  local order = {}
  for flag, field in pairs(M.FLAG_FIELDS) do
    if flags[flag] ~= nil then order[field] = flags[flag] end
  end
  for _, name in ipairs{ "comments", "groups" } do
    local lines = {}
    for _, value in ipairs(flags[name] or {}) do
      -- each --comments is one comment, unless it holds several lines itself
      if value:find("[\r\n]") then
        for _, l in ipairs(M.split_lines(value)) do lines[#lines + 1] = l end
      else
        lines[#lines + 1] = value
      end
    end
    if flags[name .. "-file"] then
      local from_file, err = read_lines_file(flags[name .. "-file"])
      if not from_file then return nil, "--" .. name .. "-file: " .. err end
      for _, l in ipairs(from_file) do lines[#lines + 1] = l end
    end
    if #lines > 0 then order[name] = table.concat(lines, "\n") end
  end
  for _, pair in ipairs(flags.field or {}) do
    local name, value = pair:match("^([%a_][%w_]*)=(.*)$")
    if not name then return nil, "--field takes name=value, got '" .. pair .. "'" end
    if name == "key" or name == "action" then return nil, "--field cannot set '" .. name .. "'" end
    if order[name] ~= nil then return nil, "field '" .. name .. "' is given twice" end
    order[name] = value
  end
  return order
end

-- Checks an order without sending it: its fields (smm.validate.add), then against its
-- service (smm.validate.for_service), then its exact price (client:quote).
-- Returns clean fields, price, service or nil, err (an smm error).
function M.check(client, order)
  local clean, err = validate.add(order)
  if not clean then return nil, err end
  local service
  service, err = client:service(clean.service)
  if not service then return nil, err end
  local ok
  ok, err = validate.for_service(clean, service)
  if not ok then return nil, err end
  local price
  price, err = client:quote(clean)
  if not price then return nil, err end
  return clean, price, service
end

-- FNV-1a, 64 bits: a fingerprint, not a secret. Computed on four 16-bit limbs with plain
-- arithmetic (every intermediate stays below 2^27, exact in a double), so that Lua 5.1 and
-- LuaJIT, which have no 64-bit integers nor bit operators, give the same hex as 5.3+ does.
-- Offset basis 0xcbf29ce484222325; prime 0x100000001b3 = 2^40 + 0x1b3.
local function xor8(a, b) -- a, b in [0, 255]
  local r, bit = 0, 1
  for _ = 1, 8 do
    if a % 2 ~= b % 2 then r = r + bit end
    a, b, bit = (a - a % 2) / 2, (b - b % 2) / 2, bit * 2
  end
  return r
end

local function fnv1a(s)
  local h0, h1, h2, h3 = 0x2325, 0x8422, 0x9ce4, 0xcbf2 -- low limb first
  for i = 1, #s do
    local low = h0 % 256
    h0 = h0 - low + xor8(low, s:byte(i))
    -- h * (2^40 + 0x1b3) mod 2^64, 2^40 being limb 2 shifted by 8 bits
    local r0 = h0 * 0x1b3
    local r1 = h1 * 0x1b3
    local r2 = h2 * 0x1b3 + h0 * 0x100
    local r3 = h3 * 0x1b3 + h1 * 0x100
    h0 = r0 % 0x10000
    r1 = r1 + (r0 - h0) / 0x10000
    h1 = r1 % 0x10000
    r2 = r2 + (r1 - h1) / 0x10000
    h2 = r2 % 0x10000
    r3 = r3 + (r2 - h2) / 0x10000
    h3 = r3 % 0x10000
  end
  return string.format("%04x%04x%04x%04x", h3, h2, h1, h0)
end
M.fnv1a = fnv1a

-- A row's fingerprint: every field, sorted, length-prefixed.
function M.hash(order)
  local names = {}
  for name in pairs(order) do names[#names + 1] = name end
  table.sort(names)
  local parts = {}
  for _, name in ipairs(names) do
    local v = tostring(order[name])
    parts[#parts + 1] = #name .. ":" .. name .. "=" .. #v .. ":" .. v
  end
  return fnv1a(table.concat(parts, ";"))
end

-- What to call the order in a table: its link, or @username for a subscription.
function M.target(order)
  if order.link then return order.link end
  if order.username then return "@" .. order.username end
  return ""
end

return M
