-- The options of smm.new: their types, defaults and limits. A wrong option is a programming
-- error, so it raises (with the option's name) instead of returning nil, err.
local M = {}

local function ms(_, v)
  if type(v) ~= "number" or v < 0 or v ~= v or v == math.huge then
    return "must be a non-negative number of milliseconds"
  end
end
local function positive_int(_, v)
  if type(v) ~= "number" or v < 1 or v ~= math.floor(v) or v == math.huge then
    return "must be a positive integer"
  end
end
local function non_negative_int(_, v)
  if type(v) ~= "number" or v < 0 or v ~= math.floor(v) then return "must be a non-negative integer" end
end
local function of_type(t)
  return function(_, v)
    if type(v) ~= t then return "must be a " .. t .. ", got " .. type(v) end
  end
end
local function rate_limit(_, v)
  if type(v) ~= "table" then return "must be a table { requests = n, per = ms }" end
  local n, per = v.requests, v.per
  if type(n) ~= "number" or not (n >= 1 and n < math.huge) then
    return "needs requests = a positive number"
  end
  if type(per) ~= "number" or not (per > 0 and per < math.huge) then
    return "needs per = a positive number of milliseconds"
  end
end
-- A header value: a CR or LF in it would start another header line (or the body).
local function header_text(_, v)
  if type(v) ~= "string" then return "must be a string, got " .. type(v) end
  if v:find("[%z\r\n]") then return "must not contain CR, LF or NUL" end
end
local function transport(_, v)
  if v ~= "curl" and v ~= "ngx" and type(v) ~= "table" then
    return "must be \"curl\", \"ngx\" or a transport object"
  end
end

local CHECKS = {
  url = of_type("string"), key = of_type("string"),
  timeout = ms, connect_timeout = ms, proxy = of_type("string"), ssl_verify = of_type("boolean"),
  cainfo = of_type("string"), user_agent = header_text, max_body = positive_int,
  concurrency = positive_int, transport = transport,
  retries = non_negative_int, retry_base = ms, retry_max = ms,
  services_ttl = ms, rate_limit = rate_limit, validate = of_type("boolean"),
  shared_dict = of_type("string"), random = of_type("function"), on_retry = of_type("function"),
}

M.DEFAULTS = {
  timeout = 30000, connect_timeout = 10000, ssl_verify = true, max_body = 64 * 1024 * 1024,
  concurrency = 4, retries = 2, retry_base = 500, retry_max = 30000, services_ttl = 600000,
}

local function raise(message)
  error("smm.new: " .. message, 4)
end

-- The URL as it may be shown: no user:password@, no query string (people put keys there).
function M.printable_url(url)
  -- everything up to the last @ before the path is credentials, @ in a password included
  local s = url:gsub("[?#].*$", ""):gsub("^(%a[%w+.-]*://)[^/]*@", "%1")
  return s
end

-- -> { url =, key =, public = { every option but the key, defaults filled in } }
function M.check(opts)
  if type(opts) ~= "table" then raise("expects a table of options { url = ..., key = ... }") end
  for name, value in pairs(opts) do
    local check = CHECKS[name]
    if not check then raise("unknown option '" .. tostring(name) .. "'") end
    local problem = check(name, value)
    if problem then raise("option '" .. name .. "' " .. problem) end
  end
  if opts.url == nil then
    raise("option 'url' is required (the panel's API URL, like https://panel/api/v2)")
  end
  if not opts.url:find("^[Hh][Tt][Tt][Pp][Ss]?://[^/%s]+") then
    -- the value itself is not shown: it may be the key, given as the url by mistake
    raise("option 'url' must be an http:// or https:// URL, got a string of " .. #opts.url .. " bytes")
  end
  if opts.url:find("%c") then
    -- a CR or LF would end the request line and start header lines of the panel's choosing
    raise("option 'url' must not contain control characters (CR, LF, tab, NUL, DEL)")
  end
  if opts.key == nil then raise("option 'key' is required (the panel's API key)") end
  if opts.key == "" or opts.key:find("[%c%s]") then
    raise("option 'key' must be a non-empty string without spaces or control characters")
  end
  local public = {}
  for name, value in pairs(M.DEFAULTS) do public[name] = value end
  for name, value in pairs(opts) do
    if name ~= "key" then public[name] = value end
  end
  public.url = nil
  return { url = opts.url, key = opts.key, public = public }
end

return M
