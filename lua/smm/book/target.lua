-- Where a book lives, read from its URL:
--   sqlite:/var/lib/smm/orders.db   sqlite:orders.db (relative)   sqlite:///abs/path.db
--   postgresql://user:password@host:5432/database   (postgres:// too; user, password, port optional)
-- The result keeps the password apart from `name`, the printable form every message and row
-- may show (the password is never in it).
local M = {}

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function refuse(message) return nil, "smm.book: " .. message end

function M.parse(url)
  if type(url) ~= "string" or url == "" then
    return refuse("the book's URL must be a string like sqlite:/path/orders.db or " ..
      "postgresql://user:password@host:5432/db, got " .. (type(url) == "string" and "\"\"" or type(url)))
  end
  if url:find("%c") then return refuse("the book's URL must not contain control characters") end
  local path = url:match("^[Ss][Qq][Ll][Ii][Tt][Ee]3?:(.*)$")
  if path then
    if path:sub(1, 3) == "///" then path = path:sub(3) elseif path:sub(1, 2) == "//" then
      return refuse("a sqlite URL is sqlite:/absolute/path or sqlite:relative/path, got " ..
        string.format("%q", url))
    end
    if path == "" then return refuse("the sqlite URL names no file (sqlite:/path/orders.db)") end
    return { driver = "sqlite", path = path, name = "sqlite:" .. path }
  end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if scheme and (scheme:lower() == "postgresql" or scheme:lower() == "postgres") then
    -- the password may hold an unescaped @: the host part starts after the last one
    local userinfo, hostpart = rest:match("^(.*)@([^@]*)$")
    if not userinfo then hostpart = rest end
    local user, password
    if userinfo then
      user, password = userinfo:match("^([^:]*):(.*)$")
      if not user then user = userinfo end
      user, password = unescape(user), password and unescape(password)
    end
    local hostport, database, query = hostpart:match("^([^/?]*)/?([^?]*)%??(.*)$")
    local host, port = hostport:match("^%[(.*)%]:?(%d*)$")
    if not host then host, port = hostport:match("^([^:]*):?(%d*)$") end
    if not host then
      return refuse("the postgresql URL's host part does not parse (postgresql://user:password@" ..
        "host:5432/db); the URL is not shown: it may hold a password")
    end
    if query ~= "" then
      -- only the options' names: any value may be a password (password=, sslpassword=, ...)
      local names = {}
      for name in query:gmatch("([^&=]+)=?[^&]*") do names[#names + 1] = name:match("^[%w_]+$") or "?" end
      return refuse("the postgresql URL takes no ?options (got " .. table.concat(names, ", ") ..
        "): give user, password, host, port and database in the URL itself")
    end
    database = unescape(database)
    if database == "" then
      return refuse("the postgresql URL names no database (postgresql://user@host/db)")
    end
    port = tonumber(port ~= "" and port or "5432")
    if port < 1 or port > 65535 then return refuse("the postgresql URL's port is out of range: " .. port) end
    if host == "" then host = "localhost" end
    local shown = "postgresql://" .. (user and (user .. (password and ":***" or "") .. "@") or "") ..
      host .. ":" .. port .. "/" .. database
    return { driver = "postgresql", host = host, port = port, user = user, password = password,
             database = database, name = shown }
  end
  if scheme then
    return refuse("unknown book scheme " .. string.format("%q", scheme) ..
      ": use sqlite:/path/orders.db or postgresql://user:password@host:5432/db")
  end
  return refuse("the book's URL must start with sqlite: or postgresql://, got a string of " .. #url ..
    " bytes (not shown: it may hold a password)")
end

return M
