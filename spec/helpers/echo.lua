-- Test helper for spec/01-core_spec.lua: a tiny HTTP/1.1 server in its own process (luasocket,
-- one connection at a time, keep-alive) that shows the client exactly what it sent, for checks
-- the sandbox panel cannot make (exact body bytes, arbitrary JSON answers, raw headers).
--
--   local echo = require "helpers.echo"
--   local srv = echo.start()      -- srv.url = "http://127.0.0.1:PORT/echo"
--   srv:stop()
--
-- Per request (form fields of the POST body):
--   no `reply` field: 200 text/plain, the body is the raw request body, byte for byte
--   reply=TEXT: the answer body is TEXT; status=N (default 200); ctype=TYPE (default
--   application/json); header=LINE adds one raw header line (e.g. "Retry-After: 0");
--   close=1 closes the connection after the answer (the server serves one connection at a
--   time, so parallel clients must not keep theirs open)
-- Every answer carries "X-Connection: n", the number of the TCP connection it came on; an echo
-- of a request that carried "Expect: V" has the content type "text/plain; expect=V".
local M = {}

function M.urldecode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function M.parse_form(body)
  local f = {}
  for pair in body:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if k then f[M.urldecode(k)] = M.urldecode(v) end
  end
  return f
end

function M.serve(mode)
  local socket = require "socket"
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  io.stdout:write("echo listening on http://127.0.0.1:", port, "/echo pid ",
    io.open("/proc/self/stat"):read("*l"):match("^(%d+)"), "\n")
  io.stdout:flush()
  local nconn = 0
  while true do
    local c = srv:accept()
    if c and mode == "greet" then
      -- talks first, plain text: a TLS client sees garbage instead of a ServerHello
      c:send("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
      c:close()
    elseif c then
      nconn = nconn + 1
      c:settimeout(10)
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
        local f = M.parse_form(body)
        -- a client that asked for 100-continue is told so in the answer's content type
        local status, ctype, out = 200, "text/plain", body
        if headers.expect then ctype = ctype .. "; expect=" .. headers.expect end
        local extra = ""
        if f.reply then
          status, ctype, out = tonumber(f.status or "200"), f.ctype or "application/json", f.reply
        end
        if f.header then extra = f.header .. "\r\n" end
        if f.close then extra = extra .. "Connection: close\r\n" end
        c:send(("HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nX-Connection: %d\r\n"
          .. "X-Content-Type-Seen: %s\r\n%s\r\n"):format(status, ctype, #out, nconn,
          headers["content-type"] or "", extra) .. out)
        if f.close then break end
      end
      c:close()
    end
  end
end

local Server = {}
Server.__index = Server

-- mode "greet": instead of echoing, answer every connection at once with a plain HTTP/1.0
-- page and close (for TLS failure tests).
function M.start(mode)
  local root = debug.getinfo(1, "S").source:match("^@(.*)/helpers/echo%.lua$") or "spec"
  local cmd = ("LUA_CPATH=';;' exec lua5.4 -e 'package.path=%q..package.path' "
    .. "-e 'require(\"helpers.echo\").serve(%q)'"):format(root .. "/?.lua;", mode or "echo")
  local pipe = assert(io.popen(cmd, "r"))
  local line = assert(pipe:read("*l"), "echo server did not start")
  local url, pid = line:match("listening on (%S+) pid (%d+)")
  assert(url, line)
  return setmetatable({ url = url, pid = tonumber(pid), pipe = pipe }, Server)
end

function Server:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    self.pid = nil
  end
end

return M
