-- The book's tables, as numbered migrations applied in order on open. A migration is never
-- edited once released: a change is a new one. {serial} is the dialect's row id type.
--
-- Every time is UTC, in whole seconds since the epoch (integers sort and compare the same on
-- both engines; the CLI and events show them as ISO 8601). Money is exact decimal text. The
-- panel is its URL without credentials; no key or password is ever stored.
local M = {}

M.MIGRATIONS = {
  { version = 1, statements = {
    [[CREATE TABLE orders (
        id {serial},
        ref TEXT NOT NULL UNIQUE,      -- the caller's reference: the idempotency key
        panel TEXT NOT NULL,
        state TEXT NOT NULL,           -- sending | placed | in_doubt | failed | final | stale
        order_id BIGINT,
        service BIGINT,
        link TEXT,
        quantity BIGINT,
        fields TEXT NOT NULL,          -- the order's fields as sent (JSON, never the key)
        quote TEXT,
        status TEXT,
        remains BIGINT,
        charge TEXT,
        start_count BIGINT,
        currency TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        sent_at BIGINT,
        updated_at BIGINT NOT NULL,
        final_at BIGINT,
        next_check BIGINT,
        checks INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until BIGINT
      )]],
    "CREATE UNIQUE INDEX orders_panel_order ON orders (panel, order_id)",
    "CREATE INDEX orders_due ON orders (panel, state, next_check)",
    "CREATE INDEX orders_created ON orders (created_at)",
    [[CREATE TABLE history (
        id {serial},
        ref TEXT NOT NULL,
        at BIGINT NOT NULL,
        what TEXT NOT NULL,            -- placed | status | in_doubt | failed | resolved | cancel | refill
                                       -- | stale
        status TEXT,
        remains BIGINT,
        charge TEXT,
        start_count BIGINT,
        detail TEXT
      )]],
    "CREATE INDEX history_ref ON history (ref)",
    [[CREATE TABLE refills (
        id {serial},
        ref TEXT NOT NULL,             -- the order's ref
        panel TEXT NOT NULL,
        order_id BIGINT NOT NULL,
        refill_id BIGINT,
        state TEXT NOT NULL,           -- sending | open | in_doubt | failed | final
        status TEXT,
        error TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        next_check BIGINT,
        checks INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until BIGINT
      )]],
    "CREATE INDEX refills_due ON refills (panel, state, next_check)",
    "CREATE INDEX refills_ref ON refills (ref)",
    [[CREATE TABLE events (
        id {serial},
        type TEXT NOT NULL,
        ref TEXT,
        panel TEXT,
        data TEXT NOT NULL,            -- the event as delivered (JSON)
        created_at BIGINT NOT NULL,
        delivered_at BIGINT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt BIGINT NOT NULL DEFAULT 0,
        last_error TEXT
      )]],
    "CREATE INDEX events_pending ON events (delivered_at, next_attempt)",
  } },
  -- Events claimed with a lease by their deliverer (smm.book.hooks), so that two deliverers on
  -- one book do not send the same event at the same time.
  { version = 2, statements = {
    "ALTER TABLE events ADD COLUMN lease_owner TEXT",
    "ALTER TABLE events ADD COLUMN lease_until BIGINT",
  } },
  -- sync finds a page's rows by their lease token: without an index every page scans every
  -- order. Partial, so only the rows leased right now are in it (a few pages' worth).
  { version = 3, statements = {
    "CREATE INDEX orders_leased ON orders (lease_owner) WHERE lease_owner IS NOT NULL",
    "CREATE INDEX refills_leased ON refills (lease_owner) WHERE lease_owner IS NOT NULL",
  } },
  -- A sync round finds its pages through (panel, state, id) and by RETURNING, not by next_check
  -- or the lease: with neither of those indexed, rescheduling a row changes no index (on
  -- PostgreSQL, with room left in its page, a HOT update), which is most of a round's writes.
  { version = 4, statements = {
    "DROP INDEX orders_due", "DROP INDEX orders_leased",
    "DROP INDEX refills_due", "DROP INDEX refills_leased",
    "CREATE INDEX orders_open ON orders (panel, state, id)",
    "CREATE INDEX refills_open ON refills (panel, state, id)",
    "{tune}",
  } },
  -- A sync round's slices in progress (smm.book.sync): a claim reschedules its rows at once, so
  -- that a round writes each row once; the rows of a slice whose lease expired before its answers
  -- were written (its worker died) are due again.
  { version = 5, statements = {
    "CREATE TABLE sync_slices (token TEXT PRIMARY KEY, lease_until BIGINT NOT NULL)",
  } },
  -- Several panels (smm.router): the router's choice for an order (JSON: product, panel name,
  -- reason, the candidates passed over and why); each panel's health as every process sees it
  -- (the circuit breaker, the balance from answers); the panels' service lists as snapshots,
  -- the catalog's memory between runs and what `watch` diffs against.
  { version = 6, statements = {
    "ALTER TABLE orders ADD COLUMN route TEXT",
    [[CREATE TABLE panels (
        name TEXT PRIMARY KEY,         -- the panel's name in the router's list
        url TEXT NOT NULL,             -- without credentials
        state TEXT NOT NULL,           -- up | down | probing
        failures INTEGER NOT NULL DEFAULT 0,
        down_until BIGINT,
        balance TEXT,
        currency TEXT,
        balance_at BIGINT,
        last_error TEXT,
        updated_at BIGINT NOT NULL
      )]],
    [[CREATE TABLE catalog_snapshots (
        id {serial},
        panel TEXT NOT NULL,           -- the panel's name
        taken_at BIGINT NOT NULL,
        digest TEXT NOT NULL,          -- of the normalised list: an unchanged list is not stored again
        services TEXT NOT NULL         -- the normalised list (JSON)
      )]],
    "CREATE INDEX catalog_snapshots_panel ON catalog_snapshots (panel, id)",
  } },
  -- The start of every sync round looks for the
  -- panel's open orders past max_age (sync's housekeeping): through (panel, state, id) that read
  -- every open row (24 ms for 100,000 on SQLite, before the round's first request); through this
  -- index, only the old ones. created_at never changes, so no sync update touches it.
  { version = 7, statements = {
    "CREATE INDEX orders_open_age ON orders (panel, state, created_at)",
  } },
}

