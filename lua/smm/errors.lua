-- The one place that builds error objects, so every failure has the same fields and none of
-- them can carry the API key.
--
-- An error is a table:
--   kind        "invalid" | "network" | "timeout" | "http" | "decode" | "api" | "book" (the
--               order book: see smm.book; `book` names it, never with its password)
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

local KINDS = { invalid = true, network = true, timeout = true, http = true, decode = true, api = true,
                book = true }

function Error:__tostring()
  local where = self.action and (" (" .. self.action .. ")") or ""
  local status = self.status and (" [HTTP " .. self.status .. "]") or ""
  return "smm " .. self.kind .. " error" .. where .. status .. ": " .. self.message
end

-- "failed: " .. err, err .. "\n": the same text as tostring(err)
function Error.__concat(a, b)
  return tostring(a) .. tostring(b)
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

-- Scrubbing. A secret is found in every form a panel, a proxy or a page may echo it in, even
-- mixed within one echo: raw; percent-encoded (a form body, a query string; a space also as
-- +); JSON-escaped (PHP's json_encode writes / as \/, and \uXXXX for non-ASCII and, with its
-- HEX flags, for < > & ' "); HTML-escaped (htmlspecialchars: &amp; &lt; &gt; &quot; &#039;, or a numeric
-- reference). So each character of the secret is matched against the list of its forms.

local HTML_NAMED = { ["&"] = { "&amp;" }, ["<"] = { "&lt;" }, [">"] = { "&gt;" },
  ['"'] = { "&quot;" }, ["'"] = { "&#039;", "&apos;" } }

