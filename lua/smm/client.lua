-- The client: one method per API action. Ids in, ids out; every answer normalised; every
-- failure returned as nil, err. It reaches the network only through its transport.
local errors = require "smm.errors"
local answer = require "smm.answer"
local validate = require "smm.validate"
local retry = require "smm.retry"
local actions = require "smm.actions"
local options = require "smm.options"
local transports = require "smm.transport"
local services = require "smm.services"
local poll = require "smm.poll"

local M = {}

local Client = {}
Client.__index = Client
M.Client = Client

-- The API key lives here, not in the client table, so that printing or serialising a client
-- (inspect, pl.pretty, a debugger) can never show it.
local secrets = setmetatable({}, { __mode = "k" })
-- Likewise the URL as given (user:password@, ?key=...: the client table has a printable copy)
-- and the list of everything errors are scrubbed of (options.secrets).
local real_urls = setmetatable({}, { __mode = "k" })
local scrub_lists = setmetatable({}, { __mode = "k" })
-- Per-action reading contexts (they hold the key too, for scrubbing), made once per client.
local contexts = setmetatable({}, { __mode = "k" })


-- What smm.actions builds operations from (see the top of actions.lua), per client: its
-- service list, what errors are scrubbed of, its options. Kept off the client table: the
-- scrub list holds the key.
local builders = setmetatable({}, { __mode = "k" })

function M.new(opts)
  local o = options.check(opts)
  local transport = transports.open(o)
  -- the transport has what it needs of the proxy URL; the client table keeps a printable one
  o.public.proxy = options.printable_url(o.public.proxy)
  local client = setmetatable({
    url = options.printable_url(o.url),
    options = o.public,
    transport = transport,
    policy = retry.policy(o.public),
    concurrency = o.public.concurrency,
    book = o.public.book,
  }, Client)
  secrets[client] = o.key
  real_urls[client] = o.url
  scrub_lists[client] = o.secrets
  contexts[client] = {}
  -- the shared list is per account (url and key): panels price per account
  client.catalog = services.cache(o.public.services_ttl, function() return client:now() end,
    o.public.shared_dict and services.shared_store(o.public.shared_dict, o.url, o.key))
  builders[client] = { catalog = client.catalog, secrets = o.secrets, options = o.public }
  if o.public.rate_limit then
    client.limiter = require("smm.ratelimit").new(o.public.rate_limit, client)
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

-- The client's clock (ms) and sleep, which are its transport's: retries, client:wait and the
-- rate limiter keep time with them (inside nginx, sleeping must yield).
function Client:now() return self.transport:now() end
function Client:sleep(ms) return self.transport:sleep(ms) end

function Client:error(fields)
  return errors.new(fields, scrub_lists[self])
end

-- Text from the panel, without the key or the URL's credentials (some panels echo what they
-- were sent).
function Client:scrub(text)
  return errors.scrub(text, scrub_lists[self])
end

-- How answers to `action` are read for this client (answer.read's ctx: the action, whether it
-- is safe to repeat, what to scrub; and the key and URL to send), made once per client and
-- action. It also keeps the transport options its last single request used (ctx.ropts), since
-- they rarely change.
local function context(client, action)
  local cache = contexts[client]
  local ctx = cache[action]
  if not ctx then
    ctx = { action = action, idempotent = retry.is_safe(action), secret = scrub_lists[client],
            key = secrets[client], url = real_urls[client] }
    cache[action] = ctx
  end
  return ctx
end

-- One attempt of `send` (see retry's Policy:run).
local function attempt_one(attempt, client, ctx, fields)
  if client.limiter then client.limiter:take() end
  local json, normalized = answer.read(client.transport:request(ctx.url, fields, ctx.ropts), ctx)
  if json ~= nil then return json, normalized end
  local err = normalized -- a failed read's second value is the error
  err.attempts = attempt
  if retry.may_retry(err, ctx.idempotent) then return nil, err, err end
  return nil, err
end

-- One request, retried as the action's policy allows. Returns json, normalized (true when the
-- transport applied the schema, see normalize.SERVICE_SCHEMA) or nil, err.
-- gzip: ask for a compressed answer (smm.actions).
function Client:send(action, fields, schema, gzip)
  local ctx = contexts[self][action] or context(self, action)
  fields.key, fields.action = ctx.key, action
  local ropts = ctx.ropts
  if not ropts or ropts.schema ~= schema or ropts.gzip ~= gzip then
    ctx.ropts = { idempotent = ctx.idempotent, schema = schema, gzip = gzip }
  end
  return self.policy:run(self, attempt_one, self, ctx, fields)
