-- book:sync(client [, opts]): one round of following a panel's open orders and refills.
--
--   local summary, err = book:sync(client, { lease = 120, page = 800, stop = function() ... end })
--   -- summary = { checked, changed, final, stale, in_doubt, refills_checked, refills_changed,
--   --             errors, next_due }   (err: why the round ended early, when it did)
--
-- Several workers (processes, machines on PostgreSQL) may run rounds on one book at once. A
-- round walks the panel's open rows in id order and claims the due ones a slice (SLICE rows) at
-- a time: one UPDATE ... RETURNING leases them to a token no other slice shares and moves their
-- next check on by their backoff, its inner SELECT skipping the rows another worker's claim has
-- locked (PostgreSQL's SKIP LOCKED; SQLite's one writer at a time needs none). So no order is
-- asked about by two workers in one round: once claimed, it is not due. The slice's token is
-- written in sync_slices first and deleted once its answers are written; a worker killed
-- mid-round loses nothing: when its slice's lease expires, the rows still leased to that token
-- are due again, and another worker takes them. A change is written in one transaction with its
-- history row and events.
--
-- Speed: for 100,000 open orders the round costs little more than the status requests alone.
-- The claim is also the reschedule (its backoff computed in SQL from the order's age), so an
-- order that did not change is written once a round, and a slice without a change costs no
-- transaction of its own; the book's work is done while the panel's answers travel (follow).
local normalize = require "smm.normalize"
local events = require "smm.book.events"
local random = require "smm.random"

local M = {}

-- The rows of one short transaction of a round (a claim, a page's answers written): between two,
-- the requests in flight get the process back (see follow).
local SLICE = 100

-- A fresh order is checked every minute, one a week old hourly: age / 168 between the bounds.
local BACKOFF_DIVISOR = 168

local OPTIONS = {
  max_age = { "number", 1, 30 * 86400 }, lease = { "number", 1, 120 },
  worker = { "string" }, min_interval = { "number", 1, 60 }, max_interval = { "number", 0, 3600 },
  page = { "number", 1 }, limit = { "number", 0 }, stop = { "function" },
  in_doubt_after = { "number", 0, 600 },
}

local function usage(message) error("smm.book: sync(client, opts): " .. message, 4) end

local function whole(v) return v == math.floor(v) and v < 2 ^ 53 end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- hostname:pid, or something as unique when /proc is not there
local function default_worker()
  local host = (read_file("/proc/sys/kernel/hostname") or os.getenv("HOSTNAME") or "host"):gsub("%s+", "")
  local pid = (read_file("/proc/self/stat") or ""):match("^(%d+)")
  return host .. ":" .. (pid or tostring({}):match("0x(%x+)") or tostring(os.time()))
end

local function checked_options(client, opts)
  if type(client) ~= "table" or type(client.status) ~= "function" or type(client.url) ~= "string" then
    usage("client must be a client made by smm.new")
  end
  if opts ~= nil and type(opts) ~= "table" then usage("opts must be a table") end
  local o = {}
  for name, value in pairs(opts or {}) do
    local spec = OPTIONS[name]
    if not spec then usage("unknown option '" .. tostring(name) .. "'") end
    if type(value) ~= spec[1] then
      usage("option '" .. name .. "' must be a " .. spec[1] .. ", got " .. tostring(value))
    end
    if spec[1] == "number" and (value ~= value or not whole(value) or value < spec[2]) then
      usage("option '" .. name .. "' must be a whole number >= " .. spec[2] .. ", got " .. tostring(value))
    end
    o[name] = value
  end
  for name, spec in pairs(OPTIONS) do
    if o[name] == nil and spec[3] then o[name] = spec[3] end
  end
  if o.max_interval < o.min_interval then
    usage("option 'max_interval' (" .. o.max_interval .. ") is below 'min_interval' (" ..
      o.min_interval .. ")")
  end
  -- two requests per slot a page: fewer ends of page to wait at than one (measured 1.14 -> 1.09)
  o.page = o.page or math.max(1, (client.concurrency or 1) * 200)
  o.worker = o.worker or default_worker()
  return o
end

-- The round's statements, built once per engine (the same text each time, so each is
-- prepared once per connection: db:run keeps them by text).
local statements = {}

local function sql_for(db)
  local d = db.dialect
  local s = statements[db.driver]
  if s then return s end
  local backoff = "CAST(? AS BIGINT) + " .. d.greatest .. "(CAST(? AS BIGINT), " .. d.least ..
    "(CAST(? AS BIGINT), (CAST(? AS BIGINT) - created_at) / " .. BACKOFF_DIVISOR .. "))"
  s = {}
  local open_rows = {
    { "orders", "state = 'placed'", "CAST(id AS TEXT), ref, CAST(order_id AS TEXT), status, " ..
      "CAST(remains AS TEXT), charge, CAST(start_count AS TEXT), currency" },
    { "refills", "state = 'open' AND refill_id IS NOT NULL", "CAST(id AS TEXT), ref, " ..
      "CAST(order_id AS TEXT), CAST(refill_id AS TEXT), status" } }
  -- A page is the due rows after the round's cursor, in id order, so the round reads the open
  -- rows once (through the (panel, state, id) index) and a page's rows lie between its first
  -- and last id: every later statement about the page finds them through the same index.
  local page_rows = " WHERE panel = ? AND %s AND id BETWEEN CAST(? AS BIGINT) AND CAST(? AS BIGINT)" ..
    " AND lease_owner = ?"
  -- Due: next_check reached by the round's start, or leased by a slice whose lease expired
  -- before it was written (its worker died: see the top of this file).
  local due = "(next_check <= CAST(? AS BIGINT) OR lease_owner IN (SELECT token FROM sync_slices " ..
    "WHERE lease_until < CAST(? AS BIGINT)))"
  for _, t in ipairs(open_rows) do
    local tbl, open, columns = t[1], t[2], t[3]
    local mine = page_rows:format(open)
    s[tbl] = {
      -- the claim is also the reschedule: what it leases is due again only after its backoff
      claim = "UPDATE " .. tbl .. " SET lease_owner = ?, lease_until = CAST(? AS BIGINT), " ..
        "checks = checks + 1, next_check = " .. backoff .. " WHERE id " ..
        d.in_ids("SELECT id FROM " .. tbl .. " WHERE panel = ? AND " .. open ..
          " AND id > CAST(? AS BIGINT) AND " .. due ..
          " ORDER BY id LIMIT CAST(? AS INTEGER)" .. d.skip_locked) ..
        " RETURNING " .. columns,
      -- no answer for it: due again at the next round (not this one)
      lost = "UPDATE " .. tbl .. " SET next_check = CAST(? AS BIGINT), checks = checks - 1, " ..
        "lease_owner = NULL, lease_until = NULL WHERE id = CAST(? AS BIGINT) AND lease_owner = ?",
      lost_all = "UPDATE " .. tbl .. " SET next_check = CAST(? AS BIGINT), checks = checks - 1, " ..
        "lease_owner = NULL, lease_until = NULL" .. mine,
      next_due = "SELECT CAST(n AS TEXT) AS n FROM (SELECT MIN(next_check) AS n FROM " .. tbl ..
        " WHERE panel = ? AND " .. open .. ") AS m",
    }
  end
  s.slice_begin = "INSERT INTO sync_slices (token, lease_until) VALUES (?, CAST(? AS BIGINT))"
  s.slice_done = "DELETE FROM sync_slices WHERE token = ?"
  s.slices_forgotten = "DELETE FROM sync_slices WHERE lease_until < CAST(? AS BIGINT)"
  s.slice_expired = "SELECT token FROM sync_slices WHERE lease_until < CAST(? AS BIGINT) LIMIT 1"
  s.orders.changed = "UPDATE orders SET status = ?, remains = CAST(? AS BIGINT), charge = ?, " ..
    "start_count = CAST(? AS BIGINT), currency = ?, state = ?, final_at = CAST(? AS BIGINT), " ..
    "updated_at = CAST(? AS BIGINT), next_check = CAST(? AS BIGINT), " ..
    "lease_owner = NULL, lease_until = NULL WHERE id = CAST(? AS BIGINT) AND lease_owner = ?"
  s.orders.history = "INSERT INTO history (ref, at, what, status, remains, charge, start_count) " ..
    "VALUES (?, CAST(? AS BIGINT), 'status', ?, CAST(? AS BIGINT), ?, CAST(? AS BIGINT))"
  s.refills.changed = "UPDATE refills SET status = ?, state = ?, updated_at = CAST(? AS BIGINT), " ..
    "next_check = CAST(? AS BIGINT), lease_owner = NULL, lease_until = NULL " ..
    "WHERE id = CAST(? AS BIGINT) AND lease_owner = ?"
  s.refills.history = "INSERT INTO history (ref, at, what, status, detail) " ..
    "VALUES (?, CAST(? AS BIGINT), 'refill_status', ?, ?)"
  s.stale = "SELECT CAST(id AS TEXT), ref, status, CAST(order_id AS TEXT) FROM orders WHERE panel = ? " ..
    "AND state = 'placed' AND created_at < CAST(? AS BIGINT) AND (lease_until IS NULL OR " ..
    "lease_until < CAST(? AS BIGINT))"
  s.to_stale = "UPDATE orders SET state = 'stale', updated_at = CAST(? AS BIGINT), lease_owner = NULL, " ..
    "lease_until = NULL WHERE id = CAST(? AS BIGINT) AND state = 'placed'"
  s.stale_history = "INSERT INTO history (ref, at, what, status, detail) VALUES (?, CAST(? AS BIGINT), " ..
    "'stale', ?, ?)"
  s.sending = "SELECT CAST(id AS TEXT), ref FROM orders WHERE panel = ? AND state = 'sending' " ..
    "AND sent_at < CAST(? AS BIGINT)"
  s.to_in_doubt = "UPDATE orders SET state = 'in_doubt', error = ?, updated_at = CAST(? AS BIGINT) " ..
    "WHERE id = CAST(? AS BIGINT) AND state = 'sending'"
  s.doubt_history = "INSERT INTO history (ref, at, what, detail) VALUES (?, CAST(? AS BIGINT), 'in_doubt', ?)"
  statements[db.driver] = s
  return s
end

-- Rows of a statement as arrays, read straight from the driver (no copy per row).
local function each_row(db, sql, ...)
  local st = db:run(sql, ...)
  return st:rows(false)
end

local function number_or_nil(text)
  if text == nil then return nil end
  return tonumber(text)
end

-- Whatever normalize left that is not text (a status given as an object) is kept as JSON.
local function as_text(v)
  if v == nil or type(v) == "string" then return v end
  if type(v) == "number" then return tostring(v) end
  return require("smm.json").encode(v)
end

-- Orders past max_age become stale; `sending` rows older than in_doubt_after, in doubt.
-- Rare rows, each changed by a guarded UPDATE: of two workers, only one records it.
local function housekeeping(db, s, panel, now, o, summary)
  db:transaction(function()
    local stale = {}
    for row in each_row(db, s.stale, panel, now - o.max_age, now) do
      stale[#stale + 1] = { row[1], row[2], row[3], row[4] }
    end
    for _, r in ipairs(stale) do
      if db:changes(s.to_stale, now, r[1]) == 1 then
        local detail = "no final status after " .. o.max_age .. " s"
        db:run(s.stale_history, r[2], now, r[3], detail)
        events.emit(db, now, "order.stale", r[2], panel, { order = number_or_nil(r[4]), status = r[3],
          detail = detail })
        summary.stale = summary.stale + 1
      end
    end
    local sending = {}
    for row in each_row(db, s.sending, panel, now - o.in_doubt_after) do
      sending[#sending + 1] = { row[1], row[2] }
    end
    for _, r in ipairs(sending) do
      local why = "no answer recorded " .. o.in_doubt_after ..
        " s after the request was sent (its sender stopped?): it may have been placed"
      if db:changes(s.to_in_doubt, why, now, r[1]) == 1 then
        db:run(s.doubt_history, r[2], now, why)
        events.emit(db, now, "order.in_doubt", r[2], panel, { error = why })
        summary.in_doubt = summary.in_doubt + 1
      end
    end
  end)
end

-- One page's answers for orders. rows[i] = { id, ref, order_id, status, remains, charge,
-- start_count, currency } (the row as it was); res: client:status's entries by order id.
-- What an order's entry in a status answer says: "lost" (no answer for it), "refused" (the
-- panel's error for this id), "changed" or "same".
-- (Every row of a round goes through here: the usual text values are compared as they are, no
-- function called for them.)
local function order_news(row, entry)
  if not entry or entry.kind then return "lost" end
  if entry.error then return "refused" end
  local status, charge, currency = entry.status, entry.charge, entry.currency
  if status ~= nil and type(status) ~= "string" then status = as_text(status) end
  if charge ~= nil and type(charge) ~= "string" then charge = as_text(charge) end
  if currency ~= nil and type(currency) ~= "string" then currency = as_text(currency) end
  if status ~= row[4] or charge ~= row[6] or currency ~= row[8] then return "changed" end
  local remains, start_count = row[5], row[7]
  if entry.remains ~= (remains and tonumber(remains)) or
      entry.start_count ~= (start_count and tonumber(start_count)) then
    return "changed"
  end
  return "same"
end

-- A slice whose answers change nothing but its rows' next check (the usual case: the claim
-- wrote that already): its counts (checked, refused), in one pass and with no statement at all.
-- nil when some row changed or was lost (then write_orders).
local function orders_quiet(slice)
  local res, rows = slice.res, slice.rows
  if not res then return nil end
  local checked, refused = 0, 0
  for i = 1, #rows do
    local row = rows[i]
    local what = order_news(row, res[row[3]])
    if what == "same" then
      checked = checked + 1
    elseif what == "refused" then
      refused = refused + 1
    else
      return nil
    end
  end
  return checked, refused
end

local function write_orders(db, s, panel, now, o, page, summary)
  local t = s.orders
  local token, rows, res = page.token, page.rows, page.res
  local back = now + o.min_interval
  for i = 1, #rows do
    local row = rows[i]
    local entry = res and res[row[3]]
    local what = order_news(row, entry)
    if what == "lost" then
      -- the chunk failed (the network, the panel): asked again next round
      summary.errors = summary.errors + 1
      db:run(t.lost, o.due, row[1], token)
      page.soonest = o.due
    elseif what == "refused" then
      summary.errors = summary.errors + 1 -- the panel's word on this id: backed off as unchanged
    else
      summary.checked = summary.checked + 1
      if what == "changed" then
        local status = as_text(entry.status)
        local remains, charge, start_count, currency = entry.remains, as_text(entry.charge),
          entry.start_count, as_text(entry.currency)
        local final = normalize.is_final(status)
        if db:changes(t.changed, status, remains, charge, start_count, currency,
            final and "final" or "placed", final and now or nil, now, back, row[1], token) == 1 then
          if not final and not (page.soonest and page.soonest <= back) then page.soonest = back end
          summary.changed = summary.changed + 1
          local id = tonumber(row[3])
          db:run(t.history, row[2], now, status, remains, charge, start_count)
          events.emit(db, now, "order.status", row[2], panel, { order = id, old = row[4], new = status,
            remains = remains, charge = charge, start_count = start_count, currency = currency })
          if final then
            summary.final = summary.final + 1
            events.emit(db, now, "order.final", row[2], panel, { order = id, status = status,
              remains = remains, charge = charge, start_count = start_count, currency = currency })
          end
        end
      end
    end
  end
end

-- rows[i] = { id, ref, order_id, refill_id, status }; res: refill_status's entries by refill id.
local function write_refills(db, s, panel, now, o, page, summary)
  local t = s.refills
  local token, rows, res = page.token, page.rows, page.res
  local back = now + o.min_interval
  for i = 1, #rows do
    local row = rows[i]
    local entry = res and res[row[4]]
    if not entry or entry.kind then
      summary.errors = summary.errors + 1
      db:run(t.lost, o.due, row[1], token)
      page.soonest = o.due
    elseif entry.error then
      summary.errors = summary.errors + 1
    else
      summary.refills_checked = summary.refills_checked + 1
      local status = as_text(entry.status)
      if status ~= row[5] then
        local final = normalize.is_refill_final(status)
        if db:changes(t.changed, status, final and "final" or "open", now, back, row[1], token) == 1 then
          if not final and not (page.soonest and page.soonest <= back) then page.soonest = back end
          summary.refills_changed = summary.refills_changed + 1
          local refill = tonumber(row[4])
          db:run(t.history, row[2], now, status, "refill " .. row[4])
          events.emit(db, now, "refill.status", row[2], panel, { order = tonumber(row[3]), refill = refill,
            old = row[5], new = status, final = final })
        end
      end
    end
  end
end

local WRITE = { orders = write_orders, refills = write_refills }
local QUIET = { orders = orders_quiet }

-- The book's side of following one table, in steps that hold no Lua state between them but
-- `walk` (a plain table: where the round is in the table), so that they run alike in this
-- process (follow, below) and, inside nginx, each in a worker thread of its own (threaded_round).
local function new_walk(tbl, panel, round_token)
  return { tbl = tbl, panel = panel, round_token = round_token, claimed = 0, pageno = 0, cursor = 0,
           swept = false }
end

local function key_of(tbl) return tbl == "orders" and 3 or 4 end

-- Up to n due rows after the cursor, leased to `token` in one statement: a slice of a page.
-- Their ids (what the panel is asked about) are appended to `ids`.
local function claim_slice(db, now, s, walk, o, token, n, ids)
  local t, key = s[walk.tbl], key_of(walk.tbl)
  local rows = {}
  local slice = { token = token, rows = rows }
  local first, last
  -- One statement (UPDATE ... RETURNING), so its own transaction: the rows it leases are the
  -- rows it returns, or none of them is leased.
  -- Due by the round's start, not by now: an order checked earlier in a round that outlasts
  -- min_interval is due again, and would be asked about twice in the round (which, on a book
  -- larger than the panel can answer in min_interval, would never end).
  for row in each_row(db, t.claim, token, now + o.lease, now, o.min_interval, o.max_interval, now,
      walk.panel, walk.cursor, o.due, now, n) do
    -- the driver's own table, a new one for each row, is the slice's row
    local id, rowid = tonumber(row[key]), tonumber(row[1])
    row[key], row[1] = id, rowid
    rows[#rows + 1] = row
    ids[#ids + 1] = id
    if not first or rowid < first then first = rowid end
    if not last or rowid > last then last = rowid end
  end
  if #rows == 0 then
    -- once through: a second sweep from the start takes what another worker's lease held
    -- when the cursor passed it and has expired since (a worker killed mid-round). Only when
    -- such a lease exists: the sweep reads every open row (40 ms for 100,000 on SQLite, with
    -- the requests in flight kept waiting), and without one it finds nothing a claim could
    -- not (rows another worker left due in the meantime are due at the next round).
    if walk.cursor > 0 and not walk.swept then
      walk.swept = true
      if db:row(s.slice_expired, now) then
        walk.cursor = 0
        return claim_slice(db, now, s, walk, o, token, n, ids)
      end
    end
    return nil
  end
  slice.first, slice.last, walk.cursor = first, last, last
  walk.claimed = walk.claimed + #rows
  return slice
end

-- A page: what one client:status asks, claimed SLICE rows at a time (each slice one short
-- statement, so that the requests in flight are never kept waiting long), all leased to the
-- page's token, which sync_slices holds until the page's answers are written.
local function claim_page(db, clock, s, walk, o, pause)
  local want = o.page
  if walk.tbl == "orders" and o.limit then want = math.min(want, o.limit - walk.claimed) end
  if want <= 0 then return nil end
  walk.pageno = walk.pageno + 1
  local page = { token = walk.round_token .. ":" .. walk.tbl .. ":" .. walk.pageno, slices = {}, ids = {} }
  db:run(s.slice_begin, page.token, clock() + o.lease)
  local got = 0
  while got < want do
    local slice = claim_slice(db, clock(), s, walk, o, page.token, math.min(SLICE, want - got), page.ids)
    if not slice then break end
    page.slices[#page.slices + 1] = slice
    got = got + #slice.rows
    if got < want then pause() end
  end
  if got == 0 then
    db:run(s.slice_done, page.token)
    return nil
  end
  return page
end

-- The soonest next check written after the claims (see next_due).
local function wrote(walk, at)
  if at and not (walk.soonest and walk.soonest <= at) then walk.soonest = at end
end

-- A page's answers (page.res) written, a slice per transaction.
local function write_page(db, clock, s, walk, o, page, summary, pause)
  local write, quiet = WRITE[walk.tbl], QUIET[walk.tbl]
  for i, slice in ipairs(page.slices) do
    slice.res = page.res
    local checked, refused
    if quiet then checked, refused = quiet(slice) end
    if checked then
      -- nothing to write but the counts: no statement, no transaction
      summary.checked, summary.errors = summary.checked + checked, summary.errors + refused
    else
      db:transaction(write, db, s, walk.panel, clock(), o, slice, summary)
      wrote(walk, slice.soonest)
      if i < #page.slices then pause() end
    end
    slice.res = nil
  end
  db:run(s.slice_done, page.token)
end

-- A page claimed and not asked about (or asked, and nothing answered): due at the next round.
local function release_page(db, s, walk, o, page)
  if page then
    wrote(walk, o.due)
    db:transaction(function()
      for _, slice in ipairs(page.slices) do
        db:run(s[walk.tbl].lost_all, o.due, walk.panel, slice.first, slice.last, page.token)
      end
      db:run(s.slice_done, page.token)
    end)
  end
end

-- Before the pages: housekeeping, and what dead workers left.
local function begin_round(db, s, panel, now, o, summary)
  housekeeping(db, s, panel, now, o, summary)
  -- slices of workers dead for a day: what they held has been taken again long since
  db:run(s.slices_forgotten, now - 86400)
end

-- After them: when the next order or refill is due. known[tbl]: the soonest next check of
-- that table, found while the round's last requests travelled (follow).
local function next_due(db, s, panel, known)
  local due
  for _, tbl in ipairs({ "orders", "refills" }) do
    local n = known and known[tbl]
    if n == nil then
      local row = db:row(s[tbl].next_due, panel)
      n = row and tonumber(row.n) or false
    end
    if n and (not due or n < due) then due = n end
  end
  return due
end

-- The soonest next check of the walk's table, read once its last page is claimed (the scan
-- reads every open row: done while that page travels), and folded with what was written after.
local function walk_due(walk)
  if walk.scanned == nil then return nil end
  local due = walk.scanned
  if walk.soonest and (not due or walk.soonest < due) then due = walk.soonest end
  return due or false
end

-- Pages of one table until nothing is due, the limit is reached or stop() says so.
-- Returns the error that ended it early, if any.
--
-- The book's work is done while the panel's answers travel: as page k's statuses are asked
-- (client:while_waiting), page k-1's answers are written and page k+1 is claimed, a statement
-- at a time, whenever the requests wait for the network. So a round costs the status requests
-- and little more (make bench). Only the statements run then, never the client, and each
-- transaction runs whole inside one step: nothing yields inside a pcall (Lua 5.1 cannot).
local function follow(c, client, s, walk, o, summary, ask)
  local db = c.db
  local in_work = false -- inside the coroutine that runs while the requests wait

  -- Between two slices of the book's work, while the requests wait: back to the network.
  local function pause()
    if in_work then coroutine.yield(true) end
  end
  local function claim() return claim_page(db, c.clock, s, walk, o, pause) end
  local function written(page) return write_page(db, c.clock, s, walk, o, page, summary, pause) end
  local function release(page) return release_page(db, s, walk, o, page) end

  local current = claim()
  local last -- the page asked before `current`, its answers not written yet
  while current do
    if o.stop and o.stop() then
      if last then written(last) end
      release(current)
      return nil, true
    end
    local upcoming, failure
    local work = coroutine.create(function()
      in_work = true
      if last then written(last) end
      pause()
      upcoming = claim()
      if not upcoming then
        -- the last page: what the round leaves due, read while it travels
        pause()
        local row = db:row(s[walk.tbl].next_due, walk.panel)
        walk.scanned, walk.soonest = row and tonumber(row.n) or false, nil
      end
      in_work = false
    end)
    local function step()
      if failure or coroutine.status(work) == "dead" then return false end
      local ok, more = coroutine.resume(work)
      if not ok then in_work, failure = false, more return false end
      return more == true and coroutine.status(work) ~= "dead"
    end
    local res, err
    if client.while_waiting then
      res, err = client:while_waiting(step, ask, current.ids)
    else
      res, err = ask(current.ids)
    end
    while step() do end -- what the wait left (all of it, on a transport that never waits idle)
    if failure then
      release(current)
      release(upcoming)
      error(failure, 0)
    end
    last = nil
    if not res then
      -- nothing answered (the panel or the network is down): asked again next round
      release(current)
      summary.errors = summary.errors + #current.ids
      release(upcoming)
      return err
    end
    current.res = res
    last, current = current, upcoming
  end
  if last then written(last) end
  return nil
end

local function new_summary()
  return { checked = 0, changed = 0, final = 0, stale = 0, in_doubt = 0, refills_checked = 0,
           refills_changed = 0, errors = 0 }
end

-- The options of the refills' walk: the orders' limit is not theirs.
local function refill_options(o)
  return { page = o.page, lease = o.lease, stop = o.stop, due = o.due, min_interval = o.min_interval,
           max_interval = o.max_interval }
end

function M.round(book, client, opts)
  local o = checked_options(client, opts)
  if type(book) == "table" and book.thread_pool then return M.threaded_round(book, client, o) end
  local bookmod = require "smm.book"
  local c = bookmod.connections[book]
  if not c then error("smm.book: sync: not a book (use smm.book.open)", 3) end
  local panel = client.url
  local summary = new_summary()
  -- a token part no other round shares, even of a worker given the same name twice
  local round_token = o.worker .. ":" .. random.hex(6)
  local stopped_err
  local result = { bookmod.guarded(book, function(db, now)
    local s = sql_for(db)
    o.due = now
    db:run(db.dialect.relaxed)
    local known = {}
    local ok, failure = pcall(function()
      begin_round(db, s, panel, now, o, summary)
      local walk = new_walk("orders", panel, round_token)
      local err, stopped = follow(c, client, s, walk, o, summary,
        function(ids) return client:status(ids) end)
      known.orders = walk_due(walk)
      stopped_err = err
      if not stopped and type(client.refill_status) == "function" then
        walk = new_walk("refills", panel, round_token)
        local rerr = follow(c, client, s, walk, refill_options(o), summary,
          function(ids) return client:refill_status(ids) end)
        known.refills = walk_due(walk)
        stopped_err = stopped_err or rerr
      end
    end)
    db:run(db.dialect.strict)
    if not ok then error(failure, 0) end
    summary.next_due = next_due(db, s, panel, known)
    return summary
  end) }
  if not result[1] then return nil, result[2] end
  return summary, stopped_err
end

---------------------------------------------------------------------------------------------------
-- Inside nginx, with a book opened with { thread_pool = } (smm.book.threaded): the same steps,
-- each run in a worker thread (smm.book.thread's STEPS, below), the statuses asked in between
-- over cosockets. Only plain values cross: the walk, the options (stop stays here), the pages
-- and their answers, the summary.

-- Runs fn(db, now, s, ...) on the thread's book, its writes relaxed as a round's are.
local function in_thread(book, fn, ...)
  local bookmod = require "smm.book"
  local args = { n = select("#", ...), ... }
  return bookmod.guarded(book, function(db, now)
    local s = sql_for(db)
    db:run(db.dialect.relaxed)
    local ok, a, b = pcall(fn, db, now, s, (table.unpack or unpack)(args, 1, args.n))
    db:run(db.dialect.strict)
    if not ok then error(a, 0) end
    return a, b
  end)
end

local function clock_of(book)
  return require("smm.book").connections[book].clock
end

local function no_pause() end

-- The thread's side: name -> function(book, ...) -> plain results (smm.book.thread runs them).
M.steps = {
  sync_begin = function(book, panel, o, summary)
    return in_thread(book, function(db, now, s)
      begin_round(db, s, panel, now, o, summary)
      return summary, now
    end)
  end,
  sync_claim = function(book, walk, o)
    return in_thread(book, function(db, _, s)
      return claim_page(db, clock_of(book), s, walk, o, no_pause) or false, walk
    end)
  end,
  sync_write = function(book, walk, o, page, summary)
    return in_thread(book, function(db, _, s)
      write_page(db, clock_of(book), s, walk, o, page, summary, no_pause)
      return summary
    end)
  end,
  sync_release = function(book, walk, o, page)
    return in_thread(book, function(db, _, s)
      release_page(db, s, walk, o, page)
      return true
    end)
  end,
  sync_end = function(book, panel)
    return in_thread(book, function(db, _, s) return next_due(db, s, panel) or false end)
  end,
}

-- nginx's side: one table's pages, each claimed and written in a thread. The next page is
-- claimed, and the last one's answers written, while this one's statuses travel (a light
-- thread of its own: the worker thread's wait is a yield like a cosocket's).
local function threaded_follow(book, walk, o, summary, ask)
  local function step(name, ...)
    local a, b = book:step(name, ...)
    if a == nil and b ~= nil then error(b, 0) end -- a book error: the round ends with it
    return a, b
  end
  local page
  page, walk = step("sync_claim", walk, o)
  local last -- asked, its answers not written yet
  while page do
    if o.stop and o.stop() then
      if last then summary = step("sync_write", walk, o, last, summary) end
      step("sync_release", walk, o, page)
      return nil, true, summary
    end
    local upcoming, upcoming_walk
    local ahead = ngx.thread.spawn(function()
      if last then summary = step("sync_write", walk, o, last, summary) end
      upcoming, upcoming_walk = step("sync_claim", walk, o)
      return true
    end)
    local res, err = ask(page.ids)
    local done, failure = ngx.thread.wait(ahead)
    if not done then
      step("sync_release", walk, o, page)
      error(failure, 0)
    end
    walk = upcoming_walk
    last = nil
    if not res then
      step("sync_release", walk, o, page)
      summary.errors = summary.errors + #page.ids
      if upcoming then step("sync_release", walk, o, upcoming) end
      return err, false, summary
    end
    page.res = res
    last, page = page, upcoming
  end
  if last then summary = step("sync_write", walk, o, last, summary) end
  return nil, false, summary
end

function M.threaded_round(book, client, o)
  local panel = client.url
  -- a token part no other round shares, even of a worker given the same name twice
  local round_token = o.worker .. ":" .. random.hex(6)
  local ok, summary, stopped_err = pcall(function()
    local summary, due = book:step("sync_begin", panel, o, new_summary())
    if not summary then error(due, 0) end
    o.due = due
    local err, stopped
    err, stopped, summary = threaded_follow(book, new_walk("orders", panel, round_token), o, summary,
      function(ids) return client:status(ids) end)
    local stopped_err = err
    if not stopped and type(client.refill_status) == "function" then
      local rerr
      local _
      rerr, _, summary = threaded_follow(book, new_walk("refills", panel, round_token),
        refill_options(o), summary, function(ids) return client:refill_status(ids) end)
      stopped_err = stopped_err or rerr
    end
    local next_check, berr = book:step("sync_end", panel)
    if next_check == nil then error(berr, 0) end
    summary.next_due = next_check or nil
    return summary, stopped_err
  end)
  if ok then return summary, stopped_err end
  if require("smm.errors").is(summary) then return nil, summary end
  error(summary, 0)
end

return M
