-- What each API action sends and how its answer is read, as operations:
--   { action = "status", requests = { fields, ... }, finish = function(outcomes) -> value, err,
--     [schema = ...], [gzip = true] }
-- gzip = true marks answers that can be large (a service list, the entries of 100 ids): only
-- those are worth asking compressed.
-- `outcomes[i]` is { json = ... } or { err = ... } for requests[i]. Building an operation checks
-- the caller's input first: a refusal is { err = err } and nothing is sent; an answer known
-- without the network (a cached service list) is { value = v }. The client runs operations
-- one at a time (client:status) or many together (client:batch).
--
-- Building never sends. An operation is built from a small context, not from the client:
--   ctx = { catalog = <services.cache>, secrets = <the client's scrub list (errors.new)>,
--           options = <the client's options>, dialect = <the panel's dialect (smm.dialect)> }
-- An `add` that must be checked against its service (validate = true, or max_cost) and has no
-- service at hand is { needs_service = id }: the client fetches the service (client:service)
-- and builds it again with the service as the last argument.
local errors = require "smm.errors"
local normalize = require "smm.normalize"
local validate = require "smm.validate"
local retry = require "smm.retry"
local batch = require "smm.batch"
local price = require "smm.price"
local money = require "smm.money"
local dialects = require "smm.dialect"

local M = {}

local function refused(err) return { err = err } end

local function shape_error(ctx, action, what)
  return nil, errors.new({ kind = "decode", action = action, ambiguous = not retry.is_safe(action),
    message = "the answer has no " .. what }, ctx.secrets)
end

-- The single-id forms answer one entry; a per-id error becomes the call's error.
-- An entry the answer does not prove (see entry_of) carries its kind: it becomes an error of
-- that kind, ambiguous as the entry says.
local function single(ctx, action, entry)
  if type(entry) == "table" and entry.kind and entry.error then
    return nil, errors.new({ kind = entry.kind, action = action, ambiguous = entry.ambiguous == true,
      message = entry.error }, ctx.secrets)
  end
  if type(entry) == "table" and normalize.is_error(entry.error) then
    return nil, errors.api(normalize.error_text(entry), { action = action }, ctx.secrets)
  end
  if type(entry) == "table" and entry.error ~= nil then entry.error = nil end -- null, "", false
  return entry
end
M.single = single

-- An operation of one request whose answer `read(json, ctx, normalized)` turns into the
-- value. `schema` (optional) is handed to the transport (normalize.SERVICE_SCHEMA...);
-- `normalized` is true when the transport applied it. `gzip`: see the top of this file.
-- `read` is also kept on the operation (with its `ctx`), so that client:run can call it without
-- building the outcomes list for a single request.
local function one(ctx, action, fields, read, schema, gzip)
  return { action = action, requests = { fields }, schema = schema, read = read, gzip = gzip, ctx = ctx,
    finish = function(outcomes)
      local outcome = outcomes[1]
      if outcome.json == nil then return nil, outcome.err end
      return read(outcome.json, ctx, outcome.normalized)
    end }
end

