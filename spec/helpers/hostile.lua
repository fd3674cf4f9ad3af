-- Test helper: a hostile panel. A raw HTTP server in its own process (luasocket) that answers
-- each request with exactly the bytes a spec scripted, however wrong they are: a 303 after the
-- order was "placed", a chunk size of `zz`, a header trickled one byte at a time, a second
-- answer left on a keep-alive connection, a BOM before the JSON. The sandbox panel models a
-- real panel's faults; this one models a broken or malicious one, byte for byte.
--
--   local hostile = require "helpers.hostile"
--   local srv = hostile.start{
--     "HTTP/1.1 303 See Other\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",   -- request 1
--     { raw = "HTTP/1.1 200 OK\r\n...", trickle = 1.5 },                        -- request 2
--     default = hostile.json('{"balance":"1.00","currency":"USD"}'),            -- the rest
--     actions = { add = hostile.json('{"order":23501,"error":null}') },         -- by action
--   }
--   srv.url                   "http://127.0.0.1:PORT/api/v2"
--   srv:requests()            every request received so far, in order: { line =, headers =,
--                             body =, form = { key = ..., action = ... } }
--   srv:count([action])       how many requests (of that action) arrived
--   srv:stop()
--
-- An answer is a string (the raw bytes) or a table:
--   raw      the bytes to send
--   trickle  seconds to wait between bytes (the whole of raw is trickled)
--   keep     keep the connection open for another request (default: close after the answer,
--            so that the one-connection-at-a-time server never blocks a parallel client)
--   after    bytes sent right after raw on a kept connection, unasked (a second answer)
--   reset    close with an RST (SO_LINGER 0) after sending raw
--   hang     seconds to wait, without sending anything more, before closing
-- The server serves one connection at a time; the request count is kept across connections.
local M = {}

-- (the echo server's form parser: the same bytes, read the same way)
local parse_form = require("helpers.echo").parse_form

-- A 200 JSON answer with a correct Content-Length (headers: extra raw header lines).
function M.json(body, status, headers)
  return ("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s")
    :format(status or 200, #body, headers or "", body)
end

-- The same, as a chunked answer whose chunks are given raw (e.g. { "zz\r\nabc\r\n", "0\r\n\r\n" }).
function M.chunked(chunks, status)
  return ("HTTP/1.1 %d X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    :format(status or 200) .. table.concat(chunks)
end

local function serialize(v, out)
  local t = type(v)
  if t == "table" then
    out[#out + 1] = "{"
    for k, x in pairs(v) do
      out[#out + 1] = "["
      serialize(k, out)
      out[#out + 1] = "]="
      serialize(x, out)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  elseif t == "string" then
    out[#out + 1] = ("%q"):format(v)
  else
    out[#out + 1] = tostring(v)
  end
  return out
end

local function answer_for(script, n, form)
  local r = script.actions and form.action and script.actions[form.action]
  if r == nil then r = script[n] end
  if r == nil then r = script.default end
  if r == nil then r = M.json('{"error":"hostile: no answer scripted"}', 500) end
  if type(r) == "string" then r = { raw = r } end
  return r
end

function M.serve(script_path, log_path)
  local socket = require "socket"
  local script = dofile(script_path)
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  io.stdout:write("hostile listening on http://127.0.0.1:", port, "/api/v2 pid ",
    io.open("/proc/self/stat"):read("*l"):match("^(%d+)"), "\n")
  io.stdout:flush()
  local n = 0
  while true do
    local c = srv:accept()
    if c then
      c:settimeout(30)
      while true do
        local line = c:receive("*l")
        if not line then break end
        local headers = {}
        while true do
          local h = c:receive("*l")
          if not h or h == "" then break end
          local k, v = h:match("^([^:]+):%s*(.*)$")
          if k then headers[k:lower()] = v end
        end
        local body = ""
        local len = tonumber(headers["content-length"] or "0")
        if len and len > 0 then body = c:receive(len) or "" end
        local form = parse_form(body)
        n = n + 1
        local log = io.open(log_path, "a")
        log:write("return ", table.concat(serialize({ line = line, headers = headers, body = body,
          form = form }, {})), "\n")
        log:close()
        local r = answer_for(script, n, form)
        if r.trickle then
          for i = 1, #r.raw do
            if not c:send(r.raw:sub(i, i)) then break end
            socket.sleep(r.trickle)
          end
        else
          c:send(r.raw)
        end
        if r.after then c:send(r.after) end
        if r.hang then socket.sleep(r.hang) end
        if r.reset then
          c:setoption("linger", { on = true, timeout = 0 })
          break
        end
        if not r.keep then break end
      end
      c:close()
    end
  end
end

local Server = {}
Server.__index = Server

function M.start(script)
  local root = debug.getinfo(1, "S").source:match("^@(.*)/helpers/hostile%.lua$") or "spec"
  local p = io.popen("mktemp -d")
  local dir = p:read("*l")
  p:close()
  local script_path, log_path = dir .. "/script.lua", dir .. "/requests.log"
  local f = assert(io.open(script_path, "w"))
  f:write("return ", table.concat(serialize(script or {}, {})), "\n")
  f:close()
  assert(io.open(log_path, "w")):close()
  local cmd = ("LUA_CPATH=';;' exec lua5.4 -e 'package.path=%q..package.path' "
    .. "-e 'require(\"helpers.hostile\").serve(%q, %q)'"):format(root .. "/?.lua;", script_path,
    log_path)
  local pipe = assert(io.popen(cmd, "r"))
  local line = assert(pipe:read("*l"), "hostile server did not start")
  local url, pid = line:match("listening on (%S+) pid (%d+)")
  assert(url, line)
  return setmetatable({ url = url, pid = tonumber(pid), pipe = pipe, dir = dir, log = log_path },
    Server)
end

function Server:requests()
  local list = {}
  for line in io.lines(self.log) do
    list[#list + 1] = assert((loadstring or load)(line))()
  end
  return list
end

function Server:count(action)
  local n = 0
  for _, r in ipairs(self:requests()) do
    if action == nil or r.form.action == action then n = n + 1 end
  end
  return n
end

function Server:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    os.execute("rm -rf '" .. self.dir .. "'")
    self.pid = nil
  end
end

return M
