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
local state = { json = false, color = false, errors = {}, documents = 0 }

function M.setup(opts)
  state.json = opts.json and true or false
  state.errors, state.documents, state.progress = {}, 0, nil
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

M.width = width

-- text without its colour escapes
function M.plain(text)
  return (text:gsub("\27%[[%d;]*m", ""))
end

-- The one way text is cut to fit: at most max characters, the last one an ellipsis, so that a
-- cut name never passes for a whole one.
function M.cut(text, max)
  if width(text) <= max then return text end
  if max < 1 then return "" end
  return text:sub(1, utf8_offset(text, max) - 1) .. "…"
end

-- Which columns stay and how wide they are, for a table that must fit in limit characters:
-- shrinkable columns (col.shrink = their narrowest width) give way first, the widest relative to
-- its weight first; when that is not enough, columns with a col.drop rank go, lowest rank first,
-- and the others get their natural widths back before shrinking again.
local function fit(columns, natural, limit)
  local active, widths = {}, {}
  for c in ipairs(columns) do active[c] = true end
  while true do
    local total, shown = 0, 0
    for c in ipairs(columns) do
      widths[c] = natural[c]
      if active[c] then total, shown = total + natural[c], shown + 1 end
    end
    total = total + 2 * math.max(0, shown - 1)
    while total > limit do
      local best, best_score
      for c, col in ipairs(columns) do
        if active[c] and col.shrink and widths[c] > col.shrink then
          local score = widths[c] / (col.weight or 1)
          if not best or score > best_score then best, best_score = c, score end
        end
      end
      if not best then break end
      widths[best], total = widths[best] - 1, total - 1
    end
    if total <= limit then return active, widths end
    local victim
    for c, col in ipairs(columns) do
      if active[c] and col.drop and (not victim or col.drop < columns[victim].drop) then victim = c end
    end
    if not victim then return active, widths end
    active[victim] = false
  end
end

