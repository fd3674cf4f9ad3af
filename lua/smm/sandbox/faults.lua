-- Injected faults: a queue of faults consumed, in order, by matching API requests, and
-- how each one turns (or replaces) the panel's answer.
--
--   fault              performs the action?  what the client sees
--   html503            no                    503 + HTML "Service Unavailable" CDN page
--                                            (Retry-After only when retry_after is given)
--   html200            no                    200 + HTML JavaScript challenge page
--   rate429            no                    429 + Retry-After: N + {"error":"Too many requests"}
--   error500           no                    500 + {"error":"Internal error"}
--   redirect           no                    302 + Location: http://127.0.0.2:PORT/api/v2
--   reset_before_read  no                    connection reset (RST), no answer
--   reset_after_read   yes                   connection reset (RST) after the action ran
--   truncated          yes                   200, JSON cut mid-way, Content-Length of the cut
--   invalid_utf8       yes                   200, the answer with a string holding bad UTF-8
--   empty              yes                   200, empty body (Content-Length: 0)
--   slow               yes                   the answer after `delay` ms (default 2000)
--   big                yes                   the answer padded to `size` bytes, valid JSON
--   gzip               yes                   the answer gzip-encoded (stored blocks)
--   close              yes                   the answer, then the connection is closed
-- Parameters: times (default 1), action (default any), delay (ms), size (bytes),
-- retry_after (seconds, default 2), status (HTTP status to use instead of the default),
-- perform (1/0: override whether the action runs).
local json = require "smm.json"

local M = {}

M.PERFORMS = {
  html503 = false, html200 = false, rate429 = false, error500 = false, redirect = false,
  reset_before_read = false, reset_after_read = true, truncated = true, invalid_utf8 = true,
  empty = true, slow = true, big = true, gzip = true, close = true,
}

local Queue = {}
Queue.__index = Queue

function M.queue()
  return setmetatable({ pending = {}, fired = {} }, Queue)
end

