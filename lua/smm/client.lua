-- The client: one method per API action. Ids in, ids out; every answer normalised; every
-- failure returned as nil, err. It reaches the network only through its transport.
local errors = require "smm.errors"
local answer = require "smm.answer"
local normalize = require "smm.normalize"
local validate = require "smm.validate"
local retry = require "smm.retry"
local batch = require "smm.batch"
local options = require "smm.options"
local transports = require "smm.transport"
local services = require "smm.services"
local price = require "smm.price"
local money = require "smm.money"
local poll = require "smm.poll"

local M = {}

local Client = {}
Client.__index = Client
M.Client = Client

-- The API key lives here, not in the client table, so that printing or serialising a client
-- (inspect, pl.pretty, a debugger) can never show it.
local secrets = setmetatable({}, { __mode = "k" })

local IDEMPOTENT = { idempotent = true }
local CHANGES = { idempotent = false }
local format = string.format

local function id_string(id)
  return format("%d", id)
end

function M.new(opts)
  local o = options.check(opts)
  local transport = transports.open(o)
  local client = setmetatable({
    url = o.url,
    options = o.public,
    transport = transport,
    policy = retry.policy(o.public),
    concurrency = o.public.concurrency,
  }, Client)
  secrets[client] = o.key
  client.catalog = services.cache(o.public.services_ttl, function() return transport:now() end,
    o.public.shared_dict and transport.shared_store and transport:shared_store(o.public.shared_dict, o.url))
  if o.public.rate_limit then
    client.limiter = require("smm.ratelimit").new(o.public.rate_limit, transport)
  end
  return client
end

function Client:__tostring()
  return "smm.client: " .. options.printable_url(self.url) .. " (" .. (self.transport.name or "custom") .. ")"
end

function Client:close()
  if self.transport then
    self.transport:close()
  end
end
Client.__close = Client.close

function Client:error(fields)
  return errors.new(fields, secrets[self])
end

-- One request, retried as the action's policy allows. Returns the decoded answer or nil, err.
function Client:send(action, fields)
  local safe = retry.is_safe(action)
  local key = secrets[self]
  fields.key, fields.action = key, action
  local ctx = { action = action, idempotent = safe, secret = key }
  local attempt, waited = 1, 0
  while true do
    if self.limiter then self.limiter:take() end
    local result = self.transport:request(self.url, fields, safe and IDEMPOTENT or CHANGES)
    local json, err = answer.read(result, ctx)
    if json ~= nil then return json end
    err.attempts = attempt
    if not retry.may_retry(err, safe) then return nil, err end
    local wait = self.policy:delay(err, attempt, waited)
    if not wait then return nil, err end
    self.transport:sleep(wait)
    waited, attempt = waited + wait, attempt + 1
  end
end

