-- A webhook's POST over nginx's cosockets, for book:deliver inside nginx (smm.book.hooks uses
-- it in place of LuaSocket there, which would block the worker). Same contract as hooks'
-- own post: true, or nil, why, unreachable (true when the receiver could not be reached).
--
-- One request per connection (Connection: close): events are few and far between, and the
-- answer's body is only read for the message of a refusal. TLS checks the certificate against
-- lua_ssl_trusted_certificate (nginx.conf) and the host name.
local M = {}

local function excerpt(text)
  text = tostring(text or ""):gsub("%s+", " ")
  if #text > 200 then text = text:sub(1, 200) .. "..." end
  return text
end

-- hook: { url, scheme, header, secret, timeout (ms) }; event: { id, type, body };
-- signature: the header's value (smm.book.hooks computes it).
function M.post(hook, event, signature)
  local scheme, authority, path = hook.url:match("^(%a[%w+.-]*)://([^/?#]*)([^#]*)")
  if not scheme then return nil, "is not an http(s) URL" end
  authority = authority:match("@([^@]*)$") or authority
  local host, port = authority:match("^%[(.-)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]*):?(%d*)$") end
  port = tonumber(port) or (scheme:lower() == "https" and 443 or 80)
  if path == "" then path = "/" end
  local sock = ngx.socket.tcp()
  sock:settimeout(hook.timeout)
  local ok, err = sock:connect(host, port)
  if not ok then
    if err == "timeout" then return nil, "timed out after " .. hook.timeout .. " ms", true end
    return nil, "could not be reached: " .. excerpt(err), true
  end
  if scheme:lower() == "https" then
    ok, err = sock:sslhandshake(nil, host, true)
    if not ok then sock:close() return nil, "TLS failed: " .. excerpt(err), true end
  end
  local request = table.concat({
    "POST " .. path .. " HTTP/1.1",
    "Host: " .. authority,
    "Content-Type: application/json",
    "Content-Length: " .. #event.body,
    hook.header .. ": " .. signature,
    "X-Smm-Event: " .. event.type,
    "X-Smm-Event-Id: " .. tostring(event.id),
    "Connection: close",
    "", event.body }, "\r\n")
  ok, err = sock:send(request)
  if not ok then sock:close() return nil, "could not be reached: " .. excerpt(err), true end
  local line
  line, err = sock:receive("*l")
  if not line then
    sock:close()
    if err == "timeout" then return nil, "timed out after " .. hook.timeout .. " ms", true end
    return nil, "could not be reached: " .. excerpt(err), true
  end
  local code = tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
  if code and code >= 200 and code < 300 then sock:close() return true end
  local rest = sock:receive("*a") or ""
  sock:close()
  local body = excerpt(rest:match("\r\n\r\n(.*)$") or "")
  return nil, "answered HTTP " .. tostring(code) .. (code and code >= 300 and code < 400 and
    " (redirects are not followed)" or "") .. (body ~= "" and (": " .. body) or "")
end

return M