-- Queue a fault from the admin form; returns the fault or nil + error.
function Queue:push(f)
  local name = f.fault
  if M.PERFORMS[name] == nil then return nil, "unknown fault: " .. tostring(name) end
  local perform = M.PERFORMS[name]
  if f.perform and f.perform ~= "" then perform = f.perform == "1" or f.perform == "true" end
  local fault = {
    fault = name,
    times = math.tointeger(tonumber(f.times or "1")) or 1,
    action = (f.action and f.action ~= "" and f.action ~= "any") and f.action or nil,
    delay = tonumber(f.delay or ""),
    size = math.tointeger(tonumber(f.size or "")),
    retry_after = f.retry_after,
    status = math.tointeger(tonumber(f.status or "")),
    perform = perform,
  }
  if fault.times < 1 then fault.times = 1 end
  self.pending[#self.pending + 1] = fault
  return fault
end

-- The first pending fault matching this action, consumed once (nil if none).
function Queue:take(action)
  local pending = self.pending
  if #pending == 0 then return nil end
  for i, f in ipairs(pending) do
    if not f.action or f.action == action then
      f.times = f.times - 1
      if f.times <= 0 then table.remove(pending, i) end
      return f
    end
  end
  return nil
end

-- Record that fault f fired on a request (kept for /sandbox/faults).
function Queue:record(f, action, performed, order)
  local fired = self.fired
  fired[#fired + 1] = { fault = f.fault, action = action, performed = performed, order = order }
  if #fired > 1000 then table.remove(fired, 1) end
end

------------------------------------------------------------------------------------------
-- gzip with stored deflate blocks, CRC32 in pure Lua

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if c & 1 == 1 then c = 0xEDB88320 ~ (c >> 1) else c = c >> 1 end
  end
  crc_table[i] = c
end

function M.crc32(s)
  local crc = 0xFFFFFFFF
  local byte = string.byte
  for i = 1, #s do
    crc = crc_table[(crc ~ byte(s, i)) & 0xFF] ~ (crc >> 8)
  end
  return crc ~ 0xFFFFFFFF
end

function M.gzip(s)
  local parts = { "\31\139\8\0\0\0\0\0\0\255" }
  local n, i = #s, 1
  repeat
    local len = math.min(65535, n - i + 1)
    local final = (i + len > n) and 1 or 0
    parts[#parts + 1] = string.pack("<BI2I2", final, len, (~len) & 0xFFFF)
    parts[#parts + 1] = s:sub(i, i + len - 1)
    i = i + len
  until i > n
  parts[#parts + 1] = string.pack("<I4I4", M.crc32(s), n & 0xFFFFFFFF)
  return table.concat(parts)
end

------------------------------------------------------------------------------------------
-- answers

local HTML503 = [[<!DOCTYPE html>
<html><head><title>503 Service Unavailable</title></head>
<body><h1>503 Service Unavailable</h1>
<p>The server is temporarily unable to service your request due to maintenance downtime
or capacity problems. Please try again later.</p>
<hr><center>cloudflare</center></body></html>
]]

local HTML200 = [[<!DOCTYPE html>
<html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="5">
<script>window._cf_chl_opt={cvId:'3',cType:'managed',cRay:'8c2f1a9b7d3e0000'};</script>
</head><body><div id="challenge-body-text">Checking if the site connection is secure.
Enable JavaScript and cookies to continue.</div>
<noscript>Please enable JavaScript.</noscript></body></html>
]]

-- Pad a JSON text with a valid extension to exactly `size` bytes (when size is larger).
local function pad(body, size)
  local need = size - #body
  if need <= 0 then return body end
  local first = body:sub(1, 1)
  if first == "{" then
    local prefix = '{"_padding":"'
    local empty = body == "{}"
    local fixed = #prefix + (empty and 0 or 1) -- prefix (its '{' replaces the body's), comma
    if need >= fixed then
      return prefix .. string.rep("x", need - fixed) .. '"' .. (empty and "" or ",") .. body:sub(2)
    end
  elseif first == "[" then
    return "[" .. string.rep(" ", need) .. body:sub(2)
  end
  return body .. string.rep(" ", need)
end
M.pad = pad

-- The answer for a request that fault f matched, before the action runs (faults that do
-- not perform it): a response table, or nil if the action must run first.
function M.early(f, ctx)
  if f.perform then return nil end
  return M.shape(f, nil, ctx)
end

-- Turn the panel's answer (res: status, body, content_type) into the faulty one.
-- res is nil for faults that did not perform the action.
function M.shape(f, res, ctx)
  local name = f.fault
  if name == "html503" then
    return { status = f.status or 503, body = HTML503, content_type = "text/html; charset=UTF-8",
      headers = f.retry_after and { "Retry-After: " .. f.retry_after } or nil }
  elseif name == "html200" then
    return { status = f.status or 200, body = HTML200, content_type = "text/html; charset=UTF-8" }
  elseif name == "rate429" then
    return { status = f.status or 429, body = '{"error":"Too many requests"}',
      content_type = "application/json", headers = { "Retry-After: " .. (f.retry_after or "2") } }
  elseif name == "error500" then
    return { status = f.status or 500, body = '{"error":"Internal error"}',
      content_type = "application/json" }
  elseif name == "redirect" then
    local loc = string.format("http://127.0.0.2:%d/api/v2", ctx.port)
    return { status = f.status or 302, body = "", content_type = "text/html",
      headers = { "Location: " .. loc } }
  elseif name == "reset_before_read" or name == "reset_after_read" then
    return { reset = true }
  end
  res = res or { status = 200, body = "{}", content_type = "application/json" }
  if f.status then res.status = f.status end
  if name == "truncated" then
    local body = res.body
    res.body = body:sub(1, math.max(1, #body // 2))
  elseif name == "invalid_utf8" then
    local bad = '"caf\195\40 \255\254 na\237ve"'
    local body = res.body
    if body:sub(1, 1) == "{" then
      res.body = '{"message":' .. bad .. (body == "{}" and "" or ",") .. body:sub(2)
    elseif body:sub(1, 1) == "[" then
      res.body = "[" .. bad .. (body == "[]" and "" or ",") .. body:sub(2)
    else
      res.body = bad
    end
  elseif name == "empty" then
    res.body = ""
  elseif name == "big" then
    res.body = pad(res.body, f.size or 1024 * 1024)
  elseif name == "gzip" then
    res.body = M.gzip(res.body)
    res.headers = res.headers or {}
    res.headers[#res.headers + 1] = "Content-Encoding: gzip"
    res.headers[#res.headers + 1] = "Vary: Accept-Encoding"
  elseif name == "close" then
    res.close = true
  end
  return res
end

M.json = json
return M
