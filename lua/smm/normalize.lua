-- Turns what a panel answered into one shape, whatever the panel's habits:
--   ids and counts  -> Lua integers ("157" and 157 alike; whole floats on Lua 5.1/LuaJIT)
--   money           -> the exact decimal string ("0.35" and 0.35 alike, never 0.34999...)
--   flags           -> booleans (true, 1, "1", "true", "yes")
--   statuses        -> one spelling per state ("Cancelled", "canceled" -> "Canceled")
-- Answers are normalised in place: they are fresh tables from the transport.
local M = {}

local floor, huge = math.floor, math.huge
local type, tonumber, tostring = type, tonumber, tostring
local MAX_EXACT = 2 ^ 53

local tointeger = math.tointeger or function(x)
  if x == floor(x) and x > -MAX_EXACT and x < MAX_EXACT then return x end
  return nil
end

-- JSON null arrives as a light userdata from lua-cjson.
local function is_null(v)
  return v == nil or type(v) == "userdata"
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- "157" / 157 / 157.0 / "157.00" -> 157. Empty or null -> nil. Anything else is returned as
-- it came, rather than silently turned into a different number.
local find = string.find

local function integer(v)
  local t = type(v)
  -- the common case first: a short string of digits ("157"), exact in any Lua number
  if t == "string" and #v <= 15 and find(v, "^%-?%d+$") then return tointeger(tonumber(v)) end
  if t == "number" then
    if v ~= v or v == huge or v == -huge then return v end
    return tointeger(v) or v
  elseif t == "string" then
    local s = trim(v)
    if s == "" then return nil end
    local whole = s:match("^([+-]?%d+)$") or s:match("^([+-]?%d+)%.0*$")
    if whole then
      local n = tonumber(whole)
      if n and n > -MAX_EXACT and n < MAX_EXACT then return tointeger(n) end
    end
    return v
  elseif is_null(v) then
    return nil
  end
  return v
end
M.integer = integer

-- 1.2345e-05 -> "0.000012345": panels write money as plain decimals. nil when `s` is not a
-- decimal in e-notation, or its exponent is beyond what a double can hold (a 12-byte
-- "1e999999999" must not become a billion zeros).
local MAX_EXPONENT = 400

