-- Which failures of an `add` prove that this panel did not place the order and that another
-- panel may: the router fails over on these and on nothing else.
--
-- The first condition is the client's: err.ambiguous is false, i.e. the request provably never
-- reached the panel (no connection, nothing sent), or the panel answered a refusal in a way that
-- proves it refused (smm.answer: a JSON error at a 2xx or 4xx, a 429/404/... before any action).
-- Anything that may have placed the order (a timeout after sending, a 5xx, a reset, a body that
-- is no JSON) is ambiguous and stops here: the order stays in doubt with that panel.
--
-- The second is the router's: the refusal must be about this panel, not about the order. Not
-- enough funds, a service the panel no longer has, a quantity out of its bounds, a key it does
-- not take, a panel out of reach or refusing for now: another panel may well take the order.
-- A bad link, a duplicate link or an incorrect request would be refused by every panel: the
-- order fails there, once.
local M = {}

-- api error code -> the reason recorded in the route
local NOT_HERE = {
  not_enough_funds = "short_of_funds",
  incorrect_service = "service_gone",
  min_quantity = "below_min",
  max_quantity = "above_max",
  invalid_key = "refused_key",
  rate_limited = "rate_limited",
}

-- -> reason (a string) when the order may go to the next panel, nil when it may not.
function M.not_placed_here(err)
  if type(err) ~= "table" or err.ambiguous ~= false then return nil end
  local kind = err.kind
  if kind == "network" or kind == "timeout" then
    -- provably unsent (connect refused, DNS, TLS before the request): err.sent is false
    if err.sent == false then return "unreachable" end
    return nil
  end
  if kind == "http" then return "refused_http" end -- a status that proves nothing was done
  if kind == "api" then return NOT_HERE[err.code] end
  return nil -- invalid (the order itself), decode, book: never another panel
end

return M
