-- Panel dialects: how one panel's API differs from the common PerfectPanel form in the names it
-- uses, never in what it does. A dialect is a small table:
--   key_field      the form field that carries the API key ("key"), or false: it goes in a header
--   key_header     the header that carries it ("X-Api-Key", "Authorization"), or nil
--   key_prefix     what comes before the key in that header ("Bearer "), or ""
--   service_field  the field naming the service of an add, and the id of a service list's
--                  records ("service"; "package")
--   error_field    the field of an error answer ("error"; "errors": a string, a list of
--                  messages or an object of them)
-- The client option `dialect` names one of M.NAMES or gives such a table (a custom dialect,
-- checked here: a misspelled field or name raises). Transports never see a dialect: they get
-- extra header lines (M.headers), and only the client puts the key there.
local M = {}

local BUILTIN = {
  -- the common form: POST key + action, `service`, answers {"error": "..."}
  perfectpanel = { key_field = "key", service_field = "service", error_field = "error" },
  -- panels that call the key api_token and a service a package, and answer {"errors": ...}
  api_token = { key_field = "api_token", service_field = "package", error_field = "errors" },
  -- the key in a header instead of the form
  x_api_key = { key_field = false, key_header = "X-Api-Key", service_field = "service",
                error_field = "error" },
  bearer = { key_field = false, key_header = "Authorization", key_prefix = "Bearer ",
             service_field = "service", error_field = "error" },
}

M.NAMES = { "perfectpanel", "api_token", "x_api_key", "bearer" }
M.DEFAULT = "perfectpanel"

local FIELDS = { key_field = true, key_header = true, key_prefix = true, service_field = true,
                 error_field = true, name = true }

-- Headers a dialect may not take for the key: the transports write these themselves.
local RESERVED = { host = true, ["content-length"] = true, ["content-type"] = true,
                   ["transfer-encoding"] = true, connection = true, expect = true,
                   ["accept-encoding"] = true, ["user-agent"] = true, accept = true }

-- A refusal is thrown as a table { problem = } and caught by M.resolve: the caller (smm.options)
-- raises it at the level of the user's call.
local function raise(message) error({ problem = message }, 0) end

local function field_name(v) return type(v) == "string" and v:find("^[%a_][%w_]*$") ~= nil end

-- A custom dialect's table, checked and completed (names left out are the common form's).
local function custom(t)
  for name in pairs(t) do
    if not FIELDS[name] then raise("has an unknown field '" .. tostring(name) .. "'") end
  end
  local d = { name = t.name or "custom", key_field = t.key_field, key_header = t.key_header,
              key_prefix = t.key_prefix or "", service_field = t.service_field or "service",
              error_field = t.error_field or "error" }
  if type(d.name) ~= "string" then raise("field 'name' must be a string") end
  if d.key_field == nil then d.key_field = d.key_header == nil and "key" or false end
  if d.key_field ~= false and not field_name(d.key_field) then
    raise("field 'key_field' must be a form field name or false, got " .. tostring(d.key_field))
  end
  if d.key_header ~= nil then
    if type(d.key_header) ~= "string" or not d.key_header:find("^[%w!#$%%&'*+.^_`|~-]+$") then
      raise("field 'key_header' must be a header name like \"X-Api-Key\"")
    end
    if RESERVED[d.key_header:lower()] then
      raise("field 'key_header' cannot be " .. d.key_header .. ": the transport writes that header")
    end
  elseif d.key_field == false then
    raise("sends the key nowhere: give key_field or key_header")
  end
  if type(d.key_prefix) ~= "string" or d.key_prefix:find("[%c]") then
    raise("field 'key_prefix' must be a string without control characters")
  end
  for _, name in ipairs{ "service_field", "error_field" } do
    if not field_name(d[name]) then raise("field '" .. name .. "' must be a field name") end
  end
  if d.key_field == "action" or d.key_field == d.service_field then
    raise("field 'key_field' cannot be '" .. d.key_field .. "'")
  end
  return d
