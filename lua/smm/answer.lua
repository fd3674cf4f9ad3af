-- Reads what a transport brought back and says what it means for the API: the decoded JSON
-- answer, or an error of the right kind. Transports know HTTP; this file knows panels.
--
-- A transport result is either an HTTP answer
--   { status = 200, json = <decoded or nil>, body = <raw, when not JSON>, decode_error = ...,
--     content_type = <at least when not JSON>, retry_after = <seconds>, location = ...,
--     normalized = <true when the request's schema was applied> }
-- or a failure before any answer
--   { failure = "network" | "timeout" | "too_large" | "tls", message = ..., sent = <bool> }
local errors = require "smm.errors"
local normalize = require "smm.normalize"
local dialects = require "smm.dialect"

local M = {}

local EXCERPT = 160

-- The key is scrubbed before the cut: a key straddling the cut would leave a prefix behind.
local function excerpt(body, secret)
  if type(body) ~= "string" or body == "" then return nil end
  body = errors.scrub(body, secret)
  local title = body:match("<[Tt][Ii][Tt][Ll][Ee][^>]*>%s*(.-)%s*</[Tt][Ii][Tt][Ll][Ee]>")
  local s = body:gsub("%s+", " ")
  if #s > EXCERPT then s = s:sub(1, EXCERPT) .. "..." end
  return s, title
end

local function looks_html(result)
  local ct = result.content_type and result.content_type:lower() or ""
  return ct:find("html", 1, true) ~= nil or (result.body or ""):find("^%s*<") ~= nil
end

-- Statuses that prove a request was not carried out: refused before any action was taken (rate
-- limited, no such endpoint, method refused, not read whole, too large, a proxy that would not
-- forward it). Any other answer that is not JSON the client understands (a redirect, a 5xx, a
-- 403 or an HTML 200 page) may come after the panel acted on it.
local NOTHING_DONE = { [404] = true, [405] = true, [407] = true, [408] = true, [413] = true,
                       [414] = true, [429] = true, [431] = true }

-- One rule for a JSON error of a changing action: it proves the refusal only at a 2xx (the
-- API's own way) or a 4xx (panels answer 400 and the like for refusals, and a client error is
-- refused before the action). A 3xx or a 5xx (or a 1xx) proves nothing: a panel or proxy may
-- act on the request and then redirect or crash, whatever JSON comes along.
local function error_proves_refusal(status)
  return status ~= nil and ((status >= 200 and status < 300) or (status >= 400 and status < 500))
end

-- The result an answer of a changing action names (an order or refill id), as text, when it
-- names one (null, false, "" and 0 name nothing).
local function names_result(json)
  -- order_id / refill_id: the names some panels (and the api_token variant) give the same ids
  for _, name in ipairs{ "order", "refill", "order_id", "refill_id" } do
    local v = normalize.integer(json[name])
    if v ~= nil and v ~= false and v ~= 0 then
      local t = type(v)
      return name, t == "number" and normalize.number_to_decimal(v) or t == "string" and v or t
    end
  end
end

-- A panel of the api_token dialect answers {"errors": ...}: a client of another dialect that
-- gets one says so, since the key, the service and the errors are then all named otherwise.
local OTHER_DIALECT = " (the panel answered \"errors\" instead of \"error\": it may speak the " ..
  "api_token dialect, smm.new{ ..., dialect = \"api_token\" })"

-- ctx: { action =, idempotent =, secret =, [error_field =] } (error_field: the dialect's name
-- for `error`, when it is not "error": see smm.dialect). `idempotent` false means the action spends or
-- changes something, so an answer that does not prove its outcome leaves it unknown
-- (ambiguous): only JSON the client understands, or a status in NOTHING_DONE, is definite.
-- Returns json, normalized (true when the transport applied the request's schema), or nil, err.
function M.read(result, ctx)
  -- the usual answer first: JSON with a 2xx that is no error
  local json = result.json
  local hint, beside
  if json ~= nil then
    local status = result.status
    if type(json) == "table" then
      if ctx.error_field then
        dialects.adopt_errors(json, ctx.error_field)
      elseif json.errors ~= nil and json.error == nil then
        local text = dialects.error_text(json.errors)
        if text then
          json.error, json.errors, hint = text, nil, OTHER_DIALECT
          for name in pairs(json) do
            if name ~= "error" then beside = true break end
          end
        end
      end
      if json.error ~= nil and not normalize.is_error(json.error) then
        json.error = nil -- {"order": 23501, "error": null}: the field is there, the error is not
      end
    end
    if status >= 200 and status < 300 and (type(json) ~= "table" or json.error == nil) then
      return json, result.normalized == true
    end
  end

  local action, secret = ctx.action, ctx.secret
  local changes = not ctx.idempotent

  local failure = result.failure
  if failure then
    local sent = result.sent ~= false
    if failure == "too_large" then
      return nil, errors.new({ kind = "http", action = action, ambiguous = changes,
        message = "the answer is larger than max_body: " .. tostring(result.message) }, secret)
    end
    local kind = failure == "timeout" and "timeout" or "network"
    local where = sent and "" or " (nothing was sent)"
    return nil, errors.new({ kind = kind, action = action, message = tostring(result.message) .. where,
      retryable = true, ambiguous = changes and sent, sent = sent }, secret)
  end

  local status = result.status
  if type(json) == "table" and json.error ~= nil then
    local text = normalize.error_text(json)
    local fields = { action = action, status = status, retry_after = result.retry_after,
      ambiguous = changes and not error_proves_refusal(status) }
    if status == 429 or (status and status >= 500) then fields.retryable = true end
    -- one that names an order and an error at once has said nothing for certain
    local named, id = nil, nil
    if changes then named, id = names_result(json) end
    if named then
      fields.message = "the panel answered both " .. named .. " " .. id ..
        " and an error (" .. text .. "): the " .. named .. " may exist; check before retrying"
      fields.retryable, fields.ambiguous = false, true
    elseif hint then
      fields.message = text .. hint
      if beside and changes then
        -- read as another dialect's refusal only when it is nothing else: beside it, a field
        -- of that panel's own ("order_id", "data") may name what was done
        fields.ambiguous, fields.retryable = true, false
        fields.message = fields.message .. "; the answer holds more than the errors: it may " ..
          "have been carried out, check before retrying"
      end
    elseif ctx.dialect and errors.api_code(text) == "invalid_key" then
      -- a key refused where it was put: the panel may read it from elsewhere
      local d = ctx.dialect
      fields.message = text .. " (the key was sent " .. (d.key_header and ("in the header " ..
        d.key_header) or ("as the field " .. tostring(d.key_field))) .. ", as the dialect " ..
        tostring(d.name) .. " has it: does the panel speak that dialect?)"
    end
    return nil, errors.api(text, fields, secret)
  end

  if status >= 300 and status < 400 then
    -- a panel or proxy may act on the request and then redirect (303 See Other)
    return nil, errors.new({ kind = "http", action = action, status = status, ambiguous = changes,
      message = "the panel redirected to " .. tostring(result.location or "another address") ..
        "; redirects are not followed because the API key is in the body: use that URL",
    }, secret)
  end

  if status >= 400 or status < 200 then
    local body, title = excerpt(result.body, secret)
    local retryable = status == 429 or status == 408 or status >= 500
    local message = "HTTP " .. status .. (title and (": " .. title) or "")
    if status == 429 then message = message .. " (rate limited" ..
      (result.retry_after and (", retry after " .. result.retry_after .. " s)") or ")") end
    if status == 404 then
      message = message .. " (no API at this URL: check its path, usually https://PANEL/api/v2)"
    end
    return nil, errors.new({ kind = "http", action = action, status = status, message = message,
      retryable = retryable, retry_after = result.retry_after, body = body,
      ambiguous = changes and (json ~= nil or not NOTHING_DONE[status]) }, secret)
  end

  if json == nil then
    local body, title = excerpt(result.body, secret)
    local message
    if result.decode_error then
      message = "the answer is not valid JSON (" .. tostring(result.decode_error) .. ")"
    elseif looks_html(result) then
      message = "the panel answered an HTML page" .. (title and (" (" .. title .. ")") or "") ..
        " instead of JSON: a CDN challenge or an error page"
    elseif body == nil then
      message = "the panel answered an empty body"
    else
      message = "the answer is not JSON"
    end
    return nil, errors.new({ kind = "decode", action = action, status = status, message = message,
      body = body, retryable = true, ambiguous = changes }, secret)
  end

  return json, result.normalized == true
end

return M
