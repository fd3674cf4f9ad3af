-- What each API action sends and how its answer is read, as operations:
--   { action = "status", requests = { fields, ... }, finish = function(outcomes) -> value, err,
--     [schema = ...], [gzip = true] }
-- gzip = true marks answers that can be large (a service list, the entries of 100 ids): only
-- those are worth asking compressed.
-- `outcomes[i]` is { json = ... } or { err = ... } for requests[i]. Building an operation checks
-- the caller's input first: a refusal is { err = err } and nothing is sent; an answer known
-- without the network (a cached service list) is { value = v }. The client runs operations
-- one at a time (client:status) or many together (client:batch).
local errors = require "smm.errors"
local normalize = require "smm.normalize"
local validate = require "smm.validate"
local retry = require "smm.retry"
local batch = require "smm.batch"
local price = require "smm.price"
local money = require "smm.money"

local M = {}

local function refused(err) return { err = err } end

local function shape_error(client, action, what)
  return nil, client:error{ kind = "decode", action = action, ambiguous = not retry.is_safe(action),
    message = "the answer has no " .. what }
end

-- The single-id forms answer one entry; a per-id error becomes the call's error.
local function single(client, action, entry)
  if type(entry) == "table" and normalize.is_error(entry.error) then
    local message = normalize.error_text(entry)
    local code = errors.api_code(message)
    return nil, client:error{ kind = "api", action = action, message = message, code = code,
      retryable = errors.api_retryable(code) }
  end
  return entry
end
M.single = single

-- An operation of one request whose answer `read(json, client, normalized)` turns into the
-- value. `schema` (optional) is handed to the transport (normalize.SERVICE_SCHEMA...);
-- `normalized` is true when the transport applied it. `gzip`: see the top of this file.
-- `read` is also kept on the operation, so that client:run can call it without building the
-- outcomes list for a single request.
local function one(client, action, fields, read, schema, gzip)
  return { action = action, requests = { fields }, schema = schema, read = read, gzip = gzip,
    finish = function(outcomes)
      local outcome = outcomes[1]
      if outcome.json == nil then return nil, outcome.err end
      return read(outcome.json, client, outcome.normalized)
    end }
end

-- Answers shaped [{"order": 1, "<value_name>": <value or {"error": ...}>}, ...] (refill, cancel,
-- refill_status), or keyed by id as some panels do.
local function entries_by_id(json, id_name, value_name, convert)
  if type(json) ~= "table" then return nil end
  local entries = {}
  local function put(id, value)
    id = normalize.integer(id)
    if type(id) ~= "number" then return end
    if type(value) == "table" and normalize.is_error(value.error) then
      entries[id] = { error = normalize.error_text(value) }
    else
      entries[id] = { [value_name] = convert(value) }
    end
  end
  if json[1] ~= nil then
    for _, item in ipairs(json) do
      if type(item) == "table" then
        if normalize.is_error(item.error) and item[value_name] == nil then
          local id = normalize.integer(item[id_name])
          if type(id) == "number" then entries[id] = { error = normalize.error_text(item) } end
        else
          put(item[id_name], item[value_name])
        end
      end
    end
  else
    for id, item in pairs(json) do
      put(id, type(item) == "table" and not normalize.is_error(item.error) and item[value_name] or item)
    end
  end
  return entries
end

