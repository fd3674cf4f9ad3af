-- What crosses between nginx's request VM and a worker thread's VM (ngx.run_worker_thread), and
-- the thread's side of a book opened with { thread_pool = } (smm.book.threaded is nginx's side).
--
-- A worker thread runs in a Lua VM of its own: it shares no table, no metatable and no LuaDBI
-- connection with the request's VM. run_worker_thread copies strings, numbers, booleans, nil and
-- tables of those, drops every metatable, refuses functions and userdata, and turns an error
-- raised in the thread into `false` with its text (a table raised is lost). So each call here
-- opens its book by URL (once per thread VM: the connection is cached there), never raises,
-- and returns plain values in which the book's error objects are marked to be rebuilt.
local M = {}

local MARK = "smm.error" -- an error object, as it crosses (its fields, and this key)

-- A copy of v that run_worker_thread can carry: error objects marked, metatables and
-- functions dropped (nothing the book returns or takes holds either, but an error may).
local function plain(v, seen)
  if type(v) ~= "table" then
    if type(v) == "function" or type(v) == "userdata" or type(v) == "thread" then return nil end
    return v
  end
  seen = seen or {}
  if seen[v] then return nil end -- a cycle cannot cross
  seen[v] = true
  local out = {}
  for k, x in pairs(v) do
    local kk = plain(k, seen)
    if kk ~= nil then out[kk] = plain(x, seen) end
  end
  seen[v] = nil
  local errors = package.loaded["smm.errors"]
  if errors and errors.is(v) then out[MARK] = true end
  return out
end
M.plain = plain

-- The other way: the marked tables are error objects again (already scrubbed when made).
local function rebuilt(v)
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do
    if type(x) == "table" then v[k] = rebuilt(x) end
  end
  if v[MARK] then
    v[MARK] = nil
    return setmetatable(v, require("smm.errors").Error)
  end
  return v
end
M.rebuilt = rebuilt

local function pack(...) return { n = select("#", ...), ... } end
local unpack = table.unpack or unpack

-- The books of this thread VM, by URL. A VM runs one task at a time, so a connection is never
-- used by two threads at once.
local books = {}

local function book_for(url)
  local book = books[url]
  if book then return book end
  local err
  book, err = require("smm.book").open(url)
  if not book then return nil, err end
  books[url] = book
  return book
end

-- Steps that are not book methods (sync's, hooks'): name -> function(book, ...).
local STEPS = {}
M.STEPS = STEPS

function STEPS.open(book) return { name = book.name, driver = book.driver } end

-- What book:intent (and intents) set on their intents: the attempt that holds each ref, which
-- book:outcome checks. It is sent back, since the caller's intent tables stayed behind.
local function attempts_of(method, args)
  if method == "intent" and type(args[1]) == "table" then return { args[1].attempt } end
  if method == "intents" and type(args[1]) == "table" then
    local out = {}
    for i, intent in ipairs(args[1]) do out[i] = intent.attempt or false end
    return out
  end
end

-- syntax: status, value, attempts = thread.call(url, method, args)   (in the worker thread)
-- status "ok": value = the method's results { n =, ... }; "raised": value = the text of what it
-- raised (a misuse, or a bug); "error": value = the error opening the book.
function M.call(url, method, args)
  args = rebuilt(args or { n = 0 })
  local ok, status, value = pcall(function()
    local book, err = book_for(url)
    if not book then return "error", err end
    local fn = STEPS[method]
    if not fn and method:find("^sync_") then fn = require("smm.book.sync").steps[method] end
    if not fn and method:find("^hooks_") then fn = require("smm.book.hooks").steps[method] end
    if not fn and method ~= "close" then fn = book[method] end
    if type(fn) ~= "function" then
      return "raised", "smm.book: no such book operation: " .. tostring(method)
    end
    local results = pack(pcall(fn, book, unpack(args, 1, args.n or #args)))
    if not results[1] then
      return "raised", tostring(results[2])
    end
    return "ok", { n = results.n - 1, unpack(results, 2, results.n) }
  end)
  if not ok then return "raised", tostring(status) end
  return status, plain(value), plain(attempts_of(method, args))
end

return M
