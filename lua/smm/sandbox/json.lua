-- A small JSON encoder for the sandbox: ordered objects (answers keep the reference's key
-- order), explicit arrays (an empty array stays []), and raw number tokens so that exact
-- decimals ("0.90") can be sent as JSON numbers without going through a float.
local M = {}

local ARRAY = { __name = "sandbox.json.array" }
local OBJECT = { __name = "sandbox.json.object" }
local RAW = { __name = "sandbox.json.raw" }

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
for i = 0, 31 do
  local c = string.char(i)
  if not escapes[c] then escapes[c] = string.format("\\u%04x", i) end
end
escapes["\127"] = "\\u007f"

function M.str(s)
  if not s:find('[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. s:gsub('[%c"\\]', escapes) .. '"'
end

-- A raw JSON token (a number literal such as 0.90 or 23501).
function M.raw(tok) return setmetatable({ tok }, RAW) end

-- An array: M.array{ a, b, c } (n gives the length when holes are possible).
function M.array(t, n)
  t = t or {}
  t.n = n or #t
  return setmetatable(t, ARRAY)
end

-- An ordered object: M.object("k1", v1, "k2", v2, ...); nil values are skipped.
function M.object(...)
  local t = { n = select("#", ...), ... }
  return setmetatable(t, OBJECT)
end

local encode

local function encode_table(v, out)
  local mt = getmetatable(v)
  if mt == RAW then
    out[#out + 1] = v[1]
  elseif mt == ARRAY then
    out[#out + 1] = "["
    for i = 1, v.n do
      if i > 1 then out[#out + 1] = "," end
      encode(v[i], out)
    end
    out[#out + 1] = "]"
  elseif mt == OBJECT then
    out[#out + 1] = "{"
    local first = true
    for i = 1, v.n, 2 do
      local val = v[i + 1]
      if val ~= nil then
        if not first then out[#out + 1] = "," end
        first = false
        out[#out + 1] = M.str(tostring(v[i]))
        out[#out + 1] = ":"
        encode(val, out)
      end
    end
    out[#out + 1] = "}"
  elseif #v > 0 then
    out[#out + 1] = "["
    for i = 1, #v do
      if i > 1 then out[#out + 1] = "," end
      encode(v[i], out)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = M.str(k)
      out[#out + 1] = ":"
      local val = v[k]
      if val == nil then val = v[tonumber(k)] end
      encode(val, out)
    end
    out[#out + 1] = "}"
  end
end

encode = function(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = M.str(v)
  elseif t == "number" then
    if math.type(v) == "integer" then
      out[#out + 1] = tostring(v)
    elseif v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    else
      out[#out + 1] = string.format("%.17g", v)
    end
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "table" then
    encode_table(v, out)
  else
    out[#out + 1] = "null"
  end
end

function M.encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

return M
