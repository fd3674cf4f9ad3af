-- What the command line shows: terminal detection, colours, aligned tables, JSON documents
-- and one-line errors. Colours only on a terminal and never with NO_COLOR; JSON through
-- smm.json, so that arrays stay arrays ([] when empty) and keys come out sorted.
local json = require "smm.json"

local M = {}

-- math.type where there are no integers (Lua 5.1, LuaJIT): a whole number within 2^53.
local MAX_EXACT = 2 ^ 53
local math_type = math.type or function(x)
  if type(x) ~= "number" then return nil end
  if x == math.floor(x) and x > -MAX_EXACT and x < MAX_EXACT then return "integer" end
  return "float"
end
M.math_type = math_type

-- os.execute with the results of Lua 5.2+ everywhere: true or nil, then "exit" or "signal"
-- and the number. Lua 5.1 (and LuaJIT) return the raw wait status instead.
function M.execute(command)
  local a, how, code = os.execute(command)
  if type(a) ~= "number" then return a, how, code end
  if a == 0 then return true, "exit", 0 end
  if a % 256 == 0 then return nil, "exit", a / 256 end
  return nil, "signal", a % 128
end

local tty_cache = {}

-- Is file descriptor fd (0 stdin, 1 stdout, 2 stderr) a terminal? `test -t` in a child
-- shell sees the same descriptors, so no C module is needed. Asked once per descriptor.
function M.isatty(fd)
  if tty_cache[fd] == nil then
    local forced = os.getenv("SMM_FORCE_TTY") -- tests and screenshots: "1" or "0"
    if forced == "1" or forced == "0" then
      tty_cache[fd] = forced == "1"
    else
      tty_cache[fd] = M.execute(string.format("test -t %d", fd)) == true
    end
  end
  return tty_cache[fd]
end

-- State shared by the output helpers for one run.
local state = { json = false, color = false }

function M.setup(opts)
  state.json = opts.json and true or false
  local no_color = os.getenv("NO_COLOR")
  state.color = not opts.no_color and (no_color == nil or no_color == "") and
    os.getenv("TERM") ~= "dumb" and M.isatty(1)
  state.err_color = not opts.no_color and (no_color == nil or no_color == "") and
    os.getenv("TERM") ~= "dumb" and M.isatty(2)
end

function M.json_mode() return state.json end

local CODES = { red = "31", green = "32", yellow = "33", blue = "34", magenta = "35", cyan = "36",
                bold = "1", dim = "2" }

function M.paint(text, colour, on_stderr)
  local enabled = on_stderr and state.err_color or (not on_stderr and state.color)
  if not enabled or not colour or not CODES[colour] then return text end
  return "\27[" .. CODES[colour] .. "m" .. text .. "\27[0m"
end

local STATUS_COLOURS = {
  Completed = "green", Partial = "yellow", Canceled = "red", Refunded = "red", Rejected = "red",
  Failed = "red", ["In progress"] = "cyan", Processing = "cyan", Pending = "dim", Awaiting = "dim",
}
function M.status_colour(status) return STATUS_COLOURS[status] end

-- UTF-8 length and offset (utf8.len, utf8.offset) where the utf8 library is missing (Lua 5.1,
-- LuaJIT): len is nil for a string that is not UTF-8; offset(s, n) is where the nth
-- character starts.
local utf8_len, utf8_offset
if utf8 then
  utf8_len = utf8.len
else
  -- per lead byte: continuation bytes, smallest code point (no overlong forms)
  local function lead(c)
    if c < 0x80 then return 0, 0
    elseif c >= 0xC2 and c <= 0xDF then return 1, 0x80
    elseif c >= 0xE0 and c <= 0xEF then return 2, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then return 3, 0x10000 end
  end
  utf8_len = function(s)
    local n, i, len = 0, 1, #s
    while i <= len do
      local c = s:byte(i)
      local more, min = lead(c)
      if not more then return nil end
      local code = more == 0 and c or c % (2 ^ (6 - more))
      for j = i + 1, i + more do
        local b = s:byte(j)
        if not b or b < 0x80 or b > 0xBF then return nil end
        code = code * 64 + b % 64
      end
      if code < min or code > 0x10FFFF or (code >= 0xD800 and code <= 0xDFFF) then return nil end
      n, i = n + 1, i + more + 1
    end
    return n
  end
