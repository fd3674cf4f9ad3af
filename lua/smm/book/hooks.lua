-- Delivering the book's events (the outbox: smm.book.events) to hooks, at least once.
--
--   local summary, err = book:deliver({
--     { fn = function(event) ... return true end },          -- a Lua function
--     { exec = "logger -t smm" },                             -- a command, the event on stdin
--     { webhook = "https://shop.example/smm", secret = "s3cret" },   -- an HTTP POST, signed
--   }, { limit = 1000, timeout = 10000, stop = function() return stopping end })
--   -- summary = { delivered = n, failed = n, pending = n }
--
-- Events go out in id order. An event is marked delivered when every hook took it; when one
-- did not, the event is offered again later (to every hook: one that took it may see it
-- twice, so receivers dedupe by id) after a growing pause (5 s, 10 s, 20 s ... up to an hour).
--
-- Several deliverers on one book (two `smm sync` daemons on one PostgreSQL book) claim events
-- in small batches with a lease (lease_owner, lease_until: schema v2), so they do not deliver
-- the same event at the same time; the claim skips rows another claim holds locked (the
-- dialect's skip_locked). A deliverer killed mid-batch loses nothing: its lease runs out and
-- another takes the events.
--
-- The body every hook gets is the stored event JSON with its id put first, {"id":N,...}: the
-- same bytes on every attempt, and the bytes a webhook's signature covers.
local errors = require "smm.errors"
local options = require "smm.options"

local M = {}

local DEFAULT_LIMIT = 1000
local DEFAULT_TIMEOUT = 10000 -- ms, per hook and event
local CHUNK = 25              -- events claimed at once: a lease covers no more than these
local MAX_PAUSE = 3600
local EXCERPT = 200           -- bytes of a receiver's answer or a command's stderr kept in last_error

local OPTIONS = { limit = "number", timeout = "number", stop = "function" }
local HOOK_KINDS = { fn = "function", exec = "string", webhook = "string" }
local WEBHOOK_FIELDS = { webhook = "string", secret = "string", header = "string", timeout = "number" }

local function usage(message) error("smm.book: deliver(hooks, opts): " .. message, 4) end

local function positive(value) return value > 0 and value == math.floor(value) end

-- The pause before the next try of an event that failed `attempts` times.
function M.backoff(attempts)
  return math.min(MAX_PAUSE, 5 * 2 ^ (attempts - 1))
end

local function hex(bytes)
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local hmac_module
local function hmac()
  if not hmac_module then
    local ok, mod = pcall(require, "openssl.hmac")
    if not ok then
      error("smm.book: webhook signatures need luaossl (Debian: apt-get install lua-luaossl; " ..
        "luarocks install luaossl)", 0)
    end
    hmac_module = mod
  end
  return hmac_module
end

-- LuaSocket is optional for the library (the smm rock does not depend on it): only webhooks
-- need it, so it is loaded when one is configured.
local function http_modules()
  local loaded = {}
  for i, name in ipairs{ "socket.http", "socket", "ltn12" } do
    local ok, mod = pcall(require, name)
    if not ok then
      error("smm.book: webhooks need LuaSocket (Debian: apt-get install lua-socket; " ..
        "luarocks install luasocket)", 0)
    end
    loaded[i] = mod
  end
  return loaded[1], loaded[2], loaded[3]
end

-- Inside nginx (where a request or a timer may yield), LuaSocket would block the worker: the
-- POST goes over cosockets there (smm.book.webhook_ngx).
local function in_nginx()
  local phase = ngx and ngx.get_phase and ngx.get_phase()
  return phase == "timer" or phase == "content" or phase == "access" or phase == "rewrite"
end

-- syntax: "sha256=<hex>" = hooks.signature(secret, body)
-- The HMAC-SHA256 of the exact body with the secret, as the X-Smm-Signature header carries it.
function M.signature(secret, body)
  if type(secret) ~= "string" or type(body) ~= "string" then
    error("smm.book: hooks.signature(secret, body): both must be strings", 2)
  end
  return "sha256=" .. hex(hmac().new(secret, "sha256"):final(body))
end

-- The webhook's URL as messages show it: scheme, host, port and path; never its credentials,
-- query or fragment (they are secrets, and scrubbed as well).
local function shown_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return "(a URL)" end
  local authority, path = rest:match("^([^/?#]*)([^?#]*)")
  authority = authority:match("@([^@]*)$") or authority
  return scheme:lower() .. "://" .. authority .. path
end

-- The program a command runs, as messages (and last_error, a row) show it: never the
-- assignments before it (TOKEN=... notify.sh) nor its arguments, where secrets are passed.
local function command_word(command)
  for word in command:gmatch("%S+") do
    if not word:find("^[%a_][%w_]*=") then return (word:gsub("^.*/", "")):sub(1, 40) end
  end
  return "(a command)"
end

local function check_hooks(hooks, timeout)
  if type(hooks) ~= "table" then usage("hooks must be a list of hooks, got " .. type(hooks)) end
  if #hooks == 0 then usage("hooks is empty: give at least one { fn = }, { exec = } or { webhook = }") end
  local checked = {}
  for i, hook in ipairs(hooks) do
    local where = "hooks[" .. i .. "]"
    if type(hook) ~= "table" then usage(where .. " must be a table, got " .. type(hook)) end
    local kind
    for name in pairs(HOOK_KINDS) do
      if hook[name] ~= nil then
        if kind then usage(where .. " has both '" .. kind .. "' and '" .. name .. "': one kind per hook") end
        kind = name
      end
    end
    if not kind then usage(where .. " needs one of 'fn', 'exec' or 'webhook'") end
    local fields = kind == "webhook" and WEBHOOK_FIELDS or { [kind] = HOOK_KINDS[kind] }
    for name, value in pairs(hook) do
      if not fields[name] then usage(where .. ": unknown field '" .. tostring(name) .. "'") end
      if type(value) ~= fields[name] then
        usage(where .. "." .. name .. " must be a " .. fields[name] .. ", got " .. type(value))
      end
    end
    local entry = { kind = kind, index = i, timeout = timeout }
    if kind == "fn" then
      entry.fn, entry.name = hook.fn, "hook " .. i .. " (function)"
    elseif kind == "exec" then
      if hook.exec:find("^%s*$") then usage(where .. ".exec is an empty command") end
      entry.command = hook.exec
      entry.name = "hook " .. i .. " (exec " .. command_word(hook.exec) .. ")"
    else
      local scheme = hook.webhook:match("^(%a[%w+.-]*)://[^/?#]")
      scheme = scheme and scheme:lower()
      if scheme ~= "http" and scheme ~= "https" then
        usage(where .. ".webhook must be an http:// or https:// URL (the URL is not shown: it may " ..
          "hold a password)")
      end
      if hook.webhook:find("[%c%s]") then
        usage(where .. ".webhook must not contain spaces or control characters")
      end
      if not hook.secret or hook.secret == "" then
        usage(where .. " needs a 'secret' (the HMAC key that signs each body)")
      end
      if hook.header ~= nil and not hook.header:find("^[%w%-]+$") then
        usage(where .. ".header must be an HTTP header name, like X-Smm-Signature")
      end
      if hook.timeout ~= nil and not positive(hook.timeout) then
        usage(where .. ".timeout must be a whole number of milliseconds > 0")
      end
      entry.url, entry.secret, entry.scheme = hook.webhook, hook.secret, scheme
      entry.header = hook.header or "X-Smm-Signature"
      entry.timeout = hook.timeout or timeout
      entry.name = "hook " .. i .. " (webhook " .. shown_url(hook.webhook) .. ")"
      entry.secrets = options.secrets(hook.secret, hook.webhook)
      hmac() -- fails here, before anything is claimed, when luaossl is missing
      if not in_nginx() then http_modules() end -- and here when LuaSocket is (nginx has cosockets)
    end
    checked[i] = entry
  end
  return checked
end

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then usage("opts must be a table, got " .. type(opts)) end
  for name, value in pairs(opts) do
    if not OPTIONS[name] then usage("unknown option '" .. tostring(name) .. "'") end
    if type(value) ~= OPTIONS[name] then
      usage("option '" .. name .. "' must be a " .. OPTIONS[name] .. ", got " .. type(value))
    end
  end
  if opts.limit ~= nil and not positive(opts.limit) then
    usage("option 'limit' must be a whole number > 0, got " .. tostring(opts.limit))
  end
  if opts.timeout ~= nil and not positive(opts.timeout) then
    usage("option 'timeout' must be a whole number of milliseconds > 0, got " .. tostring(opts.timeout))
  end
  return opts
end

-- One line of text, cut short, for last_error.
local function excerpt(text)
  text = tostring(text or ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if #text > EXCERPT then text = text:sub(1, EXCERPT) .. "..." end
  return text
end

---------------------------------------------------------------------------------------------------
-- The three kinds of hook. Each: (hook, event) -> true, or nil, reason [, unreachable], where
-- unreachable means the hook could not be reached at all (a timeout, a refused connection):
-- it is not offered the rest of this call's events, which would only wait for it in turn.

local cjson_module
local function decoder()
  if not cjson_module then cjson_module = require "cjson.safe" end
  return cjson_module
end

-- lua-cjson reads every number as a float on 5.3+: ids and counts are integers again here.
local function integers(value)
  if type(value) == "table" then
    for k, v in pairs(value) do value[k] = integers(v) end
  elseif type(value) == "number" and math.tointeger then
    return math.tointeger(value) or value
  end
  return value
end

local function call_fn(hook, event)
  local decoded = decoder().decode(event.body)
  if type(decoded) ~= "table" then return nil, "the stored event is not valid JSON" end
  decoded = integers(decoded)
  decoded.id = event.id
  local ok, done, why = pcall(hook.fn, decoded)
  if not ok then return nil, "raised: " .. excerpt(done) end
  if not done then return nil, why ~= nil and excerpt(why) or "returned " .. tostring(done) end
  return true
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a") or ""
  f:close()
  return s
end

-- os.execute's exit code: (true|nil, "exit", code) on 5.2+, a wait status on 5.1 and LuaJIT.
local function exit_code(a, how, code)
  if type(a) == "number" then
    if a >= 256 then return math.floor(a / 256) end
    return a
  end
  if how == "exit" then return code end
  return 128 + (code or 0)
end

-- The command runs under coreutils' timeout, which puts it in a process group of its own and
-- kills the whole group when the time is up (a shell's children too). Its stdout is dropped
-- (a daemon's terminal is not the hook's); the end of its stderr goes into last_error.
local function run_exec(hook, event)
  local input, stderr = os.tmpname(), os.tmpname()
  local f = io.open(input, "wb")
  if not f then
    os.remove(stderr)
    return nil, "cannot write the event to a temporary file"
  end
  f:write(event.body, "\n")
  f:close()
  local seconds = string.format("%.3f", hook.timeout / 1000)
  local cmd = "timeout -k 1 " .. seconds .. " /bin/sh -c " .. shell_quote(hook.command) ..
    " < " .. shell_quote(input) .. " > /dev/null 2> " .. shell_quote(stderr)
  local code = exit_code(os.execute(cmd))
  local said = read_all(stderr)
  os.remove(input)
  os.remove(stderr)
  if code == 0 then return true end
  if code == 137 or code == 124 then
    return nil, "timed out after " .. hook.timeout .. " ms (killed)", true
  end
  local tail = excerpt(said:sub(-EXCERPT))
  return nil, "exited with status " .. tostring(code) .. (tail ~= "" and (": " .. tail) or "")
end

local tls_module
local function tls()
  if tls_module == nil then
    local ok, mod = pcall(require, "ssl")
    tls_module = ok and mod or false
  end
  return tls_module
end

-- Does the certificate name this host? Its subjectAltName DNS names (a leading "*." stands for
-- one label), or its common name when it has none.
local function certificate_names(cert, host)
  host = host:lower()
  local names = {}
  local ok, ext = pcall(cert.extensions, cert)
  local alt = ok and type(ext) == "table" and ext["2.5.29.17"]
  if alt then
    for _, name in ipairs(alt.dNSName or {}) do names[#names + 1] = name end
    for _, ip in ipairs(alt.iPAddress or {}) do if ip == host then return true end end
  else
    for _, entry in ipairs(cert:subject() or {}) do
      if entry.name == "commonName" then names[#names + 1] = entry.value end
    end
  end
  for _, name in ipairs(names) do
    name = name:lower()
    if name == host then return true end
    local suffix = name:match("^%*(%..+)$")
    if suffix and host:sub(-#suffix) == suffix and not host:sub(1, -#suffix - 1):find("%.") and
        #host > #suffix then
      return true
    end
  end
  return false
end

-- A connection for socket.http: plain TCP, or TLS that checks the peer's certificate against
-- the system's authorities and its name against the URL's host (LuaSec checks the first only).
-- Every step is bounded by the hook's timeout: each wait (connect, each read and write) and
-- the whole exchange ("t", which http's own settimeout leaves alone).
local function connection(hook, socket)
  local seconds = hook.timeout / 1000
  return function()
    local sock = socket.try(socket.tcp())
    sock:settimeout(seconds, "t")
    if hook.scheme ~= "https" then return sock end
    local ssl = tls()
    local conn = { sock = sock }
    local meta = getmetatable(sock).__index
    function conn:settimeout() return meta.settimeout(self.sock, seconds) end
    function conn:connect(host, port)
      socket.try(self.sock:connect(host, port))
      self.sock = socket.try(ssl.wrap(self.sock, { mode = "client", protocol = "any",
        options = { "all", "no_sslv2", "no_sslv3", "no_tlsv1" }, verify = "peer",
        cafile = "/etc/ssl/certs/ca-certificates.crt", capath = "/etc/ssl/certs" }))
      self.sock:sni(host)
      self.sock:settimeout(seconds)
      socket.try(self.sock:dohandshake())
      local cert = self.sock:getpeercertificate()
      if not cert or not certificate_names(cert, host) then
        self.sock:close()
        socket.try(nil, "the certificate does not name " .. host)
      end
      return 1
    end
    for name, method in pairs(meta) do
      if type(method) == "function" and not conn[name] then
        conn[name] = function(self, ...) return self.sock[name](self.sock, ...) end
      end
    end
    return conn
  end
end

local function post(hook, event)
  if in_nginx() then
    return require("smm.book.webhook_ngx").post(hook, event, M.signature(hook.secret, event.body))
  end
  local http, socket, ltn12 = http_modules()
  if hook.scheme == "https" and not tls() then
    return nil, "https webhooks need LuaSec (Debian: apt-get install lua-sec)"
  end
  local answer = {}
  local saved = http.TIMEOUT
  http.TIMEOUT = hook.timeout / 1000
  local ok, res, code = pcall(http.request, {
    url = hook.url, method = "POST", redirect = false,
    headers = {
      ["content-type"] = "application/json",
      ["content-length"] = tostring(#event.body),
      [hook.header:lower()] = M.signature(hook.secret, event.body),
      ["x-smm-event"] = event.type,
      ["x-smm-event-id"] = tostring(event.id),
    },
    source = ltn12.source.string(event.body),
    sink = ltn12.sink.table(answer),
    create = connection(hook, socket),
  })
  http.TIMEOUT = saved
  if not ok then return nil, "failed: " .. excerpt(res), true end
  if not res then
    local why = tostring(code)
    if why == "timeout" then return nil, "timed out after " .. hook.timeout .. " ms", true end
    return nil, "could not be reached: " .. excerpt(why), true
  end
  if type(code) == "number" and code >= 200 and code < 300 then return true end
  local body = excerpt(table.concat(answer))
  return nil, "answered HTTP " .. tostring(code) .. (code and code >= 300 and code < 400 and
    " (redirects are not followed)" or "") .. (body ~= "" and (": " .. body) or "")
end

local RUN = { fn = call_fn, exec = run_exec, webhook = post }

---------------------------------------------------------------------------------------------------
-- The outbox side.

local EVENT_COLUMNS = "id type data attempts"

-- Who holds a lease: unique enough among the processes of several machines (the pid when
-- /proc tells it, the time, an address of this process), and per claim (a counter).
local process_tag
local claims = 0
local function lease_owner()
  if not process_tag then
    local stat = read_all("/proc/self/stat"):match("^(%d+)") or "?"
    process_tag = stat .. "-" .. string.format("%x", os.time()) .. "-" ..
      (tostring({}):match("0x(%x+)") or tostring(math.random(1, 2 ^ 30)))
  end
  claims = claims + 1
  return process_tag .. "-" .. claims
end

-- Claims up to n due events above `after` for `owner` until `until_`, in one transaction;
-- returns them in id order.
local function claim(db, now, after, n, owner, until_)
  return db:transaction(function()
    db:run([[UPDATE events SET lease_owner = ?, lease_until = ? WHERE id IN (
        SELECT id FROM events WHERE delivered_at IS NULL AND next_attempt <= ? AND id > ?
          AND (lease_until IS NULL OR lease_until <= ?)
        ORDER BY id LIMIT ]] .. n .. db.dialect.skip_locked .. ")", owner, until_, now, after, now)
    return db:rows("SELECT " .. db:columns(EVENT_COLUMNS) ..
      " FROM events WHERE lease_owner = ? AND delivered_at IS NULL ORDER BY id", owner)
  end)
end

local function release(db, owner)
  db:run("UPDATE events SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", owner)
end

local function body_of(row)
  local rest = row.data:match("^%s*{%s*(.-)%s*$")
  if not rest then return string.format('{"id":%d}', row.id) end
  if rest:sub(1, 1) == "}" then return string.format('{"id":%d}', row.id) end
  return string.format('{"id":%d,', row.id) .. rest
end

-- An event's end: delivered to every hook (message nil), or failed with message (scrubbed).
local function settle(db, now, event, message, owner)
  if not message then
    db:run([[UPDATE events SET delivered_at = ?, lease_owner = NULL, lease_until = NULL,
      last_error = NULL WHERE id = ?]], now, event.id)
    return true
  end
  local attempts = (event.attempts or 0) + 1
  db:run([[UPDATE events SET attempts = ?, next_attempt = ?, last_error = ?, lease_owner = NULL,
    lease_until = NULL WHERE id = ? AND lease_owner = ?]],
    attempts, now + M.backoff(attempts), message, event.id, owner)
  return true
end

-- The outbox's statements, each in a transaction of its own: run here (LOCAL), or inside
-- nginx, for a book with a thread_pool, in a worker thread (THREADED, through smm.book.thread,
-- which runs M.steps).
local function guarded(...) return require("smm.book").guarded(...) end
M.steps = {
  hooks_claim = function(book, after, n, owner, lease_for)
    return guarded(book, function(db, now) return claim(db, now, after, n, owner, now + lease_for) end)
  end,
  hooks_settle = function(book, event, message, owner)
    return guarded(book, function(db, now) return settle(db, now, event, message, owner) end)
  end,
  hooks_release = function(book, owner)
    return guarded(book, function(db) release(db, owner) return true end)
  end,
  hooks_pending = function(book)
    return guarded(book, function(db)
      local row = db:row("SELECT " .. db:int("n") ..
        " FROM (SELECT count(*) AS n FROM events WHERE delivered_at IS NULL) AS c")
      return row and row.n or 0
    end)
  end,
}
local LOCAL = { claim = M.steps.hooks_claim, settle = M.steps.hooks_settle, release = M.steps.hooks_release,
                pending = M.steps.hooks_pending }
local THREADED = {}
for name in pairs(LOCAL) do
  THREADED[name] = function(book, ...) return book:step("hooks_" .. name, ...) end
end

-- syntax: summary, err = hooks.deliver(book, hooks [, opts])   (book:deliver(hooks, opts))
function M.deliver(book, hooks, opts)
  local smm_book = require "smm.book"
  local ops = LOCAL
  if type(book) == "table" and book.thread_pool then ops = THREADED
  elseif not smm_book.connections[book] then
    error("smm.book: deliver(hooks, opts): not a book (use smm.book.open)", 3)
  end
  opts = check_options(opts)
  local list = check_hooks(hooks, opts.timeout or DEFAULT_TIMEOUT)
  local limit = opts.limit or DEFAULT_LIMIT
  local stop = opts.stop or function() return false end
  local summary = { delivered = 0, failed = 0, pending = 0 }
  -- a lease long enough for a whole chunk to reach every hook at its timeout, and a minute more
  local lease_for = 60
  for _, hook in ipairs(list) do lease_for = lease_for + math.ceil(hook.timeout / 1000) * CHUNK end
  local unreachable = {} -- hook index -> why, for the rest of this call
  local after, handled = 0, 0
  -- failures are scrubbed here, before they cross into a worker thread (inside nginx)
  local secrets = {}
  for _, hook in ipairs(list) do
    for _, s in ipairs(hook.secrets or {}) do secrets[#secrets + 1] = s end
  end

  local stopped = false
  while handled < limit and not stopped and not stop() do
    local owner = lease_owner()
    local rows, err = ops.claim(book, after, math.min(CHUNK, limit - handled), owner, lease_for)
    if not rows then return nil, err end
    if #rows == 0 then break end
    for _, row in ipairs(rows) do
      if stop() then stopped = true break end
      local event = { id = row.id, type = row.type, attempts = row.attempts, body = body_of(row) }
      local failures = {}
      for _, hook in ipairs(list) do
        if stop() then stopped = true break end
        if unreachable[hook.index] then
          failures[#failures + 1] = hook.name .. ": not tried (" .. unreachable[hook.index] ..
            " earlier in this round)"
        else
          local done, why, gone = RUN[hook.kind](hook, event)
          if not done then
            failures[#failures + 1] = hook.name .. ": " .. tostring(why)
            if gone then unreachable[hook.index] = why end
          end
        end
      end
      if stopped then break end -- this event stays as it was: its lease is released below
      local message = #failures > 0 and errors.scrub(table.concat(failures, "; "), secrets) or nil
      local ok, err2 = ops.settle(book, event, message, owner)
      if ok == nil and err2 then return nil, err2 end
      if message then summary.failed = summary.failed + 1 else summary.delivered = summary.delivered + 1 end
      after, handled = row.id, handled + 1
    end
    local ok, err3 = ops.release(book, owner)
    if not ok then return nil, err3 end
  end

  local count, err = ops.pending(book)
  if not count then return nil, err end
  summary.pending = count
  return summary
end

return M
