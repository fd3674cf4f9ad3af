-- A child process for spec 92: another process on the same book, with its own router over the
-- same three panels (helpers.router's keys), at the clock it is given. Prints one line: the
-- state it reads for each panel and where an add of REF went (or its error code).
--
--   lua router_child.lua BOOK_URL URL_A URL_B URL_C NOW_MS REF
local smm = require "smm"
local rt = require "helpers.router"

local book_url, now_ms, ref = arg[1], tonumber(arg[5]), arg[6]
local book = assert(smm.book.open(book_url))
local router = rt.router(book, { a = { url = arg[2] }, b = { url = arg[3] }, c = { url = arg[4] } },
  { breaker = { failures = 2, cool_off = 60000 }, clock = function() return now_ms end })
local states = {}
for _, p in ipairs(assert(router:panels())) do states[#states + 1] = p.name .. "=" .. p.state end
local res, err = router:add{ product = "followers", link = "https://x.test/" .. ref, quantity = 1000, ref = ref }
print(table.concat(states, " ") .. " add=" .. (res and res.panel or ("error:" .. tostring(err and err.code))))
book:close()
