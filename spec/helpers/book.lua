-- Test helper for the order book's specs: one real database per engine (a SQLite file in a temp
-- folder, or the helpers.postgres server), the book's own connection for looking inside, the
-- text of every row for secret scans, and child Lua processes (the same interpreter and paths)
-- for kill and race cases.
--
--   local books = require "helpers.book"
--   local store = books.store("sqlite")       -- or "postgresql": starts the server (never skipped)
--   local book = store:open()                 -- a fresh book (a new file / a reset database)
--   store.url, store.secret                   -- the URL; the password (postgresql) or nil
--   books.db(book)                            -- the book's LuaDBI wrapper (smm.book.db)
--   books.texts(book)                         -- every string in every row of every table
--   books.child(script_path, args)            -- a command line running a Lua file like this one
--   store:close()                             -- stops the server / deletes the folder
local postgres = require "helpers.postgres"
local cli = require "helpers.cli"

local M = {}
M.ENGINES = { "sqlite", "postgresql" }

local root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/helpers/") or ".")
M.root = root

local Store = {}
Store.__index = Store

local function output(cmd)
  local p = assert(io.popen(cmd, "r"))
  local s = p:read("*a")
  p:close()
  return (s:gsub("%s+$", ""))
end

function M.tempdir()
  local dir = output("mktemp -d /tmp/smm-book.XXXXXX")
  assert(dir:find("^/tmp/smm%-book%."), "mktemp failed")
  return dir
end

function M.store(engine)
  local self = setmetatable({ engine = engine, dir = M.tempdir(), n = 0 }, Store)
  if engine == "postgresql" then
    -- never skipped: a machine without PostgreSQL fails these specs
    local ok, why = postgres.available()
    assert(ok, "PostgreSQL is required for the order book's specs: " .. tostring(why))
    self.pg = postgres.start()
    self.url = self.pg.url
    self.secret = self.pg.password
  end
  return self
end

-- A URL for a fresh book: a new SQLite file, or the PostgreSQL database emptied.
function Store:fresh_url()
  self.n = self.n + 1
  if self.engine == "sqlite" then
    self.url = "sqlite:" .. self.dir .. "/book" .. self.n .. ".db"
  else
    self.pg:reset()
  end
  return self.url
end

function Store:open(opts)
  local smm = require "smm"
  return assert(smm.book.open(self:fresh_url(), opts))
end

function Store:close()
  if self.pg then self.pg:stop() end
  os.execute("rm -rf " .. cli.quote(self.dir))
end

function M.db(book)
  return require("smm.book").connections[book].db
end

-- Every table of the book, found in the database itself (not from a list that could miss one).
function M.tables(book)
  local db = M.db(book)
  local rows
  if db.driver == "sqlite" then
    rows = db:rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
  else
    rows = db:rows("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'")
  end
  local names = {}
  for i, row in ipairs(rows) do names[i] = row.name end
  table.sort(names)
  return names
end

-- { { table =, column =, value = }, ... }: every text value in the book.
function M.texts(book)
  local db, out = M.db(book), {}
  for _, name in ipairs(M.tables(book)) do
    for _, row in ipairs(db:rows("SELECT * FROM " .. name)) do
      for column, value in pairs(row) do
        if type(value) == "string" then out[#out + 1] = { table = name, column = column, value = value } end
      end
    end
  end
  return out
end

-- The interpreter running this spec, for children that must run on the same Lua.
function M.lua()
  if os.getenv("SMM_BOOK_LUA") then return os.getenv("SMM_BOOK_LUA") end
  if jit then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

-- A shell command running `script` with this process's module paths and the given arguments.
function M.child(script, args)
  local words = {}
  for i, a in ipairs(args or {}) do words[i] = cli.quote(a) end
  return string.format("LUA_PATH=%s LUA_CPATH=%s %s %s %s",
    cli.quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;" .. package.path),
    cli.quote(package.cpath), M.lua(), cli.quote(script), table.concat(words, " "))
end

return M
