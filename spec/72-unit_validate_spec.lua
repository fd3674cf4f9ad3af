-- smm.validate, row by row: what a caller (or outside data: a CSV, a form) may give for each
-- field of an order or an id list, and either the clean value or an `invalid` error that names
-- the field and shows the value. Nothing here raises: only options() does, on API misuse.
local unit = require "helpers.unit"
local validate = require "smm.validate"
local null = require("cjson").null

local NAN, INF, MAX_ID = unit.NAN, unit.INF, unit.MAX_ID
local shown = validate.shown
local HUGE = string.rep("x", validate.MAX_FIELD_BYTES + 1)
local function fn() end

-- An expected refusal: the field it names, the start of what it says after the field, and what
-- it must show (by default the refused value as validate.shown writes it; false: nothing).
local Refusal = {}
local function no(field, text, shows)
  return setmetatable({ field = field, text = text, shows = shows }, Refusal)
end

local function ints_in(v)
  if type(v) == "number" then
    assert.is_true(unit.is_integer(v), "an integer, got " .. unit.label(v))
  elseif type(v) == "table" then
    for _, x in pairs(v) do ints_in(x) end
  end
end

-- rows: { input, expected }; check(input) -> value, err
local function run(name, check, rows)
  for i, row in ipairs(rows) do
    local input, want = row[1], row[2]
    it(string.format("#%d %s(%s)", i, name, unit.label(input)), function()
      local ok, got, err = pcall(check, input)
      assert.is_true(ok, "raised: " .. tostring(got))
      if getmetatable(want) == Refusal then
        assert.is_nil(got, "refused, got " .. unit.label(got))
        assert.is_table(err)
        assert.equal("invalid", err.kind)
        assert.equal(want.field, err.field)
        local head = "'" .. want.field .. "' " .. want.text
        assert.equal(head, err.message:sub(1, #head), err.message)
        local shows = want.shows
        if shows == nil then shows = "got " .. shown(input) end
        if shows then assert.truthy(err.message:find(shows, 1, true), err.message .. " shows " .. shows) end
      else
        assert.is_nil(err)
        if type(want) == "table" and want ~= unit.AS_IS then
          assert.same(want, got)
          ints_in(got)
        else
          unit.check(want, got, input)
        end
      end
    end)
  end
end

-- Inputs no whole number is spelled as.
local NOT_WHOLE = { 1.5, -0.5, "1.5", "1.0", "1e3", "1E3", "0x10", "", " ", "abc", "1 000", "1,000", "--1", "+-1",
  "\217\161", "5\0", true, false, {}, { 1 }, null, NAN, INF, -INF, 2 ^ 53, 2 ^ 53 + 2, -2 ^ 53, 1e20, 1e308,
  "9007199254740992", "-9007199254740992", "99999999999999999999", fn }
if math.maxinteger then
  NOT_WHOLE[#NOT_WHOLE + 1] = math.maxinteger
  NOT_WHOLE[#NOT_WHOLE + 1] = math.mininteger
end

local POSITIVE = {
  { 1, 1 }, { "1", 1 }, { " 1 ", 1 }, { "+1", 1 }, { "007", 7 }, { 1.0, 1 }, { MAX_ID, MAX_ID },
  { "9007199254740991", MAX_ID }, { 100, 100 }, { "100", 100 }, { "\t5\n", 5 },
  { 0, no("quantity", "must be positive", "got 0") }, { "0", no("quantity", "must be positive", "got 0") },
  { -0.0, no("quantity", "must be positive", "got 0") }, { "-0", no("quantity", "must be positive", "got 0") },
  { "+0", no("quantity", "must be positive", "got 0") }, { -1, no("quantity", "must be positive", "got -1") },
  { "-1", no("quantity", "must be positive", "got -1") },
  { -MAX_ID, no("quantity", "must be positive", "got -9007199254740991") },
  { nil, no("quantity", "must be a whole number", "got a nil") },
}
local NON_NEGATIVE = {
  { 0, 0 }, { "0", 0 }, { -0.0, 0 }, { "-0", 0 }, { 1, 1 }, { " 42 ", 42 }, { MAX_ID, MAX_ID },
  { -1, no("old_posts", "must be at least 0", "got -1") }, { "-7", no("old_posts", "must be at least 0", "got -7") },
}
for _, v in ipairs(NOT_WHOLE) do
  POSITIVE[#POSITIVE + 1] = { v, no("quantity", "must be a whole number") }
  NON_NEGATIVE[#NON_NEGATIVE + 1] = { v, no("old_posts", "must be a whole number") }
end
do
  local random = unit.random(3)
  for _ = 1, 50 do
    local n = random(2147483646) * 4194304 + random(4194304) + 1
    local s = string.format("%.0f", n)
    POSITIVE[#POSITIVE + 1] = { s, n }
    POSITIVE[#POSITIVE + 1] = { n, n }
    POSITIVE[#POSITIVE + 1] = { "-" .. s, no("quantity", "must be positive", "got -" .. s) }
    POSITIVE[#POSITIVE + 1] = { s .. ".5", no("quantity", "must be a whole number") }
    NON_NEGATIVE[#NON_NEGATIVE + 1] = { " " .. s, n }
  end
end

-- ids(list): a non-empty array of ids, duplicates dropped, order kept
local IDS = {
  { { 1 }, { 1 } }, { { "1", 2.0, " 3 " }, { 1, 2, 3 } }, { { 1, 1, 2, 1 }, { 1, 2 } }, { { 3, 2, 1 }, { 3, 2, 1 } },
  { { MAX_ID, "9007199254740991" }, { MAX_ID } },
  { "abc", no("ids", "must be an id or an array of ids") }, { 5, no("ids", "must be an id or an array of ids") },
  { nil, no("ids", "must be an id or an array of ids") }, { null, no("ids", "must be an id or an array of ids") },
  { true, no("ids", "must be an id or an array of ids") },
  { {}, no("ids", "must not be empty", false) }, { { x = 1 }, no("ids", "must not be empty", false) },
  { { 1, x = 2 }, no("ids", "must be an array of ids", false) },
  { { 1, nil, 3 }, no("ids", "must be an array of ids", false) },
  { { [2] = 1 }, no("ids", "must not be empty", false) },
  { { 0 }, no("ids[1]", "must be positive", "got 0") }, { { 1, -5 }, no("ids[2]", "must be positive", "got -5") },
}
for _, v in ipairs(NOT_WHOLE) do
  if v ~= nil then IDS[#IDS + 1] = { { 7, 8, v }, no("ids[3]", "must be a whole number", "got " .. shown(v)) } end
end
do
  local list, want, seen = {}, {}, {}
  local random = unit.random(17)
  for i = 1, 1000 do
    local id = random(500) + 1
    list[i] = i % 2 == 0 and tostring(id) or id
    if not seen[id] then seen[id], want[#want + 1] = true, id end
  end
  IDS[#IDS + 1] = { list, want }
  local bad = {}
  for i = 1, 1000 do bad[i] = i end
  bad[999] = "999x"
  IDS[#IDS + 1] = { bad, no("ids[999]", "must be a whole number", 'got "999x"') }
end

-- The field checkers of `add`, each by its own rows.
local F = validate.ADD_FIELDS

local TEXT = {
  { "https://x.test/p", "https://x.test/p" }, { "x", "x" }, { " x ", " x " }, { "é", "é" },
  { string.rep("y", validate.MAX_FIELD_BYTES), string.rep("y", validate.MAX_FIELD_BYTES) },
  { "", no("link", "must not be empty") }, { "   ", no("link", "must not be empty") },
  { "\n\t", no("link", "must not be empty") }, { "a\0b", no("link", "contains a NUL byte") },
  { HUGE, no("link", "is longer than 1048576 bytes", "got a string of 1048577 bytes") },
}
for _, v in ipairs{ 42, 1.5, true, false, {}, { "x" }, null, NAN, fn } do
  TEXT[#TEXT + 1] = { v, no("link", "must be a string") }
end
TEXT[#TEXT + 1] = { nil, no("link", "must be a string", "got a nil") }

local LINES = {
  { "a\nb", "a\nb" }, { "a", "a" }, { { "a", "b" }, "a\nb" }, { { "one line" }, "one line" },
  { { " a ", "b c" }, " a \nb c" },
  { "", no("comments", "must not be empty") }, { " \n ", no("comments", "must not be empty") },
  { {}, no("comments", "must not be empty", false) }, { { x = "a" }, no("comments", "must not be empty", false) },
  { { "a", x = "b" }, no("comments", "must be an array of lines", false) },
  { { "a", "" }, no("comments[2]", "must not be empty", 'got ""') },
  { { "a\nb" }, no("comments[1]", "must be one line", false) }, { { "a\rb" }, no("comments[1]", "must be one line", false) },
  { { "a", 5 }, no("comments[2]", "must be a string", "got 5") },
  { { "a", "b\0" }, no("comments[2]", "contains a NUL byte", false) },
  { { HUGE }, no("comments[1]", "is longer than", false) },
  { { string.rep("z", 600000), string.rep("z", 600000) }, no("comments", "is longer than", false) },
}
for _, v in ipairs{ 42, 1.5, true, false, null, NAN, fn } do
  LINES[#LINES + 1] = { v, no("comments", "must be a string or an array of lines") }
end

local DATES = {}
for _, s in ipairs{ "31/12/2026", "29/02/2024", "29/02/2000", "1/1/2026", "01/01/2026", "31/01/2026",
                    "30/04/2026", "28/02/2023", "31/03/2026", "30/06/2026", "31/07/2026", "31/08/2026",
                    "30/09/2026", "31/10/2026", "30/11/2026", "01/12/9999" } do
  DATES[#DATES + 1] = { s, s }
end
for _, s in ipairs{ "29/02/2023", "29/02/1900", "31/04/2026", "31/06/2026", "31/09/2026", "31/11/2026",
                    "30/02/2024", "00/01/2026", "32/01/2026", "01/13/2026", "01/00/2026", "2026-12-31",
                    " 31/12/2026", "31/12/2026 ", "31/12/26", "31.12.2026", "12/31/2026", "1/1/20266",
                    "001/01/2026", "x", "31/12/2026\0" } do
  DATES[#DATES + 1] = { s, no("expiry", s:find("%z") and "contains a NUL byte" or "must be a date as d/m/Y") }
end
DATES[#DATES + 1] = { "", no("expiry", "must not be empty") }
for _, v in ipairs{ 42, true, null, {} } do DATES[#DATES + 1] = { v, no("expiry", "must be a string") } end

local DELAYS = {}
for _, d in ipairs(validate.DELAYS) do
  DELAYS[#DELAYS + 1] = { d, d }
  DELAYS[#DELAYS + 1] = { tostring(d), d }
end
for _, d in ipairs{ 1, 7, 45, 601, 1000, 720 } do
  DELAYS[#DELAYS + 1] = { d, no("delay", "must be one of 0, 5, 10", "got " .. d) }
end
for _, v in ipairs{ -5, "-5" } do DELAYS[#DELAYS + 1] = { v, no("delay", "must be at least 0", "got -5") } end
for _, v in ipairs{ 1.5, "abc", true, NAN, null } do DELAYS[#DELAYS + 1] = { v, no("delay", "must be a whole number") } end

-- add(order): the whole order
local function order(extra, drop)
  local o = { service = 1, link = "https://x.test/p", quantity = 100 }
  for k, v in pairs(extra or {}) do o[k] = v end
  if drop then o[drop] = nil end
  return o
end
local CLEAN = order()

local ADD = {
  { order(), CLEAN }, { order{ service = "1", quantity = "100" }, CLEAN }, { order{ service = 1.0, quantity = " 100 " }, CLEAN },
  { order{ runs = 2, interval = "5" }, order{ runs = 2, interval = 5 } },
  { order{ comments = { "a", "b" } }, order{ comments = "a\nb" } },
  { order{ country = "US", device = 2.0, flag = true, off = false },
    order{ country = "US", device = 2, flag = 1, off = 0 } },
  { { service = 1, username = "u", min = 10, max = "20", delay = "30", expiry = "31/12/2026", posts = 5, old_posts = 0 },
    { service = 1, username = "u", min = 10, max = 20, delay = 30, expiry = "31/12/2026", posts = 5, old_posts = 0 } },
  { { service = 1, username = "u", min = 10, max = 10 }, { service = 1, username = "u", min = 10, max = 10 } },
  { "x", no("order", "must be a table of fields") }, { nil, no("order", "must be a table of fields") },
  { 42, no("order", "must be a table of fields") }, { null, no("order", "must be a table of fields") },
  { {}, no("service", "is required", false) }, { { service = 1 }, no("link", "is required", false) },
  { order(nil, "service"), no("service", "is required", false) },
  { order{ service = 0 }, no("service", "must be positive", "got 0") },
  { order{ service = 2 ^ 53 }, no("service", "must be a whole number", "got " .. shown(2 ^ 53)) },
  { order{ link = 42 }, no("link", "must be a string", "got 42") },
  { order{ link = "  " }, no("link", "must not be empty", 'got "  "') },
  { order{ quantity = 1.5 }, no("quantity", "must be a whole number", "got 1.5") },
  { order{ quantity = "abc" }, no("quantity", "must be a whole number", 'got "abc"') },
  { order{ [1] = "x" }, no("1", "is not a field name", false) },
  { order{ ["bad name"] = 1 }, no("bad name", "is not a field name", false) },
  { order{ [true] = 1 }, no("true", "is not a field name", false) },
  { order{ key = "k" }, no("key", "is set by the client", false) },
  { order{ action = "add" }, no("action", "is set by the client", false) },
  { order{ max_cost = "5" }, no("max_cost", "is an option of client:add", '"5"') },
  { order{ validate = false }, no("validate", "is an option of client:add", "false") },
  { order{ quantiy = 100 }, no("quantiy", "= 100 looks like a misspelling: did you mean 'quantity'", false) },
  { order{ Quantity = 100 }, no("Quantity", "= 100 looks like a misspelling: did you mean 'quantity'", false) },
  { order{ max_costs = "5" }, no("max_costs", '= "5" looks like a misspelling: did you mean \'max_cost\'', false) },
  { order{ runs = 2 }, no("interval", "is required for a drip-feed order", false) },
  { order{ interval = 2 }, no("runs", "is required for a drip-feed order", false) },
  { order{ runs = 0, interval = 5 }, no("runs", "must be positive", "got 0") },
  { { service = 1, username = "u", min = 20, max = 10 }, no("min", "must not be greater than max (10)", "got 20") },
  { { service = 1, username = "u", min = 10 }, no("max", "is required for a subscription", false) },
  { { service = 1, username = "u", max = 10 }, no("min", "is required for a subscription", false) },
  { { service = 1, username = "u", min = 10, max = 20, delay = 7 }, no("delay", "must be one of", "got 7") },
  { { service = 1, username = "u", min = 10, max = 20, expiry = "30/02/2026" }, no("expiry", "must be a date", '"30/02/2026"') },
  { order{ comments = {} }, no("comments", "must not be empty", false) },
  { order{ country = {} }, no("country", "must be a string or a number", "got a table") },
  { order{ country = 1.5 }, no("country", "must be a string or a whole number", "got 1.5") },
  { order{ country = NAN }, no("country", "must be a string or a whole number", "got " .. shown(NAN)) },
  { order{ country = 2 ^ 53 }, no("country", "must be a string or a whole number", "got " .. shown(2 ^ 53)) },
  { order{ country = "a\0" }, no("country", "contains a NUL byte", "got " .. shown("a\0")) },
  { order{ country = HUGE }, no("country", "is longer than", "got a string of 1048577 bytes") },
  { order{ country = fn }, no("country", "must be a string or a number", "got a function") },
}
-- every known field refuses what it cannot be
for _, name in ipairs{ "service", "quantity", "runs", "interval", "min", "max", "posts", "answer_number" } do
  for _, v in ipairs{ "abc", 1.5, true, {}, NAN, INF, 2 ^ 53 + 2 } do
    ADD[#ADD + 1] = { order{ [name] = v }, no(name, "must be a whole number", "got " .. shown(v)) }
  end
  for _, v in ipairs{ 0, -1, "0", "-3" } do
    ADD[#ADD + 1] = { order{ [name] = v }, no(name, "must be positive", "got " .. tostring(tonumber(v))) }
  end
end
for _, name in ipairs{ "link", "username" } do
  for _, v in ipairs{ 42, true, {}, NAN } do
    ADD[#ADD + 1] = { order{ [name] = v }, no(name, "must be a string", "got " .. shown(v)) }
  end
end

-- Against a service: required fields, fields of other kinds, bounds, drip-feed
local DEFAULT = { service = 1, type = "Default", min = 50, max = 10000, dripfeed = false }
local COMMENTS = { service = 2, type = "Custom Comments", min = 1, max = 3 }
local SUBSCRIPTION = { service = 3, type = "Subscriptions", min = 10, max = 100 }
local FOR_SERVICE = {
  { { order(), DEFAULT }, CLEAN }, { { order{ quantity = 50 }, DEFAULT }, order{ quantity = 50 } },
  { { order{ quantity = 10000 }, DEFAULT }, order{ quantity = 10000 } },
  { { order{ quantity = 49 }, DEFAULT }, no("quantity", "is 49, below the minimum 50 of service 1 (Default)", false) },
  { { order{ quantity = 10001 }, DEFAULT }, no("quantity", "is 10001, above the maximum 10000", false) },
  { { order{ runs = 2, interval = 5 }, DEFAULT }, no("runs", "drip-feed is not offered by service 1", false) },
  { { order(nil, "quantity"), DEFAULT }, no("quantity", "is required by service 1 (Default)", false) },
  { { order{ comments = "a" }, DEFAULT }, no("comments", "is not used by service 1 (Default)", false) },
  { { order({ comments = "a\nb" }, "quantity"), COMMENTS }, order({ comments = "a\nb" }, "quantity") },
  { { order{ comments = "a\nb", quantity = 2 }, COMMENTS }, order{ comments = "a\nb", quantity = 2 } },
  { { order{ comments = "a\nb", quantity = 3 }, COMMENTS }, no("quantity", "must equal the number of comments lines (2)",
    "got 3") },
  { { order({ comments = "a\nb\nc\nd" }, "quantity"), COMMENTS }, no("comments", "is 4, above the maximum 3", false) },
  { { { service = 3, username = "u", min = 10, max = 100 }, SUBSCRIPTION },
    { service = 3, username = "u", min = 10, max = 100 } },
  { { { service = 3, username = "u", min = 5, max = 100 }, SUBSCRIPTION }, no("min", "is 5, below the minimum 10", false) },
  { { { service = 3, username = "u", min = 10, max = 101 }, SUBSCRIPTION }, no("max", "is 101, above the maximum 100", false) },
}

local SHOWN = {
  { "abc", '"abc"' }, { "", '""' }, { 42, "42" }, { -7, "-7" }, { 1.5, "1.5" }, { true, "true" }, { false, "false" },
  { {}, "a table" }, { nil, "a nil" }, { null, "a userdata" }, { fn, "a function" },
  { string.rep("k", 64), '"' .. string.rep("k", 64) .. '"' }, { string.rep("k", 65), "a string of 65 bytes" },
  { HUGE, "a string of 1048577 bytes" }, { "a\nb", '"a\\nb"' }, { 'a"b', '"a\\"b"' },
}

local KNOWN = { "link", "quantity", "service", "max_cost", "validate", "interval", "username", "usernames" }
local DID_YOU_MEAN = {
  { "quantiy", "quantity" }, { "Quantity", "quantity" }, { "qunatity", "quantity" }, { "QUANTITY", "quantity" },
  { "serivce", "service" }, { "servcie", "service" }, { "lnk", "link" }, { "linkk", "link" },
  { "max_costs", "max_cost" }, { "maxcost", "max_cost" }, { "valdiate", "validate" }, { "intervall", "interval" },
  { "usrname", "username" }, { "usernamess", "usernames" },
  { "lang", unit.NIL }, { "device", unit.NIL }, { "xyz", unit.NIL }, { "country", unit.NIL }, { "", unit.NIL },
  { "quantity", unit.NIL }, { 42, unit.NIL }, { nil, unit.NIL }, { true, unit.NIL }, { {}, unit.NIL },
}

local COUNT_LINES = {
  { "a\nb", 2 }, { "a\r\nb", 2 }, { "a\n\nb", 2 }, { "  \n a", 1 }, { "", 0 }, { "a", 1 }, { "\n\n", 0 },
  { "a\rb\rc", 3 }, { " \t \n", 0 }, { "a\n", 1 },
}

describe("validate (unit)", function()
  describe("positive", function()
    run("positive", function(v) return validate.positive(v, "quantity") end, POSITIVE)
  end)
  describe("non_negative", function()
    run("non_negative", function(v) return validate.non_negative(v, "old_posts") end, NON_NEGATIVE)
  end)
  describe("id", function()
    run("id", function(v) return validate.id(v, "id") end, {
      { 157, 157 }, { "157", 157 }, { 0, no("id", "must be positive", "got 0") },
      { "x", no("id", "must be a whole number") }, { 2 ^ 53, no("id", "must be a whole number") } })
  end)
  describe("ids", function() run("ids", function(v) return validate.ids(v, "ids") end, IDS) end)
  describe("text", function() run("link", function(v) return F.link(v, "link") end, TEXT) end)
  describe("lines", function() run("comments", function(v) return F.comments(v, "comments") end, LINES) end)
  describe("date", function() run("expiry", function(v) return F.expiry(v, "expiry") end, DATES) end)
  describe("delay", function() run("delay", function(v) return F.delay(v, "delay") end, DELAYS) end)
  describe("add", function() run("add", validate.add, ADD) end)
  describe("for_service", function()
    run("for_service", function(pair)
      local clean, err = validate.add(pair[1])
      if not clean then return nil, err end
      return validate.for_service(clean, pair[2])
    end, FOR_SERVICE)
  end)
  describe("shown", function() unit.run(it, "shown", validate.shown, SHOWN) end)
  describe("did_you_mean", function()
    unit.run(it, "did_you_mean", function(name) return validate.did_you_mean(name, KNOWN) end, DID_YOU_MEAN)
  end)
  describe("count_lines", function() unit.run(it, "count_lines", validate.count_lines, COUNT_LINES) end)

  it("shows NaN as NaN", function()
    assert.truthy(shown(NAN):lower():find("nan"))
  end)

  it("names the action when given one", function()
    local _, err = validate.positive("x", "quantity", "add")
    assert.equal("add", err.action)
    assert.truthy(tostring(err):find("(add)", 1, true))
  end)

  describe("options (API misuse raises)", function()
    local ROWS = {
      { { refresh = true }, true }, { {}, true }, { nil, true },
      { { refesh = true }, "unknown option 'refesh' (did you mean 'refresh'?)" },
      { { zzz = 1 }, "unknown option 'zzz' (known: refresh)" },
      { "x", "opts must be a table" }, { 1, "opts must be a table" },
    }
    for i, row in ipairs(ROWS) do
      it("#" .. i .. " options(" .. unit.label(row[1]) .. ")", function()
        local ok, res = pcall(validate.options, row[1], { "refresh" }, "services", 1)
        if row[2] == true then
          assert.is_true(ok)
          assert.is_table(res)
        else
          assert.is_false(ok)
          assert.truthy(tostring(res):find(row[2], 1, true), tostring(res))
        end
      end)
    end
  end)
end)