-- Many independent requests of one action, in parallel; each retried as `send` would.
-- Returns an array of { json = ... } or { err = ... }, in the order of `list`.
function Client:send_many(action, list)
  local safe = retry.is_safe(action)
  local key = secrets[self]
  local ctx = { action = action, idempotent = safe, secret = key }
  for _, fields in ipairs(list) do fields.key, fields.action = key, action end
  local outcomes, pending = {}, {}
  for i = 1, #list do pending[i] = i end
  local attempt, waited = 1, 0
  while true do
    local sub = {}
    for i, index in ipairs(pending) do sub[i] = list[index] end
    if self.limiter then self.limiter:take(#sub) end
    local results = self.transport:request_many(self.url, sub,
      { idempotent = safe, concurrency = self.concurrency })
    local again, last_err = {}, nil
    for i, index in ipairs(pending) do
      local json, err = answer.read(results[i], ctx)
      if json ~= nil then
        outcomes[index] = { json = json }
      else
        err.attempts = attempt
        outcomes[index] = { err = err }
        if retry.may_retry(err, safe) then
          again[#again + 1] = index
          if not last_err or (err.retry_after or 0) > (last_err.retry_after or 0) then last_err = err end
        end
      end
    end
    if #again == 0 then return outcomes end
    local wait = self.policy:delay(last_err, attempt, waited)
    if not wait then return outcomes end
    self.transport:sleep(wait)
    waited, attempt, pending = waited + wait, attempt + 1, again
  end
end

-- An action's multi form over any number of ids: chunks of at most 100 sent in parallel,
-- merged into one table keyed by id. `parse(json, chunk)` maps a chunk's answer to entries.
-- A chunk that failed leaves its ids with { error = ... } entries; the second value then says
-- how many failed (nil when none did). All chunks failed: nil, err.
function Client:multi(action, ids_field, ids, parse)
  local chunks = batch.chunks(ids, batch.MAX_IDS)
  local list = {}
  for i, chunk in ipairs(chunks) do
    local parts = {}
    for j, id in ipairs(chunk) do parts[j] = id_string(id) end
    list[i] = { [ids_field] = table.concat(parts, ",") }
  end
  local outcomes = self:send_many(action, list)
  local merged, failed_ids, first_err = {}, {}, nil
  for i, chunk in ipairs(chunks) do
    local outcome, err = outcomes[i], nil
    if outcome.json ~= nil then
      local entries = parse(outcome.json)
      if entries then
        for _, id in ipairs(chunk) do
          merged[id] = entries[id] or { error = "the panel's answer has no entry for this id" }
        end
      else
        err = self:error{ kind = "decode", action = action, ambiguous = not retry.is_safe(action),
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
  return merged, self:error{
    kind = first_err.kind, action = action, partial = true, failed = failed_ids,
    status = first_err.status, retryable = first_err.retryable, ambiguous = first_err.ambiguous,
    message = #failed_ids .. " of " .. #ids .. " ids failed: " .. first_err.message,
  }
end

-- Answers shaped [{"order": 1, "<field>": <value or {"error": ...}>}, ...] (refill, cancel,
-- refill_status), or keyed by id like status answers on some panels.
local function entries_by_id(json, id_name, value_name, convert)
  if type(json) ~= "table" then return nil end
  local entries = {}
  local function add(id, value)
    id = normalize.integer(id)
    if id == nil then return end
    if type(value) == "table" and value.error ~= nil then
      entries[id] = { error = normalize.error_text(value) }
    else
      entries[id] = { [value_name] = convert(value) }
    end
  end
  if json[1] ~= nil then
    for _, item in ipairs(json) do
      if type(item) == "table" then
        if item.error ~= nil and item[value_name] == nil then
          local id = normalize.integer(item[id_name])
          if id then entries[id] = { error = normalize.error_text(item) } end
        else
          add(item[id_name], item[value_name])
        end
      end
    end
  else
    for id, item in pairs(json) do
      add(id, type(item) == "table" and item.error == nil and item[value_name] or item)
    end
  end
  return entries
end

local function status_entries(json)
  if type(json) ~= "table" then return nil end
  local entries = {}
  for id, entry in pairs(json) do
    local n = normalize.integer(id)
    if n ~= nil and type(entry) == "table" then entries[n] = normalize.order(entry) end
  end
  return entries
end

-- The single-id forms answer one entry; a per-id error becomes the call's error.
local function single(self, action, entry)
  if type(entry) == "table" and entry.error ~= nil then
    local message = normalize.error_text(entry)
    return nil, self:error{ kind = "api", action = action, message = message,
      code = errors.api_code(message), retryable = errors.api_retryable(errors.api_code(message)) }
  end
  return entry
end

local function shape_error(self, action, what)
  return nil, self:error{ kind = "decode", action = action, ambiguous = not retry.is_safe(action),
    message = "the answer has no " .. what }
end

-- syntax: list, err = client:services([{ refresh = true }])
-- The list is cached for `services_ttl` ms; refresh = true fetches it anew.
function Client:services(opts)
  if not (opts and opts.refresh) then
    local cached = self.catalog:get()
    if cached then return cached end
  end
  local json, err = self:send("services", {})
  if json == nil then return nil, err end
  if type(json) ~= "table" or (json[1] == nil and next(json) ~= nil) then
    return shape_error(self, "services", "service list")
  end
  local list = normalize.services(json)
  self.catalog:put(list)
  return list
end

-- syntax: service, err = client:service(id)
function Client:service(id)
  local n, err = validate.id(id, "service", "services")
  if not n then return nil, err end
  local list
  list, err = self:services()
  if not list then return nil, err end
  local s = self.catalog:lookup(n)
  if not s then
    return nil, self:error{ kind = "invalid", field = "service", action = "services",
      message = "'service' " .. n .. " is not in the panel's service list" }
  end
  return s
end

-- syntax: list, err = client:find_services{ search = "instagram", category = ..., type = ... }
function Client:find_services(filter)
  if filter ~= nil and type(filter) ~= "table" then
    error("smm: client:find_services(filter): filter must be a table", 2)
  end
  local list, err = self:services()
  if not list then return nil, err end
  return services.find(list, filter)
end

-- syntax: price, err = client:quote(service, quantity [, runs])   |   client:quote{ order fields }
-- The exact price as a decimal string: rate x quantity x runs / 1000, no floating point.
function Client:quote(service, quantity, runs)
  local order = service
  if type(service) ~= "table" then order = { service = service, quantity = quantity, runs = runs } end
  local fields, err = validate.add(Client.quote_fields(order), "quote")
  if not fields then return nil, err end
  local s
  s, err = self:service(fields.service)
  if not s then return nil, err end
  local total, missing = price.quote(s, fields)
  if not total then return nil, errors.invalid(missing, "is required to price this order", "quote") end
  return total
end

-- Fields for a quote: link and username are not needed to price an order.
function Client.quote_fields(order)
  local fields = {}
  for name, value in pairs(order) do fields[name] = value end
  if fields.link == nil and fields.username == nil then fields.link = "-" end
  if fields.runs ~= nil and fields.interval == nil then fields.interval = 1 end
  return fields
end

local function without(t, name)
  local copy = {}
  for k, v in pairs(t) do
    if k ~= name then copy[k] = v end
  end
  return copy
end

-- Before an `add` is sent: checked against its service when the list is at hand (or when
-- validate = true), and priced against max_cost.
function Client:check_order(fields, max_cost)
  local want = self.options.validate
  local s
  if want == true or max_cost ~= nil then
    local err
    s, err = self:service(fields.service)
    if not s then return nil, err end
  elseif want == nil and self.catalog:get() then
    s = self.catalog:lookup(fields.service)
    if not s then
      return nil, errors.invalid("service", fields.service .. " is not in the panel's service list")
    end
  end
  if s then
    local ok, err = validate.for_service(fields, s)
    if not ok then return nil, err end
  end
  if max_cost ~= nil then
    if not money.is_decimal(max_cost) then
      return nil, errors.invalid("max_cost", "must be a decimal amount like \"5.00\"")
    end
    local total, missing = price.quote(s, fields)
    if not total then return nil, errors.invalid(missing, "is required to price this order") end
    if money.compare(total, max_cost) > 0 then
      return nil, self:error{ kind = "invalid", field = "max_cost", action = "add", price = total,
        message = "the order costs " .. total .. ", more than max_cost " .. money.format(max_cost) }
    end
  end
  return true
end

-- syntax: by_id, err = client:wait(ids, { interval =, timeout =, grace =, on_update = })
--         entry, err = client:wait(id, opts)
-- Polls until every order is final (Completed, Partial, Canceled, Refunded).
function Client:wait(ids, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("smm: client:wait(ids, opts): opts must be a table", 2)
  end
  opts = opts or {}
  for _, name in ipairs{ "interval", "timeout", "grace" } do
    local v = opts[name]
    if v ~= nil and (type(v) ~= "number" or v < 0) then
      error("smm: client:wait: option '" .. name .. "' must be a non-negative number of milliseconds", 2)
    end
  end
  if opts.on_update ~= nil and type(opts.on_update) ~= "function" then
    error("smm: client:wait: option 'on_update' must be a function", 2)
  end
  if type(ids) == "table" then
    local list, err = validate.ids(ids, "orders", "wait")
    if not list then return nil, err end
    return poll.wait(self, list, opts)
  end
  local id, err = validate.id(ids, "order", "wait")
  if not id then return nil, err end
  local by_id
  by_id, err = poll.wait(self, { id }, opts)
  if not by_id then return nil, err end
  if by_id[id] and by_id[id].error ~= nil and not err then return single(self, "wait", by_id[id]) end
  return by_id[id], err
end

-- syntax: res, err = client:add{ service = 1, link = "...", quantity = 100, ... }
function Client:add(order)
  local max_cost
  if type(order) == "table" and order.max_cost ~= nil then
    max_cost = order.max_cost
    order = without(order, "max_cost")
  end
  local fields, err = validate.add(order)
  if not fields then return nil, err end
  local ok
  ok, err = self:check_order(fields, max_cost)
  if not ok then return nil, err end
  local json
  json, err = self:send("add", fields)
  if json == nil then return nil, err end
  local id = type(json) == "table" and normalize.integer(json.order)
  if type(id) ~= "number" then
    return nil, self:error{ kind = "decode", action = "add", ambiguous = true,
      message = "the answer has no order id: the order may have been placed; check before retrying" }
  end
  json.order = id
  return json
end

-- syntax: entry, err = client:status(id)   |   by_id, err = client:status{ id, ... }
function Client:status(ids)
  if type(ids) == "table" then
    local list, err = validate.ids(ids, "orders", "status")
    if not list then return nil, err end
    return self:multi("status", "orders", list, status_entries)
  end
  local id, err = validate.id(ids, "order", "status")
  if not id then return nil, err end
  local json
  json, err = self:send("status", { order = id })
  if json == nil then return nil, err end
  if type(json) ~= "table" or json.status == nil then return shape_error(self, "status", "status") end
  return normalize.order(json)
end

local function refill_id(v) return normalize.integer(v) end
local function refill_state(v) return normalize.refill_status(v) end
local function cancelled(v) return normalize.boolean(v) == true end

-- syntax: res, err = client:refill(id)   |   by_id, err = client:refill{ id, ... }
function Client:refill(ids)
  if type(ids) == "table" then
    local list, err = validate.ids(ids, "orders", "refill")
    if not list then return nil, err end
    return self:multi("refill", "orders", list, function(json)
      return entries_by_id(json, "order", "refill", refill_id)
    end)
  end
  local id, err = validate.id(ids, "order", "refill")
  if not id then return nil, err end
  local json
  json, err = self:send("refill", { order = id })
  if json == nil then return nil, err end
  if type(json) ~= "table" or json.refill == nil then return shape_error(self, "refill", "refill id") end
  if type(json.refill) == "table" then return single(self, "refill", json.refill) end
  json.refill = normalize.integer(json.refill)
  return json
end

-- syntax: res, err = client:refill_status(refill_id)   |   by_id, err = client:refill_status{ ... }
function Client:refill_status(ids)
  if type(ids) == "table" then
    local list, err = validate.ids(ids, "refills", "refill_status")
    if not list then return nil, err end
    return self:multi("refill_status", "refills", list, function(json)
      return entries_by_id(json, "refill", "status", refill_state)
    end)
  end
  local id, err = validate.id(ids, "refill", "refill_status")
  if not id then return nil, err end
  local json
  json, err = self:send("refill_status", { refill = id })
  if json == nil then return nil, err end
  if type(json) ~= "table" or json.status == nil then
    return shape_error(self, "refill_status", "status")
  end
  if type(json.status) == "table" then return single(self, "refill_status", json.status) end
  json.status = normalize.refill_status(json.status)
  return json
end

-- syntax: by_id, err = client:cancel{ id, ... }   |   res, err = client:cancel(id)
function Client:cancel(ids)
  local function parse(json) return entries_by_id(json, "order", "cancel", cancelled) end
  if type(ids) == "table" then
    local list, err = validate.ids(ids, "orders", "cancel")
    if not list then return nil, err end
    return self:multi("cancel", "orders", list, parse)
  end
  local id, err = validate.id(ids, "order", "cancel")
  if not id then return nil, err end
  local by_id
  by_id, err = self:multi("cancel", "orders", { id }, parse)
  if not by_id then return nil, err end
  return single(self, "cancel", by_id[id])
end

-- syntax: b, err = client:balance()
function Client:balance()
  local json, err = self:send("balance", {})
  if json == nil then return nil, err end
  if type(json) ~= "table" or json.balance == nil then return shape_error(self, "balance", "balance") end
  return normalize.balance(json)
end

-- syntax: answer, err = client:call(action, fields)   -- any action; the answer as decoded
function Client:call(action, fields)
  if type(action) ~= "string" or not action:find("^[%a_][%w_]*$") then
    error("smm: client:call(action, fields): action must be a name like \"status\"", 2)
  end
  if fields ~= nil and type(fields) ~= "table" then
    error("smm: client:call(action, fields): fields must be a table", 2)
  end
  local clean = {}
  for name, value in pairs(fields or {}) do
    if type(name) ~= "string" or name == "key" or name == "action" then
      return nil, errors.invalid(tostring(name), "cannot be sent as a field", action)
    end
    local t = type(value)
    if t == "table" then
      local ok, err = validate.ids(value, name, action)
      if not ok then return nil, err end
      local parts = {}
      for i, id in ipairs(ok) do parts[i] = id_string(id) end
      value = table.concat(parts, ",")
    elseif t == "boolean" then
      value = value and 1 or 0
    elseif t == "number" then
      local n = validate.non_negative(value, name, action) or normalize.number_to_decimal(value)
      value = n
    elseif t == "string" then
      if value:find("\0", 1, true) then return nil, errors.invalid(name, "contains a NUL byte", action) end
    else
      return nil, errors.invalid(name, "must be a string or a number, got " .. t, action)
    end
    clean[name] = value
  end
  return self:send(action, clean)
end

return M
