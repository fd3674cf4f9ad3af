-- A child process for spec 86: opens the book, adds orders through the sandbox, prints what
-- each add ended in. Killed mid-request in one case, run eight at once in another.
--
--   lua book_child.lua BOOK_URL PANEL_URL KEY FIRST LAST [GO_FILE READY_FILE]
-- Adds refs race-FIRST .. race-LAST (one order each); with GO_FILE, writes READY_FILE and
-- waits for GO_FILE before opening the book, so that all children start together.
-- Prints one line: "placed=N recorded=N in_doubt=N failed=N" and each other error on its own line.
local smm = require "smm"
local socket = require "socket"

local book_url, panel, key, first, last, go, ready = arg[1], arg[2], arg[3], tonumber(arg[4]),
  tonumber(arg[5]), arg[6], arg[7]

if go then
  local f = assert(io.open(ready, "w"))
  f:close()
  while not io.open(go, "r") do socket.sleep(0.005) end
end

local book, err = smm.book.open(book_url)
if not book then
  print("open failed: " .. tostring(err))
  os.exit(1)
end
local client = smm.new{ url = panel, key = key, book = book, timeout = 60000, retries = 0 }
local counts = { placed = 0, recorded = 0, in_doubt = 0, failed = 0 }
local others = {}
for i = first, last do
  local res, e = client:add({ service = 1, link = "https://x.test/race-" .. i, quantity = 100 },
    { ref = "race-" .. i })
  if res and res.recorded then counts.recorded = counts.recorded + 1
  elseif res then counts.placed = counts.placed + 1
  elseif e.code == "in_doubt" then counts.in_doubt = counts.in_doubt + 1
  else
    counts.failed = counts.failed + 1
    others[#others + 1] = tostring(e)
  end
  io.stdout:flush()
end
print(("placed=%d recorded=%d in_doubt=%d failed=%d"):format(counts.placed, counts.recorded,
  counts.in_doubt, counts.failed))
for _, line in ipairs(others) do print(line) end
client:close()
book:close()
