-- The command line's words: a command, positional arguments and --flags. Flags may come
-- anywhere (before or after the command), as `--name value` or `--name=value`; `--` ends them.
-- Each flag is declared once here; each command says which flags it takes.
local M = {}

local MAX_EXACT = 2 ^ 53
-- math.tointeger and math.type where there are no integers (Lua 5.1, LuaJIT): a whole number
-- within 2^53 counts as an integer.
local tointeger = math.tointeger or function(x)
  if type(x) == "number" and x == math.floor(x) and x > -MAX_EXACT and x < MAX_EXACT then return x end
  return nil
end
local function is_integer(x)
  if math.type then return math.type(x) == "integer" end
  return tointeger(x) ~= nil
end
M.tointeger = tointeger
M.is_integer = is_integer

-- tonumber of a word, without the "inf" and "nan" that Lua 5.1's strtod accepts (no Lua
-- numeral holds an n).
local function to_number(s)
  if type(s) == "string" and s:find("[nN]") then return nil end
  return tonumber(s)
end
M.to_number = to_number

-- value: takes a value; multi: may be repeated (values collected in an array)
M.FLAGS = {
  -- everywhere
  url = { value = true }, key = { value = true }, profile = { value = true },
  config = { value = true }, json = {}, ["no-color"] = {}, yes = {}, help = {}, quiet = {},
  version = {},
  -- services
  search = { value = true }, category = { value = true }, type = { value = true },
  -- order fields
  service = { value = true }, link = { value = true }, quantity = { value = true },
  runs = { value = true }, interval = { value = true },
  comments = { value = true, multi = true }, ["comments-file"] = { value = true },
  username = { value = true }, min = { value = true }, max = { value = true },
  posts = { value = true }, ["old-posts"] = { value = true }, delay = { value = true },
  expiry = { value = true }, ["answer-number"] = { value = true },
  groups = { value = true, multi = true }, ["groups-file"] = { value = true },
  field = { value = true, multi = true },
  -- wait
  every = { value = true }, timeout = { value = true }, grace = { value = true },
  -- the order book (add, batch, sync, orders, doubt, report)
  book = { value = true }, ref = { value = true }, status = { value = true },
  since = { value = true }, by = { value = true }, ["not-placed"] = {},
  -- batch
  ["dry-run"] = {}, force = {}, wait = {}, result = { value = true },
  concurrency = { value = true },
  -- sync
  once = {}, exec = { value = true, multi = true }, webhook = { value = true, multi = true },
  ["webhook-secret-env"] = { value = true },
  -- several panels (smm.router): which panel; a product of the config's [products]
  panel = { value = true }, product = { value = true }, refill = {}, cancel = {},
  ["max-cost"] = { value = true }, prefer = { value = true, multi = true },
  avoid = { value = true, multi = true }, ["min-score"] = { value = true },
}

-- Flags of older versions, refused with what replaced them (the batch journal became the book).
M.REMOVED = {
  journal = "smm batch keeps no journal any more: it places through the order book (--book URL)",
  ["resend-ambiguous"] = "rows in doubt are settled with `smm doubt REF --not-placed`, then sent " ..
    "by running the batch again",
  ["mark-placed"] = "rows in doubt are settled with `smm doubt REF ORDER_ID`",
}

M.SHORT = { h = "help", y = "yes" }

-- every command talks to the panel within --timeout S (wait: also the whole wait)
M.GLOBAL = { "url", "key", "profile", "config", "json", "no-color", "yes", "help", "quiet", "timeout",
             "version", "panel" }
M.ORDER = { "service", "link", "quantity", "runs", "interval", "comments", "comments-file",
            "username", "min", "max", "posts", "old-posts", "delay", "expiry", "answer-number",
            "groups", "groups-file", "field" }
M.WAIT = { "every", "timeout", "grace" }

