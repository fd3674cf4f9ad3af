-- bench/book_batch.lua: `smm batch --concurrency 8` of 2,000 rows through the order book against
-- a 20 ms panel (the sandbox, latency=20), in orders per second, against the same 2,000 adds
-- sent in parallel without a book (client:batch, concurrency 8). Issue 12 asks >= 0.8.
--
--   make && lua5.4 bench/book_batch.lua
--
-- The batch is the whole command as a user runs it (a fresh process: the CSV read and checked,
-- every row priced, the book opened, each intent committed before its request, each answer
-- recorded), on a SQLite book in a temporary folder (SMM_BENCH_BOOK_DIR to put it elsewhere,
-- e.g. on a real disk: synchronous=FULL makes each commit an fsync). SMM_BENCH_ROWS changes 2000;
-- SMM_BENCH_DRY=1 also times the dry run (read, check, plan: the part that sends nothing).
local root = (debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$") or ".")
if root:sub(1, 1) ~= "/" then root = (os.getenv("PWD") or ".") .. "/" .. root end
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;" .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath

local smm = require "smm"
local sandbox = require "helpers.sandbox"
local socket = require "socket"

local ROWS = tonumber(os.getenv("SMM_BENCH_ROWS") or "") or 2000
local CONCURRENCY = 8
local KEY = "bench-key"

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function tmpdir(base)
  local p = io.popen("mktemp -d " .. (base and ("-p " .. quote(base)) or ""))
  local dir = p:read("*l")
  p:close()
  return dir
end

local sb = sandbox.start{ key = KEY, latency = 20 }
local dir = tmpdir(os.getenv("SMM_BENCH_BOOK_DIR"))
local ok, err = pcall(function()
  local orders = {}
  local lines = { "service,link,quantity" }
  for i = 1, ROWS do
    orders[i] = { service = 1, link = "https://bench.example/" .. i, quantity = 100 }
    lines[#lines + 1] = "1,https://bench.example/" .. i .. ",100"
  end
  local f = assert(io.open(dir .. "/rows.csv", "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()

  -- without a book: the same adds, 8 at a time, in one client:batch
  sb:reset()
  sb:config{ balance = "1000000", latency = 20 }
  local client = smm.new{ url = sb.url, key = KEY, concurrency = CONCURRENCY }
  assert(client:services())
  local calls = {}
  for i, o in ipairs(orders) do calls[i] = { "add", o } end
  local started = socket.gettime()
  local results = client:batch(calls)
  local bare = socket.gettime() - started
  client:close()
  for i, r in ipairs(results) do assert(r.value, "add " .. i .. ": " .. tostring(r.err)) end
  assert(sb:stats().orders == ROWS, "the bare adds placed " .. sb:stats().orders)

  -- through the book: the command line, a fresh process
  sb:reset()
  sb:config{ balance = "1000000", latency = 20 }
  local cmd = string.format("cd %s && env -u SMM_PROFILE -u SMM_CONFIG SMM_API_URL=%s SMM_API_KEY=%s " ..
    "XDG_CONFIG_HOME=%s lua5.4 %s batch rows.csv --yes --concurrency %d --book %s " ..
    "</dev/null >batch.out 2>batch.err",
    quote(dir), quote(sb.url), quote(KEY), quote(dir .. "/xdg"), quote(root .. "/bin/smm"), CONCURRENCY,
    quote("sqlite:" .. dir .. "/book.db"))
  if os.getenv("SMM_BENCH_DRY") then
    local t = socket.gettime()
    os.execute((cmd:gsub("%-%-yes", "--yes --dry-run")))
    print(string.format("dry run (read, check, plan): %.2f s", socket.gettime() - t))
  end
  started = socket.gettime()
  local ran = os.execute(cmd)
  local booked = socket.gettime() - started
  assert(ran == true or ran == 0, "smm batch failed: see " .. dir .. "/batch.err")
  assert(sb:stats().orders == ROWS, "the batch placed " .. sb:stats().orders)

  local with_book, without = ROWS / booked, ROWS / bare
  print(string.format("book batch %d rows: %.0f/s vs %.0f/s = %.2f (limit >= 0.8)", ROWS, with_book,
    without, with_book / without))
end)
sb:stop()
os.execute("rm -rf " .. quote(dir))
if not ok then error(err, 0) end
