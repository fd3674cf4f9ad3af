-- A small reseller front over lua-smm, for nginx's content_by_lua (see nginx.conf beside this file).
--
-- WARNING: these endpoints spend money on your panel account. Every one of them answers 403
-- unless the request carries `Authorization: Bearer <SMM_FRONT_TOKEN>`, and all of them do while
-- SMM_FRONT_TOKEN is not set; POST /smm-events takes only events signed with SMM_WEBHOOK_SECRET.
--
--   POST /order          ref, service, link, quantity, ... [max_cost] (form or JSON)
--                        -> {"order": 23501, "ref": "shop-1001"}: placed through the order book,
--                        once per ref (the same ref again: the recorded order, nothing sent)
--   GET  /order/REF      -> the order as the book has it (state, status, charge, ...)
--   GET  /events         -> {"events": [...]}: the last events POST /smm-events received
--   POST /smm-events     the book's webhook (X-Smm-Signature: sha256=HMAC of the body)
--   GET  /status         ?order=ID  -> the order's status; ?orders=ID,ID -> {"orders": {id: status}}
--   GET  /balance        -> {"balance": "100.84", "currency": "USD"}
--   GET  /services       -> [service, ...] (?search=text)
--   POST /refill         order=ID | orders=ID,ID
--   GET  /refill_status  ?refill=ID | ?refills=ID,ID
--   POST /cancel         orders=ID,ID | order=ID
--
-- Errors come back as {"error": {"kind", "message", "code", "field", "retryable", "ambiguous"}}
-- with an HTTP status that says whose problem it is (400 the caller's input, 422 the panel
-- refused, 409 the ref is another order's or in doubt, 502/504 the panel is unwell or
-- unreachable, 503 try later). `ambiguous: true` means the order
-- may have been placed: the book holds it in doubt, and the same ref is not sent again until
-- book:resolve (or `smm doubt`) settles it.
--
-- The panel's URL and key, the token and the webhook's secret come from the environment
-- (SMM_API_URL, SMM_API_KEY, SMM_FRONT_TOKEN, SMM_WEBHOOK_SECRET: nginx.conf needs an `env` line
-- for each); the book, its thread pool and the background's period from configure{} in
-- init_by_lua. One client per worker, made on the first request: inside a request smm.new
-- picks the cosocket transport on its own.
local smm = require "smm"
local cjson = require "cjson.safe"
local hooks = require "smm.book.hooks"

local M = {}

local clients = {}

