-- The transport over nginx cosockets (ngx.socket.tcp): the default inside OpenResty / nginx
-- with the lua module, where a libcurl call would block the whole worker. It knows HTTP, not
-- the API: it posts form fields and hands back result tables shaped like the C core's (see
-- lua/smm/answer.lua). It never loads smm.core.
--
-- HTTP/1.1 POST, form-urlencoded by transport/form.lua (the C core's bytes), answers with
-- Content-Length, chunked or read until close. No redirects are followed. gzip answers are
-- asked for where they can be large (ropts.gzip), inflated whenever they come, through LuaJIT's
-- FFI and the zlib nginx links (transport/gunzip.lua); max_body counts inflated bytes.
--
-- Limits of cosockets, checked at construction:
--   cainfo  cannot be set per socket: use nginx's `lua_ssl_trusted_certificate` (raises).
--   proxy   cosockets do not speak to proxies (raises).
-- Host names are resolved by nginx's `resolver` directive; "localhost" is taken as 127.0.0.1.
--
-- The transport may be made in any phase (init_by_lua, init_worker_by_lua: clients are made once)
-- but sends, and sleeps, only where cosockets work: each request looks at the phase it runs in,
-- and elsewhere (set, header_filter, body_filter, log, balancer, init*) raises, with nothing
-- sent, naming the phase. Calling the panel from there is a misuse that no retry can mend.
local cjson = require "cjson.safe"
local DEFAULTS = require("smm.options").DEFAULTS
local form = require "smm.transport.form"
local gunzip = require "smm.transport.gunzip"
local COSOCKET_PHASES = require("smm.transport").COSOCKET_PHASES

local ngx = ngx -- luacheck: ignore (the global exists only inside nginx)

local M = {}
M.name = "ngx"

local Transport = {}
Transport.__index = Transport
Transport.name = "ngx"
M.Transport = Transport

local concat, byte, find, sub, lower = table.concat, string.byte, string.find, string.sub, string.lower
local floor, min, max = math.floor, math.min, math.max

M.KEEPALIVE_IDLE = 60000 -- ms an idle pooled connection is kept
M.POOL_SIZE = 32         -- idle connections kept per host:port:tls
local READ_CHUNK = 65536

local fresh_counter = 0

local function default_user_agent()
  local ok, smm = pcall(require, "smm")
  local version = ok and type(smm) == "table" and smm._VERSION or "0"
  return "lua-smm/" .. tostring(version)
end

-- Extra header lines by transport ("Name: value\r\n" each, joined): kept off the transport
-- table, which a printed client shows, since a dialect's line carries the key.
local extra_headers = setmetatable({}, { __mode = "k" })

-- opts: smm.new's checked options (options.check fills in the defaults); any left out, as
-- when a test makes a transport of its own, are taken from options.DEFAULTS. headers: extra
-- header lines ("Name: value") for every request, or nil.
function M.new(opts, headers)
  opts = opts or {}
  if type(ngx) ~= "table" or not ngx.socket or not ngx.socket.tcp then
    error("smm.new: transport \"ngx\" needs nginx with the lua module (ngx.socket.tcp)", 3)
  end
  if opts.cainfo ~= nil then
    error("smm.new: option 'cainfo' cannot be used with the ngx transport: cosockets take their " ..
      "trusted CAs from nginx's lua_ssl_trusted_certificate directive (set it in nginx.conf)", 3)
  end
  if opts.proxy ~= nil then
    error("smm.new: option 'proxy' cannot be used with the ngx transport: cosockets connect directly", 3)
  end
  local function option(name)
    local v = opts[name]
    if v == nil then v = DEFAULTS[name] end
    return v
  end
  local lines = {}
  for i, line in ipairs(headers or {}) do
    if type(line) ~= "string" or not find(line, "^[%w!#$%%&'*+.^_`|~-]+: *[^%s]") or
        find(line, "[%z\r\n]") then
      error("smm.new: transport \"ngx\": extra header " .. i .. " must be one line \"Name: value\"", 3)
    end
    lines[i] = line .. "\r\n"
  end
  local self = setmetatable({
    timeout = option("timeout"),
    connect_timeout = option("connect_timeout"),
    ssl_verify = option("ssl_verify") ~= false,
    user_agent = opts.user_agent or default_user_agent(),
    max_body = option("max_body"),
    concurrency = option("concurrency"),
  }, Transport)
  if #lines > 0 then extra_headers[self] = concat(lines) end
  return self
end

---------------------------------------------------------------------------------------------
-- Phases

-- nil where cosockets work, else what to tell the caller.
local function unusable_here()
  local phase = ngx.get_phase and ngx.get_phase()
  if not phase or COSOCKET_PHASES[phase] then return nil end
  return "smm: the panel cannot be called in nginx's " .. phase .. " phase (" .. phase .. "_by_lua*" ..
    "): cosockets work only in rewrite_by_lua*, access_by_lua*, content_by_lua*, " ..
    "ssl_certificate_by_lua* and ngx.timer callbacks" ..
    ((phase == "init" or phase == "exit_worker") and "" -- where no timer can be started either
      or "; from here, ngx.timer.at(0, fn) runs fn where they do")
end

-- true, or false and why: whether a request can leave from where this is called. The client asks
-- before it records anything (an order book's intent) for a request that could never be sent.
function Transport:usable() -- luacheck: ignore self
  local why = unusable_here()
  if why then return false, why end
  return true
end

local function check_phase()
  local why = unusable_here()
  if why then error(why, 0) end
end

---------------------------------------------------------------------------------------------
-- Form encoding: the same bytes as the C core (transport/form.lua).

M.encode = form.encode

-- The last body each transport encoded, with the fields it came from (names -> values): a
-- client sends the same few fields again and again (balance: key and action, in the same table
-- every call), and comparing them costs a fraction of encoding them. Only small sets are kept,
-- so that a miss costs little; kept here rather than on the transport, since the body holds
-- the key.
local MEMO_FIELDS = 4
local memos = setmetatable({}, { __mode = "k" })

local function encode_memo(self, fields)
  local memo = memos[self]
  if memo then
    local seen, values = 0, memo.values
    for name, v in pairs(fields) do
      if values[name] ~= v then seen = -1; break end
      seen = seen + 1
    end
    if seen == memo.n then return memo.body end
  end
  local body = form.encode(fields) -- raises on a field it cannot carry: nothing is kept then
  local values, n = {}, 0
  for name, v in pairs(fields) do
    n = n + 1
    if n > MEMO_FIELDS then
      memos[self] = nil
      return body
    end
    values[name] = v
  end
  memos[self] = { values = values, n = n, body = body }
  return body
end

---------------------------------------------------------------------------------------------
-- URLs

local url_cache = setmetatable({}, { __mode = "k" })

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- -> { scheme, host, port, path, tls, host_header, auth } or nil, message
function M.parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not an absolute URL" end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then return nil, "unsupported scheme " .. scheme end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  path = path:gsub("#.*$", "")
  if path == "" or path:sub(1, 1) == "?" then path = "/" .. path end
  local userinfo, hostport = authority:match("^(.*)@(.*)$")
  if not userinfo then hostport = authority end
  local host, port = hostport:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]*):?(%d*)$") end
  if not host or host == "" then return nil, "no host in URL" end
  local tls = scheme == "https"
  local default_port = tls and 443 or 80
  port = tonumber(port) or default_port
  local bracketed = host:find(":", 1, true) and ("[" .. host .. "]") or host
  local u = {
    scheme = scheme, host = host, port = port, path = path, tls = tls,
    connect_host = (host:lower() == "localhost") and "127.0.0.1" or host,
    host_header = port == default_port and bracketed or (bracketed .. ":" .. port),
  }
  if userinfo and userinfo ~= "" and ngx and ngx.encode_base64 then
    local user, pass = userinfo:match("^([^:]*):?(.*)$")
    u.auth = "Basic " .. ngx.encode_base64(unescape(user) .. ":" .. unescape(pass))
  end
  return u
