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

-- An order book (smm.book.open), or anything offering its client side: intent and outcome.
local function book(_, v)
  local mt = type(v) == "table" and getmetatable(v)
  local has = function(name) return type(v[name]) == "function" or (mt and type(mt.__index) == "table"
    and type(mt.__index[name]) == "function") end
  if type(v) ~= "table" or not has("intent") or not has("outcome") then
    return "must be an order book (smm.book.open(url)), got " .. type(v)
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
  book = book, dialect = function() end, -- checked by smm.dialect (M.check)
}

M.DEFAULTS = {
  timeout = 30000, connect_timeout = 10000, ssl_verify = true, max_body = 64 * 1024 * 1024,
  concurrency = 4, retries = 2, retry_base = 500, retry_max = 30000, services_ttl = 600000,
}

local function raise(message)
  error("smm.new: " .. message, 4)
end

-- A URL (the panel's or a proxy's, with or without a scheme) cut into scheme, userinfo (nil when
-- none), host part and the rest. A password may hold an unencoded @, / (or ? and #): when an @
-- comes before the first ? or #, the userinfo ends at the last such @, and the host part at the
-- first /, ? or # after it ("https://user:pa/ss@host/" and "https://user:p@ss@host/" are the
-- host "host"). An @ in a path ("host/x@y/") is then taken for the end of a userinfo: that hides
-- more than it should, never less. `unsure` is true when an @ comes only after a ? or # and
-- the host part is no host[:port]: then which part is the host cannot be told
-- ("user:pa?ss@host", "user:pa/ss?x@host" against "host/api?email=a@b").
local function split_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*://)(.*)$")
  if not scheme then scheme, rest = "", url end
  local query_at = rest:find("[?#]") or #rest + 1
  local last_at
  local from = 1
  while true do
    local at = rest:find("@", from, true)
    if not at or at >= query_at then break end
    last_at, from = at, at + 1
  end
  local userinfo, after = nil, rest
  if last_at then userinfo, after = rest:sub(1, last_at - 1), rest:sub(last_at + 1) end
  local host, path = after:match("^([^/?#]*)(.*)$")
  local unsure = not userinfo and rest:find("@", query_at, true) ~= nil and
    not (host:find("^%[[^%]]*%]:?%d*$") or host:find("^[^:]*:?%d*$"))
  return scheme, userinfo, host, path, unsure
end

-- The URL as it may be shown: no user:password@, no query string or fragment (keys get put
-- there). Any string; other values are returned as they are.
function M.printable_url(url)
  if type(url) ~= "string" then return url end
  local scheme, _, host, path, unsure = split_url(url)
  if unsure then return scheme .. "***" end
  return scheme .. host .. (path:gsub("[?#].*$", ""))
end

local function add_secret(list, s)
  if type(s) == "string" and s ~= "" then list[#list + 1] = s end
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  return ((s:gsub(".", function(c)
    local bits, b = {}, c:byte()
    for i = 8, 1, -1 do bits[i] = b % 2; b = math.floor(b / 2) end
    return table.concat(bits)
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(six)
    if #six < 6 then return "" end
    local n = 0
    for i = 1, 6 do n = n * 2 + (six:byte(i) - 48) end
    return B64:sub(n + 1, n + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

-- A query value is a secret when its name looks like a credential (key, token, secret, pass,
-- auth, sig, in any case, within a longer name too: api_key, access_token, pwd), whatever its
-- length; any other value only from 8 characters on, so that x=1 does not turn every "1" in an
-- error ("127.0.0.1 port 9") into ***.
local CREDENTIAL_NAMES = { "key", "token", "secret", "pass", "pwd", "auth", "sig" }
local MIN_PLAIN_SECRET = 8

local function query_secret(name, value)
  name = unescape(name):lower()
  for _, word in ipairs(CREDENTIAL_NAMES) do
    if name:find(word, 1, true) then return true end
  end
  return #unescape(value) >= MIN_PLAIN_SECRET
end

-- What of a URL must never be shown, added to list: the whole URL when it holds credentials,
-- its user:password (also as sent in a Basic Authorization header), the password (raw and
-- decoded, and its start up to a ? or #, where an RFC parser ends it), the query values that
-- are secrets (see query_secret), and all before the last @ when which part is the host
-- cannot be told (see split_url).
local function url_secrets(list, url)
  if type(url) ~= "string" then return end
  local scheme, userinfo, _, _, unsure = split_url(url)
  local query = url:match("%?([^#]*)")
  if userinfo or query or url:find("#", 1, true) then add_secret(list, url) end
  if unsure then add_secret(list, url:sub(#scheme + 1):match("^(.*)@")) end
  if userinfo then
    add_secret(list, userinfo)
    local user, password = userinfo:match("^([^:]*):(.*)$")
    if password then
      add_secret(list, password)
      add_secret(list, unescape(password))
      add_secret(list, password:match("^[^?#/]*"))
      add_secret(list, base64(unescape(user) .. ":" .. unescape(password)))
    end
  end
  for pair in (query or ""):gmatch("[^&;]+") do
    local name, value = pair:match("^([^=]*)=(.*)$")
    if not name then name, value = "", pair end
    if query_secret(name, value) then
      if name ~= "" then add_secret(list, pair) end
      add_secret(list, value)
      add_secret(list, unescape(value))
    end
  end
end

-- The list of everything a client must keep out of errors and printed text: the key, and the
-- credentials in the URL and in the proxy URL (errors.scrub takes it).
function M.secrets(key, url, proxy)
  local list = {}
  add_secret(list, key)
  url_secrets(list, url)
  url_secrets(list, proxy)
  local seen, unique = {}, {}
  for _, s in ipairs(list) do
    if not seen[s] then seen[s], unique[#unique + 1] = true, s end
  end
  return unique
end

-- -> { url =, key =, public = { every option but the key, defaults filled in }, secrets = { ... } }
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
    local shown = M.printable_url(opts.url)
    -- something that is no URL at all may be the key, given as the url by mistake: not shown
    if not shown:find("[./:]") or opts.url == opts.key then
      raise("option 'url' must start with http:// or https://, got a string of " .. #opts.url ..
        " bytes that does not look like a URL (not shown: it may be a key)")
    end
    raise("option 'url' must start with http:// or https://, got " .. string.format("%q", shown))
  end
  if opts.url:find("%c") then
    -- a CR or LF would end the request line and start header lines of the panel's choosing
    raise("option 'url' must not contain control characters (CR, LF, tab, NUL, DEL)")
  end
  if opts.key == nil then raise("option 'key' is required (the panel's API key)") end
  if opts.key == "" or opts.key:find("[%c%s]") then
    raise("option 'key' must be a non-empty string without spaces or control characters")
  end
  local dialect, problem = require("smm.dialect").resolve(opts.dialect)
  if not dialect then raise("option 'dialect' " .. problem) end
  if dialect.key_header and dialect.key_header:lower() == "authorization" and
      opts.url:match("^%a[%w+.-]*://[^/?#]*@") then
    raise("option 'dialect' " .. dialect.name .. " sends the key in the Authorization header, " ..
      "which the user:password of option 'url' would take too: drop one")
  end
  local public = {}
  for name, value in pairs(M.DEFAULTS) do public[name] = value end
  for name, value in pairs(opts) do
    if name ~= "key" then public[name] = value end
  end
  public.url = nil
  -- the dialect's name is printable; the table (it names where the key goes, not the key)
  -- travels beside the key
  public.dialect = opts.dialect or dialect.name
  return { url = opts.url, key = opts.key, public = public, dialect = dialect,
           secrets = M.secrets(opts.key, opts.url, opts.proxy) }
end

return M
