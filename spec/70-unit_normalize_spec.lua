-- smm.normalize, row by row: what a panel may write for an id, a count, a price, a flag or a
-- status, including what a hostile panel sends (nulls, booleans, objects, NaN, 2^53 and
-- beyond, exponents, spaces, empty strings), and the one shape each becomes.
local unit = require "helpers.unit"
local normalize = require "smm.normalize"
local money = require "smm.money"
local null = require("cjson").null

local AS_IS, NIL, NAN, INF, MAX_ID = unit.AS_IS, unit.NIL, unit.NAN, unit.INF, unit.MAX_ID
local int = unit.int

-- integer(): ids and counts -> integers; empty -> nil; anything else as it came (never a
-- different number).
local INTEGER = {
  { "157", 157 }, { 157, 157 }, { 157.0, 157 }, { "157.00", 157 }, { "157.", 157 },
  { "157.000000", 157 }, { " 157 ", 157 }, { "\t157\n", 157 }, { "+157", 157 }, { "-5", -5 },
  { -5, -5 }, { "-157.0", -157 }, { "-0", 0 }, { "+0", 0 }, { "0", 0 }, { 0, 0 }, { -0.0, 0 },
  { "0.0", 0 }, { "000157", 157 }, { "9007199254740991", MAX_ID }, { "-9007199254740991", -MAX_ID },
  { MAX_ID, MAX_ID }, { -MAX_ID, -MAX_ID }, { "1", 1 }, { 1, 1 },
  -- not whole numbers: returned as they came
  { "9007199254740992", AS_IS }, { "99999999999999999999", AS_IS }, { "-9007199254740992", AS_IS },
  { "1e3", AS_IS }, { "1E3", AS_IS }, { "1.0e2", AS_IS }, { "1.5", AS_IS }, { "157.5", AS_IS },
  { "0x10", AS_IS }, { "abc", AS_IS }, { "1 000", AS_IS }, { "1,000", AS_IS }, { "1_000", AS_IS },
  { ".0", AS_IS }, { "157\0", AS_IS }, { "--5", AS_IS }, { "+-5", AS_IS }, { "NaN", AS_IS },
  { "inf", AS_IS }, { "null", AS_IS }, { "true", AS_IS }, { "\217\161\217\162", AS_IS },
  { 1.5, AS_IS }, { -0.5, AS_IS }, { 1e20, AS_IS }, { -1e20, AS_IS }, { 1e308, AS_IS },
  { NAN, AS_IS }, { INF, AS_IS }, { -INF, AS_IS }, { true, AS_IS }, { false, AS_IS },
  -- no value
  { "", NIL }, { "   ", NIL }, { "\t\n", NIL }, { null, NIL }, { nil, NIL },
}
-- tables and functions as they came
for _, v in ipairs{ {}, { 1 }, { order = 1 }, { {} }, print } do INTEGER[#INTEGER + 1] = { v, AS_IS } end
-- 2^53 and beyond as numbers: the same value whatever its subtype (past the exact range)
for _, v in ipairs{ 2 ^ 53, 2 ^ 53 + 2, -2 ^ 53 } do
  INTEGER[#INTEGER + 1] = { v, function(got) assert.is_true(got == v) end }
end
-- random whole numbers in every spelling a panel uses
do
  local random = unit.random(7)
  for _ = 1, 60 do
    local n = random(2147483646) * 4194304 + random(4194304) -- up to 2^53 - 1
    local s = string.format("%.0f", n)
    for _, row in ipairs{ { s, n }, { n, n }, { s .. ".0", n }, { " " .. s .. " ", n }, { "-" .. s, -n },
                          { s .. ".5", AS_IS }, { s .. "e0", AS_IS } } do
      INTEGER[#INTEGER + 1] = row
    end
  end
end

-- id(): an order or refill id is a whole number from 1 to 2^53 - 1, or nil.
local ID = {
  { "157", 157 }, { 157, 157 }, { 157.0, 157 }, { "157.0", 157 }, { " 157 ", 157 }, { "0157", 157 },
  { 1, 1 }, { "1", 1 }, { MAX_ID, MAX_ID }, { "9007199254740991", MAX_ID },
  { 0, NIL }, { "0", NIL }, { -1, NIL }, { "-1", NIL }, { -0.0, NIL }, { 23501.5, NIL }, { "23501.5", NIL },
  { 2 ^ 53, NIL }, { 2 ^ 53 + 2, NIL }, { "9007199254740992", NIL }, { 1e20, NIL }, { "1e20", NIL },
  { 1e308, NIL }, { NAN, NIL }, { INF, NIL }, { -INF, NIL }, { true, NIL }, { false, NIL },
  { "abc", NIL }, { "", NIL }, { " ", NIL }, { "1e3", NIL }, { "0x10", NIL }, { null, NIL }, { nil, NIL },
  { {}, NIL }, { { 157 }, NIL }, { print, NIL },
}
if math.maxinteger then
  ID[#ID + 1] = { math.maxinteger, NIL }
  ID[#ID + 1] = { math.mininteger, NIL }
end

-- money(): the exact decimal string. A string that is a plain decimal is kept as written
-- (trailing zeros, leading zeros, a sign); e-notation becomes a plain decimal; a number becomes
-- the shortest decimal that reads back as it.
local MONEY = {
  { "0.90", "0.90" }, { "0.35", "0.35" }, { "8", "8" }, { "0", "0" }, { "100.84292", "100.84292" },
  { "0.27819", "0.27819" }, { "007.50", "007.50" }, { "1.000", "1.000" }, { "-0.35", "-0.35" },
  { "+0.35", "+0.35" }, { "-0", "-0" }, { ".5", ".5" }, { "5.", "5." }, { " 0.35 ", "0.35" },
  { "\t8\n", "8" }, { "123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789" },
  { "1e-7", "0.0000001" }, { "1E-7", "0.0000001" }, { "1.5e2", "150" }, { "1.50e1", "15" },
  { "-2.5e-3", "-0.0025" }, { "1e+2", "100" }, { "1e0", "1" }, { "0e0", "0" }, { "12.34e1", "123.4" },
  { "1.2345e-05", "0.000012345" }, { ".5e1", "5" }, { "5.e1", "50" }, { " 1e2 ", "100" },
  { "1e400", "1" .. string.rep("0", 400) }, { "1e-400", "0." .. string.rep("0", 399) .. "1" },
  -- no decimal: kept as the panel sent it (and money.parse refuses it, so it is never priced)
  { "1e401", AS_IS }, { "1e999999999", AS_IS }, { "e5", AS_IS }, { "1e", AS_IS }, { "1e+", AS_IS },
  { "1.2.3", AS_IS }, { "NaN", AS_IS }, { "Infinity", AS_IS }, { "inf", AS_IS }, { "0x1p4", AS_IS },
  { "1,5", AS_IS }, { "1 000", AS_IS }, { "$1.00", AS_IS }, { "1.00 USD", AS_IS }, { ".", AS_IS },
  { "-", AS_IS }, { "+", AS_IS }, { "--1", AS_IS }, { "1\0", AS_IS },
  { true, AS_IS }, { false, AS_IS },
  { "", NIL }, { "   ", NIL }, { null, NIL }, { nil, NIL },
  -- numbers
  { 0.35, "0.35" }, { 0.9, "0.9" }, { 8, "8" }, { 8.0, "8" }, { 0, "0" }, { -0.0, "0" }, { 1e-7, "0.0000001" },
  { 1.5e-5, "0.000015" }, { 100.84292, "100.84292" }, { -0.35, "-0.35" }, { -1e-7, "-0.0000001" },
  { 0.1 + 0.2, "0.30000000000000004" }, { 1 / 3, "0.3333333333333333" }, { 2 ^ 53, "9007199254740992" },
  { 2 ^ 53 + 2, "9007199254740994" }, { 1e20, "100000000000000000000" }, { 1e300, "1" .. string.rep("0", 300) },
  { 123456.789, "123456.789" }, { 0.27819, "0.27819" },
}
for _, v in ipairs{ {}, { "0.35" }, print } do MONEY[#MONEY + 1] = { v, AS_IS } end
-- NaN and the infinities are no money: a string (never a float) that no money function accepts
for _, v in ipairs{ NAN, INF, -INF } do
  MONEY[#MONEY + 1] = { v, function(got)
    assert.is_string(got)
    assert.is_false(money.is_decimal(got))
  end }
end
-- every plain decimal string, as it was written, stays; as a number it becomes its shortest
-- decimal (no trailing zeros); in e-notation its plain decimal
do
  local random = unit.random(11)
  for _ = 1, 80 do
    local digits = tostring(random(1000000000))
    local scale = random(10)
    local s = digits
    if scale > 0 then
      if #s <= scale then s = string.rep("0", scale - #s + 1) .. s end
      s = s:sub(1, #s - scale) .. "." .. s:sub(#s - scale + 1)
    end
    local shortest = s:find("%.") and s:gsub("0+$", ""):gsub("%.$", "") or s
    MONEY[#MONEY + 1] = { s, s }
    MONEY[#MONEY + 1] = { "-" .. s, "-" .. s }
    MONEY[#MONEY + 1] = { tonumber(s), shortest }
    MONEY[#MONEY + 1] = { -tonumber(s), shortest == "0" and "0" or "-" .. shortest }
    MONEY[#MONEY + 1] = { digits .. "e-" .. scale, shortest }
  end
  -- any double: a plain decimal string that reads back as the same double
  for _ = 1, 60 do
    local x = (random(2147483646) + 1) / (random(2147483646) + 1) * 10 ^ (random(40) - 20)
    MONEY[#MONEY + 1] = { x, function(got)
      assert.is_string(got)
      assert.truthy(got:find("^%d+%.?%d*$"), got)
      assert.equal(x, tonumber(got))
    end }
  end
end

-- boolean(): flags
local BOOLEAN = {
  { true, true }, { false, false }, { 1, true }, { 0, false }, { 2, true }, { -1, true }, { 0.0, false },
  { "1", true }, { "true", true }, { "yes", true }, { "on", true }, { " TRUE ", true }, { "Yes", true },
  { "ON", true }, { "0", false }, { "false", false }, { "no", false }, { "off", false }, { "", false },
  { "  ", false }, { "False", false }, { "NO", false }, { " off\n", false },
  { "maybe", AS_IS }, { "2", AS_IS }, { "-1", AS_IS }, { "y", AS_IS }, { "t", AS_IS }, { "truee", AS_IS },
  { "1.0", AS_IS }, { null, NIL }, { nil, NIL },
}
for _, v in ipairs{ {}, { true }, print } do BOOLEAN[#BOOLEAN + 1] = { v, AS_IS } end

-- Statuses: every spelling of the map in every case and separator, canonical ones as they are,
-- unknown ones passed through trimmed.
local ORDER = {
  pending = "Pending", awaiting = "Pending", queued = "Pending",
  ["in progress"] = "In progress", inprogress = "In progress", active = "In progress",
  processing = "Processing",
  completed = "Completed", complete = "Completed", done = "Completed",
  partial = "Partial", ["partially completed"] = "Partial",
  canceled = "Canceled", cancelled = "Canceled", cancel = "Canceled",
  refunded = "Refunded", refund = "Refunded",
}
local REFILL = {
  pending = "Pending", awaiting = "Awaiting", ["in progress"] = "In progress", inprogress = "In progress",
  processing = "Processing", processed = "Completed", completed = "Completed", complete = "Completed",
  rejected = "Rejected", failed = "Failed", error = "Failed", canceled = "Rejected", cancelled = "Rejected",
}

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function spellings(map)
  local rows = {}
  for _, s in ipairs(sorted_keys(map)) do
    local title = s:sub(1, 1):upper() .. s:sub(2)
    for _, v in ipairs{ s, s:upper(), title, " " .. s .. " ", "\t" .. title .. "\n", (s:gsub(" ", "_")),
                        (s:gsub(" ", "-")), (s:gsub(" ", "   ")), (s:upper():gsub(" ", "_")) } do
      rows[#rows + 1] = { v, map[s] }
    end
  end
  local canonical = {}
  for _, name in pairs(map) do canonical[name] = true end
  for _, name in ipairs(sorted_keys(canonical)) do rows[#rows + 1] = { name, name } end
  for _, row in ipairs{ { "Frozen", "Frozen" }, { "  Frozen ", "Frozen" }, { "On hold", "On hold" },
                        { "", "" }, { "   ", "" }, { 1, "1" }, { 0, "0" }, { 1.5, "1.5" }, { true, "true" },
                        { null, NIL }, { nil, NIL }, { {}, AS_IS }, { { status = "Completed" }, AS_IS } } do
    rows[#rows + 1] = row
  end
  return rows
end

local ORDER_STATUS, REFILL_STATUS = spellings(ORDER), spellings(REFILL)
table.insert(ORDER_STATUS, { "Awaiting", "Pending" })
table.insert(REFILL_STATUS, { "Awaiting", "Awaiting" })

-- is_final / is_refill_final: of a status string as any panel spells it, or of an entry
local function finals(map, final)
  local rows = {}
  for _, s in ipairs(sorted_keys(map)) do
    rows[#rows + 1] = { s, final[map[s]] == true }
    rows[#rows + 1] = { { status = s:upper() }, final[map[s]] == true }
  end
  for _, v in ipairs{ "Frozen", "", 1, true, false } do rows[#rows + 1] = { v, false } end
  rows[#rows + 1] = { null, false }
  rows[#rows + 1] = { nil, false }
  rows[#rows + 1] = { {}, false }
  return rows
end
local FINAL = finals(ORDER, { Completed = true, Partial = true, Canceled = true, Refunded = true })
local REFILL_FINAL = finals(REFILL, { Completed = true, Rejected = true, Failed = true })

-- is_error(): an `error` field that holds a real error
local IS_ERROR = {
  { null, false }, { nil, false }, { false, false }, { "", false }, { "   ", false }, { "\n\t", false },
  { 0, false }, { 0.0, false }, { "x", true }, { "Incorrect order ID", true }, { " x ", true }, { "0", true },
  { true, true }, { 1, true }, { -1, true }, { NAN, true }, { {}, true }, { { message = "x" }, true },
}

-- error_text(): what a per-id or whole-answer error says
local ERROR_TEXT = {
  { "Incorrect order ID", "Incorrect order ID" }, { { error = "Refill not found" }, "Refill not found" },
  { { error = { message = "nested" } }, "nested" }, { { error = 42 }, "42" }, { { error = 1.5 }, "1.5" },
  { { error = null }, "unknown error" }, { { error = { code = 1 } }, "unknown error" }, { {}, "unknown error" },
  { null, "unknown error" }, { nil, "unknown error" }, { 7, "7" }, { true, "true" }, { "", "" },
  { { error = { message = null } }, "unknown error" }, { { error = { message = { "x" } } }, "unknown error" },
}

-- number_to_decimal(): the shortest decimal that reads back as the same double
local NUMBER_TO_DECIMAL = {
  { 0.35, "0.35" }, { 1, "1" }, { 0, "0" }, { -0.0, "0" }, { -7, "-7" }, { 1e-7, "0.0000001" },
  { 1.2345e-05, "0.000012345" }, { 1e15, "1000000000000000" }, { 1e16, "10000000000000000" },
  { 1e21, "1000000000000000000000" }, { 2 ^ 63, "9223372036854776000" }, { 0.1, "0.1" },
  { 1.7976931348623157e308, "17976931348623157" .. string.rep("0", 292) },
}
-- the smallest double: a plain decimal that reads back as it
NUMBER_TO_DECIMAL[#NUMBER_TO_DECIMAL + 1] = { 5e-324, function(got)
  assert.truthy(got:find("^0%.0+[1-9]%d*$"), got)
  assert.equal(5e-324, tonumber(got))
end }

describe("normalize (unit)", function()
  describe("integer", function() unit.run(it, "integer", normalize.integer, INTEGER) end)
  describe("id", function() unit.run(it, "id", normalize.id, ID) end)
  describe("money", function() unit.run(it, "money", normalize.money, MONEY) end)
  describe("boolean", function() unit.run(it, "boolean", normalize.boolean, BOOLEAN) end)
  describe("order_status", function() unit.run(it, "order_status", normalize.order_status, ORDER_STATUS) end)
  describe("refill_status", function() unit.run(it, "refill_status", normalize.refill_status, REFILL_STATUS) end)
  describe("is_final", function() unit.run(it, "is_final", normalize.is_final, FINAL) end)
  describe("is_refill_final", function() unit.run(it, "is_refill_final", normalize.is_refill_final, REFILL_FINAL) end)
  describe("is_error", function() unit.run(it, "is_error", normalize.is_error, IS_ERROR) end)
  describe("error_text", function() unit.run(it, "error_text", normalize.error_text, ERROR_TEXT) end)
  describe("number_to_decimal", function() unit.run(it, "number_to_decimal", normalize.number_to_decimal, NUMBER_TO_DECIMAL) end)

  -- Whole records: one status entry, a multi-id answer, a service, a balance.
  local function deep(expected, got)
    assert.is_table(got)
    for k, v in pairs(expected) do unit.check(v, got[k], nil) end
    for k in pairs(got) do assert.is_true(expected[k] ~= nil, "unexpected field " .. tostring(k)) end
  end

  local ORDERS = {
    { { charge = "0.27819", start_count = "3572", status = "Partial", remains = "157", currency = "USD" },
      { charge = "0.27819", start_count = 3572, status = "Partial", remains = 157, currency = "USD" } },
    { { charge = 0.35, start_count = 3572.0, status = "cancelled", remains = "-5", currency = "EUR" },
      { charge = "0.35", start_count = 3572, status = "Canceled", remains = -5, currency = "EUR" } },
    { { charge = "1e-7", start_count = "", status = "IN_PROGRESS", remains = null, currency = null, error = null },
      { charge = "0.0000001", status = "In progress" } },
    { { charge = "0", status = "Completed", runs = "3", posts = 2.0, orders = { "10", 11, "12.0" }, error = "" },
      { charge = "0", status = "Completed", runs = 3, posts = 2, orders = { 10, 11, 12 } } },
    { { error = "Incorrect order ID", charge = "1" }, { error = "Incorrect order ID" } },
    { { error = { message = "gone" } }, { error = "gone" } },
    { { charge = null, status = null, start_count = true }, { start_count = true } },
    { { charge = NAN, status = 3, remains = 1.5 }, { charge = function(got) assert.is_false(money.is_decimal(got)) end,
      status = "3", remains = function(got) assert.equal(1.5, got) end } },
  }
  describe("order", function()
    for i, row in ipairs(ORDERS) do
      it("#" .. i, function()
        deep(row[2], normalize.order(row[1]))
      end)
    end
    for _, v in ipairs{ "x", 1, true } do
      it("leaves a non-table as it came: " .. unit.label(v), function() assert.equal(v, normalize.order(v)) end)
    end
  end)

  describe("orders", function()
    local ROWS = {
      { { ["1"] = { status = "Partial", charge = "0.1" }, ["10"] = { error = "Incorrect order ID" } },
        { [1] = { status = "Partial", charge = "0.1" }, [10] = { error = "Incorrect order ID" } } },
      { { ["23501"] = { status = "done" }, x = { status = "done" }, ["2"] = "not a record" },
        { [23501] = { status = "Completed" } } },
      { { { order = 5, status = "pending" }, { id = "6", status = "Queued" } },
        { [5] = { order = 5, status = "Pending" }, [6] = { id = "6", status = "Pending" } } },
      { { { status = "pending" } }, NIL },
      { { "x" }, NIL },
      { { { order = 0, status = "pending" } }, NIL },
      { "x", NIL }, { null, NIL }, { 1, NIL }, { {}, {} },
    }
    for i, row in ipairs(ROWS) do
      it("#" .. i, function()
        local got = normalize.orders(row[1])
        if row[2] == NIL then return assert.is_nil(got) end
        assert.is_table(got)
        local n = 0
        for id, entry in pairs(got) do
          n = n + 1
          assert.is_true(unit.is_integer(id), "an integer key, got " .. unit.label(id))
          local want = row[2][id]
          assert.is_table(want, "unexpected id " .. unit.label(id))
          for k, v in pairs(want) do
            assert.same(v, entry[k])
          end
        end
        local expected = 0
        for _ in pairs(row[2]) do expected = expected + 1 end
        assert.equal(expected, n)
      end)
    end
  end)

  describe("services", function()
    local ROWS = {
      { { service = "1", name = "Likes", type = "Default", category = "IG", rate = 0.9, min = "50", max = "10000",
          refill = "1", cancel = 0, dripfeed = null },
        { service = 1, name = "Likes", type = "Default", category = "IG", rate = "0.9", min = 50, max = 10000,
          refill = true, cancel = false } },
      { { service = 2, name = 42, rate = "8", min = 10.0, max = "1500.00", refill = false, cancel = "yes" },
        { service = 2, name = "42", rate = "8", min = 10, max = 1500, refill = false, cancel = true } },
      { { service = "3", rate = "1e999999999", min = "abc" },
        { service = 3, rate = "1e999999999", min = "abc" } },
    }
    for i, row in ipairs(ROWS) do
      it("#" .. i, function() deep(row[2], normalize.service(row[1])) end)
    end

    it("leaves out entries with no positive whole id, and what is no entry", function()
      local list = { { service = "1" }, { service = 0 }, { service = -1 }, { service = 1.5 }, { service = "x" },
                     "x", { service = null }, { service = true }, { service = 2 ^ 53 + 2 }, { service = "7" } }
      local got = normalize.services(list)
      assert.equal(2, #got)
      unit.check(1, got[1].service)
      unit.check(7, got[2].service)
    end)
  end)

  describe("balance", function()
    local ROWS = {
      { { balance = "100.84292", currency = "USD" }, { balance = "100.84292", currency = "USD" } },
      { { balance = 100.84292, currency = "USD" }, { balance = "100.84292", currency = "USD" } },
      { { balance = -3.5 }, { balance = "-3.5" } },
      { { balance = "1.5e3", currency = null }, { balance = "1500" } },
      { { balance = null }, {} },
      { { balance = 0 }, { balance = "0" } },
    }
    for i, row in ipairs(ROWS) do
      it("#" .. i, function() deep(row[2], normalize.balance(row[1])) end)
    end
  end)

  it("never returns a float where an integer or money is due", function()
    for _, v in ipairs{ 0.35, "0.35", 1e-7, 2 ^ 52 + 0.5, "157", 157.0 } do
      local m = normalize.money(v)
      assert.is_string(m)
      local n = normalize.integer(v)
      assert.is_true(n == v or unit.is_integer(n), unit.label(v))
    end
    assert.equal(int(3), normalize.integer(3.0))
  end)
end)
