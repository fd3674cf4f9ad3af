-- A cron-style poller: each run reads the orders it follows from a state file, asks their
-- status in one multi-status call, reports what changed since last time, and forgets orders
-- that are final. Run it from cron every few minutes:
--   */5 * * * *  SMM_API_URL=... SMM_API_KEY=... lua5.4 examples/cron_poller.lua state.txt
-- Add orders to follow:  lua5.4 examples/cron_poller.lua state.txt --add 101 102
-- The state file holds lines "ORDER_ID STATUS"; it is rewritten atomically (temp + rename).
local smm = require "smm"

local url, key, path = os.getenv("SMM_API_URL"), os.getenv("SMM_API_KEY"), arg[1]
if not url or not key or not path then
  io.stderr:write("usage: cron_poller.lua STATE_FILE [--add ID...]\n")
  os.exit(1)
end

local function load()
  local state, order = {}, {}
  local f = io.open(path, "r")
  if not f then return state, order end
  for line in f:lines() do
    local id, status = line:match("^(%d+)%s*(.*)$")
    if id then
      id = tonumber(id)
      state[id] = status ~= "" and status or "new"
      order[#order + 1] = id
    end
  end
  f:close()
  return state, order
end

local function save(state, order)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  for _, id in ipairs(order) do
    if state[id] then f:write(("%d %s\n"):format(id, state[id])) end
  end
  assert(f:close())
  assert(os.rename(tmp, path))
end

local state, order = load()
if arg[2] == "--add" then
  for i = 3, #arg do
    local id = arg[i]:match("^%d+$") and tonumber(arg[i])
    if id and not state[id] then state[id] = "new" order[#order + 1] = id end
  end
  save(state, order)
  print(("following %d orders"):format(#order))
  os.exit(0)
end
if #order == 0 then os.exit(0) end

local client = smm.new{ url = url, key = key }
local statuses, err = client:status(order)
if not statuses then
  io.stderr:write(tostring(err), "\n") -- the state is kept: the next run tries again
  os.exit(2)
end
for _, id in ipairs(order) do
  local s = statuses[id]
  if s and not s.error and s.status ~= state[id] then
    print(("order %d: %s -> %s (remains %s)"):format(id, state[id], s.status, tostring(s.remains)))
    state[id] = s.status
  end
  if s and not s.error and smm.is_final(s.status) then
    print(("order %d is %s: no longer followed"):format(id, s.status))
    state[id] = nil
  end
end
save(state, order)
client:close()
