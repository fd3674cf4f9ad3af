-- The dialects the sandbox panel speaks (option --dialect, or dialect in POST /sandbox/config),
-- as panels of other scripts do: where the key comes from, what the service of an add is
-- called, and what an error answer's field is called. The panel itself (panel.lua) speaks the
-- common form; a request is read into it here, and its answer written out of it. Independent
-- of the client library (which has its own smm.dialect).
--   perfectpanel  key, service, {"error": "..."}                      (the default)
--   api_token     api_token, package (also the service list's id), {"errors": [...]} at the
--                 top of an answer and {"errors": "..."} in a per-id entry
--   x_api_key     the key in the header X-Api-Key, the rest as perfectpanel
--   bearer        the key in the header Authorization: Bearer KEY, the rest as perfectpanel
-- A request in another dialect finds no key where this one looks: "Invalid API key".
local M = {}

M.NAMES = { perfectpanel = true, api_token = true, x_api_key = true, bearer = true }

function M.check(name)
  if not M.NAMES[name] then
    return nil, "dialect: perfectpanel|api_token|x_api_key|bearer, got " .. tostring(name)
  end
  return name
end

-- The request's fields as the panel reads them (a copy; the key field of the common form is
-- ignored unless the dialect is the common one).
function M.incoming(name, req, f)
  if name == "perfectpanel" or name == nil then return f end
  local out = {}
  for k, v in pairs(f) do out[k] = v end
  out.key = nil
  if name == "api_token" then
    out.key, out.api_token = f.api_token, nil
    out.service, out.package = f.package, nil
  elseif name == "x_api_key" then
    out.key = req.headers["x-api-key"]
  elseif name == "bearer" then
    out.key = (req.headers.authorization or ""):match("^[Bb]earer +(%S+)%s*$")
  end
  return out
end

-- An answer's body in the dialect (the panel's JSON text). Only api_token names things
-- otherwise: the keys are rewritten as JSON keys (a quote inside a string value is escaped,
-- so `"error":` occurs only as a key).
function M.outgoing(name, action, body)
  if name ~= "api_token" or type(body) ~= "string" then return body end
  local top = body:match('^%s*{"error":(".-")}%s*$')
  if top then return '{"errors":[' .. top .. ']}' end
  body = body:gsub('"error":', '"errors":')
  if action == "services" then body = body:gsub('"service":', '"package":') end
  return body
end

return M
