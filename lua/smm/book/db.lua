-- The book's one way to its database: LuaDBI (Debian's lua-dbi-sqlite3, lua-dbi-postgresql),
-- prepared statements only, the same SQL for both engines except the few statements that differ
-- (smm.book.dialects). Everything above this file sees rows as Lua tables with integers for
-- ids, counts and times, strings for money.
--
-- Two facts of LuaDBI 0.7 shape this file. Both its drivers read integers into 32 bits
-- (2^53 - 1 comes back as -1, on SQLite and PostgreSQL alike), and on 5.1 and LuaJIT it sends
-- numbers as %.14g (2^53 - 1 becomes 9.007199254741e+15). So numbers are bound as their
-- decimal text (SQLite's INTEGER affinity stores them as integers, PostgreSQL casts them), and
-- integer columns are selected as text (DB:int) and turned back into integers here. And a
-- failed statement raises nothing: each call is checked, and a failure raises a book error that
-- the public methods (smm.book) return as nil, err.
local errors = require "smm.errors"
local dialects = require "smm.book.dialects"

local M = {}

local DB = {}
DB.__index = DB

-- Columns holding integers, in every table: turned back into Lua integers after a SELECT.
local INTEGER = {}
for name in ([[id order_id service quantity remains start_count attempts created_at sent_at
    updated_at final_at next_check lease_until checks refill_id version n event_id delivered_at
    next_attempt at runs interval failures down_until balance_at taken_at]]):gmatch("%S+") do
  INTEGER[name] = true
end
M.INTEGER = INTEGER

local function pack(...) return { n = select("#", ...), ... } end

local to_integer = math.tointeger or function(v) return v end

local function integer(v)
  if type(v) == "string" then v = tonumber(v) end
  if type(v) == "number" then return to_integer(v) or v end
  return v
end

-- A number as the decimal text bound for it. Integers exactly (%d would round above 2^53 on
-- 5.1, so %.0f there); anything else is a mistake of the caller.
local function bound(v)
  if type(v) ~= "number" then return v end
  if math.type then
    if math.type(v) == "integer" then return string.format("%d", v) end
    local i = math.tointeger(v)
    if i then return string.format("%d", i) end
  elseif v == math.floor(v) and v > -2^63 and v < 2^63 then
    return string.format("%.0f", v)
  end
  error("smm.book: a non-integer number bound to SQL: " .. tostring(v))
end

local loaded_dbi
local function dbi()
  if loaded_dbi == nil then
    local ok, mod = pcall(require, "DBI")
    loaded_dbi = ok and mod or false
  end
  return loaded_dbi
end

local function fail(db, message, code)
  local err = errors.new({ kind = "book", code = code or "book_failed", book = db.name,
    message = db.name .. ": " .. message }, db.secrets)
  error(err, 0)
end
M.fail = fail

local targets = setmetatable({}, { __mode = "k" })

local function open_connection(DBI, target)
  if target.driver == "sqlite" then
    return pcall(DBI.Connect, "SQLite3", target.path)
  end
  return pcall(DBI.Connect, "PostgreSQL", target.database, target.user, target.password,
    target.host, target.port)
end

-- A PostgreSQL server restarted (or a connection cut) under a long-lived process (smm sync):
-- the connection is made anew once, between transactions only, and the statement run again.
-- Inside a transaction nothing is retried: what it wrote is gone with the old connection.
local function reconnected(db)
  if db.driver ~= "postgresql" or (db.depth or 0) > 0 or not db.conn then return false end
  local alive = pcall(function() assert(db.conn:ping()) end)
  if alive then return false end
  for _, st in pairs(db.statements) do pcall(st.close, st) end
  db.statements = {}
  pcall(db.conn.close, db.conn)
  local ok, conn = open_connection(dbi(), targets[db])
  if not ok or not conn then return false end
  conn:autocommit(true)
  db.conn = conn
  for _, sql in ipairs(db.dialect.open) do pcall(db.rows, db, sql) end
  return true
end

-- -> db or nil, err. target: smm.book.target's table; secrets: what no message may hold.
function M.connect(target, secrets)
  local DBI = dbi()
  if not DBI then
    return nil, errors.new({ kind = "book", code = "book_unavailable", book = target.name,
      message = target.name .. ": LuaDBI is not installed (Debian: apt-get install lua-dbi-sqlite3" ..
        " lua-dbi-postgresql)" })
  end
  local db = setmetatable({ name = target.name, driver = target.driver, secrets = secrets,
    dialect = dialects[target.driver], statements = {} }, DB)
  -- kept for reconnecting (DB:run), off any table a caller can reach (see smm.book)
  targets[db] = target
  local ok, conn, why = open_connection(DBI, target)
  if not ok or not conn then
    why = tostring(not ok and conn or why or "no reason given")
    if target.driver == "sqlite" then
      why = why .. " (the path must name a file, in a folder that exists and may be written)"
    end
    return nil, errors.new({ kind = "book", code = "book_unavailable", book = target.name,
      message = target.name .. ": cannot open the book: " .. why }, secrets)
  end
  db.conn = conn
  conn:autocommit(true) -- transactions are explicit (DB:transaction)
  return db
end

function DB:close()
  if self.conn then
    for _, st in pairs(self.statements) do pcall(st.close, st) end
    self.statements = {}
    pcall(self.conn.close, self.conn)
    self.conn = nil
  end
end

local function prepared(db, sql)
  local st = db.statements[sql]
  if st then return st end
  if not db.conn then fail(db, "the book is closed", "book_closed") end
  local ok, st_or_err, why = pcall(db.conn.prepare, db.conn, sql)
  if not ok or not st_or_err then
    fail(db, "cannot prepare a statement: " .. tostring(not ok and st_or_err or why))
  end
  db.statements[sql] = st_or_err
  return st_or_err
end

-- Runs one statement; returns the statement (for rows) and how many rows it changed.
function DB:run(sql, ...)
  local ok, st, n = pcall(self.run_once, self, sql, ...)
  if ok then return st, n end
  if reconnected(self) then return self:run_once(sql, ...) end
  if errors.is(st) and self.driver == "postgresql" and self.conn and
      not pcall(function() assert(self.conn:ping()) end) then
    st.code = "book_unavailable"
  end
  error(st, 0)
end

function DB:run_once(sql, ...)
  local st = prepared(self, sql)
  local n = select("#", ...)
  local args = { ... }
  for i = 1, n do args[i] = bound(args[i]) end
  local ok, done, why = pcall(st.execute, st, (table.unpack or unpack)(args, 1, n))
  if not ok or not done then
    why = tostring(not ok and done or why or "")
    -- a statement that failed may hold its connection in a bad state: prepare it anew next time
    self.statements[sql] = nil
    pcall(st.close, st)
    local code = "book_failed"
    local low = why:lower()
    if low:find("readonly", 1, true) or low:find("read%-only") then code = "book_read_only"
    elseif low:find("disk is full", 1, true) or low:find("no space", 1, true) then code = "book_full"
    elseif low:find("locked", 1, true) or low:find("busy", 1, true) then code = "book_busy" end
    fail(self, "a statement failed: " .. why, code)
  end
  return st, st:affected()
end

-- Rows of a SELECT, as tables by column name, integer columns turned into integers.
function DB:rows(sql, ...)
  local st = self:run(sql, ...)
  local out = {}
  for row in st:rows(true) do
    local copy = {}
    for name, value in pairs(row) do
      copy[name] = INTEGER[name] and integer(value) or value
    end
    out[#out + 1] = copy
  end
  return out
end

function DB:row(sql, ...)
  return self:rows(sql, ...)[1]
end

function DB:changes(sql, ...)
  local _, n = self:run(sql, ...)
  return n
end

-- fn() inside one transaction (a write one: on SQLite it takes the write lock at once, so two
-- writers wait for each other instead of failing); committed when fn returns, rolled back when
-- it raises, and the error raised again.
function DB:transaction(fn, ...)
  if self.depth and self.depth > 0 then return fn(...) end
  self:run(self.dialect.begin)
  self.depth = 1
  local results = pack(pcall(fn, ...))
  if results[1] then
    -- still inside: a COMMIT that fails must never be "retried" on a new connection, where it
    -- would succeed at committing nothing
    local committed, err = pcall(self.run, self, "COMMIT")
    if not committed then results = { false, err } end
  end
  if not results[1] then
    pcall(self.run, self, "ROLLBACK")
    self.depth = 0
    error(results[2], 0)
  end
  self.depth = 0
  return (table.unpack or unpack)(results, 2, results.n)
end

-- An integer column as it must be selected (see the top of this file).
function DB.int(_, col) return "CAST(" .. col .. " AS TEXT) AS " .. col end

-- A column list for SELECT with the integer columns selected as text.
function DB:columns(list)
  local out = {}
  for name in list:gmatch("[%w_]+") do
    out[#out + 1] = INTEGER[name] and self:int(name) or name
  end
  return table.concat(out, ", ")
end

return M
