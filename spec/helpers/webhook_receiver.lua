-- A webhook receiver for the hooks spec, run as its own process (helpers.webhook starts it):
--   lua5.4 spec/helpers/webhook_receiver.lua LOG [--fail N] [--status CODE] [--echo] [--hang]
-- Answers every POST; the first N with 500, the rest with CODE (default 200; a 3xx one with a
-- Location), --echo puts the request (line and headers) in the body of a failure, --hang
-- accepts and never answers. Each request is appended to LOG as a JSON line: { n, method,
-- path, headers (lower-case names), body, answered }. Prints "listening on PORT pid PID".
local socket = require "socket"
local cjson = require "cjson"

local log_path = assert(arg[1], "usage: webhook_receiver.lua LOG [options]")
local fail, status, echo, hang = 0, 200, false, false
local i = 2
while arg[i] do
  local a = arg[i]
  if a == "--fail" then fail, i = tonumber(arg[i + 1]), i + 1
  elseif a == "--status" then status, i = tonumber(arg[i + 1]), i + 1
  elseif a == "--echo" then echo = true
  elseif a == "--hang" then hang = true
  else error("unknown option " .. a) end
  i = i + 1
end

local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
local pid = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")
io.stdout:write("listening on ", port, " pid ", pid, "\n")
io.stdout:flush()

-- held: the connections of --hang, referenced so that no collection closes them before the kill
local held, n = {}, 0 -- luacheck: ignore held
while true do
  local c = server:accept()
  if c then
    n = n + 1
    c:settimeout(5)
    local line = c:receive("*l")
    local headers, raw = {}, { line or "" }
    while true do
      local h = c:receive("*l")
      if not h or h == "" then break end
      raw[#raw + 1] = h
      local name, value = h:match("^([^:]+):%s*(.-)%s*$")
      if name then headers[name:lower()] = value end
    end
    local body = c:receive(tonumber(headers["content-length"] or 0)) or ""
    local method, path = (line or ""):match("^(%S+) (%S+)")
    local code = n <= fail and 500 or status
    local f = assert(io.open(log_path, "ab"))
    f:write(cjson.encode({ n = n, method = method, path = path, headers = headers, body = body,
      answered = not hang and code or 0 }), "\n")
    f:close()
    if hang then
      held[#held + 1] = c
    else
      local answer = code >= 300 and (echo and table.concat(raw, "\n") or "no") or "ok"
      local extra = (code >= 300 and code < 400) and "Location: /followed\r\n" or ""
      c:send("HTTP/1.1 " .. code .. " X\r\nContent-Type: text/plain\r\nContent-Length: " .. #answer ..
        "\r\n" .. extra .. "Connection: close\r\n\r\n" .. answer)
      c:close()
    end
  end
end
