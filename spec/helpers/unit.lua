-- Table-driven unit specs, in lua-cjson's style: a table of { input, expected } rows run by one
-- loop, one `it` per row so that a failure names its row. Pure Lua: no server, no smm.core.
local assert = require "luassert"

local M = {}

local floor = math.floor

-- Expected values that are no plain value.
M.AS_IS = setmetatable({}, { __tostring = function() return "<as it came>" end })
M.NIL = setmetatable({}, { __tostring = function() return "<nil>" end })

M.NAN, M.INF = 0 / 0, math.huge
M.MAX_ID = 2 ^ 53 - 1

-- An integer as the library means it: a Lua integer on 5.3+, a whole number on 5.1/LuaJIT.
function M.is_integer(v)
  if math.type then return math.type(v) == "integer" end
  return type(v) == "number" and v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53
end

local function is_nan(v) return type(v) == "number" and v ~= v end

-- A value as a row's label shows it.
function M.label(v)
  if type(v) == "string" then
    if #v > 40 then return string.format("%q", v:sub(1, 30)) .. "... (" .. #v .. " bytes)" end
    return (string.format("%q", v):gsub("\\?\n", "\\n"):gsub("%z", "\\0"))
  elseif type(v) == "number" then
    if math.type and math.type(v) == "integer" then return string.format("%d", v) end
    if v ~= v then return "NaN" end
    return string.format("%.17g", v)
  elseif type(v) == "userdata" then
    return "cjson.null"
  end
  return tostring(v)
end

-- got against one expected value: numbers expected are integers (ids, counts: the only
-- numbers these functions return); AS_IS: the input itself, unchanged.
function M.check(expected, got, input)
  if expected == M.AS_IS then
    if is_nan(input) then
      assert.is_true(is_nan(got), "NaN as it came, got " .. M.label(got))
    else
      assert.is_true(rawequal(input, got), "as it came (" .. M.label(input) .. "), got " .. M.label(got))
    end
  elseif expected == M.NIL then
    assert.is_nil(got)
  elseif type(expected) == "number" then
    assert.is_true(M.is_integer(got), "an integer, got " .. M.label(got))
    assert.is_true(got == expected, M.label(expected) .. " expected, got " .. M.label(got))
  elseif type(expected) == "function" then
    expected(got, input)
  else
    assert.same(expected, got)
  end
end

-- rows: { input, expected } each; fn(input) -> got. One `it` (busted's, passed in: it is no
-- global outside a spec file) per row.
function M.run(it, name, fn, rows)
  for i, row in ipairs(rows) do
    it(string.format("#%d %s(%s)", i, name, M.label(row[1])), function()
      M.check(row[2], fn(row[1]), row[1])
    end)
  end
end

-- Park-Miller: the same sequence on every Lua, every product exact in a double.
function M.random(seed)
  local state = seed
  return function(n)
    state = (state * 16807) % 2147483647
    return state % n
  end
end

-- The whole number n (a float on 5.1/LuaJIT, an integer on 5.3+, as the library returns it).
function M.int(n)
  return math.tointeger and math.tointeger(n) or n
end

return M
