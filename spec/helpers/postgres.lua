-- Test helper: a real, throwaway PostgreSQL server for the specs and the bench. Its own cluster
-- (initdb) in a temporary folder under /tmp, a free loopback port, a superuser with a random
-- password and one database; stopped and deleted by stop().
--
--   local postgres = require "helpers.postgres"
--   local ok, why = postgres.available()   -- false + reason; raises instead when CI=true
--   local pg = postgres.start()             -- or start{ database = "smm", user = "smm", fast = false }
--   pg.url    -- "postgresql://smm:PASSWORD@127.0.0.1:PORT/smm"
--   pg.host, pg.port, pg.user, pg.password, pg.database, pg.dir
--   local conn = pg:connect()               -- a LuaDBI connection, autocommit on
--   pg:reset()                              -- drops and recreates the database
--   pg:stop()                               -- idempotent
--
-- Specs call stop() in their teardown. Should they not (an error outside a test, busted killed),
-- a watchdog shell started beside the server stops it and deletes the folder once the Lua
-- process that started it is gone; a finalizer does the same at lua_close when the object was
-- dropped. SMM_PG_BIN names another folder of PostgreSQL binaries; SMM_KEEP_PG=1 keeps the folder.
--
-- Run as root, initdb refuses to work: the cluster belongs to the postgres user and every server
-- command runs through runuser. Anyone else runs them directly.
local socket = require "socket"
local cli = require "helpers.cli"         -- quote, read_file, write_file
local sandbox = require "helpers.sandbox" -- closed_port: a free loopback port

local M = {}
local Server = {}
Server.__index = Server

local quote, read, write = cli.quote, cli.read_file, cli.write_file

local HIDDEN = "<password>"

