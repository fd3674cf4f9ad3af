-- The lua_shared_dict an account's state lives in (option `shared_dict`), and the names of its
-- entries there: the one rule every user of the dict (the service list, the rate limit) follows.
local options = require "smm.options"

local M = {}

-- The dict named `name`, or nil outside nginx (there are no shared dicts there). A name that
-- nginx.conf does not declare is a configuration mistake: it raises, blaming the caller
-- `level` levels up (as error's level counts, from the caller of M.dict).
function M.dict(name, level)
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.shared) ~= "table" then return nil end
  local dict = ngx.shared[name]
  if not dict then
    error("smm.new: option 'shared_dict': no lua_shared_dict named '" .. tostring(name) ..
      "' (declare it in nginx.conf: lua_shared_dict " .. tostring(name) .. " 1m;)", (level or 1) + 1)
  end
  return dict
end

-- The name of an account's entry for `what` ("services", "rate"): the panel's URL as it may be
-- shown (no user:password@, no query) and a digest of the whole URL and the key. Panels answer
-- per account (prices, rate limits), so two keys on one panel never share an entry; the key
-- and the URL's credentials never appear in it, since dict:get_keys() lists the names to any
-- code in the server. Only called inside nginx, whose digests it uses.
function M.entry(what, url, key)
  local ngx = rawget(_G, "ngx")
  return "smm:" .. what .. ":" .. options.printable_url(url) .. ":" ..
    ngx.md5(ngx.sha1_bin(url .. "\0" .. tostring(key or "")))
end

return M
