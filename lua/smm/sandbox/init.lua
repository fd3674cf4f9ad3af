-- smm.sandbox: a local, faithful SMM panel API v2 server for tests, demos and scripts.
--
--   local sandbox = require "smm.sandbox"
--   local server = sandbox.new{ port = 0, keys = { "sandbox-key" }, balance = "100.00" }
--   local url = server:listen()   -- "http://127.0.0.1:PORT/api/v2"
--   server:run()                  -- serves until /sandbox/shutdown or server:stop()
--
-- The API answers at /api/v2 (POST form or GET query; any other path is a 404). Admin
-- endpoints (no key, JSON, HTTP 200) under /sandbox/:
--   GET  stats     {requests, actions = {add = n, ...}, orders, connections, in_flight,
--                   peak_in_flight, balance, per_second = [{second, requests}, ...],
--                   peak_per_second}
--   GET  orders    every order: the fields received (as decoded) + id, status, charge,
--                   remains, start_count, type (+ children for drip-feed)
--   GET  refills   every refill: id, order, status
--   GET  requests  the last 200 API requests: method, action, fields (key -> "***"),
--                   key_ok, content_type, user_agent, accept_encoding
--   GET  faults    {pending = [...], fired = [{fault, action, performed, order}]}
--   GET  config    the configuration in force
--   POST fault     fault=NAME [times=1] [action=ACTION] [delay=ms] [size=bytes]
--                   [retry_after=s] [status=CODE] [perform=0|1]  (see faults.lua)
--   POST config    any of balance, numbers, status_style, error_style, error_status,
--                   invisible_calls, dup_link, echo_key, latency, steps, clock, tick,
--                   services_count, content_type, key, rates_for, dialect
--   GET  services  the catalogue in force: every service's fields (kind included)
--   POST services  change the catalogue (answers {ok, count} or {ok = false, error}):
--                   list=JSON (replace it: the --services file's format), count=N (a generated
--                   one; 0 = the built-in one), service=ID remove=1 (drop one), service=ID +
--                   any of rate, min, max, refill, cancel, dripfeed, name, category, type, kind
--                   (edit one; an unknown ID adds it: name, type, rate, min, max needed)
--   POST advance   steps=N: advance every order and refill N steps
--   GET  polls     status requests per order id asked: {total, distinct, max,
--                   by_id = {["ID"] = n}}; POST polls clears the counts
--   POST bulk      count=N + an add's fields (service, link, quantity, ...): places N such
--                   orders at once, as N adds would; {ok, first, last} (ids first..last)
--   POST reset     initial balance; no orders, refills, counters, faults or overrides
--   POST shutdown  answer, then stop the server
-- Per-account prices, as real panels have: rates_for = "KEY=FACTOR[,KEY=FACTOR]" (or
-- --rates-for) multiplies every rate by the integer FACTOR for requests made with KEY, in the
-- service list and in charges (the balance stays shared).
-- Panel dialects (dialect.lua): dialect = perfectpanel (default) | api_token | x_api_key |
-- bearer (or --dialect), where the key is read from and how fields and errors are named.
-- Its own catalogue: services = "FILE" (or --services FILE; or a Lua list of records), a JSON
-- list of { service, name, type, category, rate, min, max, refill, cancel, [dripfeed], [kind] }
-- (rates as exact decimal text or JSON numbers, kind inferred from type when left out), so
-- several sandboxes can sell different catalogues; a reset goes back to it.
-- Nothing here is shared with the client library.
--
-- Counting: `requests` counts API requests parsed (admin requests are not counted);
-- `connections` counts TCP connections that carried at least one API request (counted at
-- the first API request on the connection, again after a reset), so a client keeping one
-- connection alive across many API calls shows connections == 1. `per_second` counts API
-- requests by the wall clock's whole second (Unix time) they arrived in, for the last hour,
-- the seconds without any left out: how a test sees a client's rate limit as the panel does.
local http = require "smm.sandbox.http"
local panel = require "smm.sandbox.panel"
local faults = require "smm.sandbox.faults"
local json = require "smm.json"
local decimal = require "smm.sandbox.decimal"
local dialect = require "smm.sandbox.dialect"
local catalogue = require "smm.sandbox.services"
local jsonread = require "smm.sandbox.jsonread"
local gettime = require("socket").gettime

local M = {}
local Server = {}
Server.__index = Server

