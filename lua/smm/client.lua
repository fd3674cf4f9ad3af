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
local shared = require "smm.shared"
local poll = require "smm.poll"
local dialects = require "smm.dialect"

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
-- The panel's dialect (smm.dialect), by client.
local dialect_of = setmetatable({}, { __mode = "k" })


-- What smm.actions builds operations from (see the top of actions.lua), per client: its
-- service list, what errors are scrubbed of, its options. Kept off the client table: the
-- scrub list holds the key.
local builders = setmetatable({}, { __mode = "k" })
local function pack(...) return { n = select("#", ...), ... } end

-- What a client does while its requests wait (Client:while_waiting), by client.
local idle_work = setmetatable({}, { __mode = "k" })

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
  builders[client] = { catalog = client.catalog, secrets = o.secrets, options = o.public,
                       dialect = o.dialect }
  dialect_of[client] = o.dialect
  if o.public.rate_limit then
    -- panels limit a key, not a worker: inside nginx, with a shared dict, every worker takes
    -- from the account's one bucket there
    local ratelimit = require "smm.ratelimit"
    local dict = o.public.shared_dict and shared.dict(o.public.shared_dict, 2)
    client.limiter = dict and ratelimit.shared(o.public.rate_limit, client, dict,
      shared.entry("rate", o.url, o.key)) or ratelimit.new(o.public.rate_limit, client)
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
    local d = dialect_of[client]
    ctx = { action = action, idempotent = retry.is_safe(action), secret = scrub_lists[client],
            key = secrets[client], url = real_urls[client],
            -- the common form (a plain dialect) is written inline by send and exchange
            dialect = not dialects.plain(d) and d or nil,
            error_field = d.error_field ~= "error" and d.error_field or nil }
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
  if ctx.dialect then
    dialects.outgoing(ctx.dialect, fields, ctx.key, action)
  else
    fields.key, fields.action = ctx.key, action
  end
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
                  gzip = round.gzip, idle = idle_work[client] }
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
    if ctx.dialect then
      dialects.outgoing(ctx.dialect, item.fields, ctx.key, item.action)
    else
      item.fields.key, item.fields.action = ctx.key, item.action
    end
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

-- syntax: ... = client:while_waiting(idle, fn, ...)
-- Calls fn(...) with idle() called whenever its parallel requests wait for the network (the curl
-- transport; inside nginx the requests wait in light threads of their own and idle is not
-- called). idle returns true while it has more to do; it must not raise (what it raises is
-- dropped) and must not use this client. smm.book's sync writes one page there while the next
-- page's statuses travel.
function Client:while_waiting(idle, fn, ...)
  local before = idle_work[self]
  idle_work[self] = idle
  local results = pack(pcall(fn, ...))
  idle_work[self] = before
  if not results[1] then error(results[2], 0) end
  return (table.unpack or unpack)(results, 2, results.n)
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

-- The ref of an add through a book (smm.validate.ref).
local function ref_of(opts)
  return validate.ref(type(opts) == "table" and opts.ref or nil)
end

-- The order's price when the service list is already at hand (nothing is fetched for it).
local function known_quote(client, fields)
  local actx = builders[client]
  local s = actx.catalog:get() and actx.catalog:lookup(fields.service)
  if not s then return nil end
  local total = actions.price(actx, s, fields, "add")
  return total
end

-- Adds through the book (client:add, client:batch): every intent is committed before any
-- request leaves (claimed_in_book), each outcome recorded after (recorded_in_book). A batch's
-- intents go in one transaction, and its outcomes in another, when the book offers that
-- (book:intents, book:outcomes): one wait for the disk each, not one per order.

-- The intent of an add operation, or the refusal of its ref.
local function intent_of(client, op, opts)
  local ref, err = ref_of(opts)
  if not ref then return nil, err end
  local fields = {}
  for name, value in pairs(op.requests[1]) do fields[name] = value end
  -- route: smm.router's choice for this order, recorded with it (the client only passes it on)
  return { panel = client.url, ref = ref, fields = fields, quote = known_quote(client, fields),
           route = type(opts) == "table" and opts.route or nil }
end