end

-- Where the nth character starts. Not utf8.offset: that raises on text that is not UTF-8
-- (a Latin-1 service name), where this just counts the bytes that do not continue one.
utf8_offset = function(s, n)
  local seen = 0
  for i = 1, #s do
    local c = s:byte(i)
    if c < 0x80 or c > 0xBF then
      seen = seen + 1
      if seen == n then return i end
    end
  end
  if seen + 1 == n then return #s + 1 end
  return #s + 1
end

-- Display width: UTF-8 characters, not bytes.
local function width(s)
  return utf8_len(s) or #s
end

local function cell_text(v)
  if v == nil then return "" end
  if v == true then return "yes" elseif v == false then return "no" end
  if math_type(v) == "integer" then return string.format("%d", v) end
  return tostring(v)
end

-- columns: { { title =, key = or get = fn(row), align = "right", colour = fn(row, text) } }
-- Returns the lines of an aligned table (header first).
function M.table_lines(columns, rows)
  local widths, cells = {}, {}
  for c, col in ipairs(columns) do widths[c] = width(col.title) end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for c, col in ipairs(columns) do
      local v
      if col.get then v = col.get(row) else v = row[col.key] end
      local text = cell_text(v):gsub("[\r\n]+", " ")
      if col.max and width(text) > col.max then
        text = text:sub(1, utf8_offset(text, col.max) - 1) .. "…"
      end
      cells[r][c] = text
      if width(text) > widths[c] then widths[c] = width(text) end
    end
  end
  local function line(texts, colourer)
    local parts = {}
    for c, col in ipairs(columns) do
      local text = texts[c]
      local pad = string.rep(" ", widths[c] - width(text))
      local shown = text
      if colourer then shown = colourer(c, text) end
      if c == #columns and col.align ~= "right" then pad = "" end
      parts[c] = col.align == "right" and (pad .. shown) or (shown .. pad)
    end
    return (table.concat(parts, "  "):gsub("%s+$", ""))
  end
  local titles = {}
  for c, col in ipairs(columns) do titles[c] = col.title end
  local out = { line(titles, function(_, t) return M.paint(t, "bold") end) }
  for r, row in ipairs(rows) do
    out[#out + 1] = line(cells[r], function(c, t)
      local col = columns[c]
      if col.colour and t ~= "" then return M.paint(t, col.colour(row, t)) end
      return t
    end)
  end
  return out
end

function M.print_table(columns, rows)
  io.stdout:write(table.concat(M.table_lines(columns, rows), "\n"), "\n")
end

function M.say(...)
  if state.json then return end
  io.stdout:write(...)
  io.stdout:write("\n")
  io.stdout:flush()
end

-- Notes for a human that must not mix with a JSON document: stdout normally, stderr with --json.
function M.note(...)
  local f = state.json and io.stderr or io.stdout
  f:write(...)
  f:write("\n")
  f:flush()
end

function M.warn(message)
  io.stderr:write(M.paint("smm:", "yellow", true), " warning: ", message, "\n")
end

function M.error(message)
  message = tostring(message):gsub("%s*\n%s*", "; ")
  io.stderr:write(M.paint("smm:", "red", true), " ", message, "\n")
end

-- JSON: the project's one encoder (sorted keys, arrays marked with output.array).
M.array = json.array
M.encode = json.encode

-- The one JSON document of a --json run.
function M.json(v)
  io.stdout:write(json.encode(v), "\n")
end

return M