end

-- One attempt of a round of `exchange`: the round's pending items in parallel. Those that may
-- be retried become the round's pending ones; the one asking the longest wait decides it.
local function attempt_round(attempt, client, items, round)
  local pending, outcomes = round.pending, round.outcomes
  local sub, schemas = {}, {}
  for i, index in ipairs(pending) do
    sub[i], schemas[i] = items[index].fields, items[index].schema or false
  end
  local ropts = { idempotent = round.idempotent, concurrency = client.concurrency, schemas = schemas,
                  gzip = round.gzip }
  if client.limiter then client.limiter:take(#sub) end
  local results = client.transport:request_many(real_urls[client], sub, ropts)
  local again, last_err = {}, nil
  for i, index in ipairs(pending) do
    local ctx = items[index].ctx
    local json, normalized = answer.read(results[i], ctx)
    if json ~= nil then
      outcomes[index] = { json = json, normalized = normalized }
    else
      local err = normalized -- a failed read's second value is the error
      err.attempts = attempt
      outcomes[index] = { err = err }
      if retry.may_retry(err, ctx.idempotent) then
        again[#again + 1] = index
        if not last_err or (err.retry_after or 0) > (last_err.retry_after or 0) then last_err = err end
      end
    end
  end
  round.pending = again
  return nil, nil, last_err
end

-- Requests of any actions, in parallel; each retried as `send` would. items[i] is
-- { action = ..., fields = ..., [schema = ...], [gzip = true] }. Returns { json = ...,
-- normalized = ... } or { err = ... } for each, in order. Reading and changing actions go out
-- in separate parallel rounds, since only the changing ones must never travel on a reused
-- connection. A round asks for compressed answers when any of its items wants them.
function Client:exchange(items)
  local outcomes, rounds = {}, {}
  for i, item in ipairs(items) do
    local ctx = context(self, item.action)
    item.ctx = ctx
    item.fields.key, item.fields.action = ctx.key, item.action
    local round = rounds[1]
    if not round or round.idempotent ~= ctx.idempotent then round = rounds[2] end
    if not round then
      round = { idempotent = ctx.idempotent, pending = {}, outcomes = outcomes }
      rounds[#rounds + 1] = round
    end
    round.gzip = round.gzip or item.gzip
    round.pending[#round.pending + 1] = i
  end
  for _, round in ipairs(rounds) do
    self.policy:run(self, attempt_round, self, items, round)
  end
  return outcomes
end

-- Runs an operation built by smm.actions: one request through `send`, several in parallel.
function Client:run(op)
  if op.err then return nil, self:error(op.err) end -- a refusal may show a value: scrubbed
  if op.value ~= nil then return op.value end
  local outcomes
  if #op.requests == 1 then
    local json, normalized = self:send(op.action, op.requests[1], op.schema, op.gzip)
    if op.read then -- an operation of one request (actions.one): no outcomes list needed
      if json == nil then return nil, normalized end -- the second value is the error then
      return op.read(json, op.ctx, normalized)
    end
    outcomes = { json ~= nil and { json = json, normalized = normalized } or { err = normalized } }
  else
    local items = {}
    for i, fields in ipairs(op.requests) do
      items[i] = { action = op.action, fields = fields, schema = op.schema, gzip = op.gzip }
    end
    outcomes = self:exchange(items)
  end
  return op.finish(outcomes)
end

local BATCHABLE = { services = true, balance = true, add = true, status = true, refill = true,
                    refill_status = true, cancel = true, call = true }

-- The operation of one call. An `add` checked against its service (validate = true, max_cost)
-- asks for the service first: the list is fetched (or taken from the cache) here, as a step of
-- its own, and the operation built again with the service at hand. Building never sends.
local claimed_in_book, recorded_in_book, recorded_change

local function build(client, name, a, b)
  local actx = builders[client]
  local op = actions[name](actx, a, b)
  if op.needs_service ~= nil then
    local s, err = client:service(op.needs_service)
    if not s then return { err = err } end
    op = actions[name](actx, a, b, s)
  end
  return op
end

-- A ref names one order for good: printable, short enough for any index.
local MAX_REF = 200

local function random_hex(bytes)
  local f = io.open("/dev/urandom", "rb")
  local raw = f and f:read(bytes)
  if f then f:close() end
  if not raw or #raw < bytes then
    raw = tostring({}) .. os.clock() .. os.time() .. math.random()
    return (raw:gsub("[^%w]", "")):sub(-bytes * 2)
  end
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- The ref of an add through a book: the caller's, checked, or a new one (an order placed
-- without a ref is recorded all the same).
local function ref_of(opts)
  local ref = type(opts) == "table" and opts.ref or nil
  if ref == nil then return "auto-" .. os.date("!%Y%m%dT%H%M%SZ") .. "-" .. random_hex(8) end
  if type(ref) ~= "string" or ref == "" or #ref > MAX_REF or ref:find("%c") then
    return nil, errors.invalid("ref", "must be a non-empty string of at most " .. MAX_REF ..
      " bytes without control characters, got " .. validate.shown(ref), "add")
  end
  return ref
end

-- The order's price when the service list is already at hand (nothing is fetched for it).
local function known_quote(client, fields)
  local actx = builders[client]
  local s = actx.catalog:get() and actx.catalog:lookup(fields.service)
  if not s then return nil end
  local total = actions.price(actx, s, fields, "add")
  return total
end

-- client:batch's adds through the book: every intent is committed before any request leaves
-- (claimed_in_book), each outcome recorded after (recorded_in_book).
function claimed_in_book(client, op, opts)
  local ref, err = ref_of(opts)
  if not ref then return { err = err } end
  local fields = {}
  for name, value in pairs(op.requests[1]) do fields[name] = value end
  local intent = { panel = client.url, ref = ref, fields = fields, quote = known_quote(client, fields) }
  local claim
  claim, err = client.book:intent(intent)
  if not claim then return { err = err } end
  if claim.recorded then return { value = claim.recorded } end
  op.intent = intent
  return op
end

function recorded_in_book(client, intent, res, err)
  local _, berr = client.book:outcome(intent, res, err)
  if res then
    res.ref = intent.ref
    if berr then res.book_error = berr end
  elseif berr then
    err.book_error = berr
  end
  return res, err
end

-- syntax: results = client:batch{ { "balance" }, { "status", { 1, 2 } }, { "add", order }, ... }
-- Runs independent calls together, their requests in parallel. results[i] is
-- { value = ..., err = ... }: what client:<name>(args) would have returned.
function Client:batch(calls)
  if type(calls) ~= "table" then error("smm: client:batch(calls): calls must be an array", 2) end
  local ops, items, owner = {}, {}, {}
  for i, call in ipairs(calls) do
    local name = type(call) == "table" and call[1]
    if not BATCHABLE[name] then
      error("smm: client:batch: call " .. i .. " must be { name, args... } with name one of " ..
        "services, balance, add, status, refill, refill_status, cancel, call", 2)
    end
    if name == "add" and not self.book and type(call[3]) == "table" and call[3].ref ~= nil then
      error("smm: client:batch: call " .. i .. ": option 'ref' needs a client made with an order book " ..
        "(smm.new{ ..., book = smm.book.open(url) })", 2)
    end
    local op = build(self, name, call[2], call[3])
    if name == "add" and self.book and not op.err and op.value == nil then
      op = claimed_in_book(self, op, call[3])
    end
    ops[i] = op
    if not op.err and op.value == nil then
      owner[i] = {}
      for _, fields in ipairs(op.requests) do
        items[#items + 1] = { action = op.action, fields = fields, schema = op.schema, gzip = op.gzip }
        owner[i][#owner[i] + 1] = #items
      end
    end
  end
  local outcomes = #items > 0 and self:exchange(items) or {}
  local results = {}
  for i, op in ipairs(ops) do
    local value, err
    if op.err then
      err = self:error(op.err)
    elseif op.value ~= nil then
      value = op.value
    else
      local mine = {}
      for j, index in ipairs(owner[i]) do mine[j] = outcomes[index] end
      value, err = op.finish(mine)
      if op.intent then value, err = recorded_in_book(self, op.intent, value, err) end
    end
    results[i] = { value = value, err = err }
  end
  return results
end

-- syntax: list, err = client:services([{ refresh = true }])
-- The list is cached for `services_ttl` ms; refresh = true fetches it anew.
function Client:services(opts) return self:run(actions.services(builders[self], opts)) end

-- Refills and cancels through a client with a book: what each id ended in, recorded on its
-- order (a refill id is then followed by book:sync). The call's own result is returned as is.
function recorded_change(client, kind, ids, value, err)
  if not client.book or (err and err.kind == "invalid") then return value, err end
  local by_id = {}
  local normalize = require "smm.normalize"
  if type(ids) == "table" then
    for id, entry in pairs(type(value) == "table" and value or {}) do by_id[id] = entry end
    if not value then
      for _, id in ipairs(ids) do
        by_id[normalize.id(id) or id] = { error = tostring(err), ambiguous = err and err.ambiguous }
      end
    end
  else
    by_id[normalize.id(ids) or ids] = value or { error = tostring(err), ambiguous = err and err.ambiguous }
  end
  local _, berr = client.book:record(kind, client.url, by_id, err)
  if berr then
    if value then value.book_error = berr elseif err then err.book_error = berr end
  end
  return value, err
end

-- syntax: res, err = client:add(order [, { max_cost = "5.00", validate = true, ref = "shop-1234" }])
-- ref: through a client made with a book, the order's idempotency key (see smm.book).
function Client:add(order, opts)
  if type(opts) == "table" and opts.ref ~= nil and not self.book then
    error("smm: client:add(order, opts): option 'ref' needs a client made with an order book " ..
      "(smm.new{ ..., book = smm.book.open(url) })", 2)
  end
  local op = build(self, "add", order, opts)
  if not self.book or op.err or op.value ~= nil then return self:run(op) end
  op = claimed_in_book(self, op, opts)
  if not op.intent then return self:run(op) end
  local res, err = self:run(op)
  return recorded_in_book(self, op.intent, res, err)
end

-- syntax: entry, err = client:status(id)   |   by_id, err = client:status{ id, ... }
function Client:status(ids) return self:run(actions.status(builders[self], ids)) end

-- syntax: res, err = client:refill(id)   |   by_id, err = client:refill{ id, ... }
function Client:refill(ids)
  return recorded_change(self, "refill", ids, self:run(actions.refill(builders[self], ids)))
end

-- syntax: res, err = client:refill_status(refill_id)   |   by_id, err = client:refill_status{ ... }
function Client:refill_status(ids) return self:run(actions.refill_status(builders[self], ids)) end

-- syntax: by_id, err = client:cancel{ id, ... }   |   res, err = client:cancel(id)
function Client:cancel(ids)
  return recorded_change(self, "cancel", ids, self:run(actions.cancel(builders[self], ids)))
end

-- syntax: b, err = client:balance()
function Client:balance() return self:run(actions.balance(builders[self])) end

-- syntax: answer, err = client:call(action, fields)   -- any action; the answer as decoded
function Client:call(action, fields) return self:run(actions.call(builders[self], action, fields)) end

-- syntax: service, err = client:service(id)
function Client:service(id)
  local n, err = validate.id(id, "service", "services")
  if not n then return nil, self:error(err) end
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
  validate.options(filter, services.FILTERS, "client:find_services(filter)", 2)
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
  if not fields then return nil, self:error(err) end
  local s
  s, err = self:service(fields.service)
  if not s then return nil, err end
  local ok
  ok, err = validate.bounds(fields, s, "quote")
  if not ok then return nil, err end
  return actions.price(builders[self], s, fields, "quote")
end

-- Fields for a quote: link and username are not needed to price an order.
function Client.quote_fields(order)
  local fields = {}
  for name, value in pairs(order) do fields[name] = value end
  if fields.link == nil and fields.username == nil then fields.link = "-" end
  if fields.runs ~= nil and fields.interval == nil then fields.interval = 1 end
  return fields
end

-- syntax: by_id, err = client:wait(ids, { interval =, timeout =, grace =, on_update = })
--         entry, err = client:wait(id, opts)
-- Polls until every order is final (Completed, Partial, Canceled, Refunded). A timeout is
-- nil, err: err.entries holds the last entries by id, err.pending the ids not final yet.
function Client:wait(ids, opts)
  opts = validate.options(opts, poll.OPTIONS, "client:wait(ids, opts)", 2)
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
    if not list then return nil, self:error(err) end
    return poll.wait(self, list, opts)
  end
  local id, err = validate.id(ids, "order", "wait")
  if not id then return nil, self:error(err) end
  local by_id
  by_id, err = poll.wait(self, { id }, opts)
  if not by_id then return nil, err end
  if by_id[id] and by_id[id].error ~= nil then return actions.single(builders[self], "wait", by_id[id]) end
  return by_id[id]
end

return M
