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

return M
