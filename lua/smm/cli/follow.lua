-- Following orders until they are final (smm wait, smm batch --wait): one line per order,
-- redrawn in place on a terminal, plain lines per change otherwise; then a summary.
local output = require "smm.cli.output"
local money = require "smm.money"

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

-- client: an smm client; ids: array of order ids; opts: interval, timeout, grace (ms).
-- Returns by_id, err from client:wait.
function M.wait(client, ids, opts)
  local live = output.isatty(1) and not output.json_mode()
  local quiet = output.json_mode()
  local current, drawn = {}, false
  local index = {}
  for i, id in ipairs(ids) do index[id] = i end
  local function redraw()
    if drawn then io.stdout:write(string.format("\27[%dA", #ids)) end
    for _, id in ipairs(ids) do io.stdout:write("\r\27[K", describe(id, current[id]), "\n") end
    io.stdout:flush()
    drawn = true
  end
  if live then redraw() end
  local by_id, err = client:wait(ids, {
    interval = opts.interval, timeout = opts.timeout, grace = opts.grace,
    on_update = function(id, _, _, entry)
      current[id] = entry
      if live then redraw()
      elseif not quiet then
        io.stdout:write(describe(id, entry), "\n")
        io.stdout:flush()
      end
    end,
  })
  if live and by_id then
    for id, entry in pairs(by_id) do if index[id] then current[id] = entry end end
    redraw()
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
