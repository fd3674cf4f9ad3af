-- Where the command line finds the panel and the key: --url/--key, a named profile of the
-- config file, SMM_API_URL/SMM_API_KEY, or the `default` profile.
--
-- The config file (--config FILE, else $SMM_CONFIG, else $XDG_CONFIG_HOME/smm/config, else
-- ~/.config/smm/config) is a small INI:
--
--   # comments start with # or ;
--   [profile default]        ([default] is the same)
--   url = https://panel.example/api/v2
--   key = ...
--   timeout = 20000          (any smm.new option: ms, counts, booleans, strings)
--   rate_limit = 120/60000   (requests / milliseconds)
--
-- Precedence, field by field: --url/--key, then the profile named by --profile or SMM_PROFILE,
-- then the environment, then the `default` profile. A profile named explicitly is one unit:
-- its url is never paired with a key from the environment (the key of one panel must not
-- travel to another). The key is never shown: `smm config` prints it as ***.
local args = require "smm.cli.args"

local M = {}

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function ms(v)
  local n = args.to_number(v)
  if n and n >= 0 then return n end
  return nil, "must be a non-negative number (milliseconds)"
end
local function count(v)
  local n = args.tointeger(tonumber(v))
  if n and n >= 0 then return n end
  return nil, "must be a whole number"
end
local function bool(v)
  local s = v:lower()
  if s == "true" or s == "yes" or s == "1" or s == "on" then return true end
  if s == "false" or s == "no" or s == "0" or s == "off" then return false end
  return nil, "must be true or false"
end
local function text(v) return v end
local function rate(v)
  local r, p = v:match("^(%d+)%s*/%s*(%d+)$")
  if not r then return nil, "must be REQUESTS/MILLISECONDS, like 120/60000" end
  return { requests = tonumber(r), per = tonumber(p) }
end

-- Options a profile may set, and how their text becomes a value for smm.new.
M.OPTIONS = {
  url = text, key = text, timeout = ms, connect_timeout = ms, retries = count, retry_base = ms,
  retry_max = ms, concurrency = count, max_body = count, services_ttl = ms, proxy = text,
  cainfo = text, user_agent = text, ssl_verify = bool, validate = bool, rate_limit = rate,
}

function M.default_path(getenv)
  getenv = getenv or os.getenv
  local explicit = getenv("SMM_CONFIG")
  if explicit and explicit ~= "" then return explicit, true end
  local xdg = getenv("XDG_CONFIG_HOME")
  if xdg and xdg ~= "" then return xdg .. "/smm/config", false end
  local home = getenv("HOME") or "."
  return home .. "/.config/smm/config", false
end

-- text -> { [name] = { options..., _line = n } }, or nil, "FILE:LINE: message"
function M.parse(text_in, path)
  local profiles, current, lineno = {}, nil, 0
  for raw in (text_in .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    local line = trim(raw:gsub("\r$", ""))
    local where = path .. ":" .. lineno .. ": "
    if line == "" or line:find("^[#;]") then -- luacheck: ignore 542
    elseif line:find("^%[") then
      local name = line:match("^%[%s*profile%s+([^%]]-)%s*%]$") or line:match("^%[%s*([%w_.%-]+)%s*%]$")
      if not name or name == "" then return nil, where .. "expected [profile NAME]" end
      if profiles[name] then return nil, where .. "profile '" .. name .. "' is defined twice" end
      current = { _line = lineno }
      profiles[name] = current
    else
      local k, v = line:match("^([%w_%-]+)%s*=%s*(.-)$")
      if not k then return nil, where .. "expected name = value" end
      k = k:gsub("%-", "_")
      if not current then return nil, where .. "'" .. k .. "' is outside a [profile NAME] section" end
      local quoted = v:match('^"(.*)"$') or v:match("^'(.*)'$")
      if quoted then v = quoted end
      local convert = M.OPTIONS[k]
      if not convert then return nil, where .. "unknown option '" .. k .. "'" end
      local value, problem = convert(v)
      if value == nil then return nil, where .. "'" .. k .. "' " .. problem end
      current[k] = value
    end
  end
  return profiles
end

-- Reads the config file. Missing is fine unless the file was named explicitly.
function M.load(path, explicit)
  local f, open_err = io.open(path, "r")
  if not f then
    if explicit then return nil, "cannot read config file: " .. tostring(open_err) end
    return {}
  end
  local content = f:read("*a")
  f:close()
  return M.parse(content, path)
end

-- The URL as it may be shown: the library's rule, the one place that knows an @ may sit inside
-- a password.
M.printable_url = require("smm").printable_url

-- flags: parsed command line flags. Returns
--   { url =, key =, options = { for smm.new without url/key }, profile =, path =,
--     sources = { url = "...", key = "..." }, profiles = { names } }
-- or nil, message.
function M.resolve(flags, getenv)
  getenv = getenv or os.getenv
  local path, explicit = M.default_path(getenv)
  if flags.config then path, explicit = flags.config, true end
  local profiles, err = M.load(path, explicit)
  if not profiles then return nil, err end

  local names = {}
  for name in pairs(profiles) do names[#names + 1] = name end
  table.sort(names)

  local wanted = flags.profile or getenv("SMM_PROFILE")
  if wanted == "" then wanted = nil end
  local profile, profile_name
  if wanted then
    profile = profiles[wanted]
    if not profile then
      return nil, "no profile '" .. wanted .. "' in " .. path ..
        (#names > 0 and (" (profiles: " .. table.concat(names, ", ") .. ")") or "")
    end
    profile_name = wanted
  end

  local env_url, env_key = getenv("SMM_API_URL"), getenv("SMM_API_KEY")
  if env_url == "" then env_url = nil end
  if env_key == "" then env_key = nil end

  local r = { path = path, profiles = names, sources = {}, options = {} }
  local source
  if profile then
    source = { url = profile.url, key = profile.key, options = profile,
               label = "profile " .. profile_name }
  elseif env_url or env_key then
    source = { url = env_url, key = env_key, options = profiles.default or {},
               label = "environment", url_label = "SMM_API_URL", key_label = "SMM_API_KEY" }
    profile_name = profiles.default and "default" or nil
    -- the environment names the panel: the default profile's key is not sent to it
    if env_url and not env_key then source.key = nil end
    if env_key and not env_url and profiles.default then source.url = profiles.default.url end
  elseif profiles.default then
    profile = profiles.default
    profile_name = "default"
    source = { url = profile.url, key = profile.key, options = profile, label = "profile default" }
  else
    source = { options = {} }
  end

  r.profile = profile_name
  r.url, r.sources.url = source.url, source.url and (source.url_label or source.label)
  r.key, r.sources.key = source.key, source.key and (source.key_label or source.label)
  if env_key and not env_url and source.url and source.label == "environment" then
    r.sources.url = "profile default"
  end
  if flags.url then r.url, r.sources.url = flags.url, "--url" end
  if flags.key then r.key, r.sources.key = flags.key, "--key" end

  for name, value in pairs(source.options or {}) do
    if name ~= "url" and name ~= "key" and name ~= "_line" then r.options[name] = value end
  end
  return r
end

return M
