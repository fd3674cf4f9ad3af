-- The sandbox panel's default service catalogue: one service (at least) of every type
-- that action=add knows, with the rates, bounds and flags of a typical panel.
--
-- kind: which fields `add` takes (the sandbox's own routing, not sent to clients):
--   default   link, quantity (+ runs, interval when dripfeed)
--   package   link
--   comments  link, comments (quantity = non-empty lines)
--   subs      username, min, max (+ posts, old_posts, delay, expiry)
--   username  link, quantity, username
--   poll      link, quantity, answer_number
--   groups    link, groups (+ quantity; default = non-empty lines of groups)
local decimal = require "smm.sandbox.decimal"

local M = {}

M.list = {
  { service = 1, name = "Instagram Followers [Real] [Refill 30 days]", type = "Default",
    kind = "default", category = "Instagram Followers", rate = "0.90", min = 50, max = 10000,
    refill = true, cancel = true, dripfeed = true },
  { service = 2, name = "Instagram Custom Comments [Worldwide]", type = "Custom Comments",
    kind = "comments", category = "Instagram Comments", rate = "8", min = 10, max = 1500,
    refill = false, cancel = true },
  { service = 3, name = "Instagram Likes [Instant] [No Refill]", type = "Default",
    kind = "default", category = "Instagram Likes", rate = "0.35", min = 10, max = 50000,
    refill = false, cancel = false, dripfeed = true },
  { service = 4, name = "YouTube Views [Lifetime Guarantee]", type = "Default",
    kind = "default", category = "YouTube Views", rate = "1.2345", min = 100, max = 1000000,
    refill = true, cancel = false, dripfeed = false },
  { service = 5, name = "TikTok Views [Fast]", type = "Default", kind = "default",
    category = "TikTok Views", rate = "0.0125", min = 100, max = 10000000,
    refill = false, cancel = true, dripfeed = true },
  { service = 6, name = "Instagram Starter Package [1000 Likes + 50 Comments]", type = "Package",
    kind = "package", category = "Instagram Packages", rate = "12.50", min = 1, max = 1,
    refill = false, cancel = false },
  { service = 7, name = "Instagram Auto Likes [Per Post]", type = "Subscriptions",
    kind = "subs", category = "Instagram Auto Likes", rate = "0.40", min = 50, max = 5000,
    refill = false, cancel = true },
  { service = 8, name = "Instagram Mentions [User Followers]", type = "Mentions User Followers",
    kind = "username", category = "Instagram Mentions", rate = "2.40", min = 100, max = 20000,
    refill = false, cancel = false },
  { service = 9, name = "Instagram Comment Likes", type = "Comment Likes", kind = "username",
    category = "Instagram Comments", rate = "3.10", min = 20, max = 5000,
    refill = false, cancel = true },
  { service = 10, name = "Twitter Poll Votes", type = "Poll", kind = "poll",
    category = "Twitter Polls", rate = "1.80", min = 100, max = 50000,
    refill = false, cancel = true },
  { service = 11, name = "Telegram Group Invites [From Groups]", type = "Invites from Groups",
    kind = "groups", category = "Telegram Members", rate = "4.75", min = 10, max = 10000,
    refill = true, cancel = false },
  { service = 12, name = "Spotify Plays [Premium]", type = "Default", kind = "default",
    category = "Spotify Plays", rate = "0.5575", min = 1000, max = 5000000,
    refill = true, cancel = true, dripfeed = false },
}

local templates = {
  { type = "Default", kind = "default", dripfeed = true, refill = true, cancel = true },
  { type = "Default", kind = "default", dripfeed = false, refill = false, cancel = false },
  { type = "Custom Comments", kind = "comments", refill = false, cancel = true },
  { type = "Package", kind = "package", refill = false, cancel = false },
  { type = "Subscriptions", kind = "subs", refill = false, cancel = true },
  { type = "Mentions User Followers", kind = "username", refill = false, cancel = false },
  { type = "Poll", kind = "poll", refill = false, cancel = true },
  { type = "Invites from Groups", kind = "groups", refill = true, cancel = false },
}
local networks = { "Instagram", "TikTok", "YouTube", "Twitter", "Telegram", "Facebook",
  "Spotify", "Twitch" }
local products = { "Followers", "Likes", "Views", "Comments", "Members", "Plays", "Shares" }
local rates = { "0.90", "8", "0.35", "1.2345", "0.0125", "2.40", "0.5575", "12.50", "3.10" }

-- A generated catalogue of n services (deterministic), for benchmarks.
function M.generate(n)
  local out = {}
  for i = 1, n do
    local t = templates[(i - 1) % #templates + 1]
    local net = networks[(i - 1) // #templates % #networks + 1]
    local prod = products[(i - 1) % #products + 1]
    local s = { service = i, type = t.type, kind = t.kind, refill = t.refill, cancel = t.cancel,
      dripfeed = t.dripfeed, rate = rates[(i - 1) % #rates + 1],
      name = string.format("%s %s [Server %d]", net, prod, i),
      category = net .. " " .. prod }
    if t.kind == "package" then s.min, s.max = 1, 1
    else s.min, s.max = 10 * ((i % 5) + 1), 10000 * ((i % 7) + 1) end
    out[i] = s
  end
  return out
end

-- Which fields `add` takes, by the service's type, for a list given without `kind`s.
M.KIND_OF_TYPE = { ["Default"] = "default", ["Package"] = "package",
  ["Custom Comments"] = "comments", ["Custom Comments Package"] = "comments",
  ["Subscriptions"] = "subs", ["Mentions User Followers"] = "username",
  ["Mentions Custom List"] = "comments", ["Mentions Hashtag"] = "username",
  ["Comment Likes"] = "username", ["Comment Replies"] = "username", ["Poll"] = "poll",
  ["Invites from Groups"] = "groups" }
local KINDS = { default = true, package = true, comments = true, subs = true, username = true,
  poll = true, groups = true }
local FLAGS = { refill = true, cancel = true, dripfeed = true }

local function posint(v)
  local n = math.tointeger(tonumber(v))
  if n and n >= 0 and tostring(v):match("^%s*%d+%s*$") then return n end
end

local function flag(v)
  if v == true or v == "1" or v == "true" or v == 1 then return true end
  if v == false or v == "0" or v == "false" or v == 0 or v == nil or v == "" then return false end
end

-- Apply `fields` (a service's fields as given: JSON values or form text) onto the record `s`
-- (a copy is made). Returns the record or nil and a message naming the field and the value.
-- An unknown field is refused, so a misspelled one never silently does nothing.
function M.apply(s, fields)
  local out = {}
  for k, v in pairs(s or {}) do out[k] = v end
  for k, v in pairs(fields) do
    if k == "service" or k == "min" or k == "max" then
      local n = posint(v)
      if not n then return nil, string.format("%s: a whole number >= 0, not %q", k, tostring(v)) end
      out[k] = n
    elseif k == "rate" then
      local units = decimal.parse(tostring(v))
      if not units or units < 0 then
        return nil, string.format("rate: a decimal >= 0, not %q", tostring(v))
      end
      out.rate, out.rate_units = tostring(v), units
    elseif k == "name" or k == "category" or k == "type" then
      if type(v) ~= "string" or v == "" then
        return nil, string.format("%s: a non-empty text, not %q", k, tostring(v))
      end
      out[k] = v
    elseif k == "kind" then
      if not KINDS[v] then return nil, string.format("kind: unknown %q", tostring(v)) end
      out.kind = v
    elseif FLAGS[k] then
      local b = flag(v)
      if b == nil then return nil, string.format("%s: true or false, not %q", k, tostring(v)) end
      out[k] = b
    else
      return nil, string.format("unknown service field %q", tostring(k))
    end
  end
  if fields.type and not fields.kind and not (s and s.kind and s.type == fields.type) then
    out.kind = nil
  end
  out.kind = out.kind or M.KIND_OF_TYPE[out.type or ""] or "default"
  out.category = out.category or out.name
  for _, k in ipairs{ "service", "name", "type", "rate", "min", "max" } do
    if out[k] == nil then return nil, k .. " missing" end
  end
  if out.min > out.max then
    return nil, string.format("min %d is above max %d", out.min, out.max)
  end
  out.refill, out.cancel = out.refill == true, out.cancel == true
  return out
end

-- A checked copy of a list of service records (the panel edits its copy, never the module's
-- list). Returns the list or nil and a message naming the entry.
function M.check_list(list)
  if type(list) ~= "table" then return nil, "services: a JSON list of services expected" end
  local out, seen = {}, {}
  for i, s in ipairs(list) do
    if type(s) ~= "table" then return nil, "services[" .. i .. "]: an object expected" end
    local rec, err = M.apply(nil, s)
    if not rec then return nil, "services[" .. i .. "]: " .. err end
    if seen[rec.service] then
      return nil, "services[" .. i .. "]: service " .. rec.service .. " listed twice"
    end
    seen[rec.service] = true
    out[i] = rec
  end
  return out
end

return M