-- A multi form over any number of ids: chunks of at most 100, merged into one table keyed by
-- id. A chunk that failed leaves its ids with { error =, kind = } entries and the value comes
-- with a second one: an error with partial = true and failed = { ids }. All failed: nil, err.
-- parse(json, normalized) reads one chunk's answer; `schema` goes to the transport with it.
local function multi(client, action, ids_field, ids, parse, schema)
  local chunks = batch.chunks(ids, batch.MAX_IDS)
  local requests = {}
  for i, chunk in ipairs(chunks) do requests[i] = { [ids_field] = batch.join(chunk) } end
  return { action = action, requests = requests, schema = schema, gzip = true, finish = function(outcomes)
    local merged, failed_ids, first_err = {}, {}, nil
    for i, chunk in ipairs(chunks) do
      local outcome, err = outcomes[i], nil
      if outcome.json ~= nil then
        local entries = parse(outcome.json, outcome.normalized)
        if entries then
          for _, id in ipairs(chunk) do
            local entry = entries[id] or { error = "the panel's answer has no entry for this id" }
            if type(entry.error) == "string" then entry.error = client:scrub(entry.error) end
            merged[id] = entry
          end
        else
          err = client:error{ kind = "decode", action = action, ambiguous = not retry.is_safe(action),
            message = "the answer does not have the shape of a multi-id " .. action .. " answer" }
        end
      else
        err = outcome.err
      end
      if err then
        first_err = first_err or err
        for _, id in ipairs(chunk) do
          merged[id] = { error = err.message, kind = err.kind, ambiguous = err.ambiguous or nil }
          failed_ids[#failed_ids + 1] = id
        end
      end
    end
    if not first_err then return merged end
    if #failed_ids == #ids then return nil, first_err end
    return merged, client:error{
      kind = first_err.kind, action = action, partial = true, failed = failed_ids,
      status = first_err.status, retryable = first_err.retryable, ambiguous = first_err.ambiguous,
      message = #failed_ids .. " of " .. #ids .. " ids failed: " .. first_err.message,
    }
  end }
end

-- Either form of an id-taking action: a table of ids (multi) or one id.
local function by_ids(client, ids, action, multi_field, single_field, parse_many, build_single,
                      schema)
  if type(ids) == "table" then
    local list, err = validate.ids(ids, multi_field, action)
    if not list then return refused(err) end
    return multi(client, action, multi_field, list, parse_many, schema)
  end
  local id, err = validate.id(ids, single_field, action)
  if not id then return refused(err) end
  return build_single(id)
end

function M.services(client, opts)
  opts = validate.options(opts, { "refresh" }, "client:services(opts)", 3)
  if not opts.refresh then
    local cached = client.catalog:get()
    if cached then return { value = cached } end
  end
  return one(client, "services", {}, function(json, _, normalized)
    if type(json) ~= "table" or (json[1] == nil and next(json) ~= nil) then
      return shape_error(client, "services", "service list")
    end
    local list = normalize.services(json, normalized)
    client.catalog:put(list)
    return list
  end, normalize.SERVICE_SCHEMA, true)
end

local function read_balance(json, client, normalized)
  if type(json) ~= "table" or json.balance == nil then return shape_error(client, "balance", "balance") end
  if normalized then return json end
  return normalize.balance(json)
end

-- balance takes no arguments, so its operation is the same every time: one per client, reused.
-- Nothing changes an operation once built, and client:send writes the same key and action into
-- its fields on every call. Weak keys and values: a cached operation (which refers to its
-- client) never keeps a client alive, also on Lua 5.1/LuaJIT, which have no ephemerons; the
-- fields (holding the key after the first call) are not reachable from the client table.
local balance_ops = setmetatable({}, { __mode = "kv" })

function M.balance(client)
  local op = balance_ops[client]
  if op == nil then
    op = one(client, "balance", {}, read_balance, normalize.BALANCE_SCHEMA)
    balance_ops[client] = op
  end
  return op
end

-- The exact price of checked `add` fields on service `s`, or nil, err: a field the price needs
-- is missing, or the panel's rate for the service is no exact decimal (a rate of "1e999999999",
-- NaN, an object): then the order cannot be priced, and is not placed under max_cost.
function M.price(client, s, fields, action)
  local total, field, problem = price.quote(s, fields)
  if total then return total end
  if field == "rate" then
    local rate = s.rate == nil and "no rate"
      or ("a rate of " .. validate.shown(s.rate) .. ", which " .. problem)
    return nil, client:error{ kind = "decode", action = action, field = "rate", service = s.service,
      message = "service " .. tostring(s.service) .. " cannot be priced: the panel's service list " ..
        "gives it " .. rate }
  end
  return nil, errors.invalid(field, "is required to price this order", action)
end

-- Before an `add` is sent: checked against its service when the list is at hand (or when
-- validate = true, by the client's option or the call's), and priced against max_cost.
function M.check_order(client, fields, max_cost, want)
  if max_cost ~= nil and not money.is_decimal(max_cost) then
    return nil, errors.invalid("max_cost", "must be a decimal amount like \"5.00\", got " ..
      validate.shown(max_cost), "add")
  end
  if want == nil then want = client.options.validate end
  local s
  if want == true or max_cost ~= nil then
    local err
    s, err = client:service(fields.service)
    if not s then return nil, err end
  elseif want == nil and client.catalog:get() then
    s = client.catalog:lookup(fields.service)
    if not s then
      return nil, errors.invalid("service", fields.service .. " is not in the panel's service list", "add")
    end
  end
  if s then
    local ok, err = validate.for_service(fields, s)
    if not ok then return nil, err end
  end
  if max_cost ~= nil then
    local total, err = M.price(client, s, fields, "add")
    if not total then return nil, err end
    if money.compare(total, max_cost) > 0 then
      return nil, client:error{ kind = "invalid", field = "max_cost", action = "add", price = total,
        message = "the order costs " .. total .. ", more than max_cost " .. money.format(max_cost) }
    end
  end
  return true
end

