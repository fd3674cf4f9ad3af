-- The order book as the command line finds and opens it: --book URL, else the profile's `book`,
-- else sqlite:$XDG_DATA_HOME/smm/orders.db (XDG_DATA_HOME defaulting to ~/.local/share, the
-- folder made private: 0700). A book that cannot be used for writing is refused when it is
-- opened, before any command sends anything, with a message naming the book (its printable
-- name: a PostgreSQL password never shows).
--
-- Also here: the refs `smm batch` derives for CSV rows, and the times `--since` takes.
local smm_book = require "smm.book"
local order = require "smm.cli.order"
local output = require "smm.cli.output"

local M = {}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The default book's folder and URL (the folder is not made here).
function M.default_dir(getenv)
  getenv = getenv or os.getenv
  local data = getenv("XDG_DATA_HOME")
  if not data or data == "" then data = (getenv("HOME") or ".") .. "/.local/share" end
  return data .. "/smm"
end

-- url, source ("--book", "profile", "default") from the flags and the resolved settings.
function M.url(flags, settings)
  if flags.book then return flags.book, "--book" end
  if settings and settings.book then return settings.book, "config" end
  return "sqlite:" .. M.default_dir() .. "/orders.db", "default"
end

-- The default folder, made with no access for others (orders, links and charges are private).
local function make_private_dir(dir)
  local ok = output.execute("umask 077 && mkdir -p " .. shell_quote(dir) .. " 2>/dev/null")
  if ok ~= true then return nil, "cannot make the folder " .. dir end
  output.execute("chmod 700 " .. shell_quote(dir) .. " 2>/dev/null")
  return true
end

-- A write that changes nothing, committed: a read-only file, a read-only PostgreSQL user or a
-- full disk shows here, before anything is sent, instead of at the first order's intent.
local function probe_write(book)
  return smm_book.guarded(book, function(db)
    db:transaction(function() db:run("UPDATE smm_schema SET version = version") end)
    return true
  end)
end

-- Opens the book for a command. writing: the command records (add, batch, sync, doubt REF).
-- Returns book, url or nil, err (an smm error of kind "book" whose message names the book).
function M.open(url, source, writing)
  if source == "default" then
    local ok, why = make_private_dir(M.default_dir())
    if not ok then
      return nil, require("smm.errors").new({ kind = "book", code = "book_unavailable",
        message = url .. ": " .. why })
    end
  end
  local book, err = smm_book.open(url)
  if not book then return nil, err end
  if writing then
    local ok, werr = probe_write(book)
    if not ok then
      book:close()
      return nil, werr
    end
  end
  return book
end

-- The ref of a CSV row without a `ref` column: the file (its absolute path, symlinks resolved,
-- hashed) and the row's line, "csv:3f9a0c1d2e4b:5". The same file run again gives the same refs,
-- so the book sends none of its placed rows twice; another file (or the same one moved) is
-- another batch.
function M.absolute_path(path)
  local p = io.popen("realpath -- " .. shell_quote(path) .. " 2>/dev/null")
  local real = p and p:read("*l")
  if p then p:close() end
  if real and real ~= "" then return real end
  if path:sub(1, 1) == "/" then return path end
  return (os.getenv("PWD") or ".") .. "/" .. path
end

-- The file's part is hashed once per file, not once per row (FNV-1a in plain arithmetic costs
-- about 80 us for a path: 0.16 s of a 2,000-row batch).
local ref_prefix = { path = nil, prefix = nil }
function M.row_ref(absolute, line)
  if ref_prefix.path ~= absolute then
    ref_prefix.path, ref_prefix.prefix = absolute, "csv:" .. order.fnv1a(absolute):sub(1, 12) .. ":"
  end
  return ref_prefix.prefix .. string.format("%d", line)
end

-- Days since 1970-01-01 of a civil date (proleptic Gregorian), without os.time's local zone.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local UNITS = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

-- --since T: "2026-03-01", "2026-03-01T12:00:00Z" (or a space instead of T; UTC), or a
-- duration back from now: "90m", "24h", "7d", "2w". Returns UTC seconds or nil, message.
function M.since(text, now)
  now = now or os.time()
  local n, unit = text:match("^(%d+)([smhdw])$")
  if n then return now - tonumber(n) * UNITS[unit] end
  local y, mo, d, rest = text:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if y then
    local h, mi, s = 0, 0, 0
    if rest ~= "" then
      local hh, mm, ss = rest:match("^[T ](%d%d):(%d%d):?(%d?%d?)Z?$")
      if not hh then y = nil else h, mi, s = tonumber(hh), tonumber(mm), tonumber(ss ~= "" and ss or "0") end
    end
    y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
    if y and mo >= 1 and mo <= 12 and d >= 1 and d <= 31 and h < 24 and mi < 60 and s < 61 then
      return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
    end
  end
  return nil, "option --since takes a UTC date or time (2026-03-01, 2026-03-01T12:00:00Z) or a " ..
    "duration (90m, 24h, 7d, 2w), got '" .. text .. "'"
end

-- A field's value as text, whole numbers without a fraction (the book's JSON gives 100.0 back
-- on some Lua versions, the CLI has "100" or 100).
local function as_text(v)
  if type(v) == "number" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
    return string.format("%.0f", v)
  end
  return tostring(v)
end

-- Are the fields the book recorded for a ref those of this order? (A ref names one order: the
-- same ref for another order is refused before anything is sent.)
function M.same_fields(recorded, fields)
  if type(recorded) ~= "table" then return false end
  for name, value in pairs(fields) do
    if recorded[name] == nil or as_text(recorded[name]) ~= as_text(value) then return false end
  end
  for name in pairs(recorded) do
    if fields[name] == nil then return false end
  end
  return true
end

-- States of the book: an order in one of these was sent and is not to be sent again.
M.PLACED = { placed = true, final = true, stale = true }
-- ... and in these, it may have been: nothing is sent until `smm doubt` settles it.
M.IN_DOUBT = { sending = true, in_doubt = true }

-- How to settle a ref in doubt, for messages.
function M.settle_advice(ref)
  local q = ref:find("^[%w%-_:.@/]+$") and ref or shell_quote(ref)
  return "check the panel's orders, then settle it: smm doubt " .. q .. " ORDER_ID (it was placed) or " ..
    "smm doubt " .. q .. " --not-placed (it may be sent again)"
end

-- UTC seconds as ISO 8601, for tables and JSON.
function M.iso(t)
  if type(t) ~= "number" then return nil end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

return M
