-- Exact prices before money is spent: rate is per 1000 units, as a decimal string.
local money = require "smm.money"
local kinds = require "smm.kinds"
local validate = require "smm.validate"

local M = {}

-- The units an order buys, by its service's kind: quantity, one line per comment, one package.
-- Returns units, runs-or-posts multiplier; nil, field when the order lacks what is counted.
function M.units(service, order)
  local k = kinds.of(service)
  local counts = k and k.counts or "quantity"
  if counts == "package" then return nil, 1 end
  if counts == "subscription" then
    return order.max, order.posts or 1
  end
  local lines_field = counts:match("^lines:(.+)$")
  if lines_field and order.quantity == nil and type(order[lines_field]) == "string" then
    return validate.count_lines(order[lines_field]), 1
  end
  return order.quantity, order.runs or 1
end

-- Why a service's rate cannot price an order, or nil when it can: only an exact, non-negative
-- decimal string is a price (normalize leaves what it cannot read as the panel sent it).
function M.rate_problem(rate)
  if type(rate) ~= "string" or not money.is_decimal(rate) then return "is not an exact decimal" end
  if money.compare(rate, "0") < 0 then return "is negative" end
  return nil
end

-- service: a normalised service entry; order: checked `add` fields.
-- -> "12.34", or nil, field (missing from the order), or nil, "rate", why the rate cannot price.
function M.quote(service, order)
  local problem = M.rate_problem(service.rate)
  if problem then return nil, "rate", problem end
  local units, times = M.units(service, order)
  local k = kinds.of(service)
  if k and k.counts == "package" then
    return money.format(money.mul(service.rate, times))
  end
  if units == nil then
    return nil, (k and k.counts:match("^lines:(.+)$")) or (k and k.counts == "subscription" and "max")
      or "quantity"
  end
  local total = money.mul(money.mul(service.rate, units), times)
  return money.format(money.shift(total, 3))
end

return M