-- list[i] = { op, opts }: each op claimed in place (it gets .intent), or replaced by its
-- refusal ({ err = }) or the recorded order ({ value = }). Returns the new ops, in order.
function claimed_in_book(client, list)
  -- a transport that cannot send from where it is called (the ngx one in nginx's log phase)
  -- says so before any intent is committed: that intent would be left in doubt for good
  local transport = client.transport
  if transport.usable then
    local ok, why = transport:usable()
    if not ok then error(why, 0) end
  end
  local book, intents, owners, out = client.book, {}, {}, {}
  for i, item in ipairs(list) do
    local intent, err = intent_of(client, item[1], item[2])
    if intent then
      intents[#intents + 1], owners[#owners + 1] = intent, i
    else
      out[i] = { err = err }
    end
  end
  local claims, berr
  if #intents > 1 and book.intents then
    claims, berr = book:intents(intents)
  else
    claims = {}
    for k, intent in ipairs(intents) do claims[k] = pack(book:intent(intent)) end
  end
  for k, i in ipairs(owners) do
    local claim, err
    if berr then err = berr else claim, err = claims[k][1], claims[k][2] end
    if not claim then
      out[i] = { err = err }
    elseif claim.recorded then
      out[i] = { value = claim.recorded }
    else
      list[i][1].intent = intents[k]
      out[i] = list[i][1]
    end
  end
  return out
end

-- list[i] = { intent, res, err } -> list[i] = { res, err } with the book's failure, if any, on it
function recorded_in_book(client, list)
  local book, done, berr = client.book, {}, nil
  if #list > 1 and book.outcomes then
    done, berr = book:outcomes(list)
  else
    for i, o in ipairs(list) do done[i] = pack(book:outcome(o[1], o[2], o[3])) end
  end
  for i, o in ipairs(list) do
    local intent, res, err = o[1], o[2], o[3]
    local failure = berr or (done[i] and done[i][2])
    if res then
      res.ref = intent.ref
      if failure then res.book_error = failure end
    elseif failure then
      err.book_error = failure
    end
    list[i] = { res, err }
  end
  return list
end

-- A group of a batch's calls, from..to, made ready to send: its adds claimed in the book (one
-- transaction), its requests listed. -> { from =, to =, items =, owner = }
local function prepared(client, calls, ops, from, to)
  local group = { from = from, to = to, items = {}, owner = {} }
  if client.book then
    local adds, where = {}, {}
    for i = from, to do
      local op = ops[i]
      if calls[i][1] == "add" and not op.err and op.value == nil then
        adds[#adds + 1], where[#where + 1] = { op, calls[i][3] }, i
      end
    end
    if #adds > 0 then
      for k, op in ipairs(claimed_in_book(client, adds)) do ops[where[k]] = op end
    end
  end
  local items = group.items
  for i = from, to do
    local op = ops[i]
    if not op.err and op.value == nil then
      group.owner[i] = {}
      for _, fields in ipairs(op.requests) do
        items[#items + 1] = { action = op.action, fields = fields, schema = op.schema, gzip = op.gzip }
        group.owner[i][#group.owner[i] + 1] = #items
      end
    end
  end
  return group
end

-- A group's results from its outcomes; what the book must record of them is kept on the group
-- (recorded: see booked).
local function concluded(client, ops, group, outcomes, results)
  group.booked, group.booked_at = {}, {}
  for i = group.from, group.to do
    local op, value, err = ops[i], nil, nil
    if op.err then
      err = client:error(op.err)
    elseif op.value ~= nil then
      value = op.value
    else
      local mine = {}
      for j, index in ipairs(group.owner[i]) do mine[j] = outcomes[index] end
      value, err = op.finish(mine)
      if op.intent then
        group.booked[#group.booked + 1], group.booked_at[#group.booked_at + 1] = { op.intent, value, err }, i
      end
    end
    results[i] = { value = value, err = err }
  end
end

local function booked(client, group, results)
  if group and #group.booked > 0 then
    for k, r in ipairs(recorded_in_book(client, group.booked)) do
      results[group.booked_at[k]] = { value = r[1], err = r[2] }
    end
  end
end

local BATCH_OPTIONS = { "window", "stop" }

-- The adds of a group that was claimed and never sent (the batch stopped before it): recorded as
-- not placed, which they provably are, so that the same refs may be sent again.
local function unsent(client, ops, group, results)
  group.booked, group.booked_at = {}, {}
  for i = group.from, group.to do
    local op = ops[i]
    if op.intent then
      local err = errors.new{ kind = "book", code = "not_sent", action = "add", ambiguous = false,
        message = "not sent: the batch stopped before this call" }
      group.booked[#group.booked + 1], group.booked_at[#group.booked_at + 1] = { op.intent, nil, err }, i
    end
  end
  booked(client, group, results)
  for i = group.from, group.to do results[i] = nil end
end

-- syntax: results = client:batch({ { "balance" }, { "status", { 1, 2 } }, { "add", order }, ... }
--                                 [, { window = n }])
-- Runs independent calls together, their requests in parallel. results[i] is
-- { value = ..., err = ... }: what client:<name>(args) would have returned.
-- window = n: the calls go n at a time, and through a client with a book, each group's adds are
-- claimed while the group before it is on its way, and its outcomes recorded while the group
-- after it is: the book costs (almost) no time, and at most 2n refs are claimed and not yet
-- answered at any moment (what a killed process leaves in doubt).
-- stop = function(i, result) -> true: asked of each result as its group ends, in order; true
-- sends nothing after that group (results[j] of the calls not sent are nil; an add of theirs
-- that was claimed already is recorded as not placed).
function Client:batch(calls, opts)
  if type(calls) ~= "table" then error("smm: client:batch(calls): calls must be an array", 2) end
  opts = validate.options(opts, BATCH_OPTIONS, "client:batch(calls, opts)", 2)
  local window = opts.window
  if window ~= nil and (type(window) ~= "number" or window < 1 or window ~= math.floor(window)) then
    error("smm: client:batch(calls, opts): option 'window' must be a whole number >= 1, got " ..
      tostring(window), 2)
  end
  if opts.stop ~= nil and type(opts.stop) ~= "function" then
    error("smm: client:batch(calls, opts): option 'stop' must be a function", 2)
  end
  local ops = {}
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
    ops[i] = build(self, name, call[2], call[3])
  end
  -- claimed only once every call is built: a later call refused as misuse (raised) must not
  -- leave an earlier ref claimed and never sent (in doubt for good, refused when run again)
  local results, n = {}, #calls
  window = math.min(window or n, math.max(n, 1))
  local group = prepared(self, calls, ops, 1, math.min(window, n))
  local last -- the group before `group`: answered, its outcomes not recorded yet
  while group do
    local upcoming, failure
    local work = coroutine.create(function()
      booked(self, last, results)
      coroutine.yield(true)
      if group.to < n then
        upcoming = prepared(self, calls, ops, group.to + 1, math.min(group.to + window, n))
      end
    end)
    local function step()
      if failure or coroutine.status(work) == "dead" then return false end
      local ok, more = coroutine.resume(work)
      if not ok then failure = more return false end
      return more == true and coroutine.status(work) ~= "dead"
    end
    local outcomes = {}
    if #group.items > 0 then outcomes = self:while_waiting(step, self.exchange, self, group.items) end
    while step() do end -- what the wait left (all of it, without a book or a wait)
    if failure then error(failure, 0) end
    concluded(self, ops, group, outcomes, results)
    last, group = group, upcoming
    if group and opts.stop then
      local stopping = false
      for i = last.from, last.to do
        if opts.stop(i, results[i]) then stopping = true break end
      end
      if stopping then
        unsent(self, ops, group, results)
        group = nil
      end
    end
  end
  booked(self, last, results)
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
-- route: a table recorded with the order in the book (smm.router passes its choice there).
function Client:add(order, opts)
  if type(opts) == "table" and opts.ref ~= nil and not self.book then
    error("smm: client:add(order, opts): option 'ref' needs a client made with an order book " ..
      "(smm.new{ ..., book = smm.book.open(url) })", 2)
  end
  local op = build(self, "add", order, opts)
  if not self.book or op.err or op.value ~= nil then return self:run(op) end
  op = claimed_in_book(self, { { op, opts } })[1]
  if not op.intent then return self:run(op) end
  local res, err = self:run(op)
  local r = recorded_in_book(self, { { op.intent, res, err } })[1]
  return r[1], r[2]
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
