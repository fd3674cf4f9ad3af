-- smm.money, row by row: parsing, formatting and exact arithmetic on decimal strings of any size,
-- with generated rows checked against integer arithmetic (exact below 2^53 on every Lua).
local unit = require "helpers.unit"
local money = require "smm.money"
local null = require("cjson").null

local NAN, INF = unit.NAN, unit.INF
local function fn() end

-- is_decimal: a plain decimal (sign, digits, one point, surrounding spaces), or a number that is
-- one; no exponent, NaN, infinity, hex, separators.
local IS_DECIMAL = {
  { "0.90", true }, { "-3", true }, { "12.", true }, { ".5", true }, { "+1", true }, { " 1 ", true },
  { "0", true }, { "-0", true }, { "007", true }, { "0.000000001", true }, { "\t2.5\n", true },
  { string.rep("9", 400) .. "." .. string.rep("9", 400), true }, { "-.5", true }, { "+5.", true },
  { 0.35, true }, { 0, true }, { -7, true }, { 1e-7, true }, { 2 ^ 53, true }, { 1e300, true }, { -0.0, true },
  { "", false }, { " ", false }, { ".", false }, { "-", false }, { "+", false }, { "-.", false },
  { "1e5", false }, { "1E5", false }, { "1e-7", false }, { "NaN", false }, { "nan", false }, { "inf", false },
  { "-inf", false }, { "Infinity", false }, { "0x10", false }, { "1,5", false }, { "1 5", false },
  { "1..2", false }, { "1.2.3", false }, { "--1", false }, { "+-1", false }, { "$1", false },
  { "1\0", false }, { "1.5 USD", false }, { "١", false }, { "1_000", false },
  { NAN, false }, { INF, false }, { -INF, false }, { true, false }, { false, false }, { nil, false },
  { null, false }, { {}, false }, { fn, false },
}

-- format(value [, min_decimals]): the exact value, trailing zeros cut, at least min_decimals
-- (default 2) digits after the point; no "-0".
local FORMAT = {
  { { "0.90" }, "0.90" }, { { "0.9" }, "0.90" }, { { "8" }, "8.00" }, { { "0" }, "0.00" }, { { "-0" }, "0.00" },
  { { "-0.00" }, "0.00" }, { { "100.84292" }, "100.84292" }, { { "007.50" }, "7.50" }, { { "12." }, "12.00" },
  { { ".5" }, "0.50" }, { { "+1" }, "1.00" }, { { "-3" }, "-3.00" }, { { "0.000000001" }, "0.000000001" },
  { { "1.10000" }, "1.10" }, { { "0000" }, "0.00" }, { { "00.001" }, "0.001" }, { { " 2.5 " }, "2.50" },
  { { "8", 0 }, "8" }, { { "8.50", 0 }, "8.5" }, { { "0.0", 0 }, "0" }, { { "-0.000", 0 }, "0" },
  { { "1.5", 4 }, "1.5000" }, { { "-1.5", 1 }, "-1.5" }, { { "10000000", 0 }, "10000000" },
  { { "10000000.0000001", 0 }, "10000000.0000001" }, { { "99999999999999", 0 }, "99999999999999" },
  { { "123456789012345678901234567890.5" }, "123456789012345678901234567890.50" },
  { { "-0.0000000000000000000001" }, "-0.0000000000000000000001" },
  { { 0.35 }, "0.35" }, { { 1e-7 }, "0.0000001" }, { { 2 ^ 53 }, "9007199254740992.00" }, { { -0.0 }, "0.00" },
  { { 1e20, 0 }, "100000000000000000000" }, { { 0.1 + 0.2, 0 }, "0.30000000000000004" }, { { -2.5 }, "-2.50" },
}

