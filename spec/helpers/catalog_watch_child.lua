-- A child process for spec 95: one watcher of a panel's catalog on a shared book.
--
--   lua catalog_watch_child.lua BOOK_URL PANEL_URL GO_FILE READY_FILE
-- Opens the book, writes READY_FILE, waits for GO_FILE (so that every child watches at once),
-- runs one catalog watch of the panel (named "a"), prints "events=N changed=BOOL" or the error.
local smm = require "smm"
local socket = require "socket"
local catalog = require "smm.router.catalog"

local book_url, panel, go, ready = arg[1], arg[2], arg[3], arg[4]
local book, err = smm.book.open(book_url)
if not book then
  print("open failed: " .. tostring(err))
  os.exit(1)
end
local cat = catalog.new{ panels = { { name = "a", client = smm.new{ url = panel, key = "sandbox-key" } } },
  book = book }
local f = assert(io.open(ready, "w"))
f:close()
while not io.open(go, "r") do socket.sleep(0.005) end
local w, werr = cat:watch()
if not w then
  print("watch failed: " .. tostring(werr))
  os.exit(1)
end
print(("events=%d changed=%s"):format(#w.events, tostring(w.panels[1].changed)))
book:close()
