-- A first order workflow: balance, services, a quote, an order followed to the end, a refill
-- and a cancel. Point it at your panel (or at the sandbox: `make demo` does that):
--   SMM_API_URL=https://panel.example/api/v2 SMM_API_KEY=... lua5.4 examples/quickstart.lua
local smm = require "smm"

local url, key = os.getenv("SMM_API_URL"), os.getenv("SMM_API_KEY")
if not url or not key then
  io.stderr:write("set SMM_API_URL and SMM_API_KEY\n")
  os.exit(1)
end

local client = smm.new{ url = url, key = key, timeout = 30000 }

local function check(value, err)
  if value == nil then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  return value
end

print("Panel: " .. tostring(client))

local balance = check(client:balance())
print(("Balance: %s %s"):format(balance.balance, balance.currency))

local services = check(client:services())
print(("\n%d services. A few of them:"):format(#services))
print(("  %-5s %-45s %-16s %9s %7s %8s"):format("id", "name", "type", "rate/1k", "min", "max"))
for i = 1, math.min(6, #services) do
  local s = services[i]
  print(("  %-5d %-45s %-16s %9s %7d %8d"):format(s.service, s.name:sub(1, 45), s.type, s.rate,
    s.min, s.max))
end

-- The cheapest Default service that offers refills and cancels.
local pick
for _, s in ipairs(client:find_services{ type = "Default", refill = true, cancel = true }) do
  if not pick or require("smm.money").compare(s.rate, pick.rate) < 0 then pick = s end
end
check(pick, "no Default service with refill and cancel on this panel")

local order = { service = pick.service, link = "https://instagram.com/p/lua-smm-demo",
                quantity = pick.min * 2 }
local price = check(client:quote(order))
print(("\nOrdering %d x \"%s\" for %s (rate %s per 1000)"):format(order.quantity, pick.name, price,
  pick.rate))
local placed = check(client:add(order, { max_cost = price })) -- never more than quoted
print(("Order %d placed."):format(placed.order))

print("Following it until it is final:")
local final = check(client:wait(placed.order, {
  interval = 300,
  on_update = function(id, status, previous, entry)
    print(("  order %d: %-11s remains %-6s charge %s%s"):format(id, status, tostring(entry.remains),
      tostring(entry.charge), previous and (" (was " .. previous .. ")") or ""))
  end,
}))
print(("Order %d is %s."):format(placed.order, final.status))

local refill = check(client:refill(placed.order))
print(("\nRefill %d requested."):format(refill.refill))
local refill_state = check(client:refill_status(refill.refill))
print(("Refill %d: %s"):format(refill.refill, refill_state.status))

local second = check(client:add{ service = pick.service, link = "https://instagram.com/p/lua-smm-demo-2",
                                 quantity = pick.min })
local canceled = check(client:cancel{ second.order })
local c = canceled[second.order]
print(("\nOrder %d placed and %s."):format(second.order,
  c.cancel and "canceled" or ("not canceled: " .. tostring(c.error))))

balance = check(client:balance())
print(("\nBalance now: %s %s"):format(balance.balance, balance.currency))
client:close()
