-- A small, deterministic JSON encoder (Lua 5.1-5.4, LuaJIT) for what this project writes
-- itself: the CLI's --json output and journal lines, and the sandbox panel's answers. Plain
-- tables come out with sorted keys, so the same value always gives the same text. Beyond
-- plain tables:
--   json.array(t [, n])        an array even when empty ([]) or with holes up to n
--   json.object(k1, v1, ...)   an object in this key order (nil values are left out)
--   json.raw("0.90")           a token written as it is (an exact decimal as a JSON number)
-- (Decoding is lua-cjson's business.)
local M = {}

local MAX_EXACT = 2 ^ 53
local format, concat, sort = string.format, table.concat, table.sort

local math_type = math.type or function(x)
  if x == math.floor(x) and x > -MAX_EXACT and x < MAX_EXACT then return "integer" end
  return "float"
end

local ARRAY = { __name = "smm.json.array" }
local OBJECT = { __name = "smm.json.object" }
local RAW = { __name = "smm.json.raw" }

function M.array(t, n)
  t = t or {}
  if n then t.n = n end
  return setmetatable(t, ARRAY)
end

function M.object(...)
  return setmetatable({ n = select("#", ...), ... }, OBJECT)
end

function M.raw(token) return setmetatable({ token }, RAW) end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for i = 0, 31 do
  local c = string.char(i)
  if not ESCAPES[c] then ESCAPES[c] = format("\\u%04x", i) end
end
ESCAPES["\127"] = "\\u007f"

function M.str(s)
  if not s:find('[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. s:gsub('[%c"\\]', ESCAPES) .. '"'
end
local str = M.str

-- A plain table is an array when its keys are exactly 1..n (n > 0).
local function is_array(t)
  local n = #t
  if n == 0 then return false end
  for k in pairs(t) do
    if type(k) ~= "number" or math_type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

local encode

local function encode_list(v, n, out)
  out[#out + 1] = "["
  for i = 1, n do
    if i > 1 then out[#out + 1] = "," end
    encode(v[i], out)
  end
  out[#out + 1] = "]"
end

local function encode_table(v, out)
  local mt = getmetatable(v)
  if mt == RAW then
    out[#out + 1] = v[1]
  elseif mt == ARRAY then
    encode_list(v, v.n or #v, out)
  elseif mt == OBJECT then
    out[#out + 1] = "{"
    local first = true
    for i = 1, v.n, 2 do
      local value = v[i + 1]
      if value ~= nil then
        if not first then out[#out + 1] = "," end
        first = false
        out[#out + 1] = str(tostring(v[i]))
        out[#out + 1] = ":"
        encode(value, out)
      end
    end
    out[#out + 1] = "}"
  elseif is_array(v) then
    encode_list(v, #v, out)
  else
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      local value = v[k]
      if value == nil then value = v[tonumber(k)] end
      out[#out + 1] = str(k)
      out[#out + 1] = ":"
      encode(value, out)
    end
    out[#out + 1] = "}"
  end
end

encode = function(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = str(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif math_type(v) == "integer" then
      out[#out + 1] = format("%d", v)
    else -- the shortest of %.14g and %.17g that reads back as the same double
      local s = format("%.14g", v)
      if tonumber(s) ~= v then s = format("%.17g", v) end
      out[#out + 1] = s
    end
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "table" then
    encode_table(v, out)
  else -- nil, cjson.null (a light userdata), anything else JSON has no word for
    out[#out + 1] = "null"
  end
end

function M.encode(v)
  local out = {}
  encode(v, out)
  return concat(out)
end

return M
