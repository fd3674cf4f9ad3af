-- errors.api_code, row by row: every way the API reference says panels phrase a failure (and
-- the translation keys some leak), in any case, after any leading space, with the bound or a
-- sentence appended, gives one panel-independent code; anything else is "unknown", and nothing
-- raises, whatever the panel put in its `error` field.
local unit = require "helpers.unit"
local errors = require "smm.errors"
local null = require("cjson").null

-- The messages of /work/shared/api-v2.md ("What real panels do") and their neighbours.
local MESSAGES = {
  { "Invalid API key", "invalid_key" }, { "Incorrect API key", "invalid_key" }, { "Wrong API key", "invalid_key" },
  { "Invalid key", "invalid_key" }, { "API key is invalid", "invalid_key" },
  { "Your API key has been disabled", "invalid_key" },
  { "Not enough funds on balance", "not_enough_funds" }, { "neworder.error.not_enough_funds", "not_enough_funds" },
  { "Insufficient funds", "not_enough_funds" }, { "Insufficient balance", "not_enough_funds" },
  { "Incorrect service ID", "incorrect_service" }, { "Invalid service", "incorrect_service" },
  { "neworder.error.incorrect_service_id", "incorrect_service" },
  { "Bad link", "bad_link" }, { "Incorrect link", "bad_link" }, { "Invalid link", "bad_link" },
  { "neworder.error.link", "bad_link" },
  { "Quantity less than minimal 200", "min_quantity" }, { "neworder.error.min_quantity", "min_quantity" },
  { "Quantity more than maximum 1000", "max_quantity" }, { "neworder.error.max_quantity", "max_quantity" },
  { "Incorrect order ID", "incorrect_order" }, { "Order not found", "incorrect_order" },
  { "Service does not support refill", "refill_unsupported" },
  { "Refill not found", "refill_not_found" },
  { "You have active order with this link. Please wait until order being completed.", "link_duplicate" },
  { "neworder.error.link_duplicate", "link_duplicate" },
  { "Too many requests", "rate_limited" }, { "Rate limit exceeded", "rate_limited" },
  { "Incorrect request", "incorrect_request" },
  -- no known failure: the code is "unknown", never a guess from a word in the middle
  { "", "unknown" }, { "   ", "unknown" }, { "Error", "unknown" }, { "Something went wrong", "unknown" },
  { "Service is disabled", "unknown" }, { "neworder.error.unknown", "unknown" }, { "neworder.error", "unknown" },
  { "error.not_enough_funds", "unknown" }, { "Error: Not enough funds", "unknown" },
  { "The order was not found", "unknown" }, { "Quantity", "unknown" }, { "Incorrect", "unknown" },
  { "Link is bad", "unknown" }, { "<html><body>502 Bad Gateway</body></html>", "unknown" },
  { "Ratelimit", "unknown" }, { "Refill", "unknown" }, { "Not enough", "unknown" }, { "Invalid", "unknown" },
  { "0", "unknown" }, { "null", "unknown" }, { "true", "unknown" },
}

-- Each message as panels vary it: case, leading space, an appended bound or sentence.
local ROWS = {}
for _, m in ipairs(MESSAGES) do
  local text, code = m[1], m[2]
  for _, v in ipairs{ text, text:lower(), text:upper(), "  " .. text, "\t\n" .. text, text .. " ",
                      text .. " (code 17)", " \r\n " .. text:upper() .. ".\n" } do
    if v:find("%S") or code == "unknown" then ROWS[#ROWS + 1] = { v, code } end
  end
end
-- what no JSON string is: tostring'ed, never raising
local labelled = setmetatable({}, { __tostring = function() return "Not enough funds" end })
for _, row in ipairs{ { nil, "unknown" }, { null, "unknown" }, { 0, "unknown" }, { 42, "unknown" },
                      { 1.5, "unknown" }, { unit.NAN, "unknown" }, { unit.INF, "unknown" }, { true, "unknown" },
                      { false, "unknown" }, { {}, "unknown" }, { { error = "Invalid API key" }, "unknown" },
                      { print, "unknown" }, { labelled, "not_enough_funds" },
                      { string.rep("x", 1000000), "unknown" }, { "Not enough funds" .. string.rep("!", 1000000),
                      "not_enough_funds" }, { "Invalid API key\0garbage", "invalid_key" },
                      { "\0Invalid API key", "invalid_key" } } do
  ROWS[#ROWS + 1] = row
end

-- Which codes are worth the same call later.
local RETRYABLE = {
  { "link_duplicate", true }, { "rate_limited", true },
  { "invalid_key", false }, { "not_enough_funds", false }, { "incorrect_service", false }, { "bad_link", false },
  { "min_quantity", false }, { "max_quantity", false }, { "incorrect_order", false },
  { "refill_unsupported", false }, { "refill_not_found", false }, { "incorrect_request", false },
  { "unknown", false }, { nil, false }, { "", false }, { "Rate_Limited", false }, { 1, false }, { true, false },
}

describe("errors.api_code (unit)", function()
  describe("api_code", function()
    for i, row in ipairs(ROWS) do
      it(string.format("#%d api_code(%s)", i, unit.label(row[1])), function()
        local ok, code = pcall(errors.api_code, row[1])
        assert.is_true(ok, "raised: " .. tostring(code))
        assert.equal(row[2], code)
      end)
    end
  end)

  describe("api_retryable", function() unit.run(it, "api_retryable", errors.api_retryable, RETRYABLE) end)

  it("every code a message maps to is one retries and callers know", function()
    local known = {}
    for _, row in ipairs(RETRYABLE) do if type(row[1]) == "string" then known[row[1]] = true end end
    for _, row in ipairs(ROWS) do assert.is_true(known[errors.api_code(row[1])], unit.label(row[1])) end
  end)
end)
