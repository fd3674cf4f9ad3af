-- bench/catalog_merge.lua: merging three 10,000-service lists into products (smm.router.match,
-- as `smm match` and the catalog's suggest do) against fetching and normalising one such list
-- (client:services{ refresh = true }). Issue 13 asks merge <= 1.5 x fetch.
--
--   make && lua5.4 bench/catalog_merge.lua
--
-- Three sandbox panels (services_count = 10000: the sandbox's generated catalogue, the same on
-- each, as panels reselling one provider carry its names verbatim). Both measures alternate in
-- one process (the same heap, the same moment of a noisy machine), each after a full collect;
-- the merge starts cold every time (a fresh memo: no name worked out before). Suggestions are
-- worded on demand (smm.router.match): the time to name all 10,000 products and word their
-- reasons (match.plain) is printed on its own line, and in all. A second, informative line
-- merges lists whose names differ from panel to panel ("IG Followers - Server 12",
-- "Insta Followers (Srv 12)"), which takes the normalising path for every service.
-- SMM_BENCH_REPS (default 15) repetitions; prints "catalog merge: M ms vs fetch F ms = R".
local root = (debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$") or ".")
if root:sub(1, 1) ~= "/" then root = (os.getenv("PWD") or ".") .. "/" .. root end
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;" .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath

local smm = require "smm"
local match = require "smm.router.match"
local sandbox = require "helpers.sandbox"
local now = require("smm.core").now

local REPS = tonumber(os.getenv("SMM_BENCH_REPS") or "") or 15
local N = 10000

local function median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  local n = #c
  if n % 2 == 1 then return c[(n + 1) / 2] end
  return (c[n / 2] + c[n / 2 + 1]) / 2
end

local function merge(lists)
  return match.suggest(lists, { memo = match.memo() })
end

local sbs = {}
local ok, err = pcall(function()
  for i = 1, 3 do sbs[i] = sandbox.start{ services_count = N } end
  local clients, lists = {}, {}
  for i = 1, 3 do
    clients[i] = smm.new{ url = sbs[i].url, key = "sandbox-key" }
    lists[i] = { name = "panel" .. i, services = assert(clients[i]:services()) }
    assert(#lists[i].services == N)
  end
  for _ = 1, 2 do
    assert(clients[1]:services{ refresh = true })
    merge(lists)
  end
  local fetch, merged, worded = {}, {}, {}
  for r = 1, REPS do
    collectgarbage("collect")
    local t0 = now()
    local list = assert(clients[1]:services{ refresh = true })
    fetch[r] = now() - t0
    assert(#list == N)
    collectgarbage("collect")
    t0 = now()
    local out = merge(lists)
    merged[r] = now() - t0
    assert(#out == N and out[1].score == 100, "unexpected merge")
    t0 = now()
    match.plain(out)
    worded[r] = now() - t0
    assert(out[N].product and out[N].records.panel3)
  end
  local f, m, w = median(fetch), median(merged), median(worded)
  print(string.format("catalog merge: %.1f ms vs fetch %.1f ms = %.2f (3 x %d services, %d products;"
    .. " target <= 1.5)", m, f, m / f, N, N))
  print(string.format("  + naming the %d products and wording their reasons (match.plain): %.1f ms"
    .. " (%.2f x fetch in all)", N, w, (m + w) / f))

  -- informative: names differing from panel to panel
  local NETS = { Instagram = { "IG", "Insta" }, TikTok = { "TT", "Tik-Tok" },
    YouTube = { "YT", "Youtube" }, Twitter = { "TW", "Twitter" }, Telegram = { "TG", "Telegram" },
    Facebook = { "FB", "Facebook" }, Spotify = { "Spotify", "Spoti" }, Twitch = { "Twitch", "Twitch" } }
  local varied = { lists[1] }
  for p = 2, 3 do
    local l = {}
    for i, s in ipairs(lists[p].services) do
      local c = {}
      for k, v in pairs(s) do c[k] = v end
      local net, prod, n = s.name:match("^(%S+) (%S+) %[Server (%d+)%]$")
      c.name = string.format(p == 2 and "%s %s - Server %s" or "%s %s (Srv %s) \240\159\148\165",
        NETS[net][p - 1], prod, n)
      l[i] = c
    end
    varied[p] = { name = lists[p].name, services = l }
  end
  local vt, count = {}, 0
  for r = 1, math.max(3, math.floor(REPS / 3)) do
    collectgarbage("collect")
    local t0 = now()
    count = #merge(varied)
    vt[r] = now() - t0
  end
  print(string.format("catalog merge, names differing per panel: %.1f ms = %.2f x fetch (%d products)",
    median(vt), median(vt) / f, count))
end)
for _, sb in ipairs(sbs) do sb:stop() end
if not ok then
  io.stderr:write("bench/catalog_merge.lua: ", tostring(err), "\n")
  os.exit(1)
end