end

---------------------------------------------------------------------------------------------
-- One exchange

local function now_ms()
  ngx.update_time()
  return ngx.now() * 1000
end

-- nginx's cached clock, which its event loop updates each time it wakes up (nginx's own timers,
-- the cosocket timeouts among them, run on it). Within one request only the start takes the
-- system's time (now_ms): a handler may have computed for a while before calling; after that
-- every wait for the panel is a wake-up of the loop, and in between nothing takes long.
local function clock_ms()
  return ngx.now() * 1000
end

local function failure(kind, message, sent)
  return { failure = kind, message = message, sent = sent }
end

-- Failures of connect / TLS handshake: nothing was sent.
local function connect_failure(err, u, what)
  local where = u.host .. ":" .. u.port
  if err == "timeout" then
    return failure("timeout", what .. " to " .. where .. " timed out", false)
  end
  return failure("network", what .. " to " .. where .. " failed: " .. err, false)
end

local function io_failure(err, u, what)
  if err == "timeout" then
    return failure("timeout", "timed out " .. what .. " " .. u.host .. ":" .. u.port, true)
  end
  return failure("network", what .. " " .. u.host .. ":" .. u.port .. " failed: " .. tostring(err), true)
end

local function deadline_failure(self, u)
  return failure("timeout", "no complete answer from " .. u.host .. ":" .. u.port .. " within " ..
    self.timeout .. " ms", true)