-- configure{} (init_by_lua): book (its URL; a relative SQLite path is taken from nginx's
-- prefix), thread_pool (the book's), every (seconds between background rounds), webhook (where
-- the background posts the book's events), receiver (the path of the webhook endpoint).
local settings = { every = 10, receiver = "/smm-events", events_dict = "smm_events", keep_events = 100 }

function M.configure(opts)
  for name, value in pairs(opts) do settings[name] = value end
  local path = type(settings.book) == "string" and settings.book:match("^sqlite:(.*)$")
  if path and path:sub(1, 1) ~= "/" then settings.book = "sqlite:" .. ngx.config.prefix() .. path end
end

local function env(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

-- The order book, opened on first use in each worker (its SQL then runs in the thread pool).
local the_book
function M.book()
  if not the_book then
    if not settings.book then return nil, "no book: configure{ book = } in init_by_lua" end
    local book, err = smm.book.open(settings.book, { thread_pool = settings.thread_pool })
    if not book then return nil, err end
    the_book = book
  end
  return the_book
end

-- opts (all optional): url, key (default: the environment), client (more smm.new options),
-- prefix (a location prefix stripped from the URI).
function M.client(opts)
  opts = opts or {}
  local url = opts.url or os.getenv("SMM_API_URL")
  local key = opts.key or os.getenv("SMM_API_KEY")
  if not url or url == "" or not key or key == "" then
    return nil, "SMM_API_URL and SMM_API_KEY must be set in nginx's environment (env directive)"
  end
  local id = url .. "\n" .. key .. "\n" .. (opts.prefix or "")
  local c = clients[id]
  if not c then
    local o = { url = url, key = key }
    if ngx.shared.smm_cache then o.shared_dict = "smm_cache" end
    if settings.book then
      local book, err = M.book()
      if not book then return nil, err end
      o.book = book
    end
    for name, value in pairs(opts.client or {}) do o[name] = value end
    c = smm.new(o)
    clients[id] = c
  end
  return c
end

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  local body = cjson.encode(value)
  ngx.say(body or '{"error":{"kind":"internal","message":"the answer could not be encoded"}}')
  return ngx.exit(status)
end

-- Whose problem an error is, as an HTTP status.
local function http_status(err)
  local kind = err.kind
  if kind == "invalid" then return 400 end
  if kind == "timeout" then return 504 end
  if kind == "book" then
    -- the ref is taken by another order, or its order is in doubt: the caller's to settle
    if err.code == "ref_conflict" or err.code == "in_doubt" then return 409 end
    return 503 -- the book could not be read or written: nothing was sent
  end
  if kind == "api" then
    if err.code == "invalid_key" then return 502 end -- our configuration, not the caller's
    if err.code == "rate_limited" or err.status == 429 then return 429 end
    if err.retryable then return 503 end
    return 422
  end
  return 502 -- network, http, decode: the panel is unreachable or unwell
end

local function fail(err)
  if err.retry_after then ngx.header["Retry-After"] = tostring(err.retry_after) end
  return reply(http_status(err), { error = {
    kind = err.kind, message = err.message, code = err.code, field = err.field,
    retryable = err.retryable, ambiguous = err.ambiguous, panel_status = err.status,
    action = err.action, failed = err.failed,
  } })
end

local function args()
  local a = ngx.req.get_uri_args()
  if ngx.req.get_method() == "POST" then
    ngx.req.read_body()
    local ct = ngx.var.content_type or ""
    local post
    if ct:find("json", 1, true) then
      local body = ngx.req.get_body_data()
      post = body and cjson.decode(body)
      if type(post) ~= "table" then return nil end
    else
      post = ngx.req.get_post_args()
    end
    for k, v in pairs(post or {}) do a[k] = v end
  end
  return a
end

local function id_list(s)
  if type(s) == "table" then return s end
  local list = {}
  for part in tostring(s):gmatch("[^,%s]+") do list[#list + 1] = part end
  return list
end

-- Tables keyed by integer id, with string keys so that they encode as JSON objects.
local function by_id_json(by_id)
  local out = {}
  for id, entry in pairs(by_id) do out[string.format("%d", id)] = entry end
  return out
end

-- An action over one id (name) or many (names): one answer, or {"<names>": {id: ...}}.
local function one_or_many(c, a, method, name, names)
  if a[names] ~= nil then
    local by_id, err = c[method](c, id_list(a[names]))
    if not by_id then return fail(err) end
    local out = { [names] = by_id_json(by_id) }
    if err then out.error = { kind = err.kind, message = err.message, failed = err.failed } end
    return reply(200, out)
  end
  if a[name] == nil then
    return reply(400, { error = { kind = "invalid", field = name, message = "'" .. name .. "' or '" ..
      names .. "' is required" } })
  end
  local res, err = c[method](c, a[name])
  if not res then return fail(err) end
  return reply(200, res)
end

-- Same bytes, looked at in full whatever the first difference: a plain == can tell, through
-- its timing, how much of a forged token or signature was right.
local function same(a, b)
  if type(a) ~= "string" or type(b) ~= "string" or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    if a:byte(i) ~= b:byte(i) then diff = diff + 1 end
  end
  return diff == 0
end

-- The request carries `Authorization: Bearer <SMM_FRONT_TOKEN>`; with no token set, none does.
local function authorized()
  local token = env("SMM_FRONT_TOKEN")
  local given = ngx.var.http_authorization
  if not token or type(given) ~= "string" then return false end
  return same("Bearer " .. token, given)
end

-- Integer fields arrive from a form as text; the book records (and compares) them as numbers.
local INTEGER_FIELDS = { service = true, quantity = true, runs = true, interval = true, min = true,
  max = true, delay = true, posts = true, old_posts = true, expiry = true }

local function book_order(c, a)
  local ref = a.ref
  if type(ref) ~= "string" or ref == "" then
    return reply(400, { error = { kind = "invalid", field = "ref",
      message = "'ref' (your reference for this order: it is placed once per ref) is required" } })
  end
  -- max_cost is the client's guard, not an order field: it goes in add's second argument
  local order, opts = {}, { ref = ref }
  for k, v in pairs(a) do
    if k == "max_cost" then opts.max_cost = v
    elseif k ~= "ref" then
      if INTEGER_FIELDS[k] and type(v) == "string" and v:find("^%d+$") then v = tonumber(v) end
      order[k] = v
    end
  end
  local res, err = c:add(order, opts)
  if not res then return fail(err) end
  return reply(200, res)
end

-- What GET /order/REF shows of a book's row: ids and counts as numbers, money as the exact
-- decimal text the panel gave, times as UTC seconds.
local SHOWN = { "ref", "state", "service", "link", "quantity", "quote", "status", "remains", "charge",
  "start_count", "currency", "error", "created_at", "sent_at", "updated_at", "final_at" }

local function book_get(ref)
  local book, err = M.book()
  if not book then
    ngx.log(ngx.ERR, "smm: ", tostring(err))
    return reply(500, { error = { kind = "config", message = "the order book is not configured" } })
  end
  local row
  row, err = book:get(ref)
  if err then return fail(err) end
  if not row then
    return reply(404, { error = { kind = "invalid", field = "ref", message = "no order with this ref" } })
  end
  local out = { order = row.order_id }
  for _, name in ipairs(SHOWN) do out[name] = row[name] end
  return reply(200, out)
end

-- POST /smm-events: the book's webhook. The signature covers the body's bytes as received;
-- an event seen before (the book delivers at least once) is acknowledged and not kept twice.
local function receive()
  if ngx.req.get_method() ~= "POST" then
    ngx.header["Allow"] = "POST"
    return reply(405, { error = { kind = "invalid", message = "the webhook endpoint takes POST" } })
  end
  local secret = env("SMM_WEBHOOK_SECRET")
  if not secret then
    return reply(403, { error = { kind = "forbidden", message = "no webhook secret is set" } })
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    return reply(400, { error = { kind = "invalid",
      message = "no body (or one over client_body_buffer_size)" } })
  end
  if not same(hooks.signature(secret, body), ngx.var.http_x_smm_signature) then
    return reply(401, { error = { kind = "forbidden", message = "bad or missing X-Smm-Signature" } })
  end
  local event = cjson.decode(body)
  if type(event) ~= "table" or type(event.id) ~= "number" then
    return reply(400, { error = { kind = "invalid", message = "the body is not an event" } })
  end
  local dict = ngx.shared[settings.events_dict]
  local id = string.format("%d", event.id)
  -- what a shop would do here: update its own order from the event (dedupe by id)
  if dict and dict:add("seen:" .. id, true) then
    dict:rpush("events", body)
    while (dict:llen("events") or 0) > settings.keep_events do dict:lpop("events") end
    ngx.log(ngx.NOTICE, "smm event ", id, " ", tostring(event.type), " ref=", tostring(event.ref))
  end
  return reply(200, { received = event.id })
end

local function events()
  local dict = ngx.shared[settings.events_dict]
  local list = {}
  local n = dict and dict:llen("events") or 0
  -- a list can be read only by popping it: pop all, push them back
  for i = 1, n do list[i] = dict:lpop("events") end
  for i = 1, n do dict:rpush("events", list[i]) end
  local out = {}
  for i = 1, n do out[#out + 1] = cjson.decode(list[i]) end
  return reply(200, { events = setmetatable(out, cjson.array_mt) })
end

local ROUTES = {
  ["/order"] = { "POST", book_order },
  ["/events"] = { "GET", function() return events() end },
  ["/status"] = { "GET", function(c, a) return one_or_many(c, a, "status", "order", "orders") end },
  ["/balance"] = { "GET", function(c)
    local res, err = c:balance()
    if not res then return fail(err) end
    return reply(200, res)
  end },
  ["/services"] = { "GET", function(c, a)
    local res, err
    if a.search then res, err = c:find_services{ search = a.search }
    else res, err = c:services() end
    if not res then return fail(err) end
    return reply(200, res)
  end },
  ["/refill"] = { "POST", function(c, a) return one_or_many(c, a, "refill", "order", "orders") end },
  ["/refill_status"] = { "GET", function(c, a)
    return one_or_many(c, a, "refill_status", "refill", "refills")
  end },
  ["/cancel"] = { "POST", function(c, a) return one_or_many(c, a, "cancel", "order", "orders") end },
}

function M.handle(opts)
  opts = opts or {}
  local uri = ngx.var.uri
  if opts.prefix and uri:sub(1, #opts.prefix) == opts.prefix then uri = uri:sub(#opts.prefix + 1) end
  if uri == settings.receiver then return receive() end
  -- before anything else, even a 404: the front spends money
  if not authorized() then
    return reply(403, { error = { kind = "forbidden", message = env("SMM_FRONT_TOKEN")
      and "Authorization: Bearer <token> is required" or "no SMM_FRONT_TOKEN is set: the front is closed" } })
  end
  local ref = uri:match("^/order/(.+)$")
  if ref then
    if ngx.req.get_method() ~= "GET" then
      ngx.header["Allow"] = "GET"
      return reply(405, { error = { kind = "invalid", message = "/order/REF takes GET" } })
    end
    return book_get(ngx.unescape_uri(ref))
  end
  local route = ROUTES[uri]
  if not route then return reply(404, { error = { kind = "invalid", message = "no such endpoint" } }) end
  local method = ngx.req.get_method()
  if method ~= route[1] and not (route[1] == "GET" and method == "POST") then
    ngx.header["Allow"] = route[1]
    return reply(405, { error = { kind = "invalid", message = uri .. " takes " .. route[1] } })
  end
  local ok, c, err = pcall(M.client, opts)
  if not ok or not c then
    ngx.log(ngx.ERR, "smm: ", tostring(ok and err or c))
    return reply(500, { error = { kind = "config", message = "the panel client is not configured" } })
  end
  local a = args()
  if not a then
    return reply(400, { error = { kind = "invalid", message = "the body is not a JSON object" } })
  end
  return route[2](c, a)
end

-- init_worker_by_lua: the background sync (book:sync, then book:deliver to the webhook) on one
-- worker at a time (smm.book.background). Without the panel's URL and key, or a book, it does
-- not start; without SMM_WEBHOOK_SECRET, the events wait in the book.
function M.background()
  if not env("SMM_FRONT_TOKEN") then
    ngx.log(ngx.WARN, "smm: SMM_FRONT_TOKEN is not set: the front refuses every request (403)")
  end
  if not settings.book or not env("SMM_API_URL") or not env("SMM_API_KEY") then
    ngx.log(ngx.WARN, "smm: no background sync (it needs SMM_API_URL, SMM_API_KEY and a book)")
    return nil
  end
  local secret, list = env("SMM_WEBHOOK_SECRET"), nil
  if settings.webhook and secret then
    list = { { webhook = settings.webhook, secret = secret } }
  else
    ngx.log(ngx.WARN, "smm: no SMM_WEBHOOK_SECRET: the book's events are kept, not delivered")
  end
  local ok, err = require("smm.book.background").start{
    book = function() return assert(M.book()) end,
    client = function()
      local c, cerr = M.client()
      return assert(c, cerr)
    end,
    dict = "smm_cache", every = settings.every, hooks = list,
  }
  if not ok then ngx.log(ngx.ERR, "smm: the background sync did not start: ", tostring(err)) end
  return ok, err
end

return M
