-- Order kinds by service type: which `add` fields each type needs and which it may take, and
-- how its quantity is counted. Panels spell types freely; they are matched in lower case.
local M = {}

local function kind(requires, allows, counts)
  local known = {}
  for _, f in ipairs(requires) do known[f] = true end
  for _, f in ipairs(allows or {}) do known[f] = true end
  return { requires = requires, known = known, counts = counts }
end

-- counts: "quantity" (the field), "lines:<field>" (one unit a line), "package" (one unit),
-- "subscription" (max per post x posts)
M.TYPES = {
  ["default"] = kind({ "link", "quantity" }, { "runs", "interval" }, "quantity"),
  ["package"] = kind({ "link" }, {}, "package"),
  ["custom comments"] = kind({ "link", "comments" }, { "quantity" }, "lines:comments"),
  ["custom comments package"] = kind({ "link", "comments" }, {}, "package"),
  ["subscriptions"] = kind({ "username", "min", "max" }, { "posts", "old_posts", "delay", "expiry" },
    "subscription"),
  ["mentions"] = kind({ "link", "quantity" }, { "username", "usernames", "hashtags" }, "quantity"),
  ["mentions with hashtags"] = kind({ "link", "quantity", "usernames", "hashtags" }, {}, "quantity"),
  ["mentions custom list"] = kind({ "link", "usernames" }, {}, "lines:usernames"),
  ["mentions hashtag"] = kind({ "link", "quantity", "hashtag" }, {}, "quantity"),
  ["mentions user followers"] = kind({ "link", "quantity", "username" }, {}, "quantity"),
  ["mentions media likers"] = kind({ "link", "quantity", "media" }, {}, "quantity"),
  ["comment likes"] = kind({ "link", "quantity", "username" }, {}, "quantity"),
  ["comment replies"] = kind({ "link", "username", "comments" }, {}, "lines:comments"),
  ["poll"] = kind({ "link", "quantity", "answer_number" }, {}, "quantity"),
  ["invites from groups"] = kind({ "link", "quantity", "groups" }, {}, "quantity"),
  ["groups"] = kind({ "link", "quantity", "groups" }, {}, "quantity"),
}

function M.of(service)
  local t = type(service) == "table" and service.type
  if type(t) ~= "string" then return nil end
  return M.TYPES[t:lower():gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")]
end

return M
