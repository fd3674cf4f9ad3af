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

-- Options of a [panel NAME] section beyond smm.new's: where its key comes from (key_env names
-- an environment variable, key_file a file whose first line is the key), its dialect (checked
-- by smm.router) and the balance below which it raises a low-balance event (exact decimal).
local function env_name(v)
  if v:find("^[%a_][%w_]*$") then return v end
  return nil, "must name an environment variable, like SMM_KEY_B"
end
local function decimal(v)
  if require("smm.money").is_decimal(v) and not v:find("^%-") then return v end
  return nil, "must be a decimal amount, like 5.00"
end
-- A dialect's name, checked by smm.dialect where the library has it (else smm.new says).
local function dialect(v)
  local ok, d = pcall(require, "smm.dialect")
  if ok and type(d) == "table" and type(d.resolve) == "function" then
    local found, problem = d.resolve(v)
    if not found then return nil, tostring(problem or "is not a dialect") end
  end
  return v
end
local function currency(v)
  if v:find("^%a+$") then return v:upper() end
  return nil, "must be a currency code, like USD"
end
M.PANEL_OPTIONS = { key_env = env_name, key_file = text, dialect = dialect, low_balance = decimal,
                    currency = currency }

local PANEL_NAME = "^[%w_.%-]+$"

-- The [products] map: `product = panel:service, panel:service`, one product a line ->
-- products[product] = { [panel] = service id }, lines[product] = the line (to name it when a
-- panel turns out unknown: the panels may come after the map).
local function product_line(line, where, products, lines, lineno)
  local name, list = line:match("^([%w_.%-]+)%s*=%s*(.-)$")
  if not name then return nil, where .. "expected product = panel:service, panel:service" end
  if products[name] then return nil, where .. "product '" .. name .. "' is defined twice" end
  local map, entries = {}, 0
  for entry in (list .. ","):gmatch("([^,]*),") do
    entry = trim(entry)
    local panel, id = entry:match("^([%w_.%-]+)%s*:%s*(%d+)$")
    id = id and args.tointeger(tonumber(id))
    if not panel or not id or id < 1 then
      return nil, where .. "product '" .. name .. "': '" .. entry .. "' is not panel:service (like a:17)"
    end
    if map[panel] then
      return nil, where .. "product '" .. name .. "' names panel '" .. panel ..
        "' twice (one service a panel)"
    end
    map[panel], entries = id, entries + 1
  end
  if entries == 0 then return nil, where .. "product '" .. name .. "' names no panel:service" end
  products[name], lines[name] = map, lineno
  return true
end

