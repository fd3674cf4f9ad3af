-- Test helper: runs bin/smm as a user would (a child process, real HTTP against the sandbox),
-- and keeps every byte it printed so that a spec can search all of it for the API key.
local cjson = require "cjson"

local M = {}

M.ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/spec/helpers/") or ".")
if not M.ROOT:find("^/") then
  local p = io.popen("cd '" .. M.ROOT:gsub("'", "'\\''") .. "' && pwd")
  M.ROOT = p:read("*l") or M.ROOT
  p:close()
end
M.SMM = M.ROOT .. "/bin/smm"
-- the interpreter running bin/smm: SMM_CLI_LUA, else the sandbox's (the sandbox needs 5.3+)
M.LUA = os.getenv("SMM_CLI_LUA") or os.getenv("SMM_SANDBOX_LUA") or "lua5.4"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = q

M.seen = {} -- every stdout/stderr of every run

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
M.read_file = read_file

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

function M.tmpdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("*l")
  p:close()
  return dir
end

-- The default order book of a run lives under XDG_DATA_HOME: never the user's own. A spec that
-- sets XDG_CONFIG_HOME (inside its temporary folder) gets XDG_CONFIG_HOME/data, removed with it;
-- otherwise one temporary folder for this process.
local fallback_data
local function data_home(vars)
  if vars and vars.XDG_DATA_HOME ~= nil then return nil end
  if vars and vars.XDG_CONFIG_HOME then return vars.XDG_CONFIG_HOME .. "/data" end
  if not fallback_data then fallback_data = M.tmpdir() end
  return fallback_data
end

-- The environment a run gets: the sandbox's URL and key, no colours forced, a private config
-- directory, a private order book. vars: extra NAME = value (false to unset).
function M.env_prefix(vars)
  local parts = { "env", "-u", "SMM_PROFILE", "-u", "SMM_CONFIG", "-u", "NO_COLOR",
                  "-u", "SMM_FORCE_TTY", "-u", "SMM_API_URL", "-u", "SMM_API_KEY" }
  local set = {}
  for name, value in pairs(vars or {}) do
    if value == false then
      parts[#parts + 1] = "-u " .. name
    else
      set[#set + 1] = name .. "=" .. q(value)
    end
  end
  local data = data_home(vars)
  if data then set[#set + 1] = "XDG_DATA_HOME=" .. q(data) end
  for _, assignment in ipairs(set) do parts[#parts + 1] = assignment end
  return table.concat(parts, " ")
end

-- smm words (a string, shell syntax) -> { out =, err =, code = }
-- opts: env (table), cwd, stdin (text)
function M.run(words, opts)
  opts = opts or {}
  local errf = os.tmpname()
  local inf
  local stdin = "</dev/null"
  if opts.stdin then
    inf = os.tmpname()
    M.write_file(inf, opts.stdin)
    stdin = "<" .. inf
  end
  -- the exit code travels on stdout: Lua 5.1 and LuaJIT's popen close does not return it
  local cmd = string.format("%s%s %s %s %s 2>%s %s; echo \"\nsmm-exit:$?\"",
    opts.cwd and ("cd " .. q(opts.cwd) .. " && ") or "",
    M.env_prefix(opts.env), M.LUA, q(M.SMM), words, q(errf), stdin)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  local code
  out = out:gsub("\nsmm%-exit:(%d+)\n$", function(c)
    code = tonumber(c)
    return ""
  end)
  local err = read_file(errf) or ""
  os.remove(errf)
  if inf then os.remove(inf) end
  M.seen[#M.seen + 1] = out
  M.seen[#M.seen + 1] = err
  return { out = out, err = err, code = code }
end

-- Starts smm in the background; returns its pid. Output goes to files in dir.
function M.spawn(words, opts)
  local cmd = string.format("cd %s && %s %s %s %s >%s 2>%s </dev/null & echo $!",
    q(opts.cwd), M.env_prefix(opts.env), M.LUA, q(M.SMM), words,
    q(opts.cwd .. "/spawn.out"), q(opts.cwd .. "/spawn.err"))
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("*l"))
  p:close()
  return pid
end

function M.alive(pid)
  local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return ok == true or ok == 0
end

-- JSON as cjson decodes it, whole numbers made integers again (ids are printed in messages).
local function integers(v)
  if type(v) == "number" then
    if math.tointeger then return math.tointeger(v) or v end
    return v
  end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = integers(x) end
  end
  return v
end

function M.json(text)
  return integers(cjson.decode(text))
end

function M.sleep(seconds)
  require("socket").sleep(seconds)
end

-- Does the key appear in anything any run printed, or in these files?
function M.leaks(key, files)
  for _, text in ipairs(M.seen) do
    if text:find(key, 1, true) then return true, text end
  end
  for _, path in ipairs(files or {}) do
    local text = read_file(path)
    if text and text:find(key, 1, true) then return true, path end
  end
  return false
end

return M