-- Edit distance (insertions, deletions, substitutions, and swaps of neighbours: "balacne").
function M.distance(a, b)
  local prev2, prev = nil, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local row = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      row[j] = math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
      if prev2 and i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        row[j] = math.min(row[j], prev2[j - 2] + 1)
      end
    end
    prev2, prev = prev, row
  end
  return prev[#b]
end

-- The candidate a mistyped word most likely meant, or nil when none is close: within one edit
-- for short words, two for longer ones, or a word that starts the same way ("serv").
function M.suggest(word, candidates)
  local best, best_d
  local lower = word:lower()
  local limit = #word <= 4 and 1 or 2
  for _, c in ipairs(candidates) do
    local d = M.distance(lower, c)
    if #lower >= 3 and c:sub(1, #lower) == lower then d = math.min(d, 1) end
    if d <= limit and (not best_d or d < best_d or (d == best_d and c < best)) then best, best_d = c, d end
  end
  return best
end

-- "unknown option '--serivce'; did you mean '--service'?"
local function unknown_option(word, name)
  local names = {}
  for flag in pairs(M.FLAGS) do names[#names + 1] = flag end
  table.sort(names)
  local guess = name and M.suggest(name, names)
  if guess then return "unknown option '" .. word .. "'; did you mean '--" .. guess .. "'?" end
  return "unknown option '" .. word .. "' (see smm help)"
end

-- argv -> { command =, args = { positional... }, flags = { name = value or true or {..} },
--           raw = { words after the command, untouched } } or nil, message
-- Words after `sandbox` are kept raw for the sandbox's own parser.
function M.parse(argv)
  local r = { args = {}, flags = {}, raw = {} }
  local i, n, ended = 1, #argv, false
  while i <= n do
    local a = argv[i]
    if r.command == "sandbox" then
      r.raw[#r.raw + 1] = a
    elseif ended or a == "-" or not a:find("^%-") then
      if r.command == nil then r.command = a else r.args[#r.args + 1] = a end
    elseif a == "--" then
      ended = true
    else
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      if not name then name = a:match("^%-%-(.+)$") end
      if not name and a:match("^%-(%a)$") then name = M.SHORT[a:sub(2)] end
      local spec = name and M.FLAGS[name]
      if name and M.REMOVED[name] then
        return nil, "option --" .. name .. " is gone: " .. M.REMOVED[name] .. " (see docs/cli.md)"
      end
      if not name and a:match("^%-%d") then
        -- a negative number where a word was expected: positional
        if r.command == nil then r.command = a else r.args[#r.args + 1] = a end
      elseif not spec then
        return nil, unknown_option(a, name)
      elseif spec.value then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, "option --" .. name .. " needs a value" end
        end
        if spec.multi then
          local list = r.flags[name] or {}
          list[#list + 1] = value
          r.flags[name] = list
        else
          if r.flags[name] ~= nil and r.flags[name] ~= value then
            return nil, "option --" .. name .. " is given twice"
          end
          r.flags[name] = value
        end
      else
        if value ~= nil then return nil, "option --" .. name .. " takes no value" end
        r.flags[name] = true
      end
    end
    i = i + 1
  end
  return r
end

-- Commands that have no one panel to choose: --panel means nothing there and is refused.
M.NO_PANEL = { doubt = true, report = true, match = true, watch = true }

-- Refuses flags that the command does not take. allowed: arrays of flag names.
function M.check(parsed, command, ...)
  local ok = {}
  for _, name in ipairs(M.GLOBAL) do ok[name] = true end
  if M.NO_PANEL[command] then ok.panel = nil end
  for _, list in ipairs{ ... } do
    for _, name in ipairs(list) do ok[name] = true end
  end
  for name in pairs(parsed.flags) do
    if not ok[name] then
      return nil, "option --" .. name .. " does not apply to 'smm " .. command .. "'"
    end
  end
  return true
end

-- --prefer a,b --prefer c -> { "a", "b", "c" } (names of panels), or nil when not given.
function M.names(values)
  if values == nil then return nil end
  local out = {}
  for _, v in ipairs(values) do
    for part in v:gmatch("[^,%s]+") do out[#out + 1] = part end
  end
  return out
end

-- "12" -> 12; nil, message otherwise. unit: text for the message.
function M.number(value, name, allow_fraction)
  local n = to_number(value)
  if not n or n < 0 or (not allow_fraction and not is_integer(n)) then
    return nil, "option --" .. name .. " must be a " .. (allow_fraction and "non-negative number" or
      "whole number") .. ", got '" .. tostring(value) .. "'"
  end
  return n
end

-- Ids as positional words: "1 2 3" or "1,2,3" -> { 1, 2, 3 } or nil, message
function M.ids(words, what)
  local ids = {}
  for _, word in ipairs(words) do
    for part in word:gmatch("[^,%s]+") do
      local id = part:match("^%d+$") and tointeger(tonumber(part))
      if not id or id < 1 then return nil, "'" .. part .. "' is not " .. what .. " id" end
      ids[#ids + 1] = id
    end
  end
  if #ids == 0 then return nil, "no " .. what:gsub("^an? ", "") .. " ids given" end
  return ids
end

return M