-- A value from an answer, short, for a message.
local function shown(v)
  local t = type(v)
  if t == "number" then return normalize.number_to_decimal(v) end
  if t == "string" then return ("%q"):format(#v > 40 and v:sub(1, 40) .. "..." or v) end
  if t == "boolean" then return tostring(v) end
  return "a JSON " .. (t == "table" and "object or array" or "null")
end

-- What an answer of a changing action that proves nothing leaves: the entry of an id whose
-- outcome is unknown (the refill or cancel may have been done).
local function unproven(action, why)
  return { error = why .. ": the " .. action .. " may have been done; check before retrying",
           kind = "decode", ambiguous = true }
end

-- One id's entry from its value in the answer. d: how the action's values are read (see
-- REFILLS and CANCEL below): d.value names the field, d.convert reads it, d.check (changing
-- actions) says whether what was read is an answer at all: one that is not (a refill id of
-- 1.5, a cancel of "maybe", {"error": null}) proves nothing and is ambiguous, as for add.
local function entry_of(d, action, value)
  if type(value) == "table" and normalize.is_error(value.error) then
    return { error = normalize.error_text(value) }
  end
  local v = d.convert(value)
  if d.check and not d.check(v) then
    return unproven(action, "the answer's " .. d.what .. " is no " .. d.what .. " (" .. shown(value) .. ")")
  end
  return { [d.value] = v }
end

-- Answers shaped [{"order": 1, "<value_name>": <value or {"error": ...}>}, ...] (refill, cancel,
-- refill_status), or keyed by id as some panels do.
local function entries_by_id(json, d, action)
  if type(json) ~= "table" then return nil end
  local entries = {}
  local id_name, value_name = d.one, d.value
  local function put(id, value)
    id = normalize.integer(id)
    if type(id) ~= "number" then return end
    entries[id] = entry_of(d, action, value)
  end
  if json[1] ~= nil then
    for _, item in ipairs(json) do
      if type(item) == "table" then
        local value = item[value_name]
        if normalize.is_error(item.error) and value == nil then
          local id = normalize.integer(item[id_name])
          if type(id) == "number" then entries[id] = { error = normalize.error_text(item) } end
        elseif d.check and normalize.is_error(item.error) and
            not (type(value) == "table" and normalize.is_error(value.error)) then
          -- a result and a real error at once: nothing certain (as answer.lua reads add's)
          local id = normalize.integer(item[id_name])
          if type(id) == "number" then
            entries[id] = unproven(action, "the answer gives both " .. shown(value) ..
              " and an error (" .. normalize.error_text(item) .. ")")
          end
        else
          put(item[id_name], value)
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
local function multi(ctx, action, ids_field, ids, parse, schema)
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
            local entry = entries[id]
            if not entry then
              -- for a changing action, silence about an id proves nothing about it
              entry = retry.is_safe(action) and { error = "the panel's answer has no entry for this id" }
                or unproven(action, "the panel's answer has no entry for this id")
            end
            if type(entry.error) == "string" then entry.error = errors.scrub(entry.error, ctx.secrets) end
            merged[id] = entry
          end
        else
          err = errors.new({ kind = "decode", action = action, ambiguous = not retry.is_safe(action),
            message = "the answer does not have the shape of a multi-id " .. action .. " answer" },
            ctx.secrets)
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
    return merged, errors.new({
      kind = first_err.kind, action = action, partial = true, failed = failed_ids,
      status = first_err.status, retryable = first_err.retryable, ambiguous = first_err.ambiguous,
      message = #failed_ids .. " of " .. #ids .. " ids failed: " .. first_err.message,
    }, ctx.secrets)
  end }
end

-- Either form of an id-taking action: a table of ids (multi) or one id.
local function by_ids(ctx, ids, action, multi_field, single_field, parse_many, build_single,
                      schema)
  if type(ids) == "table" then
    local list, err = validate.ids(ids, multi_field, action)
    if not list then return refused(err) end
    return multi(ctx, action, multi_field, list, parse_many, schema)
  end
  local id, err = validate.id(ids, single_field, action)
  if not id then return refused(err) end
  return build_single(id)
end

function M.services(ctx, opts)
  opts = validate.options(opts, { "refresh" }, "client:services(opts)", 3)
  if not opts.refresh then
    local cached = ctx.catalog:get()
    if cached then return { value = cached } end
  end
  return one(ctx, "services", {}, function(json, _, normalized)
    if type(json) ~= "table" or (json[1] == nil and next(json) ~= nil) then
      return shape_error(ctx, "services", "service list")
    end
    local d = ctx.dialect
    if d and d.service_field ~= "service" then -- records name their id otherwise ("package")
      dialects.adopt_services(json, d.service_field, normalized and normalize.integer)
    end
    local list = normalize.services(json, normalized)
    ctx.catalog:put(list)
    return list
  end, normalize.SERVICE_SCHEMA, true)
end

local function read_balance(json, ctx, normalized)
  if type(json) ~= "table" or json.balance == nil then return shape_error(ctx, "balance", "balance") end
  if normalized then return json end
  return normalize.balance(json)
end

-- balance takes no arguments, so its operation is the same every time: one per client (its
-- ctx), reused. Nothing changes an operation once built, and client:send writes the same key
-- and action into its fields on every call. Weak keys and values: a cached operation (which
-- refers to its ctx) never keeps a ctx alive, also on Lua 5.1/LuaJIT, which have no
-- ephemerons; the fields (holding the key after the first call) are not reachable from the
-- client table.
local balance_ops = setmetatable({}, { __mode = "kv" })

function M.balance(ctx)
  local op = balance_ops[ctx]
  if op == nil then
    op = one(ctx, "balance", {}, read_balance, normalize.BALANCE_SCHEMA)
    balance_ops[ctx] = op
  end
  return op
end

-- The exact price of checked `add` fields on service `s`, or nil, err: a field the price needs
-- is missing, or the panel's rate for the service is no exact decimal (a rate of "1e999999999",
-- NaN, an object): then the order cannot be priced, and is not placed under max_cost.
function M.price(ctx, s, fields, action)
  local total, field, problem = price.quote(s, fields)
  if total then return total end
  if field == "rate" then
    local rate = s.rate == nil and "no rate"
      or ("a rate of " .. validate.shown(s.rate) .. ", which " .. problem)
    return nil, errors.new({ kind = "decode", action = action, field = "rate", service = s.service,
      message = "service " .. tostring(s.service) .. " cannot be priced: the panel's service list " ..
        "gives it " .. rate }, ctx.secrets)
  end
  return nil, errors.invalid(field, "is required to price this order", action)