end

local function resolve(v)
  if v == nil then v = M.DEFAULT end
  if type(v) == "table" then return custom(v) end
  local d = type(v) == "string" and BUILTIN[v]
  if not d then
    raise("must be one of " .. table.concat(M.NAMES, ", ") .. " or a table, got " ..
      (type(v) == "string" and string.format("%q", v) or type(v)))
  end
  local copy = { name = v, key_prefix = "" }
  for name, value in pairs(d) do copy[name] = value end
  return copy
end

-- The dialect the option names (nil: the default) -> a dialect table, or nil and what is wrong
-- with it (naming the value).
function M.resolve(v)
  local ok, d = pcall(resolve, v)
  if ok then return d end
  if type(d) == "table" and d.problem then return nil, d.problem end
  error(d, 0)
end

-- Whether requests in dialect d are exactly the common form's (the client's fast path).
function M.plain(d)
  return d.key_field == "key" and d.key_header == nil and d.service_field == "service" and
    d.error_field == "error"
end

-- The extra header lines ("Name: value") requests in dialect d carry, with the key: for the
-- transports. nil when there are none.
function M.headers(d, key)
  if not d.key_header then return nil end
  return { d.key_header .. ": " .. d.key_prefix .. key }
end

-- A request's form fields in dialect d: the key (unless it goes in a header) and the action,
-- and for an add the service under the dialect's name. In place.
function M.outgoing(d, fields, key, action)
  if d.key_field then fields[d.key_field] = key end
  fields.action = action
  local sf = d.service_field
  if action == "add" and sf ~= "service" and fields.service ~= nil then
    fields[sf], fields.service = fields.service, nil
  end
  return fields
end

-- The text of an `errors` value: a string as it is; a list of messages, or an object of them
-- (by field name, each a string or a list: a validation answer), joined with "; " in a fixed
-- order. The first message comes first, so that errors.api_code classifies it by its start.
local function messages(v, into, depth)
  local t = type(v)
  if t == "string" then -- messages only: a count ({"errors": 0}) is no error
    if v:find("%S") then into[#into + 1] = v end
  elseif t == "table" and depth < 3 then
    if type(v.message) == "string" then return messages(v.message, into, depth + 1) end
    if v[1] ~= nil then
      for _, item in ipairs(v) do messages(item, into, depth + 1) end
    else
      local names = {}
      for name in pairs(v) do if type(name) == "string" then names[#names + 1] = name end end
      table.sort(names)
      for _, name in ipairs(names) do messages(v[name], into, depth + 1) end
    end
  end
  return into
end

function M.error_text(v)
  local list = messages(v, {}, 0)
  if #list == 0 then return nil end
  return table.concat(list, "; ")
end

-- A decoded answer of dialect d read as the common form: each object's d.error_field (at the
-- top, in a multi-id answer's entries, and in their values: {"order": 1, "refill": {"errors":
-- ...}}) becomes `error` with its text. Values with no message ([], "", null, a count) are no
-- error and stay as they are. In place.
local function adopt(t, field, depth)
  local v = t[field]
  if v ~= nil and t.error == nil then
    local text = M.error_text(v)
    if text then t.error, t[field] = text, nil end
  end
  if depth < 2 then
    for _, item in pairs(t) do
      if type(item) == "table" then adopt(item, field, depth + 1) end
    end
  end
end

function M.adopt_errors(json, field)
  if type(json) == "table" then adopt(json, field, 0) end
  return json
end

-- A service list of dialect d read as the common form: records naming their id by
-- d.service_field get it as `service`. `convert` (normalize.integer) when the transport's
-- schema, which names `service`, has already been applied to the other fields. In place.
function M.adopt_services(list, field, convert)
  for i = 1, #list do
    local s = list[i]
    if type(s) == "table" and s.service == nil and s[field] ~= nil then
      s.service, s[field] = s[field], nil
      if convert then s.service = convert(s.service) end
    end
  end
  return list
end

return M
