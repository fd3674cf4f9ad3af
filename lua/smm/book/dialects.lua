-- What differs between the book's engines, and nothing else: every other statement is the same
-- text on both (ON CONFLICT ... DO NOTHING is both SQLite's and PostgreSQL's).
--   begin      a transaction that writes: SQLite's IMMEDIATE takes the write lock at once, so
--              two writers queue (busy_timeout) instead of one failing at its first write
--   serial     the type of a table's own row id
--   skip_locked  appended to the claim's inner SELECT: PostgreSQL's row locks let several
--              workers claim at once, each skipping the rows another holds; SQLite has one
--              writer at a time, so its claim needs none
--   greatest / least   of two values (SQLite's max/min of several arguments)
--   relaxed / strict   around a sync round: its writes (statuses that the next round would
--              ask again) need not wait for the disk at each commit, unlike an intent; a
--              crash loses at most the last pages' records, never the database
--   open       statements run once on each connection (PostgreSQL: no NOTICE on stderr when
--              a migration finds its table there already)
--   lock_migrations / unlock_migrations   around migrating: two processes opening a new
--              PostgreSQL book at once would both create its tables (SQLite's write lock
--              already orders them)
return {
  sqlite = {
    begin = "BEGIN IMMEDIATE",
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT",
    skip_locked = "",
    greatest = "max", least = "min",
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
    relaxed = "SET synchronous_commit = off", strict = "SET synchronous_commit = on",
    open = { "SET TIME ZONE 'UTC'", "SET lock_timeout = '30s'", "SET client_min_messages = warning" },
    lock_migrations = "SELECT pg_advisory_lock(7270001)",
    unlock_migrations = "SELECT pg_advisory_unlock(7270001)",
  },
}
