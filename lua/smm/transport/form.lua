-- The request body every transport sends: a table of fields -> application/x-www-form-urlencoded.
-- The C core (src/form.c) writes the same bytes for the same table on every Lua; a transport
-- written in Lua (the ngx one, or yours: see docs/transport.md) calls M.encode.
--
--   names     strings only, sorted bytewise (never by locale), so the body is deterministic
--   strings   as they are
--   integers  plain digits (math.type "integer", or any float with an integral value: 157.0
--             is "157" on every Lua; beyond 2^63 every digit of the double's exact value)
--   floats    the shortest of 15, 16, 17 significant digits that reads back as the same double,
--             written without an exponent (1e-05 is "0.00001"): PHP read intval("1e-05") as
--             1 before 7.1, and a panel's own check of a decimal (a regex) refuses it
--   refused   booleans, tables, userdata (cjson.null), NaN and +-inf, non-string names: an error that
--             names the field (the client turns flags into 1/0 and id lists into "1,2,3"
--             before a transport sees them: what a panel expects of them is the API's business)
--   escaping  A-Z a-z 0-9 - . _ ~ kept, space as '+', every other byte %XX (upper-case hex)
local M = {}

local byte, char, format, rep = string.byte, string.char, string.format, string.rep
local concat, sort = table.concat, table.sort
local floor, huge, min = math.floor, math.huge, math.min
local mtype = math.type -- nil on 5.1 / LuaJIT, where every number is a float
local type, tonumber, pairs = type, tonumber, pairs

local ESCAPED = {}
for b = 0, 255 do
  local c = char(b)
  if not c:find("^[A-Za-z0-9%-%._~]$") then ESCAPED[c] = format("%%%02X", b) end
end
ESCAPED[" "] = "+"

local SAFE = {}
for b = 0, 255 do SAFE[b] = ESCAPED[char(b)] == nil end

-- Most names and values need no escaping (action=balance, a key of letters and digits): a loop
-- over their bytes says so for a fraction of what gsub costs on LuaJIT (in nginx: 10k of the 42k
-- instructions of a client:balance() went to escaping its four strings).
local function escape(s)
  for i = 1, #s do
    if not SAFE[byte(s, i)] then return (s:gsub("[^A-Za-z0-9%-%._~]", ESCAPED)) end
  end
  return s
end
M.escape = escape

local function refuse(what, item)
  error("smm.transport.form: " .. what .. (item and item > 0 and (" (item " .. item .. ")") or ""), 0)
end

-- 1.2345678901234567e-07 -> 0.00000012345678901234567 (s as %.Ng writes it)
local function without_exponent(s)
  local sign, lead, rest, exp = s:match("^(%-?)(%d)%.?(%d*)e([-+]%d+)$")
  if not sign then return s end
  local digits = lead .. rest
  local point = 1 + tonumber((exp:gsub("^%+", "")))
  if point <= 0 then return sign .. "0." .. rep("0", -point) .. digits end
  if point >= #digits then return sign .. digits .. rep("0", point - #digits) end
  return sign .. digits:sub(1, point) .. "." .. digits:sub(point + 1)
end

-- How many digits follow the point in the exact decimal value of x (non-integral): x is
-- k / 2^j with k odd, whose decimal expansion has exactly j digits after the point, the last a 5.
local function fraction_digits(x)
  local j = 0
  while x ~= floor(x) do
    x = x * 2
    j = j + 1
  end
  return j
end

-- s: x written with p significant digits ("%.<p>g"). When x lies exactly halfway between two
-- p-digit decimals, C's printf (glibc: the C core) takes the one with an even last digit;
-- LuaJIT's string.format (the ngx transport) the one away from zero. -> C's choice.
local function tie_to_even(s, x, p)
  local exact = format("%." .. p .. "e", x) -- p + 1 digits: exact when it is a tie
  local sign, lead, rest, exp = exact:match("^(%-?)(%d)%.(%d+)e([-+]%d+)$")
  exp = tonumber((exp:gsub("^%+", "")))
  if exp + fraction_digits(x) ~= p or byte(rest, -1) ~= 53 then return s end -- 53: "5"
  local digits = lead .. rest:sub(1, -2)
  if byte(digits, -1) % 2 == 1 then return s end -- C rounds away from zero too
  digits = digits:gsub("0+$", "")
  return format("%s%s.%se%+d", sign, digits:sub(1, 1), digits:sub(2), exp)
end

local PRECISION = { "%.15g", "%.16g", "%.17g" }

-- The number rule above. nil when x is NaN or +-inf.
local function number(x)
  if x ~= x or x == huge or x == -huge then return nil end
  if mtype and mtype(x) == "integer" then return format("%d", x) end
  if x == floor(x) then
    if x == 0 then return "0" end -- not "-0"
    return format("%.0f", x)
  end
  local s
  for p = 15, 17 do
    s = format(PRECISION[p - 14], x)
    if tonumber(s) == x then
      s = tie_to_even(s, x, p)
      break
    end
  end
  return without_exponent(s)
end
M.number = number

-- Bytewise, as memcmp: `<` on strings follows the C library's collation on PUC Lua, which is
-- bytewise only while nobody has called os.setlocale.
local function bytewise(a, b)
  for i = 1, min(#a, #b) do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- LuaJIT compares strings bytewise (unsigned bytes, then length) whatever the locale: `<` is
-- the same order there, and costs one comparison instead of a loop.
if rawget(_G, "jit") then bytewise = function(a, b) return a < b end end

-- A request has a handful of fields: an insertion sort in Lua stays in the compiled trace
-- on LuaJIT, where table.sort (a C function calling the Lua comparator back) ends it; above a
-- few dozen fields, table.sort's fewer comparisons win.
local function sort_names(names, n)
  if n > 24 then return sort(names, bytewise) end
  for i = 2, n do
    local name = names[i]
    local j = i - 1
    while j >= 1 and bytewise(name, names[j]) do
      names[j + 1] = names[j]
      j = j - 1
    end
    names[j + 1] = name
  end
end

-- fields -> body. item (optional, > 0): the position in a request_many list, named in errors.
function M.encode(fields, item)
  local names, n = {}, 0
  for name, v in pairs(fields) do
    if type(name) ~= "string" then refuse("field names must be strings, got " .. type(name), item) end
    local t = type(v)
    if t == "number" then
      if v ~= v or v == huge or v == -huge then
        refuse("field '" .. name .. "' must be a finite number", item)
      end
    elseif t ~= "string" then
      refuse("field '" .. name .. "' has unsupported type " .. t, item)
    end
    n = n + 1
    names[n] = name
  end
  sort_names(names, n)
  local parts = {}
  for i = 1, n do
    local name = names[i]
    local v = fields[name]
    if type(v) == "number" then v = number(v) end
    parts[i] = escape(name) .. "=" .. escape(v)
  end
  return concat(parts, "&")
end

return M
