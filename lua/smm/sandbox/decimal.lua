-- Exact decimal money for the sandbox panel: amounts are Lua 5.4 integers counting
-- 10^-10 of a unit ("units"), so no float ever touches a price, a charge or a balance.
local M = {}

M.SCALE = 10000000000 -- 10^10 units in 1.00
local DIGITS = 10
local MAXINT = math.maxinteger

-- "0.90" -> 9000000000. Returns nil for anything that is not a plain decimal with at most
-- 10 decimals (no exponent, no sign other than a leading '-').
function M.parse(s)
  if math.type(s) == "integer" then return s * M.SCALE end
  if type(s) ~= "string" then return nil end
  local neg, int, frac = s:match("^%s*(%-?)(%d*)%.?(%d*)%s*$")
  if not int or (int == "" and frac == "") or #frac > DIGITS or #int > 8 then return nil end
  if s:find("%.") and frac == "" and int == "" then return nil end
  local v = tonumber(int ~= "" and int or "0") * M.SCALE
    + tonumber(frac ~= "" and (frac .. string.rep("0", DIGITS - #frac)) or "0")
  if neg == "-" then v = -v end
  return v
end

-- 9000000000 -> "0.90": trailing zeros trimmed, but at least 2 decimals.
function M.format(v)
  local neg = v < 0
  if neg then v = -v end
  local int, frac = v // M.SCALE, v % M.SCALE
  local f = string.format("%010d", frac):gsub("0+$", "")
  if #f < 2 then f = f .. string.rep("0", 2 - #f) end
  return (neg and "-" or "") .. int .. "." .. f
end

-- rate (units per 1000 items) x count / 1000, exact when it fits; nil on overflow.
-- Rates have at most 7 decimals in practice, so rate // 1000 is exact; any sub-unit
-- remainder is truncated (never rounded up against the customer).
function M.per_thousand(rate, count)
  if count < 0 then return nil end
  if count == 0 then return 0 end
  local whole, rest = rate // 1000, rate % 1000
  if whole > 0 and count > MAXINT // whole then return nil end
  if rest > 0 and count > MAXINT // rest then return nil end
  return whole * count + (rest * count) // 1000
end

-- v x num / den with the intermediate product guarded (den > 0).
function M.scale(v, num, den)
  if num == den then return v end
  if num == 0 then return 0 end
  if v <= MAXINT // num then return (v * num) // den end
  return (v // den) * num + ((v % den) * num) // den
end

-- v x n (integer) or nil on overflow
function M.mul(v, n)
  if n ~= 0 and math.abs(v) > MAXINT // math.abs(n) then return nil end
  return v * n
end

return M
