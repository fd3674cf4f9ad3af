-- The order book: every order, refill and cancel a client sends, recorded before it is sent
-- and followed to its end.
--
--   local book = smm.book.open("sqlite:/var/lib/smm/orders.db")   -- or postgresql://...
--   local client = smm.new{ url = ..., key = ..., book = book }
--   local res, err = client:add(order, { ref = "shop-1234" })
--
-- The book is the idempotency the API lacks: a ref is claimed by a unique constraint in one
-- committed transaction before the request leaves (an INSERT ... ON CONFLICT DO NOTHING that
-- changed one row, or a failed order taken back by an UPDATE that changed one row), so of two
-- processes or machines racing on a ref exactly one sends. The answer is recorded after: placed
-- (the id), failed (provably not placed: the ref may be sent again) or in doubt (never sent
-- again by the library; book:resolve settles it).
--
-- The client knows the book only through book:intent and book:outcome (and book:record for
-- refills and cancels); the book never sees a key. Failures are nil, err with err.kind "book"
-- (err.code: book_unavailable, book_failed, book_read_only, book_full, book_busy, in_doubt,
-- ref_conflict, not_found), err.book the book's printable name.
local errors = require "smm.errors"
local json = require "smm.json"
local target = require "smm.book.target"
local dbs = require "smm.book.db"
local schema = require "smm.book.schema"
local events = require "smm.book.events"

local M = {}

local Book = {}
Book.__index = Book
M.Book = Book

-- The connection (whose table holds the password, for scrubbing) is kept off the book table,
-- so that printing a book shows nothing secret.
local connections = setmetatable({}, { __mode = "k" })
M.connections = connections

local ORDER_COLUMNS = [[id ref panel state order_id service link quantity fields quote status remains
  charge start_count currency error attempts created_at sent_at updated_at final_at next_check checks
  route]]

local OPEN_OPTIONS = { clock = "function", name = "string", thread_pool = "string" }

local function pack(...) return { n = select("#", ...), ... } end

local function usage(message) error("smm.book: " .. message, 3) end

-- syntax: book, err = smm.book.open(url [, { clock = function() return os.time() end }])
-- Opens (creating it when it is a new SQLite file) and migrates the book.
-- Inside nginx, { thread_pool = "name" } gives a book whose database work runs in that pool's
-- worker threads, never blocking the event loop (smm.book.threaded).
function M.open(url, opts)
  opts = opts or {}
  if type(opts) ~= "table" then usage("open(url, opts): opts must be a table") end
  for name, value in pairs(opts) do
    if not OPEN_OPTIONS[name] then usage("open(url, opts): unknown option '" .. tostring(name) .. "'") end
    if type(value) ~= OPEN_OPTIONS[name] then
      usage("open(url, opts): option '" .. name .. "' must be a " .. OPEN_OPTIONS[name])
    end
  end
  if opts.thread_pool then
    if opts.clock then usage("open(url, opts): 'clock' cannot cross into a worker thread (thread_pool)") end
    return require("smm.book.threaded").open(url, opts.thread_pool)
  end
  local where, why = target.parse(url)
  if not where then
    return nil, errors.new({ kind = "book", code = "book_url", message = why })
  end
  local secrets = { where.password }
  local db, err = dbs.connect(where, secrets)
  if not db then return nil, err end
  local ok, failure = pcall(function()
    for _, sql in ipairs(db.dialect.open) do db:rows(sql) end -- a PRAGMA answers a row: read it
    schema.migrate(db)
  end)
  if not ok then
    db:close()
    if errors.is(failure) then return nil, failure end
    error(failure, 0)
  end
  local book = setmetatable({ name = where.name, driver = where.driver }, Book)
  connections[book] = { db = db, clock = opts.clock or os.time }
  return book
end

function Book:__tostring() return "smm.book: " .. self.name end

function Book:close()
  local c = connections[self]
  if c then c.db:close() end
end
Book.__close = Book.close

-- The book's clock: whole UTC seconds.
function Book:now() return connections[self].clock() end

