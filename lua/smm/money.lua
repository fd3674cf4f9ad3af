-- Exact decimal arithmetic on money strings. Prices are never floats: "0.90" x 100 / 1000 is
-- "0.09", not 0.09000000000000001. Numbers of any size: digits are kept in base-10^7 limbs, so
-- every intermediate product stays exact in a double as well (Lua 5.1, LuaJIT).
local M = {}

local BASE, BASE_DIGITS = 10000000, 7
local floor = math.floor

-- A decimal: { neg = bool, limbs = { least significant first }, scale = digits after the point }

local function limbs_from_digits(digits)
  local limbs = {}
  local i = #digits
  while i >= 1 do
    local j = math.max(1, i - BASE_DIGITS + 1)
    limbs[#limbs + 1] = tonumber(digits:sub(j, i))
    i = j - 1
  end
  while #limbs > 1 and limbs[#limbs] == 0 do limbs[#limbs] = nil end
  if #limbs == 0 then limbs[1] = 0 end
  return limbs
end

local function digits_from_limbs(limbs)
  local parts = { string.format("%d", limbs[#limbs]) }
  for i = #limbs - 1, 1, -1 do parts[#parts + 1] = string.format("%07d", limbs[i]) end
  return table.concat(parts)
end

local function is_zero(limbs)
  return #limbs == 1 and limbs[1] == 0
end

-- "12.340" -> decimal; nil for anything that is not a plain decimal.
function M.parse(s)
  if type(s) == "number" then
    s = require("smm.normalize").number_to_decimal(s)
  end
  if type(s) ~= "string" then return nil end
  local sign, int, frac = s:match("^%s*([+-]?)(%d*)%.?(%d*)%s*$")
  if not sign or (int == "" and frac == "") then return nil end
  if s:find("%.") and not s:find("%d%.") and not s:find("%.%d") then return nil end
  local limbs = limbs_from_digits(int .. frac)
  return { neg = sign == "-" and not is_zero(limbs), limbs = limbs, scale = #frac }
end

local function mul_limbs(a, b)
  local out = {}
  for i = 1, #a + #b do out[i] = 0 end
  for i = 1, #a do
    local carry, ai = 0, a[i]
    for j = 1, #b do
      local cur = out[i + j - 1] + ai * b[j] + carry
      carry = floor(cur / BASE)
      out[i + j - 1] = cur - carry * BASE
    end
    local k = i + #b
    while carry > 0 do
      local cur = out[k] + carry
      carry = floor(cur / BASE)
      out[k] = cur - carry * BASE
      k = k + 1
    end
  end
  while #out > 1 and out[#out] == 0 do out[#out] = nil end
  return out
end

local function cmp_limbs(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  for i = #a, 1, -1 do
    if a[i] ~= b[i] then return a[i] < b[i] and -1 or 1 end
  end
  return 0
end

local function add_limbs(a, b)
  local out, carry = {}, 0
  for i = 1, math.max(#a, #b) do
    local cur = (a[i] or 0) + (b[i] or 0) + carry
    carry = cur >= BASE and 1 or 0
    out[i] = cur - carry * BASE
  end
  if carry > 0 then out[#out + 1] = carry end
  return out
end

local function sub_limbs(a, b) -- a >= b
  local out, borrow = {}, 0
  for i = 1, #a do
    local cur = a[i] - (b[i] or 0) - borrow
    borrow = cur < 0 and 1 or 0
    out[i] = cur + borrow * BASE
  end
  while #out > 1 and out[#out] == 0 do out[#out] = nil end
  return out
end

local function pow10_limbs(n)
  return limbs_from_digits("1" .. string.rep("0", n))
end

-- Same scale for both, so limbs compare and add directly.
local function align(a, b)
  if a.scale == b.scale then return a.limbs, b.limbs, a.scale end
  if a.scale < b.scale then
    return mul_limbs(a.limbs, pow10_limbs(b.scale - a.scale)), b.limbs, b.scale
  end
  return a.limbs, mul_limbs(b.limbs, pow10_limbs(a.scale - b.scale)), a.scale
end

local function coerce(x)
  if type(x) == "table" then return x end
  local d = M.parse(x)
  if not d then error("smm.money: not a decimal: " .. tostring(x), 3) end
  return d
end

function M.mul(a, b)
  a, b = coerce(a), coerce(b)
  local limbs = mul_limbs(a.limbs, b.limbs)
  return { neg = (a.neg ~= b.neg) and not is_zero(limbs), limbs = limbs, scale = a.scale + b.scale }
end

-- Exact division by 10^n: only the point moves.
function M.shift(a, n)
  a = coerce(a)
  return { neg = a.neg, limbs = a.limbs, scale = a.scale + n }
end

function M.add(a, b)
  a, b = coerce(a), coerce(b)
  local la, lb, scale = align(a, b)
  if a.neg == b.neg then return { neg = a.neg, limbs = add_limbs(la, lb), scale = scale } end
  local c = cmp_limbs(la, lb)
  if c == 0 then return { neg = false, limbs = { 0 }, scale = scale } end
  if c > 0 then return { neg = a.neg, limbs = sub_limbs(la, lb), scale = scale } end
  return { neg = b.neg, limbs = sub_limbs(lb, la), scale = scale }
end

function M.sub(a, b)
  b = coerce(b)
  return M.add(a, { neg = not b.neg and not is_zero(b.limbs), limbs = b.limbs, scale = b.scale })
end

-- -1, 0, 1
function M.compare(a, b)
  a, b = coerce(a), coerce(b)
  local la, lb = align(a, b)
  if is_zero(la) and is_zero(lb) then return 0 end
  if a.neg ~= b.neg then return a.neg and -1 or 1 end
  local c = cmp_limbs(la, lb)
  return a.neg and -c or c
end

-- The exact value as a plain decimal string, trailing zeros trimmed, at least `min_decimals`
-- digits after the point (default 2, as panels show prices).
function M.format(a, min_decimals)
  a = coerce(a)
  min_decimals = min_decimals or 2
  local digits = digits_from_limbs(a.limbs)
  if #digits <= a.scale then digits = string.rep("0", a.scale - #digits + 1) .. digits end
  local int = digits:sub(1, #digits - a.scale)
  local frac = digits:sub(#digits - a.scale + 1):gsub("0+$", "")
  if #frac < min_decimals then frac = frac .. string.rep("0", min_decimals - #frac) end
  local s = int .. (frac ~= "" and ("." .. frac) or "")
  return (a.neg and "-" or "") .. s
end

function M.is_decimal(s)
  return M.parse(s) ~= nil
end

return M
