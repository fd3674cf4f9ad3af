-- What differs between the book's engines, and nothing else: every other statement is the same
-- text on both (ON CONFLICT ... DO NOTHING is both SQLite's and PostgreSQL's).
--   begin      a transaction that writes: SQLite's IMMEDIATE takes the write lock at once, so
--              two writers queue (busy_timeout) instead of one failing at its first write
--   serial     the type of a table's own row id
--   skip_locked  appended to the claim's inner SELECT: PostgreSQL's row locks let several
--              workers claim at once, each skipping the rows another holds; SQLite has one
--              writer at a time, so its claim needs none
--   greatest / least   of two values (SQLite's max/min of several arguments)
--   in_ids(subquery)   "id IN (subquery)"'s right side: PostgreSQL plans IN (SELECT ... LIMIT n)
--              as a join that reads the whole table; = ANY(ARRAY(...)) runs the subquery once
--              and looks each id up by its key
--   tune       run by a migration: PostgreSQL leaves room in each page of the tables a sync
--              round rewrites, so that a row's new version stays in its page (a HOT update,
--              no index touched) when no indexed column changes. Half a page: a round updates
--              every row of a page at once, and at 70% only about half of them found room
--              (measured: 50% HOT and 2.3 ms per 100 rows; at 50%, all HOT and 0.7 ms)
--   relaxed / strict   around a sync round: its writes (statuses that the next round would
--              ask again) need not wait for the disk at each commit, unlike an intent; a
--              crash loses at most the last pages' records, never the database
--   open       statements run once on each connection (PostgreSQL: no NOTICE on stderr when
--              a migration finds its table there already)
--   lock_catalog  run first in a transaction that stores catalog snapshots (smm.router.catalog):
--              two watchers of one PostgreSQL book would both diff against the same last
--              snapshot and tell each change twice (SQLite's write lock already orders them)
--   lock_migrations / unlock_migrations   around migrating: two processes opening a new
--              PostgreSQL book at once would both create its tables (SQLite's write lock
--              already orders them)
return {
  sqlite = {
    begin = "BEGIN IMMEDIATE",
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT",
    skip_locked = "",
    greatest = "max", least = "min",
    in_ids = function(subquery) return "IN (" .. subquery .. ")" end,
    tune = {},
    relaxed = "PRAGMA synchronous = NORMAL", strict = "PRAGMA synchronous = FULL",
    -- busy_timeout first: switching a new file to WAL takes a lock that another process
    -- opening the same new book may hold, and without it that is "database is locked" at once
    open = { "PRAGMA busy_timeout = 30000", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL",
             "PRAGMA foreign_keys = ON" },
  },
  postgresql = {
    begin = "BEGIN",
    serial = "BIGSERIAL PRIMARY KEY",
    skip_locked = " FOR UPDATE SKIP LOCKED",
    greatest = "GREATEST", least = "LEAST",
    in_ids = function(subquery) return "= ANY(ARRAY(" .. subquery .. "))" end,
    tune = { "ALTER TABLE orders SET (fillfactor = 50)", "ALTER TABLE refills SET (fillfactor = 50)" },
    relaxed = "SET synchronous_commit = off", strict = "SET synchronous_commit = on",
    open = { "SET TIME ZONE 'UTC'", "SET lock_timeout = '30s'", "SET client_min_messages = warning" },
    lock_catalog = "SELECT pg_advisory_xact_lock(7270002)",
    lock_migrations = "SELECT pg_advisory_lock(7270001)",
    unlock_migrations = "SELECT pg_advisory_unlock(7270001)",
  },
}