-- text -> { profiles = { [name] = { options..., _line = n } },
--           panels = { { name =, options..., _line = n }, ... } (in the file's order),
--           products = { [product] = { [panel] = service id } } }
-- or nil, "FILE:LINE: message"
function M.parse_all(text_in, path)
  local profiles, panels, by_name, products, product_lines = {}, {}, {}, {}, {}
  local current, kind, seen_products, lineno = nil, nil, false, 0
  for raw in (text_in .. "\n"):gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    local line = trim(raw:gsub("\r$", ""))
    local where = path .. ":" .. lineno .. ": "
    if line == "" or line:find("^[#;]") then -- luacheck: ignore 542
    elseif line:find("^%[") then
      local panel = line:match("^%[%s*panel%s+([^%]]-)%s*%]$")
      local name = line:match("^%[%s*profile%s+([^%]]-)%s*%]$") or line:match("^%[%s*([%w_.%-]+)%s*%]$")
      if panel then
        if not panel:find(PANEL_NAME) then
          return nil, where .. "a panel's name is letters, digits, '_', '-' or '.', got '" .. panel .. "'"
        end
        if by_name[panel] then return nil, where .. "panel '" .. panel .. "' is defined twice" end
        current, kind = { name = panel, _line = lineno }, "panel"
        by_name[panel] = current
        panels[#panels + 1] = current
      elseif line:find("^%[%s*products%s*%]$") then
        if seen_products then return nil, where .. "[products] is defined twice" end
        seen_products, current, kind = true, nil, "products"
      else
        if not name or name == "" then
          return nil, where .. "expected [profile NAME], [panel NAME] or [products]"
        end
        if profiles[name] then return nil, where .. "profile '" .. name .. "' is defined twice" end
        current, kind = { _line = lineno }, "profile"
        profiles[name] = current
      end
    elseif kind == "products" then
      local ok, problem = product_line(line, where, products, product_lines, lineno)
      if not ok then return nil, problem end
    else
      local k, v = line:match("^([%w_%-]+)%s*=%s*(.-)$")
      if not k then return nil, where .. "expected name = value" end
      k = k:gsub("%-", "_")
      if not current then return nil, where .. "'" .. k .. "' is outside a [profile NAME] section" end
      local quoted = v:match('^"(.*)"$') or v:match("^'(.*)'$")
      if quoted then v = quoted end
      local convert = M.OPTIONS[k]
      if kind == "panel" then
        if M.SETTINGS[k] then
          return nil, where .. "'" .. k .. "' belongs in a [profile] section: one for every panel"
        end
        convert = M.PANEL_OPTIONS[k] or convert
      end
      if not convert then return nil, where .. "unknown option '" .. k .. "'" end
      local value, problem = convert(v)
      if value == nil then return nil, where .. "'" .. k .. "' " .. problem end
      current[k] = value
    end
  end
  for _, p in ipairs(panels) do
    local ways = (p.key and 1 or 0) + (p.key_env and 1 or 0) + (p.key_file and 1 or 0)
    if ways > 1 then
      return nil, path .. ":" .. p._line .. ": panel '" .. p.name .. "' has more than one of key, " ..
        "key_env and key_file"
    end
    if not p.url then return nil, path .. ":" .. p._line .. ": panel '" .. p.name .. "' has no url" end
  end
  -- every panel a product names must be a [panel NAME] (checked once the whole file is read)
  local names = {}
  for _, p in ipairs(panels) do names[#names + 1] = p.name end
  local product_names = {}
  for product in pairs(products) do product_names[#product_names + 1] = product end
  table.sort(product_names, function(a, b) return product_lines[a] < product_lines[b] end)
  for _, product in ipairs(product_names) do
    local unknown = {}
    for panel in pairs(products[product]) do
      if not by_name[panel] then unknown[#unknown + 1] = panel end
    end
    table.sort(unknown)
    if #unknown > 0 then
      return nil, path .. ":" .. product_lines[product] .. ": product '" .. product .. "' names " ..
        (#unknown == 1 and "an unknown panel '" or "unknown panels '") .. table.concat(unknown, "', '") ..
        "' (" .. (#names > 0 and ("panels: " .. table.concat(names, ", ")) or "no [panel NAME] sections") ..
        ")"
    end
  end
  return { profiles = profiles, panels = panels, products = products }
end

-- text -> { [name] = { options..., _line = n } } (the profiles), or nil, "FILE:LINE: message"
function M.parse(text_in, path)
  local doc, err = M.parse_all(text_in, path)
  if not doc then return nil, err end
  return doc.profiles
end

-- Reads the config file: { profiles =, panels =, products = } (see parse_all). Missing is fine
-- unless the file was named explicitly.
function M.load_all(path, explicit)
  local f, open_err = io.open(path, "r")
  if not f then
    if explicit then return nil, "cannot read config file: " .. tostring(open_err) end
    return { profiles = {}, panels = {}, products = {} }
  end
  local content = f:read("*a")
  f:close()
  return M.parse_all(content, path)
end

-- The profiles of the config file (see parse).
function M.load(path, explicit)
  local doc, err = M.load_all(path, explicit)
  if not doc then return nil, err end
  return doc.profiles
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
function M.exposure(path, profiles, panels)
  local holds_key = false
  for _, panel in ipairs(panels or {}) do
    if panel.key then holds_key = true end
  end
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
  local doc, err = M.load_all(path, explicit)
  if not doc then return nil, err end
  local profiles = doc.profiles

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
              warning = M.exposure(path, profiles, doc.panels), panels = doc.panels,
              products = doc.products }
  local source
  if flags.panel then
    local problem = M.panel_conflict(flags, wanted)
    if problem then return nil, problem end
    local panel = M.find_panel(r, flags.panel)
    if not panel then return nil, M.no_such_panel(r, flags.panel) end
    -- a key that cannot be read is said when a request needs it (the book alone does not)
    local key, kerr = M.panel_key(panel, getenv)
    r.key_problem = kerr
    source = { url = panel.url, key = key, options = panel, label = "panel " .. panel.name,
               key_label = M.key_source(panel) }
    r.panel = panel.name
    -- the book and the webhook secret: the default profile's (one for every panel)
    for name, value in pairs(profiles.default or {}) do
      if M.SETTINGS[name] then r.settings[name] = value end
    end
  elseif profile then
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

  if not r.url and not flags.panel and #doc.panels > 0 then
    if #doc.panels == 1 then
      -- one panel and nothing else named: that panel
      local only = doc.panels[1]
      local key, kerr = M.panel_key(only, getenv)
      if not key then return nil, kerr end
      if r.key and r.sources.key ~= nil then
        return nil, "the key of " .. r.sources.key .. " is not for panel '" .. only.name ..
          "': give --panel " .. only.name .. " and its key in the config file"
      end
      source = { url = only.url, key = key, options = only, label = "panel " .. only.name }
      r.url, r.sources.url = only.url, source.label
      r.key, r.sources.key = key, M.key_source(only)
      r.panel = only.name
      for name, value in pairs(profiles.default or {}) do
        if M.SETTINGS[name] then r.settings[name] = value end
      end
    else
      r.choose_panel = "several panels in " .. path .. " (" .. table.concat(M.panel_names(r), ", ") ..
        "): choose one with --panel NAME"
    end
  end

  for name, value in pairs(source.options or {}) do
    if M.SETTINGS[name] then
      r.settings[name] = value
    elseif (M.PANEL_OPTIONS[name] and name ~= "dialect") or name == "name" then -- luacheck: ignore 542
      -- the router's low_balance and currency, where the key came from: not smm.new's (dialect is)
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
    r.timeout_ms = seconds * 1000
  end
  return r
end

-- The names of the [panel NAME] sections, in the file's order.
function M.panel_names(r)
  local names = {}
  for i, p in ipairs(r.panels or {}) do names[i] = p.name end
  return names
end

function M.find_panel(r, name)
  for _, p in ipairs(r.panels or {}) do
    if p.name == name then return p end
  end
  return nil
end

function M.no_such_panel(r, name)
  local names = M.panel_names(r)
  if #names == 0 then
    return "no [panel " .. name .. "] in " .. r.path .. " (it has no [panel NAME] sections)"
  end
  local guess = #name >= 3 and args.suggest(name, names)
  return "no panel '" .. name .. "' in " .. r.path .. " (panels: " .. table.concat(names, ", ") .. ")" ..
    (guess and ("; did you mean '" .. guess .. "'?") or "")
end

-- --panel names a panel of the config file, with its own URL and key: another source of either
-- is refused rather than mixed (the key of one panel never travels to another).
function M.panel_conflict(flags, profile)
  for _, name in ipairs{ "url", "key" } do
    if flags[name] then return "--panel and --" .. name .. " together: --panel " .. flags.panel ..
      " has its own " .. name .. " in the config file" end
  end
  if flags.profile or profile then
    return "--panel and " .. (flags.profile and "--profile" or "SMM_PROFILE") .. " together: choose one"
  end
  return nil
end

-- Where a panel's key comes from, as `smm config` shows it (never the key).
function M.key_source(panel)
  if panel.key_env then return "panel " .. panel.name .. ", $" .. panel.key_env end
  if panel.key_file then return "panel " .. panel.name .. ", " .. panel.key_file end
  return "panel " .. panel.name
end

-- A panel's key: key, else the variable key_env names, else key_file's first line.
-- key or nil, message.
function M.panel_key(panel, getenv)
  getenv = getenv or os.getenv
  if panel.key then return panel.key end
  if panel.key_env then
    local v = getenv(panel.key_env)
    if v == nil or v == "" then
      return nil, "panel '" .. panel.name .. "': key_env names " .. panel.key_env .. ", which is not set"
    end
    return v
  end
  if panel.key_file then
    local f, err = io.open(panel.key_file, "r")
    if not f then return nil, "panel '" .. panel.name .. "': cannot read key_file: " .. tostring(err) end
    local first = f:read("*l")
    f:close()
    first = first and trim(first:gsub("\r$", ""))
    if not first or first == "" then
      return nil, "panel '" .. panel.name .. "': key_file " .. panel.key_file .. " is empty"
    end
    return first
  end
  return nil, "panel '" .. panel.name .. "' has no key: add key = ..., key_env = NAME or key_file = PATH"
end

-- The panels as smm.router.new takes them ({ name, url, key, [dialect], [low_balance],
-- [smm.new options] }), each key read now. flags.timeout (seconds) applies to every panel.
-- list or nil, message.
function M.router_panels(r, getenv)
  local out = {}
  for _, p in ipairs(r.panels or {}) do
    local key, err = M.panel_key(p, getenv)
    if not key then return nil, err end
    local entry = { name = p.name, key = key }
    for name, value in pairs(p) do
      if name ~= "_line" and name ~= "key_env" and name ~= "key_file" and name ~= "key" then
        entry[name] = value
      end
    end
    if r.timeout_ms then entry.timeout = r.timeout_ms end
    out[#out + 1] = entry
  end
  return out
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
