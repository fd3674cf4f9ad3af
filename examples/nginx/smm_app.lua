-- An HTTP front end over lua-smm, for nginx's content_by_lua (see nginx.conf beside this file).
--
--   POST /order          service, link, quantity, ... [max_cost] (form or JSON) -> {"order": 23501}
--   GET  /status         ?order=ID  -> the order's status; ?orders=ID,ID -> {"orders": {id: status}}
--   GET  /balance        -> {"balance": "100.84", "currency": "USD"}
--   GET  /services       -> [service, ...] (?search=text)
--   POST /refill         order=ID | orders=ID,ID
--   GET  /refill_status  ?refill=ID | ?refills=ID,ID
--   POST /cancel         orders=ID,ID | order=ID
--
-- Errors come back as {"error": {"kind", "message", "code", "field", "retryable", "ambiguous"}}
-- with an HTTP status that says whose problem it is (400 the caller's input, 422 the panel
-- refused, 502/504 the panel is unwell or unreachable). `ambiguous: true` means the order
-- may have been placed: check before placing it again.
--
-- The panel's URL and key come from the environment (SMM_API_URL, SMM_API_KEY: nginx.conf
-- needs `env SMM_API_KEY;` and `env SMM_API_URL;`). One client per worker, made on the first
-- request: inside a request smm.new picks the cosocket transport on its own.
local smm = require "smm"
local cjson = require "cjson.safe"

local M = {}

local clients = {}

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

local ROUTES = {
  ["/order"] = { "POST", function(c, a)
    -- max_cost is the client's guard, not an order field: it goes in add's second argument
    local order, opts = {}, {}
    for k, v in pairs(a) do
      if k == "max_cost" then opts.max_cost = v else order[k] = v end
    end
    local res, err = c:add(order, opts)
    if not res then return fail(err) end
    return reply(200, res)
  end },
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
  local route = ROUTES[uri]
  if not route then return reply(404, { error = { kind = "invalid", message = "no such endpoint" } }) end
  local method = ngx.req.get_method()
  if method ~= route[1] and not (route[1] == "GET" and method == "POST") then
    ngx.header["Allow"] = route[1]
    return reply(405, { error = { kind = "invalid", message = uri .. " takes " .. route[1] } })
  end
  local ok, c = pcall(M.client, opts)
  if not ok or not c then
    ngx.log(ngx.ERR, "smm: ", tostring(c))
    return reply(500, { error = { kind = "config", message = "the panel client is not configured" } })
  end
  local a = args()
  if not a then
    return reply(400, { error = { kind = "invalid", message = "the body is not a JSON object" } })
  end
  return route[2](c, a)
end

return M