-- columns: { { title =, key = or get = fn(row), align = "right", colour = fn(row, text),
--              max = widest, shrink = narrowest, weight = share when shrinking, drop = rank } }
-- opts.width: the table must fit in that many characters (see fit).
-- Returns the lines of an aligned table (header first).
function M.table_lines(columns, rows, opts)
  local natural, cells = {}, {}
  for c, col in ipairs(columns) do natural[c] = width(col.title) end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for c, col in ipairs(columns) do
      local v
      if col.get then v = col.get(row) else v = row[col.key] end
      local text = cell_text(v):gsub("[\r\n]+", " ")
      if col.max then text = M.cut(text, col.max) end
      cells[r][c] = text
      if width(text) > natural[c] then natural[c] = width(text) end
    end
  end
  local active, widths = {}, natural
  for c in ipairs(columns) do active[c] = true end
  if opts and opts.width then active, widths = fit(columns, natural, opts.width) end
  local kept = {}
  for c, col in ipairs(columns) do
    if active[c] then kept[#kept + 1] = { col = col, index = c, width = widths[c] } end
  end
  local function line(texts, colourer)
    local parts = {}
    for k, keep in ipairs(kept) do
      local col, c = keep.col, keep.index
      local text = M.cut(texts[c], keep.width)
      local pad = string.rep(" ", keep.width - width(text))
      local shown = text
      if colourer then shown = colourer(c, text) end
      if k == #kept and col.align ~= "right" then pad = "" end
      parts[k] = col.align == "right" and (pad .. shown) or (shown .. pad)
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

function M.print_table(columns, rows, opts)
  io.stdout:write(table.concat(M.table_lines(columns, rows, opts), "\n"), "\n")
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

-- info: what a --json run reports about the failure ({ kind =, code =, ... }, see finish).
function M.error(message, info)
  message = tostring(message):gsub("%s*\n%s*", "; ")
  io.stderr:write(M.paint("smm:", "red", true), " ", message, "\n")
  state.errors[#state.errors + 1] = { message = message, info = info }
end

-- JSON: the project's one encoder (sorted keys, arrays marked with output.array).
M.array = json.array
M.encode = json.encode

-- The one JSON document of a --json run.
function M.json(v)
  state.documents = state.documents + 1
  io.stdout:write(json.encode(v), "\n")
end

-- The fields of a library error that a --json failure repeats: the fixed vocabulary and
-- numbers, never the body (an excerpt of whatever the panel sent).
local ERROR_FIELDS = { "kind", "code", "status", "ambiguous", "retryable", "retry_after", "field",
                       "action" }

-- The end of a run. With --json, a run that failed before it printed its document prints
-- {"error": {...}} instead, so that stdout always holds one document: kind, message (the line
-- stderr got, the key scrubbed), exit, and what the library said (code, status, ambiguous...);
-- messages lists every line when there were several (a batch's bad rows).
function M.finish(code)
  if not state.json or code == 0 or state.documents > 0 then return end
  local chosen = state.errors[#state.errors]
  for i = #state.errors, 1, -1 do
    if state.errors[i].info then chosen = state.errors[i] break end
  end
  local doc = { exit = code, kind = "error", message = chosen and chosen.message or "failed" }
  local info = chosen and chosen.info or {}
  for _, name in ipairs(ERROR_FIELDS) do
    if info[name] ~= nil then doc[name] = info[name] end
  end
  if type(info.pending) == "table" then doc.pending = M.array(info.pending) end
  if #state.errors > 1 then
    doc.messages = M.array()
    for i, e in ipairs(state.errors) do doc.messages[i] = e.message end
  end
  M.json{ error = doc }
  io.stdout:flush()
end

-- A monotonic clock in seconds (smm.core's when it loads) for elapsed times and ETAs.
local clock = os.time
do
  local ok, core = pcall(require, "smm.core")
  if ok and type(core) == "table" and type(core.now) == "function" then
    clock = function() return core.now() / 1000 end
  end
end
M.clock = clock

local size
-- The terminal's columns and rows: COLUMNS and LINES when set (a user's choice, as for ls),
-- else what `stty size` says of the terminal; nil for what is not known (output to a pipe).
function M.terminal_size()
  if not size then
    size = {}
    if M.isatty(1) or M.isatty(2) then
      local p = io.popen("stty size </dev/tty 2>/dev/null")
      local text = p and p:read("*a") or ""
      if p then p:close() end
      local rows, cols = text:match("^%s*(%d+)%s+(%d+)")
      size.rows, size.cols = tonumber(rows), tonumber(cols)
      if size.rows == 0 then size.rows = nil end
      if size.cols == 0 then size.cols = nil end
    end
    local cols, rows = tonumber(os.getenv("COLUMNS") or ""), tonumber(os.getenv("LINES") or "")
    if cols and cols >= 20 then size.cols = math.floor(cols) end
    if rows and rows >= 5 then size.rows = math.floor(rows) end
  end
  return size.cols, size.rows
end

-- 65 s -> "1:05", 3725 s -> "1:02:05"
function M.duration(seconds)
  seconds = math.max(0, math.floor(seconds + 0.5))
  local h, m, s = math.floor(seconds / 3600), math.floor(seconds / 60) % 60, seconds % 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, s) end
  return string.format("%d:%02d", m, s)
end

-- "[########--------] 12/60 20% ETA 0:41": the ETA from the pace since the first call on this
-- tracker (nil until there is one).
function M.bar(tracker, done, total, bar_width)
  local now = clock()
  if not tracker.t0 then tracker.t0, tracker.done0 = now, done end
  bar_width = bar_width or 20
  local filled = total > 0 and math.floor(bar_width * done / total) or bar_width
  local text = string.format("[%s%s] %d/%d %d%%", string.rep("#", filled),
    string.rep("-", bar_width - filled), done, total, total > 0 and math.floor(100 * done / total) or 100)
  if done > tracker.done0 and done < total then
    local eta = (now - tracker.t0) / (done - tracker.done0) * (total - done)
    text = text .. " ETA " .. M.duration(eta)
  end
  return text
end

-- The progress line of `smm batch` on a terminal (stderr), redrawn in place: a bar, then text.
function M.progress(done, total, text)
  state.progress = state.progress or {}
  local line = M.bar(state.progress, done, total) .. "  " .. text
  local cols = M.terminal_size()
  if cols then line = M.cut(line, cols - 1) end
  io.stderr:write("\r\27[K", line)
  io.stderr:flush()
end

-- A block of lines redrawn in place on a terminal: the cursor goes back up to the block's first
-- line, lines that did not change are stepped over, what is left of a longer previous block is
-- cleared. The caller keeps the block shorter than the screen and every line narrower than
-- it: a line that wraps or scrolls breaks the arithmetic of the cursor moves.
function M.redraw(board, lines)
  local out = {}
  local before = board.lines or {}
  if #before > 0 then out[1] = "\r\27[" .. #before .. "A" end
  for i, text in ipairs(lines) do
    out[#out + 1] = text == before[i] and "\n" or ("\r\27[K" .. text .. "\n")
  end
  if #before > #lines then out[#out + 1] = "\27[J" end
  io.stdout:write(table.concat(out))
  io.stdout:flush()
  board.lines = lines
end

return M
