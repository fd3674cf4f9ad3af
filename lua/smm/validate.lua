-- Checks what a caller asks for before anything is sent, and names the field that is wrong.
-- Returns clean values (integers as Lua integers, lists joined into lines) or nil, err.
local errors = require "smm.errors"
local random = require "smm.random"

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
  return math.type(v) == "integer" and v > 0 and v < MAX_EXACT
end or function() return false end

local tointeger = math.tointeger or function(x)
  if x == floor(x) and x > -MAX_EXACT and x < MAX_EXACT then return x end
  return nil
end

local function fail(field, message, action)
  return nil, errors.invalid(field, message, action)
end

-- A refused value as an error message shows it: short strings quoted, numbers and booleans as
-- they are, anything else by its type. A long string is shown by its length only: a cut one
-- could end in part of the API key, which the client scrubs only whole.
local MAX_SHOWN = 64
local function shown(v)
  local t = type(v)
  if t == "string" then
    if #v > MAX_SHOWN then return "a string of " .. #v .. " bytes" end
    return (string.format("%q", v):gsub("\\\n", "\\n"))
  elseif t == "number" then
    return (math.type and math.type(v) == "integer") and string.format("%d", v) or tostring(v)
  elseif t == "boolean" then
    return tostring(v)
  end
  return "a " .. t
end
M.shown = shown

-- A whole number given as a number or as a string of digits, within +-(2^53 - 1): past it a
-- double is no longer exact, and Lua 5.3+ integers would pass where 5.1 and strings do not.
local function whole(v)
  if type(v) == "number" then
    if not (v > -MAX_EXACT and v < MAX_EXACT) then return nil end -- also NaN and infinities
    return tointeger(v)
  elseif type(v) == "string" and v:find("^%s*[+-]?%d+%s*$") then
    local n = tonumber(v)
    if n and n > -MAX_EXACT and n < MAX_EXACT then return tointeger(n) end
  end
  return nil
end

local function integer_field(v, field, min, action)
  local n = whole(v)
  if n == nil then return fail(field, "must be a whole number, got " .. shown(v), action) end
  if n < min then
    return fail(field, (min == 1 and "must be positive" or "must be at least " .. min) ..
      ", got " .. string.format("%d", n), action)
  end
  return n
end

function M.positive(v, field, action) return integer_field(v, field, 1, action) end
function M.non_negative(v, field, action) return integer_field(v, field, 0, action) end

local function text_field(v, field, action)
  if type(v) ~= "string" then return fail(field, "must be a string, got " .. shown(v), action) end
  if v:find("\0", 1, true) then return fail(field, "contains a NUL byte, got " .. shown(v), action) end
  if #v > MAX_FIELD_BYTES then
    return fail(field, "is longer than " .. MAX_FIELD_BYTES .. " bytes, got " .. shown(v), action)
  end
  return v
end

local function nonempty_text(v, field, action)
  local s, err = text_field(v, field, action)
  if not s then return nil, err end
  if not s:find("%S") then return fail(field, "must not be empty, got " .. shown(s), action) end
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
  return fail(field, "must be a string or an array of lines, got " .. shown(v), action)
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
    return fail(field, "must be a date as d/m/Y (e.g. 31/12/2026), got " .. shown(s), action)
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
    return fail(field, "must be a string or a whole number, got " .. shown(v), action)
  elseif t == "boolean" then
    return v and 1 or 0
  elseif t == "string" then
    return text_field(v, field, action)
  end
  return fail(field, "must be a string or a number, got " .. shown(v), action)
end

local RESERVED = { key = true, action = true }

-- The options of client:add, given in its second argument. In the order table they are refused:
-- an order is often built from outside data, and a guard must not be switched off by a typo.
M.ADD_OPTIONS = { "max_cost", "validate", "ref", "route" }
local ADD_OPTION = {}
for _, name in ipairs(M.ADD_OPTIONS) do ADD_OPTION[name] = true end

