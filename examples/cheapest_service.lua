-- The cheapest service for a category (or a search text), priced for a quantity, exactly.
--   SMM_API_URL=... SMM_API_KEY=... lua5.4 examples/cheapest_service.lua "Instagram Likes" 1000
--   SMM_API_URL=... SMM_API_KEY=... lua5.4 examples/cheapest_service.lua instagram 1000 --search
local smm = require "smm"
local money = require "smm.money"

local url, key = os.getenv("SMM_API_URL"), os.getenv("SMM_API_KEY")
local what, quantity = arg[1], tonumber(arg[2] or "1000")
if not url or not key or not what then
  io.stderr:write("usage: cheapest_service.lua CATEGORY [QUANTITY] [--search]\n")
  os.exit(1)
end
local client = smm.new{ url = url, key = key }

local filter = arg[3] == "--search" and { search = what } or { category = what }
local list, err = client:find_services(filter)
if not list then
  io.stderr:write(tostring(err), "\n")
  os.exit(2)
end

-- only services that sell this quantity, compared on their exact rate
local best
for _, s in ipairs(list) do
  local fits = (not s.min or quantity >= s.min) and (not s.max or quantity <= s.max)
  if fits and (not best or money.compare(s.rate, best.rate) < 0) then best = s end
end
if not best then
  print(("no service in %q sells %d"):format(what, quantity))
  os.exit(1)
end
local price = assert(client:quote(best.service, quantity))
print(("cheapest of %d: service %d %s (%s), rate %s per 1000: %d cost %s"):format(
  #list, best.service, best.name, best.type, best.rate, quantity, price))
client:close()