-- os.execute: true/nil on 5.2+, a status number on 5.1 and LuaJIT
local function succeeds(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local function output(cmd)
  local p = assert(io.popen(cmd, "r"))
  local s = p:read("*a")
  p:close()
  return (s:gsub("%s+$", ""))
end

local function executable(path)
  return succeeds("test -x " .. quote(path))
end

local function find_bin()
  local env = os.getenv("SMM_PG_BIN")
  if env then return env end
  if executable("/usr/lib/postgresql/15/bin/initdb") then return "/usr/lib/postgresql/15/bin" end
  local initdb = output("command -v initdb 2>/dev/null")
  if initdb ~= "" then return (initdb:gsub("/initdb$", "")) end
  local pg_config = output("command -v pg_config >/dev/null 2>&1 && pg_config --bindir 2>/dev/null")
  if pg_config ~= "" then return pg_config end
  return "/usr/lib/postgresql/15/bin"
end

M.BIN = find_bin()

local is_root
local function root()
  if is_root == nil then is_root = output("id -u") == "0" end
  return is_root
end

-- A command line for a PostgreSQL program: as the postgres user when root. Run from the folder,
-- since the postgres user may not enter the caller's working directory.
-- The server and initdb inherit every descriptor the spec's process holds open (busted keeps
-- each spec file's clients, sockets and pipes alive to the end of the run), and count them
-- against their own limit: as the postgres user (runuser: 1024 open files), a long suite left
-- initdb and the server too few ("insufficient file descriptors"). Closed before they start,
-- by perl (Debian's perl-base is always there).
local CLOSE_FDS = "perl -e " .. quote([[use POSIX (); my $max = POSIX::sysconf(POSIX::_SC_OPEN_MAX()) || 1024;]] ..
  [[ POSIX::close($_) for 3 .. $max - 1; exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n"]])

local function as_owner(dir, words)
  local parts = {}
  for i, w in ipairs(words) do parts[i] = quote(w) end
  -- without the sanitizer runtime `make check-asan` preloads into the specs' process: under it
  -- initdb's `postgres -V` never returns (the server is not what is being checked)
  local cmd = table.concat(parts, " ")
  if root() then cmd = "runuser -u postgres -- " .. cmd end
  return "cd " .. quote(dir) .. " && env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS " .. CLOSE_FDS .. " " .. cmd
end

-- true, or false and why there can be no server here. Under CI=true the reason is an error: a
-- CI job that lost its PostgreSQL must fail, not skip.
function M.available()
  local why
  if not executable(M.BIN .. "/initdb") or not executable(M.BIN .. "/pg_ctl") then
    why = "no initdb/pg_ctl in " .. M.BIN .. " (install postgresql, or set SMM_PG_BIN)"
  elseif root() and not succeeds("id -u postgres >/dev/null 2>&1") then
    why = "running as root, and there is no postgres user to own the cluster"
  elseif root() and not succeeds("command -v runuser >/dev/null 2>&1") then
    why = "running as root, and there is no runuser to become the postgres user"
  else
    local ok, err = pcall(require, "DBI")
    if ok then ok, err = pcall(require, "dbd.postgresql") end
    if not ok then why = "LuaDBI with its PostgreSQL driver does not load: " .. tostring(err) end
  end
  if not why then return true end
  local ci = os.getenv("CI")
  if ci and ci ~= "" and ci ~= "false" and ci ~= "0" then
    error("PostgreSQL is required in CI: " .. why, 2)
  end
  return false, why
end

-- 32 hex digits from the kernel: nothing in a URL to escape.
local function random_password()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(16)
  f:close()
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function Server:scrub(text)
  text = tostring(text)
  if self.password and self.password ~= "" then
    local start, stop = text:find(self.password, 1, true)
    while start do
      text = text:sub(1, start - 1) .. HIDDEN .. text:sub(stop + 1)
      start, stop = text:find(self.password, start + #HIDDEN, true)
    end
  end
  return text
end

function Server:fail(what, detail)
  local message = self:scrub(what .. (detail and detail ~= "" and (":\n" .. detail) or ""))
  self:stop()
  error(message, 3)
end

function Server:log()
  return read(self.dir .. "/postgres.log") or ""
end

-- The finalizer's object: a table with __gc on 5.2+, a newproxy userdata on 5.1 and LuaJIT,
-- whose tables have no finalizers.
local function sentinel(fn)
  if newproxy then -- luacheck: ignore 113
    local u = newproxy(true) -- luacheck: ignore 113
    getmetatable(u).__gc = fn
    return u
  end
  return setmetatable({}, { __gc = fn })
end

-- A detached shell that waits for this Lua process to end, then stops the server and deletes the
-- folder if the server still runs (its postmaster.pid is there; stop() removes both). It ignores
-- INT and HUP, which a terminal's ^C sends to the whole group.
function Server:watch()
  local lua_pid = output("echo $PPID") -- the popen shell's parent: this process
  local stop = as_owner(self.dir, { M.BIN .. "/pg_ctl", "-D", self.dir .. "/data", "-m", "immediate",
    "-w", "stop" })
  local pidfile = quote(self.dir .. "/data/postmaster.pid")
  local script = string.format("trap '' INT HUP; while kill -0 %s 2>/dev/null && [ -e %s ]; do sleep 0.2; done; "
    .. "if [ -e %s ]; then (%s) >/dev/null 2>&1; rm -rf %s; fi",
    lua_pid, pidfile, pidfile, stop, quote(self.dir))
  os.execute("sh -c " .. quote(script) .. " </dev/null >/dev/null 2>&1 &")
end

-- For a URL's user, password and database: a chosen password may hold "@" or "/".
local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function run(conn, sql)
  local st, err = conn:prepare(sql)
  if st then
    local ok, e = st:execute()
    st:close()
    if ok then return true end
    err = e
  end
  return nil, err
end

-- opts: database and user (default "smm"), password (default random), fast (default true: no
-- fsync, for specs that never test a power loss), attempts (ports to try, default 5).
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({
    host = "127.0.0.1", user = opts.user or "smm", database = opts.database or "smm",
    password = opts.password or random_password(), fast = opts.fast ~= false,
  }, Server)
  local dir = output("mktemp -d /tmp/smm-pg.XXXXXX")
  assert(dir:find("^/tmp/smm%-pg%."), "mktemp failed")
  self.dir = dir
  self.sentinel = sentinel(function() self:stop() end)
  os.execute("mkdir -p " .. quote(dir .. "/sock"))
  if root() then os.execute("chown -R postgres: " .. quote(dir)) end

  -- the password reaches initdb in a file only it reads, deleted straight after
  local pwfile = dir .. "/pwfile"
  write(pwfile, self.password .. "\n")
  os.execute("chmod 600 " .. quote(pwfile) .. (root() and " && chown postgres: " .. quote(pwfile) or ""))
  local initdb = { M.BIN .. "/initdb", "-D", dir .. "/data", "-U", self.user, "--pwfile=" .. pwfile,
    "-A", "md5", "-E", "UTF8", "--locale=C" }
  if self.fast then initdb[#initdb + 1] = "--no-sync" end
  local ok = succeeds(as_owner(dir, initdb) .. " >" .. quote(dir .. "/initdb.log") .. " 2>&1")
  os.remove(pwfile)
  if not ok then self:fail("initdb failed", read(dir .. "/initdb.log")) end

  local settings = "-c listen_addresses=127.0.0.1 -c max_connections=100"
  if self.fast then settings = settings .. " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" end
  local started
  for _ = 1, opts.attempts or 5 do
    self.port = sandbox.closed_port()
    os.remove(dir .. "/postgres.log")
    started = succeeds(as_owner(dir, { M.BIN .. "/pg_ctl", "-D", dir .. "/data", "-l", dir .. "/postgres.log",
      "-w", "-t", "30", "-o", "-p " .. self.port .. " -k " .. dir .. "/sock " .. settings, "start" })
      .. " >" .. quote(dir .. "/pg_ctl.log") .. " 2>&1")
    -- someone took the port between closed_port and the bind: another one
    if started or not self:log():find("could not bind", 1, true) then break end
  end
  if not started then self:fail("PostgreSQL did not start", read(dir .. "/pg_ctl.log") .. "\n" .. self:log()) end

  self.url = string.format("postgresql://%s:%s@%s:%d/%s", escape(self.user), escape(self.password), self.host,
    self.port, escape(self.database))
  self:watch()
  local created, err = run(self:admin(), 'CREATE DATABASE "' .. self.database .. '"')
  if not created then self:fail("CREATE DATABASE failed", tostring(err)) end
  return self
end

-- A LuaDBI connection to the database (or another one on this server), autocommit on.
function Server:connect(database)
  assert(self.dir, "the PostgreSQL server is stopped")
  local DBI = require "DBI"
  local before = #self:log()
  local conn, err = DBI.Connect("PostgreSQL", database or self.database, self.user, self.password,
    self.host, self.port)
  if not conn then
    -- LuaDBI often reports only "server closed the connection unexpectedly": the reason is in
    -- the server's log
    local said = {}
    for line in self:log():sub(before + 1):gmatch("[^\n]+") do
      if line:find("FATAL:") or line:find("ERROR:") then said[#said + 1] = line:match("%u+:%s.*") end
    end
    error(self:scrub("connecting to PostgreSQL failed: " .. tostring(err):gsub("%s+$", "")
      .. (#said > 0 and ("\nserver log: " .. table.concat(said, "\n")) or "")), 2)
  end
  conn:autocommit(true)
  return conn
end

-- The connection to the `postgres` database that creates and drops the test database.
function Server:admin()
  if not self.admin_conn then self.admin_conn = self:connect("postgres") end
  return self.admin_conn
end

-- A fresh, empty database under the same name. Connections still open to the old one are cut
-- (DROP ... WITH (FORCE)): a spec reconnects after reset().
function Server:reset()
  assert(self.dir, "the PostgreSQL server is stopped")
  local admin, name = self:admin(), '"' .. self.database .. '"'
  local ok, err = run(admin, "DROP DATABASE IF EXISTS " .. name .. " WITH (FORCE)")
  if ok then ok, err = run(admin, "CREATE DATABASE " .. name) end
  if not ok then error(self:scrub("resetting the PostgreSQL database failed: " .. tostring(err)), 2) end
end

function Server:stop()
  if not self.dir then return end
  local dir = self.dir
  self.dir = nil
  if self.admin_conn then pcall(self.admin_conn.close, self.admin_conn) self.admin_conn = nil end
  if not succeeds(as_owner(dir, { M.BIN .. "/pg_ctl", "-D", dir .. "/data", "-m", "fast", "-w", "-t", "20",
      "stop" }) .. " >/dev/null 2>&1") then
    -- not running (it never started), or stuck: the postmaster's pid is the first line
    local pid = (read(dir .. "/data/postmaster.pid") or ""):match("^(%d+)")
    if pid then os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  if os.getenv("SMM_KEEP_PG") then
    print("PostgreSQL folder kept: " .. dir)
  else
    os.execute("rm -rf " .. quote(dir))
  end
end

-- Does anything accept connections on the port? For specs that check stop().
function Server:listening()
  local c = socket.connect(self.host, self.port)
  if c then c:close() return true end
  return false
end

return M