-- add, sub, mul: exact, written by format (default 2 decimals)
local ADD = {
  { "0.1", "0.2", "0.30" }, { "0.90", "0.10", "1.00" }, { "1", "-1", "0.00" }, { "-0.5", "0.5", "0.00" },
  { "-1.5", "-2.25", "-3.75" }, { "99999999999999999999.99999", "0.00001", "100000000000000000000.00" },
  { "9999999", "1", "10000000.00" }, { "0.0000001", "0.0000001", "0.0000002" }, { "12.", ".5", "12.50" },
  { 0.1, 0.2, "0.30" }, { "1", 2 ^ 53, "9007199254740993.00" }, { "-0", "-0", "0.00" }, { "0", "-3", "-3.00" },
}
local SUB = {
  { "1", "0.99", "0.01" }, { "0.3", "0.1", "0.20" }, { "0", "0", "0.00" }, { "-1", "-1", "0.00" },
  { "1", "2", "-1.00" }, { "-12345678901234567890.123", "98765432109876543210.877", "-111111111011111111101.00" },
  { "10000000", "0.0000001", "9999999.9999999" }, { "0.5", "-0.5", "1.00" }, { 0.3, 0.1, "0.20" },
}
local MUL = {
  { "0.90", "100", "90.00" }, { "0.9", "0.1", "0.09" }, { "-1", "0", "0.00" }, { "0", "-5.5", "0.00" },
  { "-2", "-3", "6.00" }, { "-2", "3", "-6.00" }, { "123456789123456789", "987654321987654321",
  "121932631356500531347203169112635269.00" }, { "0.0000001", "0.0000001", "0.00000000000001" },
  { "3.14159265358979323846", "-2.71828182845904523536", "-8.5397342226735670654554622909226073039456" },
  { "9999999", "9999999", "99999980000001.00" }, { 0.35, 3, "1.05" }, { "1.000", "1.000", "1.00" },
}
-- shift: exact division by 10^n
local SHIFT = {
  { "90", 3, "0.09" }, { "1", 0, "1.00" }, { "-5", 1, "-0.50" }, { "0.90", 2, "0.009" }, { "123", 10, "0.0000000123" },
  { "-0", 3, "0.00" },
}
-- compare: -1, 0, 1
local COMPARE = {
  { "1", "1.00", 0 }, { "-0", "0", 0 }, { "0.1", "0.10", 0 }, { "2", "10", -1 }, { "-2", "-10", 1 },
  { "-1", "1", -1 }, { "1", "-1", 1 }, { "0.0001", "0", 1 }, { "-0.0001", "0", -1 }, { "0", "-0.0001", 1 },
  { "100000000000000000000", "99999999999999999999.999", 1 }, { "007", "7.000", 0 }, { ".5", "0.50", 0 },
  { "12.", "12", 0 }, { 0.35, "0.35", 0 }, { 0.1 + 0.2, "0.3", 1 }, { "5.00", "5.001", -1 },
  { "-0.00", "-0.000", 0 }, { "-5", "-5.0000001", 1 },
}

