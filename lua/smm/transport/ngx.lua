-- The transport over nginx cosockets (ngx.socket.tcp): the default inside OpenResty / nginx
-- with the lua module, where a libcurl call would block the whole worker. It knows HTTP, not
-- the API: it posts form fields and hands back result tables shaped like the C core's (see
-- lua/smm/answer.lua). It never loads smm.core.
--
-- HTTP/1.1 POST, form-urlencoded (fields sorted by name, RFC 3986 unreserved characters kept,
-- space as '+', everything else %XX), answers with Content-Length, chunked or read until
-- close. No redirects are followed. gzip answers are accepted and inflated through LuaJIT's
-- FFI and the zlib nginx links (transport/gunzip.lua); max_body counts inflated bytes.
--
-- Limits of cosockets, checked at construction:
--   cainfo  cannot be set per socket: use nginx's `lua_ssl_trusted_certificate` (raises).
--   proxy   cosockets do not speak to proxies (raises).
-- Host names are resolved by nginx's `resolver` directive; "localhost" is taken as 127.0.0.1.
local cjson = require "cjson.safe"
local normalize = require "smm.normalize"
local gunzip = require "smm.transport.gunzip"

local ngx = ngx -- luacheck: ignore (the global exists only inside nginx)

local M = {}
M.name = "ngx"

local Transport = {}
Transport.__index = Transport
Transport.name = "ngx"
M.Transport = Transport

local concat, sort, format, byte = table.concat, table.sort, string.format, string.byte
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

function M.new(opts)
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
  return setmetatable({
    timeout = opts.timeout or 30000,
    connect_timeout = opts.connect_timeout or 10000,
    ssl_verify = opts.ssl_verify ~= false,
    user_agent = opts.user_agent or default_user_agent(),
    max_body = opts.max_body or 64 * 1024 * 1024,
    concurrency = opts.concurrency or 4,
  }, Transport)
end

---------------------------------------------------------------------------------------------
-- Form encoding: the same bytes as the C core.

local function escape(s)
  return (s:gsub("[^A-Za-z0-9%-%._~ ]", function(c) return format("%%%02X", byte(c)) end)
           :gsub(" ", "+"))
end

