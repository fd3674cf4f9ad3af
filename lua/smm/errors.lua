-- The one place that builds error objects, so every failure has the same fields and none of
-- them can carry the API key.
--
-- An error is a table:
--   kind        "invalid" | "network" | "timeout" | "http" | "decode" | "api"
--   message     one readable sentence
--   action      the API action the call was for, when there was one
--   field       the offending input field ("invalid" errors)
--   status      the HTTP status, when an answer arrived
--   code        a panel-independent name for an "api" error ("not_enough_funds", ...)
--   retryable   trying the same call again later could succeed
--   ambiguous   the request may have reached the panel and been carried out (only ever true
--               for actions that spend or change something: add, refill, cancel)
--   retry_after seconds the panel asked to wait (429), when it said so
--   body        a short excerpt of a non-JSON answer, for diagnosis
-- and tostring(err) gives one line.
local M = {}

local Error = {}
Error.__index = Error
M.Error = Error

local KINDS = { invalid = true, network = true, timeout = true, http = true, decode = true, api = true }

function Error:__tostring()
  local where = self.action and (" (" .. self.action .. ")") or ""
  local status = self.status and (" [HTTP " .. self.status .. "]") or ""
  return "smm " .. self.kind .. " error" .. where .. status .. ": " .. self.message
end

-- Panels phrase the same failure in many ways, some leak translation keys. Matching on the
-- start of the lower-cased text keeps "Quantity less than minimal 200" and friends together.
local API_CODES = {
  { "invalid api key", "invalid_key" }, { "incorrect api key", "invalid_key" },
  { "wrong api key", "invalid_key" }, { "invalid key", "invalid_key" },
  { "not enough funds", "not_enough_funds" }, { "neworder.error.not_enough_funds", "not_enough_funds" },
  { "insufficient", "not_enough_funds" },
  { "incorrect service", "incorrect_service" }, { "invalid service", "incorrect_service" },
  { "neworder.error.incorrect_service_id", "incorrect_service" },
  { "bad link", "bad_link" }, { "incorrect link", "bad_link" }, { "invalid link", "bad_link" },
  { "neworder.error.link", "bad_link" },
  { "quantity less than", "min_quantity" }, { "neworder.error.min_quantity", "min_quantity" },
  { "quantity more than", "max_quantity" }, { "neworder.error.max_quantity", "max_quantity" },
  { "incorrect order id", "incorrect_order" }, { "order not found", "incorrect_order" },
  { "service does not support refill", "refill_unsupported" },
  { "refill not found", "refill_not_found" },
  { "you have active order with this link", "link_duplicate" },
  { "neworder.error.link_duplicate", "link_duplicate" },
  { "too many requests", "rate_limited" }, { "rate limit", "rate_limited" },
  { "incorrect request", "incorrect_request" },
}

-- Temporary by nature: the same request can succeed later.
local RETRYABLE_CODES = { link_duplicate = true, rate_limited = true }

function M.api_code(message)
  local text = tostring(message):lower():gsub("^%s+", "")
  -- "neworder.error.link_duplicate" must win over the shorter "neworder.error.link"
  local best, best_len = "unknown", 0
  for _, pair in ipairs(API_CODES) do
    local prefix = pair[1]
    if #prefix > best_len and text:sub(1, #prefix) == prefix then
      best, best_len = pair[2], #prefix
    end
  end
  if best == "unknown" and text:find("api key", 1, true) then best = "invalid_key" end
  return best
end

function M.api_retryable(code)
  return RETRYABLE_CODES[code] == true
end

local function replace_all(text, secret)
  local out, start = {}, 1
  while true do
    local i, j = text:find(secret, start, true)
    if not i then break end
    out[#out + 1] = text:sub(start, i - 1)
    out[#out + 1] = "***"
    start = j + 1
  end
  out[#out + 1] = text:sub(start)
  return table.concat(out)
end

-- The key as it travels in a form body or a query string (a panel or page echoing the raw
-- request shows it so): percent-encoded, upper- or lower-case hex.
local function encoded(secret, hex)
  return (secret:gsub("[^%w%-%._~]", function(c) return string.format(hex, c:byte()) end))
end

local function scrub(text, secret)
  if type(text) ~= "string" or not secret or secret == "" then return text end
  text = replace_all(text, secret)
  local upper = encoded(secret, "%%%02X")
  if upper ~= secret then
    text = replace_all(replace_all(text, upper), encoded(secret, "%%%02x"))
  end
  return text
end
M.scrub = scrub

-- fields: kind and message required, the rest as listed above. secret: a string that must not
-- survive into the error (the API key); every text field is scrubbed of it.
function M.new(fields, secret)
  assert(KINDS[fields.kind], "smm.errors: unknown kind")
  local err = setmetatable({}, Error)
  for name, value in pairs(fields) do
    err[name] = scrub(value, secret)
  end
  err.message = err.message or err.kind
  if err.retryable == nil then err.retryable = false end
  if err.ambiguous == nil then err.ambiguous = false end
  return err
end

-- Bad input, caught before anything is sent.
function M.invalid(field, message, action)
  return M.new{ kind = "invalid", field = field, action = action,
                message = "'" .. field .. "' " .. message }
end

function M.is(value)
  return getmetatable(value) == Error
end

return M