-- Exact results from integer arithmetic: { digits, scale } pairs whose scaled values stay below
-- 2^53, written out by code that shares nothing with smm.money.
local function decimal(n, scale)
  local neg = n < 0
  local s = string.format("%.0f", neg and -n or n)
  if scale > 0 then
    if #s <= scale then s = string.rep("0", scale - #s + 1) .. s end
    s = s:sub(1, #s - scale) .. "." .. s:sub(#s - scale + 1)
  end
  return (neg and "-" or "") .. s
end

local function formatted(n, scale)
  local s = decimal(n, scale)
  if s:find("%.") then s = s:gsub("0+$", "") end
  local int, frac = s:match("^(-?%d+)%.?(%d*)$")
  if #frac < 2 then frac = frac .. string.rep("0", 2 - #frac) end
  if int == "-0" and not frac:find("[1-9]") then int = "0" end
  return int .. "." .. frac
end

do
  local random = unit.random(5)
  for _ = 1, 120 do
    local a, b = random(2000001) - 1000000, random(2000001) - 1000000
    local sa, sb = random(5), random(5)
    local da, db = decimal(a, sa), decimal(b, sb)
    local scale = math.max(sa, sb)
    local ia, ib = a * 10 ^ (scale - sa), b * 10 ^ (scale - sb)
    ADD[#ADD + 1] = { da, db, formatted(ia + ib, scale) }
    SUB[#SUB + 1] = { da, db, formatted(ia - ib, scale) }
    MUL[#MUL + 1] = { da, db, formatted(a * b, sa + sb) }
    COMPARE[#COMPARE + 1] = { da, db, ia < ib and -1 or ia > ib and 1 or 0 }
    FORMAT[#FORMAT + 1] = { { da }, formatted(a, sa) }
  end
end

-- Values that are no decimal raise, and the message shows the value.
local RAISES = { "x", "", "1e5", "NaN", "1,5", "0x10", true, false, NAN, INF, -INF, null, fn }

describe("money (unit)", function()
  describe("is_decimal", function() unit.run(it, "is_decimal", money.is_decimal, IS_DECIMAL) end)

  describe("parse", function()
    for i, row in ipairs(IS_DECIMAL) do
      it("#" .. i .. " parse(" .. unit.label(row[1]) .. ")", function()
        local d = money.parse(row[1])
        if row[2] then assert.is_table(d) else assert.is_nil(d) end
      end)
    end
  end)

  describe("format", function()
    for i, row in ipairs(FORMAT) do
      local value, min = row[1][1], row[1][2]
      it("#" .. i .. " format(" .. unit.label(value) .. ", " .. tostring(min) .. ")", function()
        assert.equal(row[2], money.format(value, min))
        assert.equal(row[2], money.format(money.parse(value), min))
      end)
    end
  end)

  local function binary(name, rows, op)
    describe(name, function()
      for i, row in ipairs(rows) do
        it("#" .. i .. " " .. name .. "(" .. unit.label(row[1]) .. ", " .. unit.label(row[2]) .. ")", function()
          local got = op(row[1], row[2])
          if type(row[3]) == "number" then
            assert.equal(row[3], got)
          else
            assert.equal(row[3], money.format(got))
          end
        end)
      end
    end)
  end
  binary("add", ADD, money.add)
  binary("sub", SUB, money.sub)
  binary("mul", MUL, money.mul)
  binary("shift", SHIFT, money.shift)
  binary("compare", COMPARE, money.compare)

  describe("laws", function()
    local random = unit.random(13)
    for i = 1, 60 do
      local a = decimal(random(2000001) - 1000000, random(6))
      local b = decimal(random(2000001) - 1000000, random(6))
      it("#" .. i .. " " .. a .. ", " .. b, function()
        assert.equal(money.format(money.add(a, b)), money.format(money.add(b, a)))
        assert.equal(money.format(money.mul(a, b)), money.format(money.mul(b, a)))
        assert.equal(0, money.compare(money.sub(money.add(a, b), b), a))
        assert.equal(-money.compare(a, b), money.compare(b, a))
        assert.equal(money.compare(money.sub(a, b), "0"), money.compare(a, b))
      end)
    end
  end)

  describe("refuses what is no decimal", function()
    for i, v in ipairs(RAISES) do
      for _, op in ipairs{ "add", "sub", "mul", "compare" } do
        it("#" .. i .. " " .. op .. "(" .. unit.label(v) .. ", \"1\") and back", function()
          local ok, err = pcall(money[op], v, "1")
          assert.is_false(ok)
          assert.truthy(tostring(err):find("not a decimal: " .. tostring(v), 1, true), tostring(err))
          ok, err = pcall(money[op], "1", v)
          assert.is_false(ok)
          assert.truthy(tostring(err):find("not a decimal: " .. tostring(v), 1, true), tostring(err))
        end)
      end
      it("#" .. i .. " format(" .. unit.label(v) .. ")", function()
        assert.has_error(function() money.format(v) end)
      end)
    end
  end)

  it("results are strings, never floats", function()
    for _, row in ipairs(MUL) do
      local s = money.format(money.mul(row[1], row[2]))
      assert.is_string(s)
      assert.truthy(s:find("^%-?%d+%.%d+$"), s)
    end
  end)
end)