M.VERSION = "1.0.0"
local REQUEST_LOG = 200
local PER_SECOND_KEPT = 3600 -- s

local SERVER_KEYS = { latency = true, error_status = true, content_type = true, key = true,
                      dialect = true }

local function split_keys(v, into)
  into = into or {}
  if type(v) == "table" then
    for _, k in ipairs(v) do split_keys(k, into) end
  elseif type(v) == "string" then
    for k in v:gmatch("[^,]+") do
      k = k:match("^%s*(.-)%s*$")
      if k ~= "" then into[k] = true end
    end
  end
  return into
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- opts: host, port, keys (list or "a,b"), key, balance, steps, clock (calls|real), tick (ms),
-- latency (ms), numbers, status_style, error_style, error_status, invisible_calls,
-- dup_link, services (file or list), services_count, content_type, rates_for, verbose,
-- log (function)

-- The --services option: a file of JSON or a Lua list of records -> a checked list (raises).
local function read_services(v)
  local list = v
  if type(v) == "string" then
    local f, err = io.open(v, "rb")
    if not f then error("services: cannot read " .. tostring(err), 0) end
    local text = f:read("*a")
    f:close()
    local bad
    list, bad = jsonread.decode(text)
    if bad then error("services: " .. v .. ": " .. bad, 0) end
  end
  local checked, err = catalogue.check_list(list)
  if not checked then error(err, 0) end
  return checked
end

function M.new(opts)
  opts = copy(opts or {})
  local keys = split_keys(opts.keys)
  split_keys(opts.key, keys)
  if next(keys) == nil then keys["sandbox-key"] = true end
  local base = {
    keys = keys,
    balance = opts.balance or "100.00",
    steps = math.max(1, math.tointeger(tonumber(opts.steps or 3)) or 3),
    clock = opts.clock or "calls",
    tick = tonumber(opts.tick or 1000) or 1000,
    latency = tonumber(opts.latency or 0) or 0,
    numbers = opts.numbers or "mixed",
    status_style = opts.status_style or "standard",
    error_style = opts.error_style or "text",
    error_status = math.tointeger(tonumber(opts.error_status or 200)) or 200,
    invisible_calls = math.tointeger(tonumber(opts.invisible_calls or 0)) or 0,
    dup_link = opts.dup_link == true or opts.dup_link == "1" or opts.dup_link == "true",
    echo_key = opts.echo_key == true or opts.echo_key == "1" or opts.echo_key == "true",
    services_count = tonumber(opts.services_count or ""),
    services = opts.services and read_services(opts.services) or nil,
    rates_for = opts.rates_for,
    content_type = opts.content_type or "application/json",
    dialect = assert(dialect.check(opts.dialect or "perfectpanel")),
  }
  assert(decimal.parse(base.balance), "bad balance: " .. tostring(base.balance))
  local self = setmetatable({ base = base, host = opts.host or "127.0.0.1",
    port = tonumber(opts.port or 0), epoch = 1 }, Server)
  if opts.verbose then
    self.log = opts.log or function(msg) io.stderr:write("smm-sandbox: ", msg, "\n") end
  end
  self:reset()
  self.http = http.new{ host = self.host, port = self.port, log = self.log,
    handler = function(req, conn) return self:handle(req, conn) end }
  return self
end

function Server:reset()
  local cfg = copy(self.base)
  cfg.keys = copy(self.base.keys)
  self.cfg = cfg
  self.panel = panel.new(cfg)
  self.faults = faults.queue()
  self.stats = { requests = 0, actions = {}, connections = 0, in_flight = 0, peak_in_flight = 0,
                 per_second = {}, last_second = 0 }
  self.request_log, self.request_next = {}, 1
  self.epoch = (self.epoch or 0) + 1
end

function Server:listen()
  local port, err = self.http:listen()
  if not port then return nil, err end
  self.port = port
  self.url = string.format("http://%s:%d/api/v2", self.host, port)
  return self.url
end

function Server:run() return self.http:run() end
function Server:stop() self.http:stop() end

local function answer(v)
  return { status = 200, body = json.encode(v), content_type = "application/json" }
end

------------------------------------------------------------------------------------------
-- API