-- Runs fn(db, now, ...) and turns a book error raised inside into nil, err; anything else is
-- a bug and raised again.
local function guarded(book, fn, ...)
  local c = connections[book]
  if not c then usage("not a book (use smm.book.open)") end
  local results = pack(pcall(fn, c.db, c.clock(), ...))
  if results[1] then return (table.unpack or unpack)(results, 2, results.n) end
  if errors.is(results[2]) then return nil, results[2] end
  error(results[2], 0)
end
M.guarded = guarded

local function book_error(book, code, message, fields)
  local f = { kind = "book", code = code, book = book.name, message = message }
  for k, v in pairs(fields or {}) do f[k] = v end
  return errors.new(f)
end

local function select_order(db, where_sql, ...)
  return db:row("SELECT " .. db:columns(ORDER_COLUMNS) .. " FROM orders WHERE " .. where_sql, ...)
end

-- cjson reads every number as a float (100.0 on Lua 5.3+): whole ones (service, quantity)
-- are integers again, as they were sent.
local to_integer = math.tointeger or function(v) return v end
local function whole_numbers(t)
  for k, v in pairs(t) do
    if type(v) == "number" then t[k] = to_integer(v) or v
    elseif type(v) == "table" then whole_numbers(v) end
  end
  return t
end

-- A row as callers see it: the order's fields decoded, times as they are (UTC seconds).
local function public_order(row)
  if not row then return nil end
  local ok, cjson = pcall(require, "cjson.safe")
  if ok and type(row.fields) == "string" then
    local fields = cjson.decode(row.fields)
    if type(fields) == "table" then row.fields = whole_numbers(fields) end
  end
  if ok and type(row.route) == "string" then
    local route = cjson.decode(row.route)
    if type(route) == "table" then row.route = whole_numbers(route) end
  end
  return row
end
M.public_order = public_order

-- The fields of an order as recorded: what was sent but the key and action, as canonical JSON
-- (sorted keys), so that the same order always gives the same text.
local function recorded_fields(fields)
  local copy = {}
  for name, value in pairs(fields) do
    if name ~= "key" and name ~= "action" then copy[name] = value end
  end
  return json.encode(copy)
end

local function refusal_for(book, row, ref)
  if row.state == "sending" or row.state == "in_doubt" then
    return nil, book_error(book, "in_doubt", "order " .. string.format("%q", ref) .. " is " ..
      (row.state == "sending" and "being sent (or its sender stopped before the answer)" or "in doubt") ..
      ": nothing was sent; settle it with book:resolve(ref, order_id | false) or `smm doubt`",
      { ref = ref, state = row.state })
  end
  return { order = row.order_id, ref = ref, recorded = true, state = row.state, status = row.status,
           panel = row.panel }
end

