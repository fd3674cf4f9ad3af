-- The batch journal: an append-only file of JSON lines beside the CSV, so that a run killed at
-- any moment can be resumed without placing an order twice or losing one.
--
--   {"t":"open","csv":"orders.csv","panel":"http://host/api/v2","at":1700000000}
--   {"t":"intent","line":5,"hash":"9f1c...","at":...}        written and synced BEFORE the add
--   {"t":"done","line":5,"hash":"9f1c...","order":23501,"price":"0.90"}   after the answer
--   {"t":"failed","line":5,"hash":...,"error":"...","kind":"api","code":"bad_link"}
--   {"t":"ambiguous","line":5,"hash":...,"error":"..."}     the add may or may not have happened
--   {"t":"resend","line":5,"hash":...}                       the user checked: send it again
--
-- A row whose last record is an intent (the process died mid-send) or "ambiguous" is in doubt
-- and is never sent again unless the user says so. The API key is never written here.
--
-- Durability: Lua has no fsync, so after each intent the file is flushed and `sync -d FILE`
-- (coreutils >= 8.24: fdatasync of that one file) runs; a failure of that falls back to a
-- plain `sync`. Results are flushed but not synced: a lost "done" after a power cut turns the
-- row into "in doubt", which is safe. A process kill loses nothing that was flushed.
local cjson = require "cjson"
local output = require "smm.cli.output"

local M = {}

-- math.tointeger where there are no integers (Lua 5.1, LuaJIT): a whole number within 2^53.
local tointeger = math.tointeger or function(x)
  if type(x) == "number" and x == math.floor(x) and x > -2 ^ 53 and x < 2 ^ 53 then return x end
  return nil
end

-- Wall-clock seconds for measuring the cost of syncing (luasocket when present).
do
  local ok, socket = pcall(require, "socket")
  M.now = ok and socket.gettime or os.time
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

-- How an os.execute ended: true, or false plus whether a signal (Ctrl-C) ended the child.
local function ran(ok, how, code)
  if ok == true then return true end
  return false, how == "signal" and (code == 2 or code == 15)
end

local sync_mode -- "file" (sync -d FILE) or "all" (sync), found on first use

-- fsync of one file through coreutils; returns true or nil, message.
function M.fsync(path)
  local ok, interrupted
  if sync_mode ~= "all" then
    ok, interrupted = ran(output.execute("sync -d " .. shell_quote(path) .. " 2>/dev/null"))
    if interrupted then error("interrupted!", 0) end
    if ok then sync_mode = "file" return true end
    if sync_mode == "file" then return nil, "sync -d " .. path .. " failed" end
  end
  ok, interrupted = ran(output.execute("sync"))
  if interrupted then error("interrupted!", 0) end
  if ok then sync_mode = "all" return true end
  return nil, "sync failed"
end

-- The id of this process: the parent of a child shell.
local function my_pid()
  local p = io.popen("echo $PPID")
  local pid = p and p:read("*l")
  if p then p:close() end
  return pid
end

-- The batch lock: a directory beside the journal holding the holder's pid, so that two runs of
-- one batch cannot both send a row. It appears whole: built under a name of this process's own,
-- pid file included, then renamed into place (rename is atomic). A run that finds a lock
-- without a pid file cannot tell a dead run's leftover from one being made (an older smm made
-- it in two steps), so it counts as held until it is FRESH seconds old. A stale lock (its
-- process is dead) is first renamed away, whole, to a name of this process's own, and checked
-- to be the one judged stale: of two runs breaking it at once, only one gets it.
local FRESH = 10

local function exists(path)
  return os.rename(path, path) ~= nil
end

local function read_pid(dir)
  local f = io.open(dir .. "/pid", "r")
  local pid = f and f:read("*l")
  if f then f:close() end
  return pid
end

local function alive(pid)
  return pid ~= nil and pid:match("^%d+$") ~= nil and
    output.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- seconds since the directory last changed, or nil
local function age(dir)
  local p = io.popen("stat -c %Y " .. shell_quote(dir) .. " 2>/dev/null")
  local changed = p and tonumber(p:read("*l") or "")
  if p then p:close() end
  return changed and os.time() - changed
end

local function remove(dir)
  output.execute("rm -rf " .. shell_quote(dir))
end