function Server:log_request(req, f, key_ok)
  local fields = {}
  for k, v in pairs(f) do
    -- keep the log small: a value over 64 KiB is cut (orders keep the full text)
    if #v > 65536 then v = v:sub(1, 65536) .. "...[" .. (#v - 65536) .. " more bytes]" end
    fields[k] = v
  end
  if fields.key then fields.key = "***" end
  if fields.api_token then fields.api_token = "***" end
  local i = self.request_next
  self.request_log[(i - 1) % REQUEST_LOG + 1] = {
    method = req.method, action = f.action, fields = fields, key_ok = key_ok,
    content_type = req.headers["content-type"], user_agent = req.headers["user-agent"],
    accept_encoding = req.headers["accept-encoding"],
    x_api_key = req.headers["x-api-key"] and "***", authorization = req.headers.authorization and "***",
  }
  self.request_next = i + 1
end

local function count_second(st)
  local second, counts = math.floor(gettime()), st.per_second
  if second ~= st.last_second then
    st.last_second = second
    for s in pairs(counts) do
      if s <= second - PER_SECOND_KEPT then counts[s] = nil end
    end
  end
  counts[second] = (counts[second] or 0) + 1
end

function Server:api(req, conn)
  local st, cfg, p = self.stats, self.cfg, self.panel
  if req.method ~= "POST" and req.method ~= "GET" then
    return { status = 405, body = '{"error":"Method not allowed"}', content_type = "application/json",
      headers = { "Allow: GET, POST" } }
  end
  st.requests = st.requests + 1
  count_second(st)
  if conn.epoch ~= self.epoch then
    conn.epoch = self.epoch
    st.connections = st.connections + 1
  end
  local n = st.in_flight + 1
  st.in_flight = n
  if n > st.peak_in_flight then st.peak_in_flight = n end
  local f = dialect.incoming(cfg.dialect, req, req.fields)
  local action = f.action
  if action then st.actions[action] = (st.actions[action] or 0) + 1 end
  self:log_request(req, req.fields, p:key_ok(f.key))

  local fault = self.faults:take(action)
  local res
  if fault and not fault.perform then
    self.faults:record(fault, action, false)
    res = faults.shape(fault, nil, self)
  else
    local placed = p.placed
    local ok, body, is_err = pcall(p.call, p, f)
    if ok then
      res = { status = is_err and cfg.error_status or 200, body = body,
        content_type = cfg.content_type }
    else
      if self.log then self.log("panel error: " .. tostring(body)) end
      res = { status = 500, body = '{"error":"Internal error"}', content_type = "application/json" }
    end
    if fault then
      self.faults:record(fault, action, true, p.placed > placed and p.next_order - 1 or nil)
      res = faults.shape(fault, res, self)
    end
  end
  if res.body then res.body = dialect.outgoing(cfg.dialect, action, res.body) end
  if self.log then
    self.log(string.format("%s %s action=%s -> %s%s", req.method, req.path, tostring(action),
      tostring(res.status or "RST"), fault and (" [fault " .. fault.fault .. "]") or ""))
  end
  local latency = cfg.latency
  if latency and latency > 0 then self.http:sleep(latency / 1000) end
  if fault and fault.fault == "slow" then self.http:sleep((fault.delay or 2000) / 1000) end
  st.in_flight = st.in_flight - 1
  return res
end

------------------------------------------------------------------------------------------
-- admin

