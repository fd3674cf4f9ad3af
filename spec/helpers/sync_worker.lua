-- Test helper: one sync worker as its own OS process. Opens the book, makes a client, runs
-- book:sync once and prints the summary as one JSON line. What it needs comes through the
-- environment, so that no password or key shows in a process list:
--   SMM_BOOK     the book's URL          SMM_PANEL   the panel's API URL
--   SMM_KEY      the panel's key         SMM_SYNC    the round's options as JSON (optional)
--   SMM_CONCURRENCY  the client's concurrency (optional)
-- Before the round it prints "pid N" (for a spec that kills it mid-round).
local cjson = require "cjson"
local smm = require "smm"

local function env(name)
  local v = os.getenv(name)
  if not v or v == "" then
    io.stderr:write("sync_worker: ", name, " is not set\n")
    os.exit(2)
  end
  return v
end

local pid = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")
io.stdout:write("pid ", pid, "\n")
io.stdout:flush()

local book = assert(smm.book.open(env("SMM_BOOK")))
local client = smm.new{ url = env("SMM_PANEL"), key = env("SMM_KEY"), book = book,
  concurrency = tonumber(os.getenv("SMM_CONCURRENCY") or "") or 4 }
local opts = os.getenv("SMM_SYNC")
opts = opts and opts ~= "" and cjson.decode(opts) or nil
local summary, err = book:sync(client, opts)
if not summary then
  io.stdout:write(cjson.encode({ error = tostring(err) }), "\n")
  os.exit(1)
end
summary.error = err and tostring(err) or nil
io.stdout:write(cjson.encode(summary), "\n")
book:close()
