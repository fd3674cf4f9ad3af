-- A small HTTP/1.1 server over luasocket for the sandbox panel.
--
-- One coroutine per connection, multiplexed with socket.select over non-blocking sockets
-- (timeout 0). A handler runs inside its connection's coroutine and may call
-- server:sleep(seconds), which parks only that connection (timers), so slow answers never
-- block the others. Keep-alive by default (HTTP/1.1), "Connection: close" honoured,
-- request bodies by Content-Length only (411 for Transfer-Encoding; neither header means
-- no body), Content-Length on every answer, "Expect: 100-continue" answered. GET query
-- strings and POST form bodies are decoded into req.fields (a POST body's fields override
-- the query string's).
local socket = require "socket"

local M = {}
local Server = {}
Server.__index = Server

local yield, resume, status = coroutine.yield, coroutine.resume, coroutine.status
local gettime = socket.gettime
local MAX_HEADER = 64 * 1024
local MAX_BODY = 16 * 1024 * 1024

local reasons = {
  [100] = "Continue", [200] = "OK", [204] = "No Content", [301] = "Moved Permanently",
  [302] = "Found", [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [411] = "Length Required",
  [413] = "Payload Too Large", [422] = "Unprocessable Entity", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}
M.reasons = reasons

local function unescape(s)
  s = s:gsub("+", " ")
  s = s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  return s
end

-- "a=1&b=x+y" -> { a = "1", b = "x y" } (the last of repeated names wins, as in PHP)
function M.decode_form(s, into)
  into = into or {}
  if not s or s == "" then return into end
  for pair in s:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if k and k ~= "" then into[unescape(k)] = unescape(v) end
  end
  return into
end

function M.new(opts)
  opts = opts or {}
  return setmetatable({
    host = opts.host or "127.0.0.1",
    port = opts.port or 0,
    handler = assert(opts.handler, "handler required"),
    on_close = opts.on_close,
    log = opts.log,
    rwait = {}, -- socket -> coroutine waiting to read
    wwait = {}, -- socket -> coroutine waiting to write
    timers = {}, -- { t = time, co = coroutine }
    conns = {}, -- socket -> connection state
    cosock = {}, -- coroutine -> its socket
    running = false,
    next_conn = 0,
  }, Server)
end

function Server:listen()
  local srv, err = socket.bind(self.host, self.port, 512)
  if not srv then
    return nil, "cannot bind " .. self.host .. ":" .. tostring(self.port) .. ": " .. tostring(err)
  end
  srv:settimeout(0)
  local _, port = srv:getsockname()
  self.port = tonumber(port)
  self.listener = srv
  return self.port
end

-- Park the calling connection's coroutine for `seconds` (must be called from a handler).
function Server:sleep(seconds)
  if not seconds or seconds <= 0 then return end
  local co = coroutine.running()
  local timers = self.timers
  timers[#timers + 1] = { t = gettime() + seconds, co = co, sock = self.cosock[co] }
  yield("sleep")
end

-- Run fn every `seconds` from the main loop (used by the real clock).
function Server:every(seconds, fn)
  self.ticker = { period = seconds, fn = fn, t = gettime() + seconds }
end

function Server:stop() self.running = false end

local function send_all(sock, data)
  local i, n = 1, #data
  while i <= n do
    local last, err, plast = sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = plast + 1
      if i <= n then yield("w", sock) end
    else
      return nil, err
    end
  end
  return true
end
M.send_all = send_all

-- Close with a TCP reset (SO_LINGER 0): the peer sees ECONNRESET, not a clean EOF.
function M.reset(sock)
  sock:setoption("linger", { on = true, timeout = 0 })
  sock:close()
end

-- Build the bytes of an answer. res = { status, body, content_type, headers = { "N: v" },
-- content_length (override), close }.
function M.build(res, keep_alive)
  local code = res.status or 200
  local body = res.body or ""
  local parts = { "HTTP/1.1 ", tostring(code), " ", res.reason or reasons[code] or "Unknown",
    "\r\nServer: smm-sandbox\r\n" }
  if res.content_type then
    parts[#parts + 1] = "Content-Type: " .. res.content_type .. "\r\n"
  end
  if res.headers then
    for _, h in ipairs(res.headers) do parts[#parts + 1] = h .. "\r\n" end
  end
  parts[#parts + 1] = "Content-Length: " .. (res.content_length or #body) .. "\r\n"
  parts[#parts + 1] = keep_alive and "Connection: keep-alive\r\n\r\n" or "Connection: close\r\n\r\n"
  parts[#parts + 1] = body
  return table.concat(parts)
end

-- The life of one connection: read requests, hand them to the handler, write answers.
function Server:serve_conn(sock, conn)
  local buf = ""
  local closed = false

  local function more()
    if closed then return nil end
    while true do
      local data, err, partial = sock:receive(65536)
      if data then return data end
      if partial and partial ~= "" then
        if err ~= "timeout" then closed = true end
        return partial
      end
      if err ~= "timeout" then closed = true; return nil end
      yield("r", sock)
    end
  end

  local function fail(code, msg)
    send_all(sock, M.build({ status = code, body = msg .. "\n", content_type = "text/plain" }, false))
  end

  while true do
    -- headers
    local hend, hlen
    while true do
      hend = buf:find("\r\n\r\n", 1, true)
      if hend then hlen = 4; break end
      hend = buf:find("\n\n", 1, true)
      if hend then hlen = 2; break end
      if #buf > MAX_HEADER then return fail(431, "header too large") end
      local data = more()
      if not data then return end
      buf = buf .. data
    end
    local head = buf:sub(1, hend - 1)
    buf = buf:sub(hend + hlen)
    local method, target, version = head:match("^(%u+) (%S+) HTTP/(%d%.%d)")
    if not method then return fail(400, "bad request line") end
    local headers = {}
    for name, value in head:gmatch("\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
      headers[name:lower()] = value
    end
    local connhdr = (headers["connection"] or ""):lower()
    local keep
    if version == "1.0" then keep = connhdr:find("keep%-alive") ~= nil
    else keep = not connhdr:find("close") end

    -- body
    local body = ""
    local cl = headers["content-length"]
    if headers["transfer-encoding"] then
      return fail(411, "chunked request bodies are not supported: send Content-Length")
    end
    if cl then
      local n = cl:match("^%s*(%d+)%s*$")
      if not n then return fail(400, "bad Content-Length") end
      n = tonumber(n)
      if n > MAX_BODY then return fail(413, "body too large") end
      if n > #buf and (headers["expect"] or ""):lower() == "100-continue" then
        if not send_all(sock, "HTTP/1.1 100 Continue\r\n\r\n") then return end
      end
      if n > 0 then
        local chunks, have = { buf }, #buf
        while have < n do
          local data = more()
          if not data then return end
          chunks[#chunks + 1] = data
          have = have + #data
        end
        local all = #chunks == 1 and buf or table.concat(chunks)
        body = all:sub(1, n)
        buf = all:sub(n + 1)
      end
    end -- neither Content-Length nor Transfer-Encoding: no body (RFC 9112 6.3)

    local path, query = target:match("^([^?]*)%??(.*)$")
    local fields = M.decode_form(query)
    local ctype = headers["content-type"]
    if body ~= "" and (not ctype or ctype:lower():find("x-www-form-urlencoded", 1, true)) then
      M.decode_form(body, fields)
    end
    local req = { method = method, target = target, path = path, query = query,
      version = version, headers = headers, body = body, fields = fields, conn = conn,
      keep_alive = keep }

    local res = self.handler(req, conn, sock)
    if not res or res.reset then
      -- the handler asks for a reset (or dropped the connection itself)
      if res and res.reset then M.reset(sock) end
      closed = true
      return "reset"
    end
    if res.close then keep = false end
    local ok = send_all(sock, res.raw or M.build(res, keep))
    if not ok or not keep then return end
  end
end

function Server:spawn(sock)
  self.next_conn = self.next_conn + 1
  local conn = { id = self.next_conn, sock = sock }
  self.conns[sock] = conn
  local co = coroutine.create(function()
    local ok, err = pcall(self.serve_conn, self, sock, conn)
    if not ok and self.log then self.log("connection error: " .. tostring(err)) end
    return ok and err
  end)
  conn.co = co
  self.cosock[co] = sock
  self:step(co, sock)
end

-- Resume co; record what it waits on next; clean up when it ends.
function Server:step(co, sock)
  local ok, what, arg = resume(co)
  if not ok then
    if self.log then self.log("coroutine error: " .. tostring(what)) end
  end
  if status(co) == "dead" then
    local conn = self.conns[sock]
    self.conns[sock] = nil
    self.cosock[co] = nil
    self.rwait[sock], self.wwait[sock] = nil, nil
    if what ~= "reset" then sock:close() end
    if self.on_close and conn then self.on_close(conn) end
    return
  end
  if what == "r" then self.rwait[arg] = co
  elseif what == "w" then self.wwait[arg] = co
  end -- "sleep": the timer list already holds it
end

function Server:run()
  assert(self.listener, "call listen() first")
  self.running = true
  local listener = self.listener
  local rwait, wwait, timers, conns = self.rwait, self.wwait, self.timers, self.conns
  local select = socket.select
  local rlist, wlist = {}, {}
  while self.running do
    local nr, nw = 1, 0
    rlist[1] = listener
    for s in pairs(rwait) do nr = nr + 1; rlist[nr] = s end
    for i = #rlist, nr + 1, -1 do rlist[i] = nil end
    for s in pairs(wwait) do nw = nw + 1; wlist[nw] = s end
    for i = #wlist, nw + 1, -1 do wlist[i] = nil end

    local timeout
    local now = gettime()
    if #timers > 0 then
      local tmin = math.huge
      for i = 1, #timers do if timers[i].t < tmin then tmin = timers[i].t end end
      timeout = math.max(0, tmin - now)
    end
    if self.ticker then
      local d = math.max(0, self.ticker.t - now)
      if not timeout or d < timeout then timeout = d end
    end
    local r, w = select(rlist, wlist, timeout)
    for i = 1, #r do
      local s = r[i]
      if s == listener then
        for _ = 1, 64 do
          local c = listener:accept()
          if not c then break end
          c:settimeout(0)
          c:setoption("tcp-nodelay", true)
          self:spawn(c)
        end
      else
        local co = rwait[s]
        if co then
          rwait[s] = nil
          self:step(co, s)
        end
      end
    end
    for i = 1, #w do
      local s = w[i]
      local co = wwait[s]
      if co then
        wwait[s] = nil
        self:step(co, s)
      end
    end
    if #timers > 0 then
      now = gettime()
      local due = {}
      for i = #timers, 1, -1 do
        if timers[i].t <= now then
          due[#due + 1] = timers[i]
          table.remove(timers, i)
        end
      end
      table.sort(due, function(a, b) return a.t < b.t end)
      for _, t in ipairs(due) do self:step(t.co, t.sock) end
    end
    if self.ticker and gettime() >= self.ticker.t then
      self.ticker.t = self.ticker.t + self.ticker.period
      if self.ticker.t < gettime() then self.ticker.t = gettime() + self.ticker.period end
      self.ticker.fn()
    end
  end
  for s in pairs(conns) do s:close() end
  listener:close()
  self.listener = nil
end

return M