function Server:config_view()
  local cfg = self.cfg
  local keys = {}
  for k in pairs(cfg.keys) do keys[#keys + 1] = k end
  table.sort(keys)
  return { keys = json.array(keys), balance = decimal.format(self.panel.balance),
    steps = cfg.steps, clock = cfg.clock, tick = cfg.tick, latency = cfg.latency,
    numbers = cfg.numbers, status_style = cfg.status_style, error_style = cfg.error_style,
    error_status = cfg.error_status, invisible_calls = cfg.invisible_calls,
    dup_link = cfg.dup_link and 1 or 0, echo_key = cfg.echo_key and 1 or 0,
    services_count = #self.panel.services_list,
    content_type = cfg.content_type, rates_for = cfg.rates_for, dialect = cfg.dialect }
end

function Server:configure(fields)
  local cfg = self.cfg
  local applied, errors = {}, {}
  for name, value in pairs(fields) do
    local ok, err
    if SERVER_KEYS[name] then
      if name == "latency" then
        cfg.latency = tonumber(value) or 0
      elseif name == "error_status" then
        cfg.error_status = math.tointeger(tonumber(value)) or 200
      elseif name == "content_type" then
        cfg.content_type = value
      elseif name == "key" then
        cfg.keys = split_keys(value)
      end
      ok = true
      if name == "dialect" then
        ok, err = dialect.check(value)
        if ok then cfg.dialect = value end
      end
    else
      ok, err = self.panel:configure(name, value)
      if ok == false then err = "unknown config key: " .. name end
    end
    if ok then applied[#applied + 1] = name else errors[#errors + 1] = err end
  end
  table.sort(applied)
  local out = { ok = #errors == 0, applied = json.array(applied), config = self:config_view() }
  if #errors > 0 then out.error = table.concat(errors, "; ") end
  return out
end

function Server:stats_view()
  local st = self.stats
  local seconds, per_second, peak = {}, {}, 0
  for s in pairs(st.per_second) do seconds[#seconds + 1] = s end
  table.sort(seconds)
  for i, s in ipairs(seconds) do
    local n = st.per_second[s]
    per_second[i] = json.object("second", s, "requests", n)
    if n > peak then peak = n end
  end
  return json.object("requests", st.requests, "actions", st.actions, "orders", self.panel.placed,
    "connections", st.connections, "in_flight", st.in_flight,
    "peak_in_flight", st.peak_in_flight, "balance", decimal.format(self.panel.balance),
    "per_second", json.array(per_second, #per_second), "peak_per_second", peak)
end

function Server:requests_view()
  local out, log = {}, self.request_log
  local total = self.request_next - 1
  local first = math.max(1, total - REQUEST_LOG + 1)
  for i = first, total do out[#out + 1] = log[(i - 1) % REQUEST_LOG + 1] end
  return json.array(out, #out)
end

function Server:admin(name, req)
  local f = req.fields
  if name == "stats" then
    return answer(self:stats_view())
  elseif name == "orders" then
    return answer(self.panel:dump_orders())
  elseif name == "refills" then
    return answer(self.panel:dump_refills())
  elseif name == "requests" then
    return answer(self:requests_view())
  elseif name == "faults" then
    return answer({ pending = json.array(self.faults.pending),
      fired = json.array(self.faults.fired) })
  elseif name == "config" then
    if req.method == "GET" and next(f) == nil then return answer(self:config_view()) end
    return answer(self:configure(f))
  elseif name == "fault" then
    local fault, err = self.faults:push(f)
    if not fault then return answer({ ok = false, error = err }) end
    return answer({ ok = true, fault = fault.fault, action = fault.action or "any",
      times = fault.times, performs = fault.perform, pending = #self.faults.pending })
  elseif name == "reset" then
    self:reset()
    return answer({ ok = true, balance = decimal.format(self.panel.balance) })
  elseif name == "polls" then
    if req.method == "POST" then self.panel:clear_polls() end
    return answer(self.panel:polls_view())
  elseif name == "bulk" then
    local count = math.tointeger(tonumber(f.count or "")) or 0
    if count < 1 then return answer({ ok = false, error = "count: a whole number >= 1" }) end
    local fields = {}
    for k, v in pairs(f) do if k ~= "count" then fields[k] = v end end
    local first, last = self.panel:bulk(fields, count)
    if not first then return answer({ ok = false, error = last }) end
    return answer({ ok = true, first = first, last = last })
  elseif name == "services" then
    if req.method == "GET" and next(f) == nil then return answer(self.panel:services_view()) end
    local ok, err = self.panel:edit_services(f, jsonread.decode)
    if not ok then return answer({ ok = false, error = err }) end
    return answer({ ok = true, count = #self.panel.services_list })
  elseif name == "advance" then
    local steps = math.tointeger(tonumber(f.steps or "1")) or 1
    self.panel:advance(steps)
    return answer({ ok = true, steps = steps })
  elseif name == "shutdown" then
    self.http:stop()
    local res = answer({ ok = true })
    res.close = true
    return res
  end
  return { status = 404, body = '{"error":"Unknown sandbox endpoint"}',
    content_type = "application/json" }
end

function Server:handle(req, conn)
  local path = req.path
  if path == "/api/v2" or path == "/api/v2/" then return self:api(req, conn) end
  local name = path:match("^/sandbox/([%w_]+)/?$")
  if name then return self:admin(name, req) end
  return { status = 404, body = "<html><body><h1>404 Not Found</h1></body></html>\n",
    content_type = "text/html" }
end

return M
