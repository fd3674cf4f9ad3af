-- A child process for spec 24: holds SQLite's write lock on a book for a while, as another
-- program writing to the same file would, so that the book's next write waits (busy_timeout).
--
--   lua book_lock.lua PATH SECONDS
-- Prints "locked" once BEGIN IMMEDIATE holds the lock, sleeps, commits, prints "released".
local DBI = require "DBI"
local socket = require "socket"

local path, seconds = arg[1], tonumber(arg[2])
local conn = assert(DBI.Connect("SQLite3", path))
conn:autocommit(true)
assert(conn:prepare("PRAGMA busy_timeout = 10000"):execute())
assert(conn:prepare("BEGIN IMMEDIATE"):execute())
io.stdout:write("locked\n")
io.stdout:flush()
socket.sleep(seconds)
assert(conn:prepare("COMMIT"):execute())
io.stdout:write("released\n")
io.stdout:flush()
conn:close()