function M.lock(path)
  local dir = path .. ".lock"
  local pid = my_pid() or "?"
  local cannot = "cannot lock " .. path .. " (remove " .. dir .. " if no batch is running)"
  local whole = dir .. ".new." .. pid
  remove(whole)
  if output.execute("mkdir " .. shell_quote(whole) .. " 2>/dev/null") ~= true then return nil, cannot end
  local f = io.open(whole .. "/pid", "w")
  local written = f and f:write(pid, "\n") and f:close()
  if not written then remove(whole) return nil, cannot end
  local function held(message)
    remove(whole)
    return nil, message
  end
  for _ = 1, 3 do
    -- rename() would replace an empty directory: one that exists is never renamed onto
    if not exists(dir) and os.rename(whole, dir) then return { dir = dir, pid = pid } end
    local holder = read_pid(dir)
    if alive(holder) then
      return held(path .. " is locked by smm batch PID " .. holder .. " (still running, maybe " ..
        "waiting at its question): nothing was sent; run again once it has ended")
    end
    if holder == nil and exists(dir) then
      local seconds = age(dir)
      if seconds == nil or seconds < FRESH then
        return held(path .. " is being locked by another smm batch (its lock " .. dir ..
          " has no PID yet): nothing was sent; run again in a moment (remove the lock if no " ..
          "batch is running)")
      end
    end
    local away = dir .. ".stale." .. pid
    remove(away)
    if os.rename(dir, away) then
      if read_pid(away) ~= holder then
        -- another run replaced the stale lock meanwhile: that one is live, and goes back
        os.rename(away, dir)
        return held(path .. " is locked by another smm batch: nothing was sent; run again once " ..
          "it has ended")
      end
      remove(away)
    end
  end
  return held(cannot)
end

-- Removes the lock, if it is still this run's.
function M.unlock(lock)
  if lock and read_pid(lock.dir) == lock.pid then remove(lock.dir) end
end

local Journal = {}
Journal.__index = Journal

-- Reads a journal (missing: empty). Returns
--   { open = first open record or nil, rows = { [line] = { hash =, state =, order =, price =,
--     error = } }, torn = n } or nil, message
-- state: "intent" (in doubt), "done", "failed", "ambiguous" (in doubt), "resend".
function M.read(path)
  local f = io.open(path, "rb")
  local r = { rows = {}, torn = 0 }
  if not f then return r end
  local n = 0
  for raw in f:lines() do
    n = n + 1
    local ok, rec = pcall(cjson.decode, raw)
    if not ok or type(rec) ~= "table" then
      -- a line cut by a power failure: it was never synced, so it was never acted on
      r.torn = r.torn + 1
    elseif rec.t == "open" then
      r.open = r.open or rec
    elseif type(rec.line) == "number" and tointeger(rec.line) then
      local line = tointeger(rec.line)
      local row = r.rows[line] or {}
      if row.hash and rec.hash ~= row.hash then
        f:close()
        return nil, path .. ":" .. n .. ": line " .. line .. " was journaled with two different contents"
      end
      row.hash = rec.hash
      if rec.t == "done" then
        row.state, row.order, row.price, row.error = "done", tointeger(rec.order), rec.price, nil
        row.manual = rec.manual
      elseif rec.t == "failed" or rec.t == "ambiguous" or rec.t == "intent" or rec.t == "resend" then
        if row.state ~= "done" then
          row.state = rec.t
          if rec.error then row.error = rec.error end
        end
      end
      r.rows[line] = row
    end
  end
  f:close()
  return r
end

-- Opens a journal for appending; a torn last line is ended first so the next record starts
-- clean. Creating the file also syncs its directory.
function M.open(path)
  local existed = io.open(path, "rb")
  local needs_newline = false
  if existed then
    local size = existed:seek("end")
    if size > 0 then
      existed:seek("set", size - 1)
      needs_newline = existed:read(1) ~= "\n"
    end
    existed:close()
  end
  local f, err = io.open(path, "ab")
  if not f then return nil, "cannot write the journal: " .. tostring(err) end
  f:setvbuf("full")
  if needs_newline then f:write("\n") end
  local j = setmetatable({ path = path, file = f, syncs = 0, sync_time = 0 }, Journal)
  if not existed then
    f:flush()
    local dir = path:match("^(.*)/[^/]*$") or "."
    output.execute("sync " .. shell_quote(path) .. " " .. shell_quote(dir) .. " 2>/dev/null")
  end
  return j
end

-- Appends one record (a table) as one line; sync = true makes it durable before returning.
function Journal:write(record, sync)
  record.at = record.at or os.time()
  local ok, err = self.file:write(output.encode(record), "\n")
  if not ok then return nil, "cannot write the journal: " .. tostring(err) end
  ok, err = self.file:flush()
  if not ok then return nil, "cannot write the journal: " .. tostring(err) end
  if sync then return self:sync() end
  return true
end

function Journal:sync()
  local started = M.now()
  local ok, err = M.fsync(self.path)
  self.syncs = self.syncs + 1
  self.sync_time = self.sync_time + (M.now() - started)
  return ok, err
end

function Journal:close()
  if self.file then
    self.file:flush()
    self:sync()
    self.file:close()
    self.file = nil
  end
end

return M