-- Names an order field may be a misspelling of: the options, the fields above, and the fields
-- of order kinds that pass as extras (smm.kinds).
local KNOWN_NAMES = { "hashtag", "media" }
for _, name in ipairs(M.ADD_OPTIONS) do KNOWN_NAMES[#KNOWN_NAMES + 1] = name end
for name in pairs(ADD_FIELDS) do KNOWN_NAMES[#KNOWN_NAMES + 1] = name end
table.sort(KNOWN_NAMES)

-- Edit distance with transpositions (optimal string alignment): "qunatity" is one from "quantity".
local function distance(a, b)
  local la, lb = #a, #b
  if math.abs(la - lb) > 2 then return 3 end
  local rows = {}
  for i = 0, la do rows[i] = { [0] = i } end
  for j = 1, lb do rows[0][j] = j end
  for i = 1, la do
    local ai = a:byte(i)
    for j = 1, lb do
      local cost = ai == b:byte(j) and 0 or 1
      local d = math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and ai == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        d = math.min(d, rows[i - 2][j - 2] + 1)
      end
      rows[i][j] = d
    end
  end
  return rows[la][lb]
end

local function letters(s)
  local t = {}
  for i = 1, #s do t[i] = s:sub(i, i) end
  table.sort(t)
  return table.concat(t)
end

-- The name of `known` (an array) that `name` looks like a misspelling of, or nil: the same in
-- another case, one edit away, two edits away when it starts with the same letter and is not
-- short (so that extras such as "lang" and "device" are not taken for "link" and "service"),
-- or the same letters in another order.
function M.did_you_mean(name, known)
  if type(name) ~= "string" then return nil end
  local lower, best, best_d = name:lower(), nil, nil
  for _, k in ipairs(known) do
    if k ~= name then
      local d = distance(lower, k)
      local near = d <= 1 or (d == 2 and #k > 4 and k:byte(1) == lower:byte(1))
        or (#k > 3 and #k == #lower and letters(k) == letters(lower))
      if near and (not best or d < best_d or (d == best_d and #k == #lower)) then
        best, best_d = k, d
      end
    end
  end
  return best
end

-- An options table of a client method: a name not in `known` (an array) is a programming error
-- and raises, as smm.new does, with a did-you-mean. `level` is the level the caller's own
-- error() would use. Returns opts, or an empty table for nil.
function M.options(opts, known, where, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("smm: " .. where .. ": opts must be a table", level + 1) end
  local set = {}
  for _, k in ipairs(known) do set[k] = true end
  for name in pairs(opts) do
    if not set[name] then
      local meant = M.did_you_mean(name, known)
      error("smm: " .. where .. ": unknown option '" .. tostring(name) .. "' (" ..
        (meant and ("did you mean '" .. meant .. "'?") or ("known: " .. table.concat(known, ", "))) ..
        ")", level + 1)
    end
  end
  return opts
end

-- A field that is not one `add` knows: an option given in the wrong place, a misspelling of a
-- known name, or a genuine extra of the panel's.
local function unknown_field(name, value, action)
  if ADD_OPTION[name] then
    return fail(name, "is an option of client:add, not an order field: give it as " ..
      "client:add(order, { " .. name .. " = " .. shown(value) .. " })", action)
  end
  local meant = M.did_you_mean(name, KNOWN_NAMES)
  if meant then
    local where = ADD_OPTION[meant] and (" (an option: client:add(order, { " .. meant .. " = ... }))") or ""
    return fail(name, "= " .. shown(value) .. " looks like a misspelling: did you mean '" .. meant ..
      "'" .. where .. "?", action)
  end
  return extra_field(value, name, action)
end

-- Fields of an `add` whose kind is told by the fields themselves. Returns a clean copy.
function M.add(order, action)
  action = action or "add"
  if type(order) ~= "table" then
    return fail("order", "must be a table of fields, got " .. shown(order), action)
  end
  local clean = {}
  for name, value in pairs(order) do
    if type(name) ~= "string" or not name:find("^[%a_][%w_]*$") then
      return fail(tostring(name), "is not a field name", action)
    end
    if RESERVED[name] then return fail(name, "is set by the client, not by the caller", action) end
    local v, err
    local check = ADD_FIELDS[name]
    if check then v, err = check(value, name, action) else v, err = unknown_field(name, value, action) end
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
      return fail("min", "must not be greater than max (" .. clean.max .. "), got " .. clean.min, action)
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
  local lines = k and k.counts:match("^lines:(.+)$")
  if lines and fields[lines] ~= nil and fields.quantity ~= nil then
    local n = count_lines(fields[lines])
    if fields.quantity ~= n then
      return fail("quantity", "must equal the number of " .. lines .. " lines (" .. n .. "), got " ..
        shown(fields.quantity), action)
    end
  end
  return M.bounds(fields, service, action)
end

-- The counted units of an order (quantity, lines of comments, a subscription's min and max)
-- within its service's min/max.
function M.bounds(fields, service, action)
  action = action or "add"
  local k = require("smm.kinds").of(service)
  local label = "service " .. tostring(service.service) .. " (" .. tostring(service.type) .. ")"
  local counted, units = "quantity", fields.quantity
  local lines = k and k.counts:match("^lines:(.+)$")
  if lines and type(fields[lines]) == "string" then counted, units = lines, count_lines(fields[lines]) end
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
  if type(list) ~= "table" then
    return fail(field, "must be an id or an array of ids, got " .. shown(list), action)
  end
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

-- A ref names one order for good (the book's idempotency key): printable, short enough for any
-- index. The caller's, checked, or a new one when none is given (an order placed without a ref
-- is recorded all the same). -> ref, or nil, err. client:add's and router:add's.
local MAX_REF = 200
function M.ref(ref)
  if ref == nil then return "auto-" .. os.date("!%Y%m%dT%H%M%SZ") .. "-" .. random.hex(8) end
  if type(ref) ~= "string" or ref == "" or #ref > MAX_REF or ref:find("%c") then
    return nil, errors.invalid("ref", "must be a non-empty string of at most " .. MAX_REF ..
      " bytes without control characters, got " .. shown(ref), "add")
  end
  return ref
end

return M