local function field_value(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return normalize.number_to_decimal(v) end
  if t == "boolean" then return v and "1" or "0" end
  error("smm transport ngx: a field value must be a string, number or boolean, got " .. t, 4)
end

function M.encode(fields)
  local names = {}
  for name in pairs(fields) do names[#names + 1] = tostring(name) end
  sort(names)
  local parts = {}
  for i, name in ipairs(names) do
    local v = fields[name]
    if v == nil then v = fields[tonumber(name)] end
    parts[i] = escape(name) .. "=" .. escape(field_value(v))
  end
  return concat(parts, "&")
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

-- `code`: the libcurl error number the C core would report for the same failure, so that
-- results read the same whatever the transport.
local CURL_CODES = { url = 3, resolve = 6, connect = 7, refused = 7, protocol = 8, internal = 2,
  socket = 7, io = 56, closed = 56, send = 55, too_large = 63, timeout = 28, connect_timeout = 28,
  tls = 35 }

local function failure(kind, message, sent, code)
  return { failure = kind, message = message, sent = sent, code = CURL_CODES[code] or 0 }
end

-- Failures of connect / TLS handshake: nothing was sent.
local function connect_failure(err, u, what)
  local where = u.host .. ":" .. u.port
  if err == "timeout" then
    return failure("timeout", what .. " to " .. where .. " timed out", false, "connect_timeout")
  end
  local code = "connect"
  if err:find("resolve", 1, true) or err:find("resolver", 1, true) then code = "resolve"
  elseif err:find("refused", 1, true) then code = "refused" end
  return failure("network", what .. " to " .. where .. " failed: " .. err, false, code)
end

local function io_failure(err, u, what)
  if err == "timeout" then
    return failure("timeout", "timed out " .. what .. " " .. u.host .. ":" .. u.port, true, "timeout")
  end
  return failure("network", what .. " " .. u.host .. ":" .. u.port .. " failed: " .. tostring(err),
    true, err == "closed" and "closed" or "io")
end

local function deadline_failure(self, u)
  return failure("timeout", "no complete answer from " .. u.host .. ":" .. u.port .. " within " ..
    self.timeout .. " ms", true, "timeout")
end

-- Remaining ms before the deadline, at least 1 (0 would mean nginx's default), or nil if past.
local function remaining(deadline)
  local left = floor(deadline - now_ms())
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

-- Reads the status line and headers. -> status, headers (lower-case names; repeated joined
-- by ", "), http_minor  or nil, failure, got_any_byte
local function read_head(sock, self, u, deadline)
  while true do
    local left = remaining(deadline)
    if not left then return nil, deadline_failure(self, u), false end
    sock:settimeouts(min(self.connect_timeout, left), left, left)
    local line, err = sock:receive("*l")
    if not line then return nil, io_failure(err, u, "reading the answer from"), false end
    local minor, status = line:match("^HTTP/1%.(%d) (%d%d%d)")
    if not status then
      return nil, failure("network", "not an HTTP answer from " .. u.host .. ":" .. u.port, true,
        "protocol"), true
    end
    status = tonumber(status)
    local headers = {}
    while true do
      left = remaining(deadline)
      if not left then return nil, deadline_failure(self, u), true end
      sock:settimeouts(min(self.connect_timeout, left), left, left)
      local h
      h, err = sock:receive("*l")
      if not h then return nil, io_failure(err, u, "reading the answer from"), true end
      if h == "" then break end
      local name, value = h:match("^([^:]+):%s*(.-)%s*$")
      if name then
        name = name:lower()
        headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
      end
    end
    if status >= 200 or status == 101 then return status, headers, tonumber(minor) end
    -- 1xx informational answers (100 Continue): the real one follows
  end
end

-- Reads exactly n bytes within the deadline. -> data or nil, failure
local function read_exact(sock, self, u, deadline, n, parts)
  local got = 0
  while got < n do
    local left = remaining(deadline)
    if not left then return nil, deadline_failure(self, u) end
    sock:settimeouts(min(self.connect_timeout, left), left, left)
    local data, err = sock:receiveany(min(READ_CHUNK, n - got))
    if not data then
      if err == "closed" then
        return nil, failure("network", "the connection to " .. u.host .. ":" .. u.port ..
          " closed before the answer was complete", true, "closed")
      end
      return nil, io_failure(err, u, "reading the answer from")
    end
    parts[#parts + 1] = data
    got = got + #data
  end
  return true
end

local function too_large(self, u)
  return failure("too_large", "the answer from " .. u.host .. ":" .. u.port .. " exceeds max_body (" ..
    self.max_body .. " bytes)", true, "too_large")
end

-- -> body, reusable  or nil, failure
local function read_body(sock, self, u, deadline, status, headers)
  if status == 204 or status == 304 or (status >= 100 and status < 200) then return "", true end
  local te = headers["transfer-encoding"]
  local parts = {}
  if te and te:lower():find("chunked", 1, true) then
    local total = 0
    while true do
      local left = remaining(deadline)
      if not left then return nil, deadline_failure(self, u) end
      sock:settimeouts(min(self.connect_timeout, left), left, left)
      local line, err = sock:receive("*l")
      if not line then return nil, io_failure(err, u, "reading the answer from") end
      local size = tonumber(line:match("^%s*(%x+)"), 16)
      if not size then
        return nil, failure("network", "bad chunked encoding from " .. u.host .. ":" .. u.port, true,
          "protocol")
      end
      if size == 0 then
        repeat -- trailers, up to the empty line
          left = remaining(deadline)
          if not left then return nil, deadline_failure(self, u) end
          sock:settimeouts(min(self.connect_timeout, left), left, left)
          line, err = sock:receive("*l")
          if not line then return nil, io_failure(err, u, "reading the answer from") end
        until line == ""
        break
      end
      total = total + size
      if total > self.max_body then return nil, too_large(self, u) end
      local ok, f = read_exact(sock, self, u, deadline, size, parts)
      if not ok then return nil, f end
      local crlf = {}
      ok, f = read_exact(sock, self, u, deadline, 2, crlf)
      if not ok then return nil, f end
    end
    return concat(parts), true
  end
  local length = headers["content-length"]
  if length then
    local n = tonumber(length:match("^%s*(%d+)%s*$"))
    if not n then
      return nil, failure("network", "bad Content-Length from " .. u.host .. ":" .. u.port, true, "protocol")
    end
    if n > self.max_body then return nil, too_large(self, u) end
    local ok, f = read_exact(sock, self, u, deadline, n, parts)
    if not ok then return nil, f end
    return concat(parts), true
  end
  -- neither: the body runs until the server closes the connection
  local total = 0
  while true do
    local left = remaining(deadline)
    if not left then return nil, deadline_failure(self, u) end
    sock:settimeouts(min(self.connect_timeout, left), left, left)
    local data, err = sock:receiveany(READ_CHUNK)
    if not data then
      if err == "closed" then break end
      return nil, io_failure(err, u, "reading the answer from")
    end
    total = total + #data
    if total > self.max_body then return nil, too_large(self, u) end
    parts[#parts + 1] = data
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
  local first = text:match("^%s*(.)")
  local json, err
  if first then json, err = cjson.decode(text) end
  if json ~= nil then
    result.json = json
  else
    result.body = body
    if first == "{" or first == "[" then result.decode_error = err or "invalid JSON" end
  end
end

local function pool_name(self, u)
  return u.connect_host .. ":" .. u.port .. ":" .. (u.tls and ("tls:" .. (self.ssl_verify and "v" or "nv"))
    or "plain")
end

-- One attempt over one connection. fresh: never take a pooled connection.
-- -> result, retry_fresh (true when a reused connection died before any answer byte)
local function exchange(self, u, body, idempotent, fresh, started, deadline)
  local sock, err = ngx.socket.tcp()
  if not sock then return failure("network", "cannot create a socket: " .. tostring(err), false, "socket") end
  local pool = pool_name(self, u)
  if fresh then
    fresh_counter = fresh_counter + 1
    pool = pool .. ":fresh:" .. fresh_counter .. ":" .. tostring(sock)
  end
  local left = remaining(deadline)
  if not left then return deadline_failure(self, u) end
  sock:settimeouts(min(self.connect_timeout, left), left, left)
  local ok
  ok, err = sock:connect(u.connect_host, u.port, { pool = pool })
  if not ok then return connect_failure(err, u, "connecting") end
  local reused = (sock:getreusedtimes() or 0) > 0

  if u.tls and not reused then
    left = remaining(deadline)
    if not left then sock:close(); return deadline_failure(self, u) end
    sock:settimeouts(min(self.connect_timeout, left), left, left)
    local session
    session, err = sock:sslhandshake(nil, u.host, self.ssl_verify)
    if not session then
      sock:close()
      if err == "timeout" then return connect_failure(err, u, "the TLS handshake") end
      return failure("tls", "TLS handshake with " .. u.host .. ":" .. u.port .. " failed: " ..
        tostring(err) ..
        (self.ssl_verify and " (certificates are checked against nginx's lua_ssl_trusted_certificate)" or ""),
        false, "tls")
    end
  end

  local keep = not fresh
  local head = {
    "POST " .. u.path .. " HTTP/1.1",
    "Host: " .. u.host_header,
    "User-Agent: " .. self.user_agent,
    "Accept: application/json",
    gunzip.available and "Accept-Encoding: gzip" or "Accept-Encoding: identity",
    "Content-Type: application/x-www-form-urlencoded",
    "Content-Length: " .. #body,
    keep and "Connection: keep-alive" or "Connection: close",
  }
  if u.auth then head[#head + 1] = "Authorization: " .. u.auth end
  head[#head + 1] = ""
  head[#head + 1] = body
  left = remaining(deadline)
  if not left then sock:close(); return deadline_failure(self, u) end
  sock:settimeouts(min(self.connect_timeout, left), left, left)
  local bytes
  bytes, err = sock:send(concat(head, "\r\n"))
  if not bytes then
    sock:close()
    if reused and idempotent then return nil, true end
    local f = io_failure(err, u, "sending to")
    if f.code == 56 then f.code = 55 end
    return f
  end

  local status, headers, minor = read_head(sock, self, u, deadline)
  if not status then
    sock:close()
    local got_any = minor
    -- a pooled connection the panel had closed: nothing came back, safe to send again
    if reused and idempotent and not got_any and headers.failure == "network" then return nil, true end
    return headers
  end
  local content, reusable = read_body(sock, self, u, deadline, status, headers)
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
    time = now_ms() - started, -- ms, as the C core
  }
  local failed = decode(self, u, result, content, headers)
  return failed or result
end

-- url, fields, { idempotent = bool } -> result
function Transport:request(url, fields, ropts)
  local idempotent = ropts ~= nil and ropts.idempotent == true
  local u = url_cache[self] and url_cache[self][url]
  if not u then
    local perr
    u, perr = M.parse_url(url)
    if not u then return failure("network", "bad URL: " .. perr, false, "url") end
    url_cache[self] = url_cache[self] or {}
    url_cache[self][url] = u
  end
  local body = M.encode(fields or {})
  local started = now_ms()
  local deadline = started + self.timeout
  -- A request that changes something (add) always goes over a new connection: a pooled one may
  -- have died unseen, and sending it again would place a second order.
  local result, again = exchange(self, u, body, idempotent, not idempotent, started, deadline)
  if again then
    -- a pooled connection had been closed by the panel before our request reached it: safe to
    -- send again (idempotent), over a new connection
    result = exchange(self, u, body, idempotent, true, started, deadline)
  end
  return result
end

-- url, { fields, ... }, { idempotent =, concurrency = } -> { result, ... } in the same order.
-- Runs at most `concurrency` requests at a time, each in its own nginx light thread.
function Transport:request_many(url, list, ropts)
  ropts = ropts or {}
  local n = #list
  local results = {}
  if n == 0 then return results end
  local width = min(n, max(1, floor(ropts.concurrency or self.concurrency)))
  if width == 1 then
    for i = 1, n do results[i] = self:request(url, list[i], ropts) end
    return results
  end
  local next_index = 0
  local first_error
  local function worker()
    while true do
      next_index = next_index + 1
      local i = next_index
      if i > n then return end
      local ok, res = pcall(self.request, self, url, list[i], ropts)
      if ok then
        results[i] = res
      else
        first_error = first_error or res
        results[i] = failure("network", "internal error in the ngx transport", true, "internal")
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
  if ms and ms > 0 then ngx.sleep(ms / 1000) end
end

function Transport:now() -- luacheck: ignore self
  return now_ms()
end

function Transport:close()
  -- pooled connections belong to the nginx worker and expire on their own
  self.closed = true
end

-- A store for the service list in a lua_shared_dict, shared by every worker:
--   http { lua_shared_dict smm_cache 1m; }   smm.new{ ..., shared_dict = "smm_cache" }
function Transport:shared_store(dict_name, url) -- luacheck: ignore self
  local dict = ngx.shared[dict_name]
  if not dict then
    error("smm.new: option 'shared_dict': no lua_shared_dict named '" .. tostring(dict_name) ..
      "' (declare it in nginx.conf: lua_shared_dict " .. tostring(dict_name) .. " 1m;)", 4)
  end
  -- keyed by a digest: the URL may carry credentials
  local key = "smm:services:" .. ngx.md5(url)
  return {
    load = function()
      local text = dict:get(key)
      if not text then return nil end
      local v = cjson.decode(text)
      if type(v) ~= "table" or type(v.list) ~= "table" or type(v.fetched) ~= "number" then return nil end
      return v.list, v.fetched
    end,
    save = function(list, fetched_ms, ttl_ms)
      local text = cjson.encode({ list = list, fetched = fetched_ms })
      if not text then return end
      local exptime = ttl_ms and ttl_ms > 0 and ttl_ms / 1000 or 0
      dict:set(key, text, exptime)
    end,
    clear = function()
      dict:delete(key)
    end,
  }
end

return M
