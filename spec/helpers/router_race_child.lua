-- A child process for spec 99: another process on the same book routing one ref through its own
-- router over the same three panels (helpers.router's keys). Prints one line: where the add of
-- REF went (the panel's name) or its error code.
--
--   lua router_race_child.lua BOOK_URL URL_A URL_B URL_C REF
local smm = require "smm"
local rt = require "helpers.router"

local book_url, ref = arg[1], arg[5]
local book = assert(smm.book.open(book_url))
local router = rt.router(book, { a = { url = arg[2] }, b = { url = arg[3] }, c = { url = arg[4] } },
  { client = { retries = 0, timeout = 10000 } })
local res, err = router:add{ product = "followers", link = "https://x.test/" .. ref, quantity = 1000, ref = ref }
print(res and ("placed:" .. res.panel) or ("error:" .. tostring(err and err.code)))
book:close()
