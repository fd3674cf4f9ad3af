-- Following orders until they are final (smm wait, smm batch --wait): on a terminal a view
-- redrawn in place that fits the screen, plain lines per change otherwise; then a summary.
local output = require "smm.cli.output"
local money = require "smm.money"
local smm = require "smm"

-- client:wait's default interval (ms), for the "next poll" of the live view
local DEFAULT_INTERVAL = 5000

local M = {}

local function describe(id, entry)
  if not entry then return string.format("order %d: waiting for the first answer", id) end
  if entry.error then return string.format("order %d: %s", id, entry.error) end
  local parts = { string.format("order %d: %s", id, output.paint(tostring(entry.status),
    output.status_colour(entry.status))) }
  if entry.remains ~= nil then parts[#parts + 1] = "remains " .. tostring(entry.remains) end
  if entry.charge ~= nil then
    parts[#parts + 1] = "charge " .. tostring(entry.charge) .. (entry.currency and (" " ..
      entry.currency) or "")
  end
  return table.concat(parts, ", ")
end

local function is_final(entry)
  return entry ~= nil and entry.error == nil and smm.is_final(entry.status)
end

local function status_label(entry)
  if not entry then return "no answer yet" end
  if entry.error then return "error" end
  return tostring(entry.status)
end

-- The live view of a terminal: a header (N of M final, elapsed time, the next poll), a bar with
-- an ETA, and one line per order, those not final first, as many as the screen holds with room
-- to spare; the rest are summed up in one line. Never more lines than the screen has rows, so
-- that a redraw stays on the screen instead of pushing hundreds of lines into the scrollback.
local function view(ids, current, clock)
  local cols, rows = output.terminal_size()
  cols, rows = cols or 80, rows or 24
  local open, closed = {}, {}
  for _, id in ipairs(ids) do
    if is_final(current[id]) then closed[#closed + 1] = id else open[#open + 1] = id end
  end
  local now = output.clock()
  local next_poll = math.max(0, clock.round + clock.interval - now)
  local lines = {
    string.format("%d of %d final · %s elapsed%s", #closed, #ids, output.duration(now - clock.started),
      clock.done and "" or (" · next poll in ~" .. output.duration(next_poll))),
    output.bar(clock.tracker, #closed, #ids),
  }
  local room = math.max(1, rows - 3 - #lines)
  local order_list = {}
  for _, id in ipairs(open) do order_list[#order_list + 1] = id end
  for _, id in ipairs(closed) do order_list[#order_list + 1] = id end
  local shown = #order_list <= room and #order_list or room - 1
  for i = 1, shown do
    local id = order_list[i]
    lines[#lines + 1] = describe(id, current[id])
  end
  if shown < #order_list then
    local counts, names = {}, {}
    for i = shown + 1, #order_list do
      local name = status_label(current[order_list[i]])
      if not counts[name] then counts[name] = 0 names[#names + 1] = name end
      counts[name] = counts[name] + 1
    end
    local parts = {}
    for _, name in ipairs(names) do parts[#parts + 1] = counts[name] .. " " .. name end
    lines[#lines + 1] = string.format("… and %d more: %s", #order_list - shown, table.concat(parts, ", "))
  end
  for i, text in ipairs(lines) do
    -- one character short of the width: a line that reaches the last column wraps on some
    -- terminals; colours go when a line has to be cut (the cut counts characters, not escapes)
    local plain = output.plain(text)
    if output.width(plain) > cols - 1 then lines[i] = output.cut(plain, cols - 1) end
  end
  return lines
end

-- client: an smm client; ids: array of order ids; opts: interval, timeout, grace (ms).
-- Returns by_id, err from client:wait.
function M.wait(client, ids, opts)
  local live = output.isatty(1) and not output.json_mode()
  local quiet = output.json_mode()
  local current = {}
  local index = {}
  for i, id in ipairs(ids) do index[id] = i end
  local started = output.clock()
  local clock = { started = started, round = started, last = started, tracker = {},
                  interval = (opts.interval or DEFAULT_INTERVAL) / 1000 }
  local board = {}
  if live then output.redraw(board, view(ids, current, clock)) end
  local by_id, err = client:wait(ids, {
    interval = opts.interval, timeout = opts.timeout, grace = opts.grace,
    on_update = function(id, _, _, entry)
      current[id] = entry
      if live then
        -- the updates of one poll come together; a pause of half an interval starts a new poll
        local now = output.clock()
        if now - clock.last > clock.interval / 2 then clock.round = now end
        clock.last = now
        output.redraw(board, view(ids, current, clock))
      elseif not quiet then
        io.stdout:write(describe(id, entry), "\n")
        io.stdout:flush()
      end
    end,
  })
  if live and by_id then
    for id, entry in pairs(by_id) do if index[id] then current[id] = entry end end
    clock.done = true
    output.redraw(board, view(ids, current, clock))
  end
  return by_id, err
end

-- A summary line: "3 orders: 2 Completed, 1 Partial; charged 1.23"
function M.summary(ids, by_id)
  local counts, order, charged = {}, {}, "0"
  for _, id in ipairs(ids) do
    local e = by_id and by_id[id]
    local label = (not e) and "no answer" or (e.error and "error") or tostring(e.status)
    if not counts[label] then counts[label] = 0 order[#order + 1] = label end
    counts[label] = counts[label] + 1
    if e and e.charge and money.is_decimal(e.charge) then charged = money.add(charged, e.charge) end
  end
  local parts = {}
  for _, label in ipairs(order) do parts[#parts + 1] = counts[label] .. " " .. label end
  return string.format("%d order%s: %s; charged %s", #ids, #ids == 1 and "" or "s",
    table.concat(parts, ", "), money.format(charged))
end

return M
