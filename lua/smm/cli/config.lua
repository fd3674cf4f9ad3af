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
--   book = sqlite:/var/lib/smm/orders.db   (the order book; postgresql://... too)
--   webhook_secret = ...     (signs `smm sync --webhook` deliveries)
--
-- Precedence, field by field: --url/--key, then the profile named by --profile or SMM_PROFILE,
-- then the environment, then the `default` profile. The URL and the key come from one source
-- (a profile, or the environment) unless both are given explicitly (--url, --key, or the
-- environment): a profile's URL goes only with its own key, SMM_API_KEY only with
-- SMM_API_URL or --url, since the key of one panel must never travel to another. A config
-- file holding keys that others can read gets a warning, as ssh gives. The key is never
-- shown: `smm config` prints it as ***.
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
  book = text, webhook_secret = text, dialect = text, -- dialect: checked by smm.new
}

-- Options of the command line itself, not of smm.new: the order book's URL and the secret that
-- signs webhooks. They land in r.settings, never among the client's options.
M.SETTINGS = { book = true, webhook_secret = true }

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

-- The permission bits of a file, as octal text ("644"), or nil (stat is coreutils).
local function mode_of(path)
  local p = io.popen("stat -L -c %a '" .. path:gsub("'", "'\\''") .. "' 2>/dev/null")
  if not p then return nil end
  local mode = p:read("*l")
  p:close()
  return mode and mode:match("^[0-7]+$")
end

-- A warning when the file holds keys and its group or others may read it (mode & 077).
function M.exposure(path, profiles)
  local holds_key = false
  for _, profile in pairs(profiles) do
    if profile.key or profile.webhook_secret or (profile.book and profile.book:find("@", 1, true)) then
      holds_key = true
    end
  end
  if not holds_key then return nil end
  local mode = mode_of(path)
  if not mode or tonumber(mode:sub(-2), 8) == 0 then return nil end
  return string.format("%s holds API keys and others can read it (mode %04d): chmod 600 %s", path,
    tonumber(mode), path)
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

  local r = { path = path, profiles = names, sources = {}, options = {}, settings = {},
              warning = M.exposure(path, profiles) }
  local source
  if profile then
    source = { url = profile.url, key = profile.key, options = profile,
               label = "profile " .. profile_name }
  elseif env_url or env_key then
    source = { url = env_url, key = env_key, options = profiles.default or {},
               label = "environment", url_label = "SMM_API_URL", key_label = "SMM_API_KEY" }
    profile_name = profiles.default and "default" or nil
    -- the environment names the panel: the default profile's key is not sent to it, nor is
    -- SMM_API_KEY sent to the default profile's panel
    if env_url and not env_key then source.key = nil end
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
  if flags.url then r.url, r.sources.url = flags.url, "--url" end
  if flags.key then r.key, r.sources.key = flags.key, "--key" end
  local mixed = M.mismatch(r, source, flags, env_key, profiles.default)
  if mixed then return nil, mixed end

  for name, value in pairs(source.options or {}) do
    if M.SETTINGS[name] then
      r.settings[name] = value
    elseif name ~= "url" and name ~= "key" and name ~= "_line" then
      r.options[name] = value
    end
  end
  if flags.timeout then
    -- seconds, as every time flag of smm (the config file's timeout is smm.new's, in ms)
    local seconds = args.to_number(flags.timeout)
    if not seconds or seconds <= 0 or seconds == math.huge then
      return nil, "option --timeout must be a number of seconds above 0, got '" .. tostring(flags.timeout) ..
        "'"
    end
    r.request_timeout = r.options.timeout -- the profile's, for commands where S is a whole wait
    r.options.timeout = seconds * 1000
  end
  return r
end

-- Why the URL and key resolved may not go together, or nil. A profile's key goes only to its
-- own URL, a profile's URL only gets its own key, SMM_API_KEY only goes to SMM_API_URL or to
-- an explicit --url.
function M.mismatch(r, source, flags, env_key, default_profile)
  if not r.key or not r.url then
    if env_key and not r.url and default_profile and default_profile.url then
      return "SMM_API_KEY is set but SMM_API_URL is not, and the key of one panel is never sent " ..
        "to another: set SMM_API_URL too, give --url, or unset SMM_API_KEY to use the default profile"
    end
    return nil
  end
  local profile_key = source.label and source.label:find("^profile ") and source.key
  if flags.url and not flags.key and profile_key and r.url ~= source.url then
    return "the key of " .. source.label .. " is for " .. M.printable_url(source.url) ..
      ", not " .. M.printable_url(r.url) .. ": give --key too (or use SMM_API_URL and SMM_API_KEY)"
  end
  if flags.key and not flags.url and source.label and source.label:find("^profile ") then
    return "--key with the URL of " .. source.label .. ": give --url too, or use the profile's own key"
  end
  return nil
end

return M