-- Adds build("X") and build("x"): a form with upper-case hex digits, then lower-case ones.
local function both_cases(list, build)
  local upper, lower = build("X"), build("x")
  list[#list + 1] = upper
  if lower ~= upper then list[#list + 1] = lower end
end

-- Every form of one character (bytes: its UTF-8 sequence, cp: its code point, or nil when the
-- bytes are no valid UTF-8).
local function forms_of(bytes, cp)
  local list = { bytes }
  if bytes:find("^[%w%-%._~]$") then return list end -- never escaped by anyone
  both_cases(list, function(x)
    return (bytes:gsub(".", function(c) return string.format("%%%02" .. x, c:byte()) end))
  end)
  if bytes == "/" or bytes == '"' or bytes == "\\" then list[#list + 1] = "\\" .. bytes end
  if bytes == " " then list[#list + 1] = "+" end -- a form body (application/x-www-form-urlencoded)
  if cp then
    both_cases(list, function(x)
      if cp < 0x10000 then return string.format("\\u%04" .. x, cp) end
      local v = cp - 0x10000 -- a UTF-16 surrogate pair
      return string.format("\\u%04" .. x .. "\\u%04" .. x, 0xD800 + math.floor(v / 0x400), 0xDC00 + v % 0x400)
    end)
    list[#list + 1] = "&#" .. cp .. ";"
    both_cases(list, function(x) return string.format("&#x%" .. x .. ";", cp) end)
  end
  for _, named in ipairs(HTML_NAMED[bytes] or {}) do list[#list + 1] = named end
  -- the longest first: "&amp;" is scrubbed whole, not as "&" followed by "amp;"
  table.sort(list, function(a, b) return #a > #b end)
  return list
end

-- secret -> { { form, ... } per character }
local function compile(secret)
  local units, i, n = {}, 1, #secret
  while i <= n do
    local b = secret:byte(i)
    local len = b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC0 and 2 or 1
    local bytes = secret:sub(i, i + len - 1)
    local cp
    if len == 1 then
      cp = b
    elseif #bytes == len and bytes:find("^.[\128-\191]+$") then
      cp = b % (2 ^ (7 - len))
      for k = 2, len do cp = cp * 64 + bytes:byte(k) % 64 end
    else
      bytes, len = secret:sub(i, i), 1 -- not UTF-8: matched byte by byte, as it was sent
    end
    units[#units + 1] = forms_of(bytes, cp and math.floor(cp))
    i = i + len
  end
  -- the leading characters that have one form only: found by one plain find, not character by
  -- character
  local prefix = {}
  while units[#prefix + 1] and #units[#prefix + 1] == 1 do prefix[#prefix + 1] = units[#prefix + 1][1] end
  units.prefix, units.prefixed = table.concat(prefix), #prefix
  return units
end

-- The end of a match of units[u..] starting at pos, or nil. Forms of one character can share a
-- prefix ("&" and "&amp;"): where two fit, each is tried (recursion only there, so that a long
-- key costs no deep call chain).
local function match_from(text, pos, units, u)
  local n = #units
  while u <= n do
    local first, more
    for _, form in ipairs(units[u]) do
      if text:sub(pos, pos + #form - 1) == form then
        if not first then first = form else
          more = more or {}
          more[#more + 1] = form
        end
      end
    end
    if not first then return nil end
    if more then
      local last = match_from(text, pos + #first, units, u + 1)
      for _, form in ipairs(more) do
        if last then break end
        last = match_from(text, pos + #form, units, u + 1)
      end
      return last
    end
    pos, u = pos + #first, u + 1
  end
  return pos - 1
end

local function replace_all(text, units)
  local firsts, next_at = units[1], {}
  local prefix, prefixed = units.prefix, units.prefixed
  local out, start, from = {}, 1, 1
  while true do
    local pos, last
    if prefixed > 0 then
      pos = text:find(prefix, from, true)
      if not pos then break end
      last = match_from(text, pos + #prefix, units, prefixed + 1)
    else
      -- the next place any form of the first character occurs (each form's last find is kept)
      for i, form in ipairs(firsts) do
        local at = next_at[i]
        if at ~= false and (at == nil or at < from) then
          at = text:find(form, from, true) or false
          next_at[i] = at
        end
        if at and (not pos or at < pos) then pos = at end
      end
      if not pos then break end
      last = match_from(text, pos, units, 1)
    end
    if last then
      out[#out + 1] = text:sub(start, pos - 1)
      out[#out + 1] = "***"
      start, from = last + 1, last + 1
    else
      from = pos + 1
    end
  end
  if start == 1 then return text end
  out[#out + 1] = text:sub(start)
  return table.concat(out)
end

-- Compiled lists, per list table (a client's) or per secret string (smm.redact's callers).
local compiled_lists = setmetatable({}, { __mode = "k" })
local compiled_strings, compiled_count = {}, 0

local function compiled(secrets)
  if type(secrets) == "table" then
    local c = compiled_lists[secrets]
    if not c then
      local list = {}
      for _, s in ipairs(secrets) do
        if type(s) == "string" and s ~= "" then list[#list + 1] = s end
      end
      -- the longest first: a password inside the whole userinfo must not cut it in two
      table.sort(list, function(a, b) return #a > #b end)
      c = {}
      for i, s in ipairs(list) do c[i] = compile(s) end
      compiled_lists[secrets] = c
    end
    return c
  end
  local c = compiled_strings[secrets]
  if not c then
    if compiled_count >= 64 then compiled_strings, compiled_count = {}, 0 end
    c = { compile(secrets) }
    compiled_strings[secrets], compiled_count = c, compiled_count + 1
  end
  return c
end

-- secrets: one string (the API key) or a list of strings (the key and the credentials of the
-- client's URL and proxy: see smm.options.secrets). Every occurrence becomes ***.
local function scrub(text, secrets)
  if type(text) ~= "string" or not secrets or secrets == "" then return text end
  for _, units in ipairs(compiled(secrets)) do text = replace_all(text, units) end
  return text
end
M.scrub = scrub

-- The fixed vocabulary that retries, wait, the CLI's exit codes and callers compare against: never
-- scrubbed, so that a very short key (one character is a valid key) cannot turn "network" into
-- "n***twork". None of them carries text from the panel or the URL.
local FIXED = { kind = true, code = true, action = true, field = true, state = true }

-- fields: kind and message required, the rest as listed above. secrets: what must not survive
-- into the error (a string or a list, see scrub); every free-text field is scrubbed of it.
function M.new(fields, secrets)
  assert(KINDS[fields.kind], "smm.errors: unknown kind")
  local err = setmetatable({}, Error)
  for name, value in pairs(fields) do
    err[name] = FIXED[name] and value or scrub(value, secrets)
  end
  err.message = err.message or err.kind
  if err.retryable == nil then err.retryable = false end
  if err.ambiguous == nil then err.ambiguous = false end
  return err
end

-- An error the panel answered in an `error` field, the whole answer's ({"error": "..."}) or
-- one id's: `text` is that field's text (normalize.error_text), from which its code and
-- whether it passes by itself are read. fields: action, and what the HTTP exchange adds
-- (status, retry_after, ambiguous; retryable = true when the status says it may pass, false
-- when nothing may repeat it; message, when the text must be told with more around it).
-- Every "api" error is built here.
function M.api(text, fields, secrets)
  local code = M.api_code(text)
  fields.kind, fields.code = "api", code
  if fields.message == nil then fields.message = text end
  if fields.retryable == nil then fields.retryable = M.api_retryable(code) end
  return M.new(fields, secrets)
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