-- A value from an answer, short, for a message.
local function shown(v)
  local t = type(v)
  if t == "number" then return normalize.number_to_decimal(v) end
  if t == "string" then return ("%q"):format(#v > 40 and v:sub(1, 40) .. "..." or v) end
  if t == "boolean" then return tostring(v) end
  return "a JSON " .. (t == "table" and "object or array" or "null")
end

-- opts: the call's options (validate.ADD_OPTIONS), apart from the order's fields so that a
-- misspelled one cannot pass as a panel field and switch its guard off.
function M.add(client, order, opts)
  opts = validate.options(opts, validate.ADD_OPTIONS, "client:add(order, opts)", 3)
  if opts.validate ~= nil and type(opts.validate) ~= "boolean" then
    error("smm: client:add(order, opts): option 'validate' must be a boolean", 3)
  end
  local fields, err = validate.add(order)
  if not fields then return refused(err) end
  local ok
  ok, err = M.check_order(client, fields, opts.max_cost, opts.validate)
  if not ok then return refused(err) end
  -- Only a whole id from 1 to 2^53 - 1 is an order: any other value (23501.5, 0, -1, 1e20,
  -- true) says the panel did something, but not which order; whether the transport applied
  -- ADD_SCHEMA or not, the same check.
  return one(client, "add", fields, function(json)
    local raw = type(json) == "table" and json.order
    local id = raw and normalize.id(raw)
    if not id then
      return nil, client:error{ kind = "decode", action = "add", ambiguous = true,
        message = (raw == nil or normalize.integer(raw) == nil) and
          "the answer has no order id: the order may have been placed; check before retrying" or
          "the answer's order id is no order id (" .. shown(raw) ..
          "): the order may have been placed; check before retrying" }
    end
    json.order = id
    return json
  end, normalize.ADD_SCHEMA)
end

function M.status(client, ids)
  return by_ids(client, ids, "status", "orders", "order", normalize.orders, function(id)
    return one(client, "status", { order = id }, function(json, _, normalized)
      if type(json) ~= "table" or json.status == nil then return shape_error(client, "status", "status") end
      return normalize.order(json, normalized)
    end, normalize.ORDER_SCHEMA)
  end, normalize.STATUS_SCHEMA)
end

local function refill_id(v) return normalize.integer(v) end
local function refill_state(v) return normalize.refill_status(v) end
local function cancelled(v) return normalize.boolean(v) == true end

function M.refill(client, ids)
  return by_ids(client, ids, "refill", "orders", "order", function(json)
    return entries_by_id(json, "order", "refill", refill_id)
  end, function(id)
    return one(client, "refill", { order = id }, function(json)
      if type(json) ~= "table" or json.refill == nil then
        return shape_error(client, "refill", "refill id")
      end
      if type(json.refill) == "table" then return single(client, "refill", json.refill) end
      json.refill = normalize.integer(json.refill)
      return json
    end)
  end)
end

function M.refill_status(client, ids)
  return by_ids(client, ids, "refill_status", "refills", "refill", function(json)
    return entries_by_id(json, "refill", "status", refill_state)
  end, function(id)
    return one(client, "refill_status", { refill = id }, function(json)
      if type(json) ~= "table" or json.status == nil then
        return shape_error(client, "refill_status", "status")
      end
      if type(json.status) == "table" then return single(client, "refill_status", json.status) end
      json.status = normalize.refill_status(json.status)
      return json
    end)
  end)
end

-- The API has only the multi form; cancel(id) reads the one entry.
function M.cancel(client, ids)
  local function parse(json) return entries_by_id(json, "order", "cancel", cancelled) end
  return by_ids(client, ids, "cancel", "orders", "order", parse, function(id)
    local op = multi(client, "cancel", "orders", { id }, parse)
    local finish = op.finish
    op.finish = function(outcomes)
      local by_id, err = finish(outcomes)
      if not by_id then return nil, err end
      return single(client, "cancel", by_id[id])
    end
    return op
  end)
end

-- Any action; fields as given (lists of ids joined by commas); the answer as decoded.
function M.call(client, action, fields)
  if type(action) ~= "string" or not action:find("^[%a_][%w_]*$") then
    error("smm: client:call(action, fields): action must be a name like \"status\"", 3)
  end
  if fields ~= nil and type(fields) ~= "table" then
    error("smm: client:call(action, fields): fields must be a table", 3)
  end
  local clean = {}
  for name, value in pairs(fields or {}) do
    if type(name) ~= "string" or not name:find("^[%a_][%w_]*$") or name == "key" or name == "action" then
      return refused(errors.invalid(tostring(name), "cannot be sent as a field", action))
    end
    local t = type(value)
    if t == "table" then
      local list, err = validate.ids(value, name, action)
      if not list then return refused(err) end
      value = batch.join(list)
    elseif t == "boolean" then
      value = value and 1 or 0
    elseif t == "number" then
      if value ~= value or value == math.huge or value == -math.huge then
        return refused(errors.invalid(name, "must be a finite number", action))
      end
      value = normalize.integer(value)
      if type(value) == "number" and value ~= math.floor(value) then
        value = normalize.number_to_decimal(value)
      end
    elseif t == "string" then
      if value:find("\0", 1, true) then
        return refused(errors.invalid(name, "contains a NUL byte", action))
      end
      if #value > validate.MAX_FIELD_BYTES then
        return refused(errors.invalid(name, "is longer than " .. validate.MAX_FIELD_BYTES .. " bytes",
          action))
      end
    else
      return refused(errors.invalid(name, "must be a string or a number, got " .. t, action))
    end
    clean[name] = value
  end
  return one(client, action, clean, function(json) return json end, nil, true)
end

return M