end

-- Remaining ms before the deadline, at least 1 (0 would mean nginx's default), or nil if past.
local function remaining(deadline)
  local left = floor(deadline - clock_ms())
  if left <= 0 then return nil end
  return left
end

local function retry_after_seconds(v)
  if not v then return nil end
  v = v:match("^%s*(.-)%s*$")
  local n = tonumber(v)
  if n then return max(0, floor(n)) end
  local t = ngx.parse_http_time and ngx.parse_http_time(v)
  if t then return max(0, floor(t - ngx.time())) end
  return nil
end

-- Bounds on what a panel may send before its body: a hostile one could otherwise hold the
-- worker with endless or huge header lines.
M.MAX_HEADERS = 100        -- header lines of one answer (and trailer lines of a chunked one)
M.MAX_HEAD_BYTES = 65536   -- bytes of the status line and headers (and of the trailers)
local MAX_CHUNK_LINE = 4096 -- a chunk-size line with its extensions

-- Every byte of the answer comes through a reader: one receiveany at a time, each with the
-- socket's timeouts set to what is left of the whole request's `timeout`, so that a panel
-- trickling a byte now and then cannot stretch a request past its deadline (a single
-- receive("*l") would wait `left` ms again after every byte it gets).
local function reader(sock, self, u, deadline, armed)
  return { sock = sock, self = self, u = u, deadline = deadline, buf = "", pos = 1, got_any = false,
           armed = armed }
end

-- Sets the socket's timeouts to what is left (ms), unless they already are: `armed` is what
-- they were last set to. -> left
local function arm(sock, self, left, armed)
  if left ~= armed then sock:settimeouts(min(self.connect_timeout, left), left, left) end
  return left
end

local function protocol_failure(r, what)
  return failure("network", what .. " from " .. r.u.host .. ":" .. r.u.port, true)
end

-- Receives more bytes into r.buf (whose bytes must all have been taken).
-- -> true  or nil, failure, the socket's error ("closed" at the end of the stream)
local function fill(r)
  local left = remaining(r.deadline)
  if not left then return nil, deadline_failure(r.self, r.u) end
  r.armed = arm(r.sock, r.self, left, r.armed)
  local data, err = r.sock:receiveany(READ_CHUNK)
  if not data then
    if err == "closed" then
      return nil, failure("network", "the connection to " .. r.u.host .. ":" .. r.u.port ..
        " closed before the answer was complete", true), err
    end
    return nil, io_failure(err, r.u, "reading the answer from"), err
  end
  r.buf, r.pos, r.got_any = data, 1, true
  return true
end

-- A line ending in LF (a CR before it dropped), at most `limit` bytes.
-- -> line  or nil, failure (too_long = true when the limit was passed)
local function read_line(r, limit)
  local pieces, size = nil, 0
  while true do
    local buf, pos = r.buf, r.pos
    local lf = buf:find("\n", pos, true)
    if lf then
      size = size + lf - pos
      if size > limit then return nil, protocol_failure(r, "a line too long"), true end
      local line = buf:sub(pos, lf - 1)
      r.pos = lf + 1
      if pieces then
        pieces[#pieces + 1] = line
        line = concat(pieces)
      end
      if byte(line, -1) == 13 then line = line:sub(1, -2) end
      return line
    end
    if pos <= #buf then
      size = size + #buf - pos + 1
      if size > limit then return nil, protocol_failure(r, "a line too long"), true end
      pieces = pieces or {}
      pieces[#pieces + 1] = pos == 1 and buf or buf:sub(pos)
    end
    r.buf, r.pos = "", 1
    local ok, f = fill(r)
    if not ok then return nil, f end
  end
end

-- Reads exactly n bytes into parts. -> true or nil, failure
local function read_exact(r, n, parts)
  while n > 0 do
    if r.pos > #r.buf then
      local ok, f = fill(r)
      if not ok then return nil, f end
    end
    local buf, pos = r.buf, r.pos
    local take = min(#buf - pos + 1, n)
    parts[#parts + 1] = (pos == 1 and take == #buf) and buf or buf:sub(pos, pos + take - 1)
    r.pos = pos + take
    n = n - take
  end
  return true
end

-- Bytes that `%s` matches: what a header value is trimmed of.
local SPACE = { [9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true }

-- The header lines the transport reads; the others are counted, never copied out of the buffer.
M.WANTED = { ["content-length"] = true, ["transfer-encoding"] = true, ["connection"] = true,
             ["content-type"] = true, ["content-encoding"] = true, ["retry-after"] = true,
             ["location"] = true }
local WANTED = M.WANTED

-- Header lines up to the empty one, within the bounds. -> { name = value } (lower-case names,
-- repeated ones joined by ", ", only the WANTED ones) or nil, failure
--
-- A line found whole in the buffer is read where it lies (the usual case: a panel's head comes
-- in one packet): each line as a string, a `match` and a table per header took a fifth of the
-- worker's time per request in bench/wrk_ngx.lua. A line that is not yet all there goes
-- through read_line; both give the same fields.
local function read_fields(r, what)
  local fields, count, budget = {}, 0, M.MAX_HEAD_BYTES
  while true do
    local buf, pos = r.buf, r.pos
    local lf = find(buf, "\n", pos, true)
    local line, first, last -- the line is buf[first..last] or, when read_line took it, `line`
    if lf and lf - pos <= budget then
      r.pos = lf + 1
      first, last = pos, lf - 1
      if last >= first and byte(buf, last) == 13 then last = last - 1 end
    else
      local f, too_long
      line, f, too_long = read_line(r, budget)
      if not line then
        if too_long then f = protocol_failure(r, what .. " larger than " .. M.MAX_HEAD_BYTES .. " bytes") end
        return nil, f
      end
      buf, first, last = line, 1, #line
    end
    if last < first then break end
    budget = budget - (last - first + 1) - 2
    count = count + 1
    if count > M.MAX_HEADERS then
      return nil, protocol_failure(r, "more than " .. M.MAX_HEADERS .. " " .. what)
    end
    -- name: ([^:]+) before the first colon; value: the rest, trimmed of %s on both sides
    local colon = find(buf, ":", first, true)
    if colon and colon > first and colon <= last then
      local name = lower(sub(buf, first, colon - 1))
      if WANTED[name] then
        local a, b = colon + 1, last
        while a <= b and SPACE[byte(buf, a)] do a = a + 1 end
        while b >= a and SPACE[byte(buf, b)] do b = b - 1 end
        local value = sub(buf, a, b)
        local before = fields[name]
        fields[name] = before and (before .. ", " .. value) or value
      end
    end
  end
  return fields
end

-- "HTTP/1.x NNN" (x a digit, NNN from 100) at the start of the line buf[pos..last]:
-- -> minor, status (numbers), or nil
local function status_line(buf, pos, last)
  if last - pos < 11 then return nil end
  local h, t1, t2, p, slash, one, dot, m, sp, d1, d2, d3 = byte(buf, pos, pos + 11)
  if h ~= 72 or t1 ~= 84 or t2 ~= 84 or p ~= 80 or slash ~= 47 or one ~= 49 or dot ~= 46 -- HTTP/1.
    or m < 48 or m > 57 or sp ~= 32 or d1 < 49 or d1 > 57 or d2 < 48 or d2 > 57 or d3 < 48 or d3 > 57 then
    return nil
  end
  return m - 48, (d1 - 48) * 100 + (d2 - 48) * 10 + (d3 - 48)
end

-- Reads the status line and headers. -> status, headers (lower-case names; repeated joined
-- by ", "), http_minor  or nil, failure, got_any_byte
local function read_head(r)
  while true do
    local minor, status
    local buf, pos = r.buf, r.pos
    local lf = find(buf, "\n", pos, true)
    if lf and lf - pos <= M.MAX_HEAD_BYTES then
      -- the status line is in the buffer: read where it lies
      r.pos = lf + 1
      local last = lf - 1
      if last >= pos and byte(buf, last) == 13 then last = last - 1 end
      minor, status = status_line(buf, pos, last)
    else
      local line, f, too_long = read_line(r, M.MAX_HEAD_BYTES)
      if not line then
        if too_long then f = protocol_failure(r, "a status line too long") end
        return nil, f, r.got_any
      end
      minor, status = status_line(line, 1, #line)
    end
    if not status then return nil, protocol_failure(r, "not an HTTP answer"), true end
    local headers, f = read_fields(r, "header lines")
    if not headers then return nil, f, true end
    if status >= 200 or status == 101 then return status, headers, minor end
    -- 1xx informational answers (100 Continue): the real one follows
  end
end

local function too_large(self, u)
  return failure("too_large", "the answer from " .. u.host .. ":" .. u.port .. " exceeds max_body (" ..
    self.max_body .. " bytes)", true)
end

-- Content-Length: digits, or a list of equal ones (a header repeated with one value). -> n or nil
local function content_length(text)
  local len = #text
  if len > 0 and len < 16 then -- the usual one: nothing but digits
    local n = 0
    for i = 1, len do
      local b = byte(text, i)
      if b < 48 or b > 57 then n = nil break end
      n = n * 10 + (b - 48)
    end
    if n then return n end
  end
  local n
  for item in (text .. ","):gmatch("([^,]*),") do
    local digits = item:match("^%s*(%d+)%s*$")
    if not digits then return nil end
    local v = tonumber(digits)
    if n and v ~= n then return nil end
    n = v
  end
  return n
end

-- -> body, reusable  or nil, failure
local function read_body(r, status, headers)
  local self, u = r.self, r.u
  if status == 204 or status == 304 or (status >= 100 and status < 200) then return "", r.pos > #r.buf end
  local te = headers["transfer-encoding"]
  local parts = {}
  if te and te:lower():find("chunked", 1, true) then
    local total = 0
    while true do
      local line, f, too_long = read_line(r, MAX_CHUNK_LINE)
      if not line then
        if too_long then f = protocol_failure(r, "bad chunked encoding (a chunk-size line too long)") end
        return nil, f
      end
      -- chunk-size [; extensions]: hex digits only, no sign, no 0x
      local hex, rest = line:match("^(%x+)(.*)$")
      if not hex or not (rest:find("^[ \t]*$") or rest:find("^[ \t]*;")) then
        return nil, protocol_failure(r, "bad chunked encoding (a chunk size that is not hex)")
      end
      local digits = hex:match("^0*(.*)$")
      local size = #digits > 15 and math.huge or (tonumber(digits, 16) or 0)
      if size == 0 then
        local _, tf = read_fields(r, "trailer lines")
        if tf then return nil, tf end
        break
      end
      total = total + size
      if total > self.max_body then return nil, too_large(self, u) end
      local ok
      ok, f = read_exact(r, size, parts)
      if not ok then return nil, f end
      -- the data must end where its size said
      line, f, too_long = read_line(r, 1)
      if not line and not too_long then return nil, f end
      if line ~= "" then
        return nil, protocol_failure(r, "bad chunked encoding (chunk data longer than its size)")
      end
    end
    -- a connection with bytes beyond the answer is never reused: they answer nothing we asked
    return concat(parts), r.pos > #r.buf and not headers["content-length"]
  end
  local length = headers["content-length"]
  if length then
    local n = content_length(length)
    if not n then return nil, protocol_failure(r, "bad Content-Length") end
    if n > self.max_body then return nil, too_large(self, u) end
    local pos = r.pos
    local last = pos + n - 1
    if last <= #r.buf then -- the whole body is in the buffer: no list of parts
      r.pos = last + 1
      return sub(r.buf, pos, last), last == #r.buf
    end
    local ok, f = read_exact(r, n, parts)
    if not ok then return nil, f end
    return concat(parts), r.pos > #r.buf
  end
  -- neither: the body runs until the server closes the connection
  local total = 0
  while true do
    if r.pos <= #r.buf then
      local data = r.pos == 1 and r.buf or r.buf:sub(r.pos)
      r.buf, r.pos = "", 1
      total = total + #data
      if total > self.max_body then return nil, too_large(self, u) end
      parts[#parts + 1] = data
    end
    local ok, f, err = fill(r)
    if not ok then
      if err == "closed" then break end
      return nil, f
    end
  end
  return concat(parts), false
end

-- -> nil, or a failure result when the inflated answer exceeds max_body
local function decode(self, u, result, body, headers)
  local encoding = headers["content-encoding"]
  encoding = encoding and encoding:lower()
  if encoding and encoding ~= "identity" then
    local inflated, err
    if (encoding == "gzip" or encoding == "x-gzip" or encoding == "deflate") and gunzip.available then
      inflated, err = gunzip.inflate(body, self.max_body)
    else
      err = "unsupported Content-Encoding " .. encoding
    end
    if err == "too_large" then return too_large(self, u) end
    if not inflated then
      result.body = body
      result.decode_error = err
      return
    end
    body = inflated
  end
  -- a UTF-8 byte order mark before the JSON is no part of it (smm.core skips it too)
  local text = body:byte(1) == 0xEF and body:sub(1, 3) == "\239\187\191" and body:sub(4) or body
  local b = byte(text, 1)
  local first
  if b == 123 or b == 91 then first = b == 123 and "{" or "[" -- the usual answer, without a match
  else first = text:match("^%s*(.)") end
  local json, err
  if first then json, err = cjson.decode(text) end
  if json ~= nil then
    result.json = json
  else
    result.body = body
    if first == "{" or first == "[" then result.decode_error = err or "invalid JSON" end
  end
end

-- u is this transport's own (url_cache): what depends only on it and the transport's options
-- is made once and kept there.
local function pool_name(self, u)
  local name = u.pool
  if not name then
    name = u.connect_host .. ":" .. u.port .. ":" .. (u.tls and ("tls:" .. (self.ssl_verify and "v" or "nv"))
      or "plain")
    u.pool = name
  end
  return name
end

-- The request's head up to the value of Content-Length. Accept-Encoding: gzip only for the
-- answers that can be large (ropts.gzip), as the C core does: compressing a 40-byte balance
-- makes it larger, and asking costs every request; a compressed answer is inflated all the same.
local function head_of(self, u, gzip)
  local key = gzip and "head_gzip" or "head"
  local head = u[key]
  if not head then
    head = "POST " .. u.path .. " HTTP/1.1\r\n" ..
      "Host: " .. u.host_header .. "\r\n" ..
      "User-Agent: " .. self.user_agent .. "\r\n" .. (extra_headers[self] or "") ..
      "Accept: application/json\r\n" ..
      ((gzip and gunzip.available) and "Accept-Encoding: gzip\r\n" or "") ..
      "Content-Type: application/x-www-form-urlencoded\r\n" ..
      "Content-Length: "
    u[key] = head
  end
  return head
end

-- One attempt over one connection. fresh: never take a pooled connection.
-- -> result, retry_fresh (true when a reused connection died before any answer byte)
local function exchange(self, u, body, idempotent, fresh, started, deadline, gzip)
  local sock, err = ngx.socket.tcp()
  if not sock then return failure("network", "cannot create a socket: " .. tostring(err), false) end
  local copts = u.connect_opts
  if not copts then
    copts = { pool = pool_name(self, u) }
    u.connect_opts = copts
  end
  if fresh then
    fresh_counter = fresh_counter + 1
    copts = { pool = copts.pool .. ":fresh:" .. fresh_counter .. ":" .. tostring(sock) }
  end
  local left = remaining(deadline)
  if not left then return deadline_failure(self, u) end
  local armed = arm(sock, self, left, nil)
  local ok
  ok, err = sock:connect(u.connect_host, u.port, copts)
  if not ok then return connect_failure(err, u, "connecting") end
  local reused = (sock:getreusedtimes() or 0) > 0

  if u.tls and not reused then
    left = remaining(deadline)
    if not left then sock:close(); return deadline_failure(self, u) end
    armed = arm(sock, self, left, armed)
    local session
    session, err = sock:sslhandshake(nil, u.host, self.ssl_verify)
    if not session then
      sock:close()
      if err == "timeout" then return connect_failure(err, u, "the TLS handshake") end
      return failure("tls", "TLS handshake with " .. u.host .. ":" .. u.port .. " failed: " ..
        tostring(err) ..
        (self.ssl_verify and " (certificates are checked against nginx's lua_ssl_trusted_certificate)" or ""),
        false)
    end
  end

  local keep = not fresh
  local request = head_of(self, u, gzip) .. #body ..
    (keep and "\r\nConnection: keep-alive" or "\r\nConnection: close") ..
    (u.auth and ("\r\nAuthorization: " .. u.auth) or "") .. "\r\n\r\n" .. body
  left = remaining(deadline)
  if not left then sock:close(); return deadline_failure(self, u) end
  armed = arm(sock, self, left, armed)
  local bytes
  bytes, err = sock:send(request)
  if not bytes then
    sock:close()
    if reused and idempotent then return nil, true end
    return io_failure(err, u, "sending to")
  end

  local r = reader(sock, self, u, deadline, armed)
  local status, headers, minor = read_head(r)
  if not status then
    sock:close()
    local got_any = minor
    -- a pooled connection the panel had closed: nothing came back, safe to send again
    if reused and idempotent and not got_any and headers.failure == "network" then return nil, true end
    return headers
  end
  local content, reusable = read_body(r, status, headers)
  if not content then
    sock:close()
    return reusable
  end

  local connection = (headers.connection or ""):lower()
  if keep and reusable and minor >= 1 and not connection:find("close", 1, true) and status ~= 101 then
    sock:setkeepalive(M.KEEPALIVE_IDLE, M.POOL_SIZE)
  else
    sock:close()
  end

  local result = {
    status = status,
    content_type = headers["content-type"],
    retry_after = retry_after_seconds(headers["retry-after"]),
    location = headers.location,
    time = clock_ms() - started, -- ms, as the C core
  }
  local failed = decode(self, u, result, content, headers)
  return failed or result
end

-- A raise inside an exchange is a defect of this file, but the request may have been sent by
-- then: it becomes a failure that says so (ambiguous for an add) instead of losing the answers
-- of the other requests in flight. The log names only where it happened: the message could
-- quote the panel's bytes.
local function internal_failure(err)
  local where = tostring(err):match("^([^:]*:%d+):") or "?"
  ngx.log(ngx.ERR, "smm transport ngx: internal error at ", where)
  return failure("network", "internal error in the ngx transport (at " .. where .. ")", true)
end

-- One request whose body is already encoded. -> result
local function post(self, url, body, ropts)
  local idempotent = ropts ~= nil and ropts.idempotent == true
  local u = url_cache[self] and url_cache[self][url]
  if not u then
    local perr
    u, perr = M.parse_url(url)
    if not u then return failure("network", "bad URL: " .. perr, false) end
    url_cache[self] = url_cache[self] or {}
    url_cache[self][url] = u
  end
  local started = now_ms()
  local deadline = started + self.timeout
  -- A request that changes something (add) always goes over a new connection: a pooled one may
  -- have died unseen, and sending it again would place a second order.
  local gzip = ropts ~= nil and ropts.gzip == true
  local ok, result, again = pcall(exchange, self, u, body, idempotent, not idempotent, started, deadline,
    gzip)
  if ok and again then
    -- a pooled connection had been closed by the panel before our request reached it: safe to
    -- send again (idempotent), over a new connection
    ok, result = pcall(exchange, self, u, body, idempotent, true, started, deadline, gzip)
  end
  if not ok then return internal_failure(result) end
  return result
end

-- url, fields, { idempotent = bool } -> result. Fields the form cannot carry raise (misuse).
function Transport:request(url, fields, ropts)
  check_phase()
  if type(fields) ~= "table" then
    error("smm transport ngx: request: fields must be a table, got " .. type(fields), 2)
  end
  return post(self, url, encode_memo(self, fields), ropts)
end

-- url, { fields, ... }, { idempotent =, concurrency = } -> { result, ... } in the same order.
-- Runs at most `concurrency` requests at a time, each in its own nginx light thread. Every
-- body is encoded before the first request goes out: a misuse raises with nothing sent.
function Transport:request_many(url, list, ropts)
  check_phase()
  ropts = ropts or {}
  local n = #list
  local results, bodies = {}, {}
  for i = 1, n do
    if type(list[i]) ~= "table" then
      error("smm transport ngx: request_many: item " .. i .. " must be a table of fields, got " ..
        type(list[i]), 2)
    end
    bodies[i] = M.encode(list[i], i)
  end
  if n == 0 then return results end
  local width = min(n, max(1, floor(ropts.concurrency or self.concurrency)))
  if width == 1 then
    for i = 1, n do results[i] = post(self, url, bodies[i], ropts) end
    return results
  end
  local next_index = 0
  local first_error
  local function worker()
    while true do
      next_index = next_index + 1
      local i = next_index
      if i > n then return end
      local ok, res = pcall(post, self, url, bodies[i], ropts)
      if ok then
        results[i] = res
      else
        first_error = first_error or res
        results[i] = failure("network", "internal error in the ngx transport", true)
      end
    end
  end
  local threads = {}
  for t = 1, width do
    local th, err = ngx.thread.spawn(worker)
    if not th then error("smm transport ngx: cannot start a light thread: " .. tostring(err), 2) end
    threads[t] = th
  end
  for t = 1, width do ngx.thread.wait(threads[t]) end
  if first_error then error(first_error, 0) end
  return results
end

function Transport:sleep(ms) -- luacheck: ignore self
  if ms and ms > 0 then
    check_phase()
    ngx.sleep(ms / 1000)
  end
end

function Transport:now() -- luacheck: ignore self
  return now_ms()
end

function Transport:close()
  -- pooled connections belong to the nginx worker and expire on their own
  self.closed = true
end

return M
