-- The life of one Debian nginx process for the specs and the bench: a temporary prefix folder,
-- a free loopback port, the configuration written there, start, wait until the port accepts,
-- stop. Its users (helpers/nginx.lua, helpers/plain_nginx.lua, bench/run.lua) only write the
-- configuration.
--
--   local process = require "helpers.nginx_process"
--   local p = process.start{ name = "smm-nginx", conf = function(dir, port) return text end,
--                            env = { NAME = "value" }, files = { ["a.json"] = "..." } }
--   p.dir, p.port ; p:pid() ; p:error_log() ; p:stop()
--
-- The configuration keeps its pid and error log in logs/ under the prefix, unless `pid` and
-- `error_log` (paths relative to it) say otherwise. SMM_KEEP_NGINX=1 keeps the folder.
-- Run as root, nginx gets `user root;` in front of the configuration: its workers would
-- otherwise run as nobody, who cannot read a checkout in a private (0700) home folder.
local socket = require "socket"
local cli = require "helpers.cli"         -- quote, read_file, write_file
local sandbox = require "helpers.sandbox" -- closed_port: a free loopback port

local M = {}
local Process = {}
Process.__index = Process
M.Process = Process -- users extend it: setmetatable(TheirClass, { __index = Process })

M.BINARY = os.getenv("SMM_NGINX") or "/usr/sbin/nginx"
M.quote = cli.quote
M.free_port = sandbox.closed_port
local quote, write = cli.quote, cli.write_file

-- os.execute: true/nil on 5.2+, a status number on 5.1 and LuaJIT
local function succeeds(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

-- "user root;\n" when this process runs as root, else "" (nginx ignores `user` for others, with
-- a warning). Every test nginx configuration starts with it.
local user_directive
function M.user_directive()
  if user_directive == nil then
    local p = io.popen("id -u")
    local uid = p and p:read("*l")
    if p then p:close() end
    user_directive = uid == "0" and "user root;\n" or ""
  end
  return user_directive
end

-- The file's text, or "" when there is none.
function M.read(path)
  return cli.read_file(path) or ""
end

-- opts: conf = function(dir, port) -> the configuration's text; name (of the temporary
-- folder); env (variables for nginx); files ({ name = text } written beside the conf); pid and
-- error_log (where the conf puts them, relative to the folder). Returns the process, whose
-- metatable is `class` (default Process).
function M.start(opts, class)
  local dir = assert(io.popen("mktemp -d /tmp/" .. (opts.name or "smm-nginx") .. ".XXXXXX")):read("*l")
  assert(dir and dir ~= "", "mktemp failed")
  -- mktemp makes the folder 0700: the worker (an unprivileged user) must read it
  os.execute("chmod 755 " .. quote(dir) .. " && mkdir -p " .. quote(dir .. "/logs"))
  local self = setmetatable({ dir = dir, port = M.free_port(), pid_path = opts.pid or "logs/nginx.pid",
    log_path = opts.error_log or "logs/error.log" }, class or Process)
  local conf = opts.conf(dir, self.port)
  if not conf:find("^%s*user%s") and not conf:find("\n%s*user%s") then conf = M.user_directive() .. conf end
  write(dir .. "/nginx.conf", conf)
  for name, text in pairs(opts.files or {}) do write(dir .. "/" .. name, text) end
  os.execute("chmod -R a+rX " .. quote(dir))

  local env = {}
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. quote(v) end
  local pipe = assert(io.popen(string.format("%s %s -p %s -c %s 2>&1", table.concat(env, " "),
    M.BINARY, quote(dir .. "/"), quote(dir .. "/nginx.conf")), "r"))
  local output = pipe:read("*a")
  if not pipe:close() then
    local log = self:error_log()
    os.execute("rm -rf " .. quote(dir))
    error("nginx did not start: " .. output .. "\n" .. log)
  end
  -- the master has bound the port before forking: wait until it accepts
  for _ = 1, 100 do
    local c = socket.connect("127.0.0.1", self.port)
    if c then c:close() break end
    socket.sleep(0.05)
  end
  return self
end

function Process:pid()
  return tonumber((M.read(self.dir .. "/" .. self.pid_path):match("%d+")))
end

function Process:error_log()
  return M.read(self.dir .. "/" .. self.log_path)
end

function Process:stop()
  if not self.dir then return end
  local pid = self:pid()
  if pid then
    os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not succeeds("kill -0 " .. pid .. " 2>/dev/null") then break end
      socket.sleep(0.05)
    end
    os.execute("kill -KILL " .. pid .. " 2>/dev/null")
  end
  if os.getenv("SMM_KEEP_NGINX") then
    print("nginx folder kept: " .. self.dir)
  else
    os.execute("rm -rf " .. quote(self.dir))
  end
  self.dir = nil
end

return M