-- The client's side of the book, step one: claim `ref` for this order before it is sent.
-- intent = { panel =, ref =, fields = <the request's fields>, quote = "1.25" | nil }.
-- Returns { claimed = true } (send it now), { recorded = <the earlier result> } (sent before:
-- send nothing), or nil, err (in doubt, a ref used for another order, the book failing).
-- A claim sets intent.attempt: book:outcome records only the answer of the attempt that holds
-- the ref (see there).
-- A routed order (intent.route, smm.router) may go to another panel's service for the same
-- product once its first panel provably did not place it: the same ref, routed for the same
-- product with the same fields but the service, is the same order whatever panel and service it
-- ends with.
local function but_service(fields)
  local copy = {}
  for name, value in pairs(fields) do
    if name ~= "service" and name ~= "key" and name ~= "action" then copy[name] = value end
  end
  return json.encode(copy)
end

local function rerouted(row, intent)
  if type(intent.route) ~= "table" or type(row.route) ~= "string" then return false end
  local ok, cjson = pcall(require, "cjson.safe")
  local before = ok and cjson.decode(row.route)
  if type(before) ~= "table" or before.product == nil or before.product ~= intent.route.product then
    return false
  end
  local fields = cjson.decode(row.fields)
  return type(fields) == "table" and but_service(whole_numbers(fields)) == but_service(intent.fields)
end

local function claim(book, db, now, intent)
  local text = recorded_fields(intent.fields)
  local f = intent.fields
  local route = intent.route and json.encode(intent.route) or nil
  local n = db:changes([[INSERT INTO orders (ref, panel, state, service, link, quantity, fields,
      quote, attempts, created_at, sent_at, updated_at, route)
    VALUES (?, ?, 'sending', ?, ?, ?, ?, ?, 1, ?, ?, ?, ?) ON CONFLICT (ref) DO NOTHING]],
    intent.ref, intent.panel, f.service, f.link, f.quantity, text, intent.quote, now, now, now, route)
  if n == 1 then
    intent.attempt = 1
    return { claimed = true }
  end
  local row = select_order(db, "ref = ?", intent.ref)
  local same = rerouted(row, intent)
  if row.fields ~= text and not same then
    return nil, book_error(book, "ref_conflict", "ref " .. string.format("%q", intent.ref) ..
      " was used for a different order (" .. row.fields .. "): nothing was sent; a ref names one order",
      { ref = intent.ref, field = "ref" })
  end
  -- a service id means another service on another panel: the same ref and fields sent
  -- elsewhere are another order (unless the first was provably never placed)
  if row.panel ~= intent.panel and row.state ~= "failed" and not same then
    return nil, book_error(book, "ref_conflict", "ref " .. string.format("%q", intent.ref) ..
      " was used for an order on " .. row.panel .. ": nothing was sent; a ref names one order",
      { ref = intent.ref, field = "ref" })
  end
  if row.state == "failed" then
    -- not placed before (provably): this attempt takes it back, and only one can
    n = db:changes([[UPDATE orders SET state = 'sending', panel = ?, quote = ?, error = NULL,
        service = ?, link = ?, quantity = ?, fields = ?, route = ?,
        attempts = attempts + 1, sent_at = ?, updated_at = ? WHERE ref = ? AND state = 'failed']],
      intent.panel, intent.quote, f.service, f.link, f.quantity, text, route, now, now, intent.ref)
    row = select_order(db, "ref = ?", intent.ref)
    if n == 1 then
      intent.attempt = row.attempts
      return { claimed = true }
    end
  end
  local recorded, err = refusal_for(book, row, intent.ref)
  if not recorded then return nil, err end
  return { recorded = recorded }
end

function Book:intent(intent)
  return guarded(self, function(db, now)
    return db:transaction(claim, self, db, now, intent)
  end)
end

-- syntax: claims, err = book:intents{ intent, ... }
-- Several intents in one transaction (one commit, one wait for the disk): claims[i] is what
-- book:intent(list[i]) would return, as { claim } or { nil, err }. All of them are durable
-- before it returns, so every request may leave then. err: the book failed, none is claimed.
function Book:intents(list)
  return guarded(self, function(db, now)
    return db:transaction(function()
      local out = {}
      for i, intent in ipairs(list) do out[i] = pack(claim(self, db, now, intent)) end
      return out
    end)
  end)
end

local function entry_of(res)
  local data = { order = res.order }
  for _, name in ipairs({ "charge", "currency", "status" }) do data[name] = res[name] end
  return data
end

-- Step two: what the request ended in. res: add's result ({ order = id, ... }) or nil and err.
-- Returns true or nil, err (the order may be placed and not recorded: the row stays `sending`,
-- which every later call treats as in doubt).
--
-- Only the attempt that holds the ref is recorded on it (the row still sending or in doubt, its
-- attempt number unchanged). An answer that comes after the ref was settled otherwise (resolved,
-- sent again and placed: a sender stalled for longer than sync's in_doubt_after) must not take
-- the ref's order away; an order it placed is written into the ref's history and returned as a
-- ref_conflict error, so that it is neither forgotten nor taken for the ref's.
local HOLDING = " AND state IN ('sending', 'in_doubt')"

-- Runs an outcome's UPDATE on the row only while `intent`'s attempt holds it; -> rows changed.
local function held(db, intent, sql, ...)
  local args = pack(...)
  if intent.attempt == nil then return db:changes(sql .. HOLDING, ...) end -- a caller's own intent
  args.n = args.n + 1
  args[args.n] = intent.attempt
  return db:changes(sql .. HOLDING .. " AND attempts = ?", (table.unpack or unpack)(args, 1, args.n))
end

local function late_outcome(book, db, now, intent, res, err)
  local attempt = intent.attempt
  local row = select_order(db, "ref = ?", intent.ref)
  if res and row and row.order_id == res.order then return true end -- settled as this very order
  if not res and not err.ambiguous then return true end -- provably not placed: nothing to keep
  local what = res and ("placed order " .. tostring(res.order)) or
    ("ended in doubt (it may have placed an order): " .. tostring(err))
  local detail = "attempt " .. tostring(attempt) .. ", answered after the ref was settled otherwise, " ..
    what .. ": not the ref's order; check it on the panel (cancel or refund it)"
  db:run("INSERT INTO history (ref, at, what, detail) VALUES (?, ?, ?, ?)", intent.ref, now,
    res and "placed" or "in_doubt", detail)
  return nil, book_error(book, "ref_conflict", "order " .. string.format("%q", intent.ref) .. ": " ..
    detail, { ref = intent.ref, order = res and res.order or nil })
end

local function record(book, db, now, intent, res, err)
  local ref, panel = intent.ref, intent.panel
  if res then
    if held(db, intent, [[UPDATE orders SET state = 'placed', order_id = ?, error = NULL, updated_at = ?,
        next_check = ? WHERE ref = ?]], res.order, now, now + 60, ref) == 0 then
      return late_outcome(book, db, now, intent, res, err)
    end
    db:run("INSERT INTO history (ref, at, what, status) VALUES (?, ?, 'placed', NULL)", ref, now)
    local data = entry_of(res)
    data.service, data.quote = intent.fields.service, intent.quote
    data.link, data.quantity = intent.fields.link, intent.fields.quantity
    events.emit(db, now, "order.placed", ref, panel, data)
  elseif err.ambiguous then
    if held(db, intent, "UPDATE orders SET state = 'in_doubt', error = ?, updated_at = ? WHERE ref = ?",
        tostring(err), now, ref) == 0 then
      return late_outcome(book, db, now, intent, res, err)
    end
    db:run("INSERT INTO history (ref, at, what, detail) VALUES (?, ?, 'in_doubt', ?)", ref, now,
      tostring(err))
    events.emit(db, now, "order.in_doubt", ref, panel, { error = tostring(err) })
  else
    if held(db, intent, "UPDATE orders SET state = 'failed', error = ?, updated_at = ? WHERE ref = ?",
        tostring(err), now, ref) == 0 then
      return late_outcome(book, db, now, intent, res, err)
    end
    db:run("INSERT INTO history (ref, at, what, detail) VALUES (?, ?, 'failed', ?)", ref, now,
      tostring(err))
    events.emit(db, now, "order.failed", ref, panel, { error = tostring(err), code = err.code })
  end
  return true
end

function Book:outcome(intent, res, err)
  return guarded(self, function(db, now)
    return db:transaction(record, self, db, now, intent, res, err)
  end)
end

-- syntax: done, err = book:outcomes{ { intent, res, err }, ... }
-- Several outcomes in one transaction: done[i] is what book:outcome would return, as { true } or
-- { nil, err }. err: the book failed, none is recorded (those rows stay `sending`: in doubt).
-- Committed without waiting for the disk (SQLite: synchronous=NORMAL; PostgreSQL:
-- synchronous_commit off), as a sync round's writes are: a batch records a group's answers while
-- the next group travels, and a full sync there held those requests back (4.7 ms a group of 8,
-- against 1.5). What a crash of the machine can lose is the answer, never the intent: the row
-- stays `sending`, which every later call treats as in doubt, so nothing is sent twice. The
-- intents after it wait for the disk again (FULL).
function Book:outcomes(list)
  return guarded(self, function(db, now)
    db:run(db.dialect.relaxed)
    local ok, out = pcall(db.transaction, db, function()
      local out = {}
      for i, o in ipairs(list) do out[i] = pack(record(self, db, now, o[1], o[2], o[3])) end
      return out
    end)
    db:run(db.dialect.strict)
    if not ok then error(out, 0) end
    return out
  end)
end

-- syntax: ok, err = book:resolve(ref, order_id)   -- it was placed, as this order
--         ok, err = book:resolve(ref, false)      -- it was not placed: the ref may be sent again
-- Settles an order in doubt (or one whose sender stopped before recording the answer).
function Book:resolve(ref, order_id)
  if type(ref) ~= "string" then usage("resolve(ref, order_id | false): ref must be a string") end
  local id = order_id
  if order_id ~= false then
    id = require("smm.normalize").id(order_id)
    if not id then
      usage("resolve(ref, order_id | false): order_id must be a whole number from 1 to 2^53 - 1, " ..
        "or false (not placed), got " .. tostring(order_id))
    end
  end
  return guarded(self, function(db, now)
    return db:transaction(function()
      local row = select_order(db, "ref = ?", ref)
      if not row then
        return nil, book_error(self, "not_found", "no order with ref " .. string.format("%q", ref),
          { ref = ref })
      end
      if row.state ~= "in_doubt" and row.state ~= "sending" then
        return nil, book_error(self, "not_in_doubt", "order " .. string.format("%q", ref) .. " is " ..
          row.state .. ", not in doubt: nothing changed", { ref = ref, state = row.state })
      end
      if id then
        local clash = select_order(db, "panel = ? AND order_id = ?", row.panel, id)
        if clash then
          return nil, book_error(self, "ref_conflict", "order " .. id .. " of " .. row.panel ..
            " is already recorded as " .. string.format("%q", clash.ref), { ref = ref })
        end
        db:run([[UPDATE orders SET state = 'placed', order_id = ?, error = NULL, updated_at = ?,
          next_check = ? WHERE ref = ?]], id, now, now, ref)
      else
        db:run("UPDATE orders SET state = 'failed', updated_at = ? WHERE ref = ?", now, ref)
      end
      db:run("INSERT INTO history (ref, at, what, detail) VALUES (?, ?, 'resolved', ?)", ref, now,
        id and ("placed as " .. id) or "not placed")
      events.emit(db, now, "order.resolved", ref, row.panel,
        { order = id or nil, placed = id and true or false })
      if id then
        events.emit(db, now, "order.placed", ref, row.panel, { order = id, service = row.service,
          link = row.link, quantity = row.quantity, quote = row.quote })
      end
      return true
    end)
  end)
end

-- syntax: order, err = book:get(ref)   (nil, nil when there is none)
function Book:get(ref)
  return guarded(self, function(db) return public_order(select_order(db, "ref = ?", ref)) end)
end

-- syntax: order, err = book:find(panel, order_id)
function Book:find(panel, order_id)
  return guarded(self, function(db)
    return public_order(select_order(db, "panel = ? AND order_id = ?", panel, order_id))
  end)
end

local ORDERS_FILTERS = { state = "string", status = "string", ref = "string", since = "number",
                         panel = "string", limit = "number", open = "boolean" }

-- syntax: list, err = book:orders{ [state =], [status =], [ref =], [since = utc_seconds],
--                                  [panel =], [open = true], [limit = n] }
-- Newest first.
function Book:orders(filter)
  filter = filter or {}
  local where, args = {}, {}
  for name, value in pairs(filter) do
    if not ORDERS_FILTERS[name] then usage("orders(filter): unknown filter '" .. tostring(name) .. "'") end
    if type(value) ~= ORDERS_FILTERS[name] then
      usage("orders(filter): '" .. name .. "' must be a " .. ORDERS_FILTERS[name])
    end
  end
  local limit = filter.limit
  if limit and (limit < 1 or limit ~= math.floor(limit) or limit == math.huge) then
    usage("orders(filter): 'limit' must be a whole number from 1, got " .. tostring(filter.limit))
  end
  if filter.state then where[#where + 1], args[#args + 1] = "state = ?", filter.state end
  if filter.status then where[#where + 1], args[#args + 1] = "status = ?", filter.status end
  if filter.ref then where[#where + 1], args[#args + 1] = "ref = ?", filter.ref end
  if filter.panel then where[#where + 1], args[#args + 1] = "panel = ?", filter.panel end
  if filter.since then where[#where + 1], args[#args + 1] = "created_at >= ?", filter.since end
  if filter.open then where[#where + 1] = "state = 'placed'" end
  local sql = "SELECT %s FROM orders" .. (#where > 0 and (" WHERE " .. table.concat(where, " AND ")) or "") ..
    " ORDER BY created_at DESC, id DESC" .. (limit and (" LIMIT " .. string.format("%.0f", limit)) or "")
  return guarded(self, function(db)
    local rows = db:rows(sql:format(db:columns(ORDER_COLUMNS)), (table.unpack or unpack)(args))
    for i, row in ipairs(rows) do rows[i] = public_order(row) end
    return rows
  end)
end

-- syntax: list, err = book:doubt()   orders in doubt, and those whose sender never recorded an answer
function Book:doubt()
  return guarded(self, function(db)
    local rows = db:rows("SELECT " .. db:columns(ORDER_COLUMNS) ..
      " FROM orders WHERE state IN ('in_doubt', 'sending') ORDER BY created_at, id")
    for i, row in ipairs(rows) do rows[i] = public_order(row) end
    return rows
  end)
end

-- syntax: rows, err = book:history(ref)
function Book:history(ref)
  return guarded(self, function(db)
    return db:rows("SELECT " .. db:columns("id ref at what status remains charge start_count detail") ..
      " FROM history WHERE ref = ? ORDER BY at, id", ref)
  end)
end

-- syntax: counts, err = book:counts()   { open =, final =, in_doubt =, failed =, stale =, events_pending = }
function Book:counts()
  return guarded(self, function(db)
    local out = { placed = 0, final = 0, in_doubt = 0, sending = 0, failed = 0, stale = 0 }
    for _, row in ipairs(db:rows("SELECT state, " .. db:int("n") ..
        " FROM (SELECT state, count(*) AS n FROM orders GROUP BY state) AS c")) do
      out[row.state] = row.n
    end
    out.open = out.placed
    local pending = db:row("SELECT " .. db:int("n") ..
      " FROM (SELECT count(*) AS n FROM events WHERE delivered_at IS NULL) AS c")
    out.events_pending = pending and pending.n or 0
    return out
  end)
end

-- Refills and cancels through a book client: recorded with what they ended in (client.lua).
-- kind "refill": entries by order id -> { refill = id } | { error = } ; kind "cancel" likewise.
function Book:record(kind, panel, by_id, err)
  return guarded(self, function(db, now)
    return db:transaction(function()
      for order_id, entry in pairs(by_id) do
        local row = select_order(db, "panel = ? AND order_id = ?", panel, order_id)
        local ref = row and row.ref
        if ref then
          local detail = entry.error and ("error: " .. tostring(entry.error)) or
            (entry.refill and ("refill " .. entry.refill)) or (entry.cancel ~= nil and "accepted") or
            (err and tostring(err)) or nil
          db:run("INSERT INTO history (ref, at, what, detail) VALUES (?, ?, ?, ?)", ref, now, kind, detail)
          if kind == "refill" and entry.refill then
            db:run([[INSERT INTO refills (ref, panel, order_id, refill_id, state, created_at, updated_at,
                next_check) VALUES (?, ?, ?, ?, 'open', ?, ?, ?)]], ref, panel, order_id, entry.refill,
              now, now, now + 60)
            events.emit(db, now, "refill.placed", ref, panel, { order = order_id, refill = entry.refill })
          elseif kind == "refill" and entry.ambiguous then
            db:run([[INSERT INTO refills (ref, panel, order_id, state, error, created_at, updated_at)
                VALUES (?, ?, ?, 'in_doubt', ?, ?, ?)]], ref, panel, order_id, tostring(entry.error), now,
              now)
          end
        end
      end
      return true
    end)
  end)
end

-- syntax: totals, err = book:report{ [since = utc_seconds], [by = "day" | "service" | "panel"] }
-- What was charged, summed exactly, per currency: { { key = "2026-12-01", orders = n,
-- charges = { USD = "12.34", EUR = "5.00" } }, ... }, plus totals.all. Amounts in different
-- currencies are never added together: `charge` (and `currency`) are there only when a group's
-- charges are all in one currency (a charge whose panel named no currency is under "unknown").
-- Orders without a charge yet count in orders, not in charge.
function Book:report(opts)
  opts = opts or {}
  for name in pairs(opts) do
    if name ~= "since" and name ~= "by" and name ~= "panel" then
      usage("report(opts): unknown option '" .. tostring(name) .. "'")
    end
  end
  if opts.since ~= nil and type(opts.since) ~= "number" then
    usage("report(opts): 'since' must be UTC seconds (a number), got " .. type(opts.since))
  end
  if opts.panel ~= nil and type(opts.panel) ~= "string" then
    usage("report(opts): 'panel' must be a string, got " .. type(opts.panel))
  end
  local by = opts.by or "day"
  if by ~= "day" and by ~= "service" and by ~= "panel" then
    usage("report(opts): 'by' must be \"day\", \"service\" or \"panel\", got " .. tostring(by))
  end
  local money = require "smm.money"
  return guarded(self, function(db)
    local sql = "SELECT " .. db:columns("created_at service panel charge currency") ..
      " FROM orders WHERE order_id IS NOT NULL AND created_at >= ?"
    local rows
    if opts.panel then
      rows = db:rows(sql .. " AND panel = ?", opts.since or 0, opts.panel)
    else
      rows = db:rows(sql, opts.since or 0)
    end
    local groups, list = {}, {}
    local all = { key = "all", orders = 0, charges = {} }
    for _, row in ipairs(rows) do
      local key
      if by == "day" then key = os.date("!%Y-%m-%d", row.created_at)
      elseif by == "service" then key = tostring(row.service)
      else key = row.panel end
      local g = groups[key]
      if not g then
        g = { key = key, orders = 0, charges = {} }
        groups[key], list[#list + 1] = g, g
      end
      g.orders, all.orders = g.orders + 1, all.orders + 1
      if row.charge and money.is_decimal(row.charge) then
        local currency = row.currency or "unknown"
        g.charges[currency] = money.add(g.charges[currency] or "0", row.charge)
        all.charges[currency] = money.add(all.charges[currency] or "0", row.charge)
      end
    end
    if by == "service" then -- by number: service 9 before service 10
      table.sort(list, function(a, b) return (tonumber(a.key) or 0) < (tonumber(b.key) or 0) end)
    else
      table.sort(list, function(a, b) return a.key < b.key end)
    end
    list.all = all
    -- sums as exact decimal strings at the scale of their terms ("0.1" x 3 = "0.3")
    local function exact(d)
      if type(d) == "string" then d = money.parse(d) end
      return money.format(d, d.scale)
    end
    local function settle(g)
      local n, only = 0, nil
      for currency, sum in pairs(g.charges) do
        g.charges[currency] = exact(sum)
        n, only = n + 1, currency
      end
      if n == 0 then g.charge = "0" end
      if n == 1 then
        g.charge = g.charges[only]
        if only ~= "unknown" then g.currency = only end
      end
    end
    for _, g in ipairs(list) do settle(g) end
    settle(all)
    return list
  end)
end

-- Several panels (smm.router): each panel's health, shared by every process on the book
-- (smm.book.panels holds the SQL and says what each does).
-- syntax: rows, err = book:panels()   { { name =, url =, state =, failures =, down_until =,
--                                          balance =, currency =, balance_at =, last_error = }, ... }
function Book:panels()
  return guarded(self, function(db) return require("smm.book.panels").list(db) end)
end

-- syntax: result, err = book:panel(what, name, url, ...)   what: "ensure" | "try" | "outcome" |
-- "balance", the arguments of that function of smm.book.panels after (db, now), run in one
-- transaction. -> what it returns (several values for "try").
local PANEL_STEPS = { ensure = true, try = true, outcome = true, balance = true }
function Book:panel(what, ...)
  if not PANEL_STEPS[what] then usage("panel(what, ...): unknown step '" .. tostring(what) .. "'") end
  local step = require("smm.book.panels")[what]
  local args = pack(...)
  return guarded(self, function(db, now)
    return db:transaction(function() return step(db, now, (table.unpack or unpack)(args, 1, args.n)) end)
  end)
end

-- Following orders (smm.book.sync) and delivering events (smm.book.hooks) live in their own files.
function Book:sync(client, opts) return require("smm.book.sync").round(self, client, opts) end
function Book:deliver(hooks, opts) return require("smm.book.hooks").deliver(self, hooks, opts) end

return M
