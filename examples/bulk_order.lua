-- Ordering from a CSV with the library (the `smm batch` command does this crash-safe, through
-- the order book; this is the short version to build on). Every row is priced before anything is
-- sent, the total is set against the balance, then the orders go out one by one.
--   SMM_API_URL=... SMM_API_KEY=... lua5.4 examples/bulk_order.lua orders.csv
-- CSV: a header row "service,link,quantity" (simple fields: no quotes or commas inside).
local smm = require "smm"
local money = require "smm.money"

local url, key, path = os.getenv("SMM_API_URL"), os.getenv("SMM_API_KEY"), arg[1]
if not url or not key or not path then
  io.stderr:write("usage: SMM_API_URL=... SMM_API_KEY=... lua5.4 bulk_order.lua orders.csv\n")
  os.exit(1)
end
local client = smm.new{ url = url, key = key }

local rows, header = {}, nil
for line in io.lines(path) do
  line = line:gsub("\r$", "")
  if line ~= "" then
    local fields = {}
    for field in (line .. ","):gmatch("([^,]*),") do fields[#fields + 1] = field end
    if not header then header = fields
    else
      local order = {}
      for i, name in ipairs(header) do
        if fields[i] and fields[i] ~= "" then order[name] = fields[i] end
      end
      rows[#rows + 1] = order
    end
  end
end

-- price every row first: nothing is sent when one of them is wrong
local total, prices = "0", {}
for i, order in ipairs(rows) do
  local price, err = client:quote(order)
  if not price then
    io.stderr:write(("row %d: %s\n"):format(i + 1, err.message))
    os.exit(1)
  end
  prices[i] = price
  total = money.add(total, price)
end
local balance = assert(client:balance())
print(("%d orders for %s %s; balance %s"):format(#rows, money.format(total), balance.currency,
  balance.balance))
if money.compare(total, balance.balance) > 0 then
  io.stderr:write("the balance is too short\n")
  os.exit(1)
end

for i, order in ipairs(rows) do
  -- the quoted price as the order's ceiling: a list that changed since is refused, not paid
  local res, err = client:add(order, { max_cost = prices[i] })
  if res then
    print(("row %d: order %d"):format(i + 1, res.order))
  elseif err.ambiguous then
    -- never retried: the order may exist; a second add would be a second paid order
    print(("row %d: IN DOUBT, check the panel: %s"):format(i + 1, err.message))
    break
  else
    print(("row %d: failed: %s"):format(i + 1, err.message))
  end
end
client:close()
