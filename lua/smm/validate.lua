-- Checks what a caller asks for before anything is sent, and names the field that is wrong.
-- Returns clean values (integers as Lua integers, lists joined into lines) or nil, err.
local errors = require "smm.errors"

local M = {}

local floor = math.floor
local MAX_EXACT = 2 ^ 53
local MAX_FIELD_BYTES = 1024 * 1024
M.MAX_FIELD_BYTES = MAX_FIELD_BYTES

-- The delays (minutes) that subscription orders accept.
M.DELAYS = { 0, 5, 10, 15, 20, 30, 40, 50, 60, 90, 120, 150, 180, 210, 240, 270, 300, 360, 420,
             480, 540, 600 }
local DELAY_SET = {}
for _, d in ipairs(M.DELAYS) do DELAY_SET[d] = true end

local is_positive_integer = math.type and function(v)
  return math.type(v) == "integer" and v > 0
end or function() return false end

local tointeger = math.tointeger or function(x)
  if x == floor(x) and x > -MAX_EXACT and x < MAX_EXACT then return x end
  return nil
end

local function fail(field, message, action)
  return nil, errors.invalid(field, message, action)
end

-- A whole number given as a number or as a string of digits.
local function whole(v)
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return nil end
    return tointeger(v)
  elseif type(v) == "string" and v:find("^%s*[+-]?%d+%s*$") then
    local n = tonumber(v)
    if n and n > -MAX_EXACT and n < MAX_EXACT then return tointeger(n) end
  end
  return nil
end

local function integer_field(v, field, min, action)
  local n = whole(v)
  if n == nil then
    if type(v) == "number" then return fail(field, "must be a whole number, got " .. tostring(v), action) end
    return fail(field, "must be a whole number, got " .. type(v), action)
  end
  if n < min then
    return fail(field, (min == 1 and "must be positive" or "must be at least " .. min) ..
      ", got " .. string.format("%d", n), action)
  end
  return n
end

function M.positive(v, field, action) return integer_field(v, field, 1, action) end
function M.non_negative(v, field, action) return integer_field(v, field, 0, action) end

local function text_field(v, field, action)
  if type(v) ~= "string" then return fail(field, "must be a string, got " .. type(v), action) end
  if v:find("\0", 1, true) then return fail(field, "contains a NUL byte", action) end
  if #v > MAX_FIELD_BYTES then
    return fail(field, "is longer than " .. MAX_FIELD_BYTES .. " bytes", action)
  end
  return v
end

local function nonempty_text(v, field, action)
  local s, err = text_field(v, field, action)
  if not s then return nil, err end
  if not s:find("%S") then return fail(field, "must not be empty", action) end
  return s
end

-- One entry a line: a string with lines, or an array of lines.
local function lines_field(v, field, action)
  if type(v) == "string" then
    local s, err = nonempty_text(v, field, action)
    if not s then return nil, err end
    return s
  elseif type(v) == "table" then
    local n = #v
    if n == 0 then return fail(field, "must not be empty", action) end
    for k in pairs(v) do
      if type(k) ~= "number" or k < 1 or k > n or k ~= floor(k) then
        return fail(field, "must be an array of lines", action)
      end
    end
    for i = 1, n do
      local name = field .. "[" .. i .. "]"
      local s, err = nonempty_text(v[i], name, action)
      if not s then return nil, err end
      if s:find("[\r\n]") then return fail(name, "must be one line", action) end
    end
    local joined = table.concat(v, "\n")
    if #joined > MAX_FIELD_BYTES then
      return fail(field, "is longer than " .. MAX_FIELD_BYTES .. " bytes", action)
    end
    return joined
  end
  return fail(field, "must be a string or an array of lines, got " .. type(v), action)
end

local function count_lines(s)
  local n = 0
  for line in s:gmatch("[^\r\n]+") do
    if line:find("%S") then n = n + 1 end
  end
  return n
end
M.count_lines = count_lines

-- d/m/Y, a real calendar date.
local function date_field(v, field, action)
  local s, err = nonempty_text(v, field, action)
  if not s then return nil, err end
  local d, m, y = s:match("^(%d%d?)/(%d%d?)/(%d%d%d%d)$")
  d, m, y = tonumber(d), tonumber(m), tonumber(y)
  local days = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if y and (y % 4 == 0 and y % 100 ~= 0 or y % 400 == 0) then days[2] = 29 end
  if not d or m < 1 or m > 12 or d < 1 or d > days[m] then
    return fail(field, "must be a date as d/m/Y (e.g. 31/12/2026), got '" .. s .. "'", action)
  end
  return s
end

local function delay_field(v, field, action)
  local n, err = M.non_negative(v, field, action)
  if not n then return nil, err end
  if not DELAY_SET[n] then
    return fail(field, "must be one of " .. table.concat(M.DELAYS, ", ") .. " (minutes), got " .. n, action)
  end
  return n
end

-- The fields `add` knows, by how they are checked.
local ADD_FIELDS = {
  service = M.positive, link = nonempty_text, quantity = M.positive,
  runs = M.positive, interval = M.positive,
  comments = lines_field, groups = lines_field, usernames = lines_field,
  hashtags = lines_field, keywords = lines_field,
  username = nonempty_text, min = M.positive, max = M.positive,
  posts = M.positive, old_posts = M.non_negative, delay = delay_field, expiry = date_field,
  answer_number = M.positive,
}
M.ADD_FIELDS = ADD_FIELDS

