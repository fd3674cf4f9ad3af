-- Refilling every partial order: the ids of your orders (arguments, or a file with one id a
-- line), their status in one multi-status call, and a refill for each Partial order whose
-- service offers refills.
--   SMM_API_URL=... SMM_API_KEY=... lua5.4 examples/refill_partials.lua 101 102 103
--   SMM_API_URL=... SMM_API_KEY=... lua5.4 examples/refill_partials.lua --file ids.txt
local smm = require "smm"

local url, key = os.getenv("SMM_API_URL"), os.getenv("SMM_API_KEY")
if not url or not key then
  io.stderr:write("set SMM_API_URL and SMM_API_KEY\n")
  os.exit(1)
end
local client = smm.new{ url = url, key = key }

local ids = {}
if arg[1] == "--file" then
  for line in io.lines(arg[2]) do
    local id = tonumber(line:match("%d+"))
    if id then ids[#ids + 1] = id end
  end
else
  for _, a in ipairs(arg) do ids[#ids + 1] = tonumber(a) end
end
if #ids == 0 then
  io.stderr:write("give order ids\n")
  os.exit(1)
end

local statuses, err = client:status(ids)
if not statuses then
  io.stderr:write(tostring(err), "\n")
  os.exit(2)
end
local partial = {}
for _, id in ipairs(ids) do
  local s = statuses[id]
  if s and s.status == "Partial" then partial[#partial + 1] = id end
end
print(("%d of %d orders are partial"):format(#partial, #ids))
if #partial == 0 then os.exit(0) end

local refills
refills, err = client:refill(partial)
if not refills then
  io.stderr:write(tostring(err), "\n")
  os.exit(err.ambiguous and 4 or 2)
end
for _, id in ipairs(partial) do
  local r = refills[id]
  if r.error then
    print(("order %d: no refill: %s"):format(id, r.error))
  else
    print(("order %d: refill %d"):format(id, r.refill))
  end
end
client:close()
