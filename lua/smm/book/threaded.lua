-- A book inside nginx whose database work runs in nginx's worker threads, so that a request
-- waiting for the disk (or for PostgreSQL, or for a SQLite lock held by another process) never
-- blocks the event loop and the other requests of its worker.
--
--   thread_pool smm threads=4;                       -- nginx.conf, main context
--   local book = smm.book.open("sqlite:/var/lib/smm/orders.db", { thread_pool = "smm" })
--   local client = smm.new{ url = ..., key = ..., book = book }
--   client:add(order, { ref = "shop-1234" })        -- in rewrite, access, content or a timer
--
-- Every method is the book's own (smm.book), run by smm.book.thread in a thread's VM through
-- ngx.run_worker_thread, with the same arguments and results: the SQL lives in one place. Only
-- plain values cross (see smm.book.thread); the book never sees the panel's key, and neither
-- does the thread. Methods work where run_worker_thread does (rewrite, access, content,
-- ngx.timer); elsewhere (init_worker_by_lua, log, header_filter) they raise.
local errors = require "smm.errors"
local target = require "smm.book.target"
local wire = require "smm.book.thread"

local M = {}

local ThreadedBook = {}
ThreadedBook.__index = ThreadedBook
M.ThreadedBook = ThreadedBook

-- The URL holds a PostgreSQL password: off the book table, so that printing the book shows none.
local urls = setmetatable({}, { __mode = "k" })

local unpack = table.unpack or unpack
local function pack(...) return { n = select("#", ...), ... } end

-- Phases whose code may yield to a worker thread.
local YIELDABLE = { rewrite = true, access = true, content = true, timer = true }

local function can_wait()
  return ngx and ngx.get_phase and YIELDABLE[ngx.get_phase()] or false
end

-- Runs one book operation in a worker thread; -> its results as the book would return them.
local function remote(book, method, ...)
  if not can_wait() then
    error("smm.book: " .. method .. ": a book with thread_pool works in rewrite, access, content " ..
      "and timer handlers only (ngx.run_worker_thread), not in " ..
      (ngx and ngx.get_phase and ngx.get_phase() or "this context"), 3)
  end
  local ok, status, value, attempts = ngx.run_worker_thread(book.thread_pool, "smm.book.thread", "call",
    urls[book], method, wire.plain(pack(...)))
  if not ok then
    -- the thread could not run at all (no such pool, no VM free, the module not found)
    return nil, errors.new({ kind = "book", code = "book_unavailable", book = book.name,
      message = book.name .. ": the worker thread pool '" .. book.thread_pool .. "' failed: " ..
        tostring(status) }), nil
  end
  if status == "raised" then error(value, 3) end
  if status == "error" then return nil, wire.rebuilt(value), nil end
  value = wire.rebuilt(value)
  return value, nil, attempts
end

-- A method whose results come back as they are.
local function forward(method)
  return function(self, ...)
    local results, err = remote(self, method, ...)
    if not results then return nil, err end
    return unpack(results, 1, results.n)
  end
end

-- syntax: book, err = threaded.open(url, pool)   (smm.book.open(url, { thread_pool = pool }))
-- The URL is checked here; the database is opened (and migrated) by the first operation, or
-- now when the phase allows a worker thread, so that a wrong path shows at once.
function M.open(url, pool)
  local where, why = target.parse(url)
  if not where then
    return nil, errors.new({ kind = "book", code = "book_url", message = why })
  end
  local book = setmetatable({ name = where.name, driver = where.driver, thread_pool = pool }, ThreadedBook)
  urls[book] = url
  if can_wait() then
    local ok, err = remote(book, "open")
    if not ok then return nil, err end
  end
  return book
end

function ThreadedBook:__tostring()
  return "smm.book: " .. self.name .. " (thread pool " .. self.thread_pool .. ")"
end

-- Connections belong to the threads' VMs, which nginx keeps for the worker's life.
function ThreadedBook.close() end
ThreadedBook.__close = ThreadedBook.close

function ThreadedBook.now() return ngx and ngx.time() or os.time() end

-- The client's side: intent(s) set the attempt that holds each ref on the caller's intents
-- (book:outcome checks it), as the book does.
function ThreadedBook:intent(intent)
  local results, err, attempts = remote(self, "intent", intent)
  if not results then return nil, err end
  if results[1] and type(intent) == "table" then intent.attempt = attempts and attempts[1] end
  return unpack(results, 1, results.n)
end

function ThreadedBook:intents(list)
  local results, err, attempts = remote(self, "intents", list)
  if not results then return nil, err end
  if results[1] and attempts then
    for i, intent in ipairs(list) do
      if attempts[i] then intent.attempt = attempts[i] end
    end
  end
  return unpack(results, 1, results.n)
end

for _, method in ipairs({ "outcome", "outcomes", "record", "resolve", "get", "find", "orders", "doubt",
    "history", "counts", "report", "panels", "panel" }) do
  ThreadedBook[method] = forward(method)
end

-- Following orders and delivering events: the same rounds, their SQL steps run in threads and
-- the panel and the webhooks reached with cosockets between them.
function ThreadedBook:sync(client, opts) return require("smm.book.sync").round(self, client, opts) end
function ThreadedBook:deliver(hooks, opts) return require("smm.book.hooks").deliver(self, hooks, opts) end

-- Runs a step of sync or hooks (smm.book.thread's STEPS) in a thread: -> its results.
ThreadedBook.step = function(self, name, ...)
  local results, err = remote(self, name, ...)
  if not results then return nil, err end
  return unpack(results, 1, results.n)
end

return M