-- Fields a panel may accept beyond the reference pass through as strings or integers.
local function extra_field(v, field, action)
  local t = type(v)
  if t == "number" then
    local n = whole(v)
    if n then return n end
    return fail(field, "must be a string or a whole number, got " .. tostring(v), action)
  elseif t == "boolean" then
    return v and 1 or 0
  elseif t == "string" then
    return text_field(v, field, action)
  end
  return fail(field, "must be a string or a number, got " .. t, action)
end

local RESERVED = { key = true, action = true }

-- Fields of an `add` whose kind is told by the fields themselves. Returns a clean copy.
function M.add(order, action)
  action = action or "add"
  if type(order) ~= "table" then return fail("order", "must be a table of fields", action) end
  local clean = {}
  for name, value in pairs(order) do
    if type(name) ~= "string" or not name:find("^[%a_][%w_]*$") then
      return fail(tostring(name), "is not a field name", action)
    end
    if RESERVED[name] then return fail(name, "is set by the client, not by the caller", action) end
    local check = ADD_FIELDS[name] or extra_field
    local v, err = check(value, name, action)
    if v == nil then return nil, err end
    clean[name] = v
  end
  if clean.service == nil then return fail("service", "is required", action) end
  local subscription = clean.username ~= nil and (clean.min ~= nil or clean.max ~= nil)
      and clean.link == nil
  if subscription then
    if clean.min == nil then return fail("min", "is required for a subscription", action) end
    if clean.max == nil then return fail("max", "is required for a subscription", action) end
    if clean.min > clean.max then
      return fail("min", "must not be greater than max (" .. clean.max .. ")", action)
    end
  elseif clean.link == nil then
    return fail("link", "is required", action)
  end
  if (clean.runs == nil) ~= (clean.interval == nil) then
    local missing = clean.runs == nil and "runs" or "interval"
    return fail(missing, "is required for a drip-feed order (runs and interval go together)", action)
  end
  return clean
end

-- An `add` checked against its service (a normalised entry of the service list): the fields
-- its type needs, fields that belong to other kinds, quantity within min/max (comments count
-- as the quantity for custom comments), drip-feed only where the service has it.
function M.for_service(fields, service, action)
  action = action or "add"
  local kinds = require "smm.kinds"
  local k = kinds.of(service)
  local label = "service " .. tostring(service.service) .. " (" .. tostring(service.type) .. ")"
  if k then
    for _, name in ipairs(k.requires) do
      if fields[name] == nil then return fail(name, "is required by " .. label, action) end
    end
    for name in pairs(fields) do
      if ADD_FIELDS[name] and name ~= "service" and not k.known[name] then
        return fail(name, "is not used by " .. label, action)
      end
    end
  end
  if fields.runs ~= nil and (service.dripfeed == false or (service.dripfeed == nil and k and
      not k.known.runs)) then
    return fail("runs", "drip-feed is not offered by " .. label, action)
  end
  local counted, units = "quantity", fields.quantity
  local lines = k and k.counts:match("^lines:(.+)$")
  if lines and fields[lines] ~= nil then
    local n = count_lines(fields[lines])
    if units ~= nil and units ~= n then
      return fail("quantity", "must equal the number of " .. lines .. " lines (" .. n .. ")", action)
    end
    counted, units = lines, n
  end
  local bounds = { { counted, units } }
  if k and k.counts == "subscription" then bounds = { { "min", fields.min }, { "max", fields.max } } end
  local lo, hi = tonumber(service.min), tonumber(service.max)
  for _, pair in ipairs(bounds) do
    local name, n = pair[1], pair[2]
    if n ~= nil and lo and n < lo then
      return fail(name, "is " .. n .. ", below the minimum " .. lo .. " of " .. label, action)
    end
    if n ~= nil and hi and n > hi then
      return fail(name, "is " .. n .. ", above the maximum " .. hi .. " of " .. label, action)
    end
  end
  return fields
end

-- One id: a positive whole number (or a string of digits).
function M.id(v, field, action)
  return M.positive(v, field, action)
end

-- A list of ids: a non-empty array of positive whole numbers; duplicates dropped, order kept.
function M.ids(list, field, action)
  if type(list) ~= "table" then return fail(field, "must be an id or an array of ids", action) end
  local n = #list
  if n == 0 then return fail(field, "must not be empty", action) end
  -- n keys, and (below) none of list[1..n] nil: then the keys are exactly 1..n
  local keys = 0
  for _ in pairs(list) do keys = keys + 1 end
  if keys ~= n then return fail(field, "must be an array of ids", action) end
  local out, seen, count = {}, {}, 0
  for i = 1, n do
    local id = list[i]
    -- the usual case, a positive Lua integer, without a call (lists of 10,000 ids are common)
    if not (is_positive_integer(id)) then
      if id == nil then return fail(field, "must be an array of ids", action) end
      local err
      id, err = M.positive(id, field .. "[" .. i .. "]", action)
      if not id then return nil, err end
    end
    if not seen[id] then
      seen[id] = true
      count = count + 1
      out[count] = id
    end
  end
  return out
end

return M