M.LATEST = M.MIGRATIONS[#M.MIGRATIONS].version

-- Applies what is missing, each migration in its own transaction. Two processes opening a new
-- book at once: the second waits for the first's transaction (a write lock) and then finds the
-- version already there.
function M.migrate(db)
  if db.dialect.lock_migrations then db:rows(db.dialect.lock_migrations) end
  local ok, err = pcall(M.apply, db)
  if db.dialect.unlock_migrations then pcall(db.rows, db, db.dialect.unlock_migrations) end
  if not ok then error(err, 0) end
end

function M.apply(db)
  db:run([[CREATE TABLE IF NOT EXISTS smm_schema (version INTEGER NOT NULL)]])
  local function current()
    local row = db:row("SELECT " .. db:int("version") .. " FROM smm_schema")
    return row and row.version or 0
  end
  if current() > M.LATEST then
    require("smm.book.db").fail(db, "the book's schema is version " .. current() ..
      ", newer than this lua-smm knows (" .. M.LATEST .. "): upgrade lua-smm", "book_newer")
  end
  -- a book already current takes no write lock: opening it beside a busy writer (a batch, a
  -- sync worker) must not queue behind it once per migration
  if current() == M.LATEST then return end
  for _, m in ipairs(M.MIGRATIONS) do
    db:transaction(function()
      local have = current()
      if have >= m.version then return end
      for _, sql in ipairs(m.statements) do
        if sql == "{tune}" then
          for _, tune in ipairs(db.dialect.tune) do db:run(tune) end
        else
          db:run((sql:gsub("{serial}", db.dialect.serial)))
        end
      end
      if have == 0 then
        db:run("INSERT INTO smm_schema (version) VALUES (?)", m.version)
      else
        db:run("UPDATE smm_schema SET version = ?", m.version)
      end
    end)
  end
end

return M