end

-- Before an `add` is sent: checked against its service `s` when it is at hand (the cached
-- list's, or the one the client fetched for this order), and priced against max_cost.
-- validate = true (the client's option or the call's) and max_cost need the service: without
-- it the answer is false, and the client fetches it (actions never send). -> true, or false,
-- or nil, err
function M.check_order(ctx, fields, max_cost, want, s)
  -- money is never a float: 0.01 as a Lua number is already 0.01000000000000000020816...
  if type(max_cost) == "number" then
    return nil, errors.invalid("max_cost", "must be a decimal string like \"0.01\", got the number " ..
      normalize.number_to_decimal(max_cost) .. " (pass it quoted: money is never a float)", "add")
  end
  if max_cost ~= nil and not money.is_decimal(max_cost) then
    return nil, errors.invalid("max_cost", "must be a decimal amount like \"5.00\", got " ..
      validate.shown(max_cost), "add")
  end
  if max_cost ~= nil and money.compare(max_cost, "0") < 0 then
    return nil, errors.invalid("max_cost", "must not be negative, got " .. validate.shown(max_cost), "add")
  end
  if want == nil then want = ctx.options.validate end
  if not s then
    if want == true or max_cost ~= nil then return false end
    if want == nil and ctx.catalog:get() then
      s = ctx.catalog:lookup(fields.service)
      if not s then
        return nil, errors.invalid("service", fields.service .. " is not in the panel's service list", "add")
      end
    end
  end
  if s then
    local ok, err = validate.for_service(fields, s)
    if not ok then return nil, err end
  end
  if max_cost ~= nil then
    local total, err = M.price(ctx, s, fields, "add")
    if not total then return nil, err end
    if money.compare(total, max_cost) > 0 then
      return nil, errors.new({ kind = "invalid", field = "max_cost", action = "add", price = total,
        message = "the order costs " .. total .. ", more than max_cost " .. money.format(max_cost) },
        ctx.secrets)
    end
  end
  return true
end

-- opts: the call's options (validate.ADD_OPTIONS), apart from the order's fields so that a
-- misspelled one cannot pass as a panel field and switch its guard off. s: the order's service,
-- when the client fetched it for this order (see { needs_service = id } at the top).
function M.add(ctx, order, opts, s)
  opts = validate.options(opts, validate.ADD_OPTIONS, "client:add(order, opts)", 3)
  if opts.validate ~= nil and type(opts.validate) ~= "boolean" then
    error("smm: client:add(order, opts): option 'validate' must be a boolean", 3)
  end
  if opts.route ~= nil and type(opts.route) ~= "table" then
    error("smm: client:add(order, opts): option 'route' must be a table (smm.router's choice)", 3)
  end
  local fields, err = validate.add(order)
  if not fields then return refused(err) end
  local ok
  ok, err = M.check_order(ctx, fields, opts.max_cost, opts.validate, s)
  if ok == false then return { needs_service = fields.service } end
  if not ok then return refused(err) end
  -- Only a whole id from 1 to 2^53 - 1 is an order: any other value (23501.5, 0, -1, 1e20,
  -- true) says the panel did something, but not which order; whether the transport applied
  -- ADD_SCHEMA or not, the same check.
  return one(ctx, "add", fields, function(json)
    local raw = type(json) == "table" and json.order
    local id = raw and normalize.id(raw)
    if not id then
      return nil, errors.new({ kind = "decode", action = "add", ambiguous = true,
        message = (raw == nil or normalize.integer(raw) == nil) and
          "the answer has no order id: the order may have been placed; check before retrying" or
          "the answer's order id is no order id (" .. shown(raw) ..
          "): the order may have been placed; check before retrying" }, ctx.secrets)
    end
    json.order = id
    return json
  end, normalize.ADD_SCHEMA)
end

function M.status(ctx, ids)
  return by_ids(ctx, ids, "status", "orders", "order", normalize.orders, function(id)
    return one(ctx, "status", { order = id }, function(json, _, normalized)
      if type(json) ~= "table" or json.status == nil then return shape_error(ctx, "status", "status") end
      return normalize.order(json, normalized)
    end, normalize.ORDER_SCHEMA)
  end, normalize.STATUS_SCHEMA)
end

-- refill and refill_status differ only in these names: the ids field of each form, the answer's
-- field holding the result, how it is read, what it is called, and (refill, which changes
-- something) what a real result is.
local REFILLS = {
  refill = { many = "orders", one = "order", value = "refill", convert = normalize.id,
             check = function(v) return v ~= nil end, what = "refill id" },
  refill_status = { many = "refills", one = "refill", value = "status",
                    convert = normalize.refill_status, what = "status" },
}

local function refills(ctx, action, ids)
  local d = REFILLS[action]
  return by_ids(ctx, ids, action, d.many, d.one, function(json)
    return entries_by_id(json, d, action)
  end, function(id)
    return one(ctx, action, { [d.one] = id }, function(json)
      if type(json) ~= "table" or json[d.value] == nil then return shape_error(ctx, action, d.what) end
      local value = json[d.value]
      if type(value) == "table" and not d.check then return single(ctx, action, value) end
      local entry, err = single(ctx, action, entry_of(d, action, value))
      if not entry then return nil, err end
      json[d.value] = entry[d.value]
      return json
    end)
  end)
end

function M.refill(ctx, ids) return refills(ctx, "refill", ids) end

function M.refill_status(ctx, ids) return refills(ctx, "refill_status", ids) end

-- A cancel answer is a flag per id (or an error): anything else proves nothing.
local CANCEL = { one = "order", value = "cancel", convert = normalize.boolean,
                 check = function(v) return type(v) == "boolean" end, what = "cancel flag" }

-- The API has only the multi form; cancel(id) reads the one entry.
function M.cancel(ctx, ids)
  local function parse(json) return entries_by_id(json, CANCEL, "cancel") end
  return by_ids(ctx, ids, "cancel", "orders", "order", parse, function(id)
    local op = multi(ctx, "cancel", "orders", { id }, parse)
    local finish = op.finish
    op.finish = function(outcomes)
      local by_id, err = finish(outcomes)
      if not by_id then return nil, err end
      return single(ctx, "cancel", by_id[id])
    end
    return op
  end)
end

-- Any action; fields as given (lists of ids joined by commas); the answer as decoded.
function M.call(ctx, action, fields)
  if type(action) ~= "string" or not action:find("^[%a_][%w_]*$") then
    error("smm: client:call(action, fields): action must be a name like \"status\"", 3)
  end
  if fields ~= nil and type(fields) ~= "table" then
    error("smm: client:call(action, fields): fields must be a table", 3)
  end
  local clean = {}
  for name, value in pairs(fields or {}) do
    if type(name) ~= "string" or not name:find("^[%a_][%w_]*$") or name == "key" or name == "action" or
        (ctx.dialect and name == ctx.dialect.key_field) then
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
  return one(ctx, action, clean, function(json) return json end, nil, true)
end

return M