local function plain_decimal(s)
  local sign, int, frac, exp = s:match("^([+-]?)(%d*)%.?(%d*)[eE]([+-]?%d+)$")
  if not sign or (int == "" and frac == "") then return nil end
  exp = tonumber(exp)
  if not exp or exp > MAX_EXPONENT or exp < -MAX_EXPONENT then return nil end
  local digits = int .. frac
  local point = #int + exp
  local out
  if point <= 0 then
    out = "0." .. string.rep("0", -point) .. digits
  elseif point >= #digits then
    out = digits .. string.rep("0", point - #digits)
  else
    out = digits:sub(1, point) .. "." .. digits:sub(point + 1)
  end
  out = out:gsub("^0+(%d)", "%1")
  if out:find("%.") then out = out:gsub("0+$", ""):gsub("%.$", "") end
  return (sign == "-" and "-" or "") .. out
end

-- The shortest decimal that reads back as the same double: what the panel wrote.
local function number_to_decimal(x)
  local whole = tointeger(x)
  if whole then return string.format("%d", whole) end
  if x ~= x or x == huge or x == -huge then return tostring(x) end
  local s
  for precision = 15, 17 do
    s = string.format("%." .. precision .. "g", x)
    if tonumber(s) == x then break end
  end
  return plain_decimal(s) or s
end
M.number_to_decimal = number_to_decimal

local function money(v)
  local t = type(v)
  if t == "string" and find(v, "^%d+%.?%d*$") then return v end -- "0.90": already exact
  if t == "string" then
    local s = trim(v)
    if s == "" then return nil end
    if s:find("^[+-]?%d*%.?%d+$") or s:find("^[+-]?%d+%.$") then return s end
    return plain_decimal(s) or v
  elseif t == "number" then
    return number_to_decimal(v)
  elseif is_null(v) then
    return nil
  end
  return v
end
M.money = money

local TRUTHY = { ["1"] = true, ["true"] = true, ["yes"] = true, ["on"] = true }
local FALSY = { ["0"] = true, ["false"] = true, ["no"] = true, ["off"] = true, [""] = true }

local function boolean(v)
  local t = type(v)
  if t == "boolean" then return v end
  if t == "number" then return v ~= 0 end
  if t == "string" then
    local s = trim(v):lower()
    if TRUTHY[s] then return true end
    if FALSY[s] then return false end
    return v
  end
  if is_null(v) then return nil end
  return v
end
M.boolean = boolean

local function text(v)
  if is_null(v) then return nil end
  if type(v) == "number" then return number_to_decimal(v) end
  return v
end

-- Order states, one spelling each. The final ones never change again.
local ORDER_STATUS = {
  ["pending"] = "Pending", ["awaiting"] = "Pending", ["queued"] = "Pending",
  ["in progress"] = "In progress", ["inprogress"] = "In progress", ["active"] = "In progress",
  ["processing"] = "Processing",
  ["completed"] = "Completed", ["complete"] = "Completed", ["done"] = "Completed",
  ["partial"] = "Partial", ["partially completed"] = "Partial",
  ["canceled"] = "Canceled", ["cancelled"] = "Canceled", ["cancel"] = "Canceled",
  ["refunded"] = "Refunded", ["refund"] = "Refunded",
}
local FINAL_ORDER = { Completed = true, Partial = true, Canceled = true, Refunded = true }

local REFILL_STATUS = {
  ["pending"] = "Pending", ["awaiting"] = "Awaiting",
  ["in progress"] = "In progress", ["inprogress"] = "In progress",
  ["processing"] = "Processing", ["processed"] = "Completed",
  ["completed"] = "Completed", ["complete"] = "Completed",
  ["rejected"] = "Rejected", ["failed"] = "Failed", ["error"] = "Failed",
  ["canceled"] = "Rejected", ["cancelled"] = "Rejected",
}
local FINAL_REFILL = { Completed = true, Rejected = true, Failed = true }

local function canonical(map, exact, v)
  if exact[v] then return v end
  if is_null(v) then return nil end
  if type(v) == "table" then return v end -- not a status at all: left for the caller to see
  local s = trim(tostring(text(v)))
  local key = s:lower():gsub("[_%-]", " "):gsub("%s+", " ")
  return map[key] or s
end

-- The canonical spellings themselves, looked up before any string work.
local function spellings(map)
  local exact = {}
  for _, name in pairs(map) do exact[name] = true end
  return exact
end
local ORDER_EXACT, REFILL_EXACT = spellings(ORDER_STATUS), spellings(REFILL_STATUS)

function M.order_status(v) return canonical(ORDER_STATUS, ORDER_EXACT, v) end
function M.refill_status(v) return canonical(REFILL_STATUS, REFILL_EXACT, v) end

-- Accepts a status string as any panel spells it, or a status entry.
function M.is_final(status)
  if type(status) == "table" then status = status.status end
  return FINAL_ORDER[M.order_status(status)] == true
end

function M.is_refill_final(status)
  if type(status) == "table" then status = status.status end
  return FINAL_REFILL[M.refill_status(status)] == true
end

-- Is this `error` field a real error? Panels that always write the field fill it with null,
-- false, "" or 0 when there is none ({"order": 23501, "error": null}): that is no error.
local function is_error(v)
  if is_null(v) or v == false or v == 0 then return false end
  if type(v) == "string" then return find(v, "%S") ~= nil end
  return true
end
M.is_error = is_error

-- An order (or refill) id: a whole number from 1 to 2^53 - 1, however it was written ("157",
-- 157, 157.0). nil for anything else (23501.5, -1, 0, 1e20, true, "abc"): no order has that id.
local MAX_ID = MAX_EXACT - 1

function M.id(v)
  local n = integer(v)
  if type(n) ~= "number" or n < 1 or n > MAX_ID or n ~= floor(n) then return nil end
  return tointeger(n)
end

-- The text of a per-id or whole-answer error: {"error": "..."} or a bare string.
local function error_text(v)
  if type(v) == "table" then v = v.error end
  if type(v) == "table" then v = v.message end -- {"error": {"message": "..."}}, as some nest it
  if is_null(v) or type(v) == "table" then return "unknown error" end
  return tostring(text(v))
end
M.error_text = error_text

local function int_list(list)
  if type(list) ~= "table" then return integer(list) end
  for i = 1, #list do list[i] = integer(list[i]) end
  return list
end

local is_int = math.type and function(v) return math.type(v) == "integer" end or function(v)
  return type(v) == "number" and v == floor(v) and v > -MAX_EXACT and v < MAX_EXACT
end
local DECIMAL = "^%d+%.?%d*$"

-- The field types of a service entry, as a schema a transport may apply while it decodes (the
-- curl transport's C core does: see smm.core's request option `schema`; src/schema.c is the C
-- twin of integer(), money(), boolean() and text(): change a rule here, change it there). A
-- transport that did marks its result normalized = true, and M.services(list, true) then has
-- nothing left to do.
-- Read-only: it is shared by every request.
M.SERVICE_SCHEMA = {
  service = "integer", rate = "money", min = "integer", max = "integer",
  refill = "boolean", cancel = "boolean", dripfeed = "boolean",
  name = "text", type = "text", category = "text",
}

-- Per type: the converter, and the shape panels usually send, which needs no converting
-- (checked without a call to the converter, since lists of 10,000 services are common).
local TYPES = {
  integer = { integer, is_int },
  money = { money, function(v) return type(v) == "string" and find(v, DECIMAL) ~= nil end },
  boolean = { boolean, function(v) return v == nil or type(v) == "boolean" end },
  text = { text, function(v) return type(v) == "string" end },
}
local SERVICE_FIELDS = {}
for name, kind in pairs(M.SERVICE_SCHEMA) do
  SERVICE_FIELDS[#SERVICE_FIELDS + 1] = { name, TYPES[kind][1], TYPES[kind][2] }
end

-- One service entry, in place, by SERVICE_SCHEMA.
function M.service(s)
  if type(s) ~= "table" then return s end
  for i = 1, #SERVICE_FIELDS do
    local field = SERVICE_FIELDS[i]
    local name = field[1]
    local v = s[name]
    if not field[3](v) then s[name] = field[2](v) end
  end
  return s
end

-- A whole list. `normalized`: the transport already applied SERVICE_SCHEMA to each entry.
-- Entries that are no object or whose id is no id (see M.id: 1 to 2^53 - 1) are left out, whoever
-- normalised them: nothing can be ordered from them, and every later step (the index by id,
-- sorting, searching) may then rely on an entry being a table with an integer id.
function M.services(list, normalized)
  local kept = 0
  for i = 1, #list do
    local s = list[i]
    if not normalized then M.service(s) end
    local id = type(s) == "table" and s.service
    if type(id) == "number" and id >= 1 and id <= MAX_ID and is_int(id) then
      kept = kept + 1
      list[kept] = s
    end
  end
  for i = #list, kept + 1, -1 do list[i] = nil end
  return list
end

-- The fields of a status entry, as a schema: see SERVICE_SCHEMA. "by_id" (schema[1]) says that
-- the multi-id answer is an object keyed by order id, records being its values: a transport that
-- applies it also turns the keys into integers. ORDER_SCHEMA, "record", is the same for the
-- single-id answer, the record being the answer itself. The status itself stays for M.order:
-- its spellings are this file's business.
M.STATUS_SCHEMA = { "by_id" }
M.ORDER_SCHEMA = { "record" }
for name, kind in pairs{ charge = "money", start_count = "integer", remains = "integer",
                         currency = "text", runs = "integer", posts = "integer" } do
  M.STATUS_SCHEMA[name], M.ORDER_SCHEMA[name] = kind, kind
end

-- The answer to `balance` and to `add`, as "record" schemas (see ORDER_SCHEMA).
M.BALANCE_SCHEMA = { "record", balance = "money", currency = "text" }
M.ADD_SCHEMA = { "record", order = "integer" }

-- One order's status entry: { charge, start_count, status, remains, currency, [runs, orders] }.
-- `normalized`: the transport already applied STATUS_SCHEMA to it.
function M.order(entry, normalized)
  if type(entry) ~= "table" then return entry end
  if entry.error ~= nil then
    if is_error(entry.error) then return { error = error_text(entry) } end
    entry.error = nil
  end
  if not normalized then
    entry.charge = money(entry.charge)
    entry.start_count = integer(entry.start_count)
    entry.remains = integer(entry.remains)
    entry.currency = text(entry.currency)
    if entry.runs ~= nil then entry.runs = integer(entry.runs) end
    if entry.posts ~= nil then entry.posts = integer(entry.posts) end
  end
  local status = entry.status
  if not ORDER_EXACT[status] then entry.status = M.order_status(status) end
  if type(entry.orders) == "table" then int_list(entry.orders) end
  return entry
end

-- A multi-id status answer { ["23501"] = entry, ... } -> { [23501] = entry, ... }: records
-- keyed by integer id (what integer() reads in the key; other keys and values are left out),
-- each normalised by M.order. `normalized`: the transport applied STATUS_SCHEMA, so the records
-- are keyed by integer already and normalised in place (a transport never applies it to an
-- array). An array answer ([entry, ...]: numeric keys, which a decoded JSON object never has)
-- is read only when every element names its id (`order` or `id`): its positions are not ids.
-- nil when the answer has neither shape.
function M.orders(json, normalized)
  if type(json) ~= "table" then return nil end
  if normalized then
    for id, entry in pairs(json) do
      json[id] = type(entry) == "table" and type(id) == "number" and M.order(entry, true) or nil
    end
    return json
  end
  local entries = {}
  for key, entry in pairs(json) do
    local n
    if type(key) == "number" then
      if type(entry) ~= "table" then return nil end
      n = M.id(entry.order) or M.id(entry.id)
      if not n then return nil end
    else
      n = integer(key)
    end
    if type(n) == "number" and type(entry) == "table" then entries[n] = M.order(entry) end
  end
  return entries
end

-- A balance answer, in place (what BALANCE_SCHEMA does when the transport applies it).
function M.balance(b)
  b.balance = money(b.balance)
  b.currency = text(b.currency)
  return b
end

return M
