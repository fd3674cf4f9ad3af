-- Suggesting products: services of several panels that look like the same thing, grouped with a
-- score (0-100) and the reason, for a person to accept into the products map (smm match).
--
--   local list = match.suggest({ { name = "a", services = list_a }, ... },
--                              { products = map, min_score = 60, memo = match.memo() })
--   -- { { product = "instagram-followers-refill-30d", score = 86,
--   --     services = { a = 1, b = 17 },              -- what goes into the map
--   --     records = { a = record, b = record },
--   --     reason = { type =, name = 0-100, same_name =, category = 0-100, min =, max =,
--   --                refill = alike?, cancel = alike? },
--   --     mapped = "ig-followers" | nil,             -- every member already that product
--   --     known = { b = "ig-followers" } | nil },    -- some members already in the map
--   --   ... }   best score first
--   match.explain(suggestion) -> { "same type Default", "names alike (91%)", ... }
--   match.score(a, b) -> score, reason | nil, why ("types differ", "bounds do not overlap")
--
-- Equivalent means: the same type, names alike once normalised (lower case; emojis and
-- punctuation gone; bracketed tags like "[Refill 30D]" set apart; IG = Instagram, plurals
-- folded; numbers and noise words such as "real", "fast", "hq" out of the key), categories
-- alike, overlapping min/max; the refill and cancel flags (and the refill period the name
-- states: "R30", "[Refill 30D]", "30 days refill") add to the score when they agree. A group
-- has at most one service of each panel; its score is its worst member's against the first.
--
-- Speed: three 10,000-service lists must merge in about the time one takes to fetch
-- (bench/catalog_merge.lua). Nothing is compared all against all:
--   1. services are grouped by exact name (and type): resellers often carry a provider's names
--      verbatim, and a name found on every panel is a group at the cost of a table lookup;
--   2. what is left is grouped a) by type and the full normalised name (tags and numbers in),
--      then b) by type and the name's key, then c) by type and the key's network and product
--      words; in b) and c) only services within one block are scored against each other (at
--      most BLOCK_LIMIT at once). A group takes in more panels from one step to the next.
-- Normalised names are remembered in the memo (the catalog keeps one across calls). And the
-- suggestions are worded on demand: each holds its score at once, the rest (services, records,
-- reason, mapped, known) when first read, the product names of the whole list when any is
-- first read (in the list's order, so the names never depend on which was read first);
-- match.plain(list) works it all out (pairs() then sees every field, e.g. for JSON).
local M = {}

local lower, find, match, gsub, gmatch, sub = string.lower, string.find, string.match, string.gsub,
  string.gmatch, string.sub
local concat, sort = table.concat, table.sort
local floor = math.floor

M.MIN_SCORE = 60
local BLOCK_LIMIT = 120 -- units scored pairwise in one block; a bigger block is split by tags

-- Words folded into one spelling ("" drops a word from the name's key: it says how a service is
-- sold, not what it is).
local WORDS = {}
for canonical, spellings in pairs{
  instagram = "ig insta instagramm inst", youtube = "yt youtub", tiktok = "tt tik-tok",
  facebook = "fb", twitter = "tw twiter", telegram = "tg telegramm", spotify = "spoti",
  linkedin = "li", follower = "followers follow follows folowers", like = "likes",
  view = "views", comment = "comments", member = "members", subscriber = "subscribers subs sub",
  play = "plays", share = "shares", save = "saves", vote = "votes", reel = "reels",
  story = "stories", impression = "impressions", mention = "mentions", retweet = "retweets rt",
  reaction = "reactions", hour = "hours", stream = "streams", listener = "listeners",
  invite = "invites", post = "posts", visit = "visits", click = "clicks", repost = "reposts",
  watch = "watches", channel = "channels", group = "groups", page = "pages", user = "users",
} do
  WORDS[canonical] = canonical
  for w in gmatch(spellings, "%S+") do WORDS[w] = canonical end
end
for w in gmatch([[refill refills norefill nr r no non drop nondrop lifetime guarantee guaranteed
    garantee warranty day days d instant instantly fast faster fastest super speed slow real hq lq
    high quality cheap cheapest best premium new old max min k per worldwide ww global mixed
    server srv s start starts quick top vip stable ultra exclusive active natural organic the and
    with of for from a to in on by]], "%S+") do
  WORDS[w] = ""
end
M.WORDS = WORDS

-- A memo for suggest/score: what was worked out about names, types and categories, kept by the
-- caller across calls (names rarely change between two fetches).
-- size: how many names it holds (a long-lived caller starts a new one past a bound).
function M.memo() return { names = {}, types = {}, cats = {}, size = 0 } end

-- What a service is made of at the coarsest: its network and what it sells. Names that share
-- these (and the type) are compared when nothing finer brought them together ("Instagram Post
-- Likes" and "Instagram Likes").
local COARSE = {}
for w in gmatch([[instagram youtube tiktok facebook twitter telegram spotify linkedin twitch
    discord threads snapchat pinterest reddit soundcloud vk kick follower like view comment member
    subscriber play share save vote reel story impression mention retweet reaction hour stream
    listener invite visit click repost watch]], "%S+") do
  COARSE[w] = true
end

local byte = string.byte
local DAY_WORDS = { day = true, days = true, d = true }

-- What the matcher knows of one name (memoised by the name's text), in one pass over its words:
--   key   main words (outside brackets) folded, noise and numbers dropped, sorted: the block a
--         name falls in
--   full  main and tag words folded, noise dropped, numbers kept ("[Server 1]" and "- Srv 1"
--         alike), refill periods dropped (days says those), sorted
--   set / all   the words of key / of full, as sets (for likeness)
--   coarse  the key's network and product words only ("instagram like"), or nil
--   days  the refill period the name states ("R30", "[Refill 30D]", "30 days refill",
--         "Refill 30"; "lifetime" = 36500), or nil
local function name_info(memo, name)
  local names = memo.names
  local info = names[name]
  if info then return info end
  memo.size = memo.size + 1
  local s = lower(name)
  if find(s, "tik", 1, true) or find(s, "you", 1, true) then
    s = gsub(gsub(s, "tik[%s%-]*tok", "tiktok"), "you[%s%-]+tube", "youtube")
  end
  if find(s, "[\226\239\240-\244]") then
    s = gsub(s, "[\240-\244][\128-\191][\128-\191][\128-\191]", " ") -- emojis and the like
    s = gsub(s, "\226[\128-\191][\128-\191]", " ")  -- U+2000-U+2FFF: dashes, arrows, symbols
    s = gsub(s, "\239\184[\128-\143]", " ")          -- variation selectors
  end
  -- where the bracketed tags are: from, to, from, to ...
  local ranges, at = nil, find(s, "[%[%(]")
  while at do
    local _, to = find(s, byte(s, at) == 91 and "^%b[]" or "^%b()", at)
    if to then
      ranges = ranges or {}
      ranges[#ranges + 1], ranges[#ranges + 2] = at, to
      at = find(s, "[%[%(]", to + 1)
    else
      at = find(s, "[%[%(]", at + 1)
    end
  end
  local set, list, all, full = {}, {}, {}, {}
  local days, last_number, prev
  local ri = 1
  for pos, w in gmatch(s, "()([%w\128-\255]+)") do
    local tag = false
    if ranges then
      while ranges[ri + 1] and ranges[ri + 1] < pos do ri = ri + 2 end
      tag = ranges[ri] ~= nil and ranges[ri] < pos
    end
    local r = WORDS[w]
    local b1 = byte(w, 1)
    local kept_in_full
    if r == nil then
      if b1 <= 57 then -- a digit first: a number, a period ("30d"), a size ("10k")
        local n, unit = match(w, "^(%d+)(%a*)$")
        if n and unit == "" then
          kept_in_full = w
          if prev == "refill" then days = tonumber(n) end
          last_number = n
        elseif n and unit == "d" then
          days = tonumber(n)
        else
          kept_in_full = w
        end
        r = ""
      elseif b1 == 114 and find(w, "^r%d+$") then
        days, r = tonumber(sub(w, 2)), ""
      else
        r = w
      end
    elseif r == "" then
      if DAY_WORDS[w] and last_number then days = tonumber(last_number)
      elseif w == "lifetime" then days = 36500 end
    end
    if r ~= "" then
      kept_in_full = r
      if not tag and not set[r] then
        set[r] = true
        list[#list + 1] = r
      end
    end
    if kept_in_full and not all[kept_in_full] then
      all[kept_in_full] = true
      full[#full + 1] = kept_in_full
    end
    prev = w
  end
  sort(list)
  sort(full)
  local coarse = {}
  for i = 1, #list do
    if COARSE[list[i]] then coarse[#coarse + 1] = list[i] end
  end
  info = { key = concat(list, " "), full = concat(full, " "), set = set, all = all, days = days,
    coarse = #coarse > 0 and concat(coarse, " ") or nil }
  names[name] = info
  return info
end

-- A name in lower case without its emojis (for a product name made of a name without Latin
-- letters).
local function without_emojis(text)
  local s = lower(text)
  s = gsub(s, "[\240-\244][\128-\191][\128-\191][\128-\191]", " ")
  s = gsub(s, "\226[\128-\191][\128-\191]", " ")
  s = gsub(s, "\239\184[\128-\143]", " ")
  return s
end

local function dice(a, b)
  local na, nb, both = 0, 0, 0
  for w in pairs(a) do
    na = na + 1
    if b[w] then both = both + 1 end
  end
  for _ in pairs(b) do nb = nb + 1 end
  if na + nb == 0 then return 1 end
  return 2 * both / (na + nb)
end

local function percent(x) return floor(x * 100 + 0.5) end

local function type_of(types, t)
  local k = types[t or false]
  if k then return k end
  k = lower(gsub(tostring(t or ""), "%s+", " "))
  types[t or false] = k
  return k
end

-- Category likeness, memoised by the pair (categories are few).
local function category_score(memo, ca, cb)
  if ca == cb then return 100 end
  ca, cb = tostring(ca or ""), tostring(cb or "")
  local row = memo.cats[ca]
  if not row then row = {} memo.cats[ca] = row end
  local v = row[cb]
  if v then return v end
  v = percent(dice(name_info(memo, ca).set, name_info(memo, cb).set))
  row[cb] = v
  return v
end

-- The score of two services and its parts, or nil and why they are no match at all.
-- The score: names 60%, categories 20%, bounds 10%, refill 5%, cancel 5%.
local function pair(a, b, memo)
  local types = memo.types
  if a.type ~= b.type and type_of(types, a.type) ~= type_of(types, b.type) then
    return nil, "types differ"
  end
  local amin, amax, bmin, bmax = a.min, a.max, b.min, b.max
  if type(amin) ~= "number" or type(amax) ~= "number" or type(bmin) ~= "number" or
      type(bmax) ~= "number" then
    return nil, "bounds unknown"
  end
  local lo, hi = amin > bmin and amin or bmin, amax < bmax and amax or bmax
  if lo > hi then return nil, "bounds do not overlap" end
  local name, days_a, days_b = 100, nil, nil
  if a.name ~= b.name then
    local ia = name_info(memo, tostring(a.name or ""))
    local ib = name_info(memo, tostring(b.name or ""))
    name = percent(0.8 * dice(ia.set, ib.set) + 0.2 * dice(ia.all, ib.all))
    days_a, days_b = ia.days, ib.days
  end
  local category = category_score(memo, a.category, b.category)
  local bounds = (amin == bmin and amax == bmax) and 100 or 80
  local refill = a.refill == b.refill and days_a == days_b
  local cancel = a.cancel == b.cancel
  local score = floor((60 * name + 20 * category + 10 * bounds) / 100 + 0.5) +
    (refill and 5 or 0) + (cancel and 5 or 0)
  return score, name, category, lo, hi, refill, cancel
end

local function reason_of(a, b, name, category, lo, hi, refill, cancel)
  return { type = a.type, name = name, same_name = a.name == b.name, category = category,
    min = lo, max = hi, refill = refill, cancel = cancel }
end

-- score(a, b [, memo]) -> score 0-100, reason | nil, why (not the same thing at all)
function M.score(a, b, memo)
  local sc, name, category, lo, hi, refill, cancel = pair(a, b, memo or M.memo())
  if not sc then return nil, name end
  return sc, reason_of(a, b, name, category, lo, hi, refill, cancel)
end

-- The reason in words.
function M.explain(s)
  local r, out = s.reason, {}
  out[#out + 1] = "same type " .. tostring(r.type)
  out[#out + 1] = r.same_name and "same name" or ("names alike (" .. r.name .. "%)")
  out[#out + 1] = r.category == 100 and "same category" or ("categories alike (" .. r.category .. "%)")
  out[#out + 1] = "quantities " .. r.min .. "-" .. r.max .. " on every panel"
  out[#out + 1] = r.refill and "refill alike" or "refill differs"
  out[#out + 1] = r.cancel and "cancel alike" or "cancel differs"
  if s.mapped then out[#out + 1] = "already the product " .. s.mapped end
  return out
end

-- A group's score: the worst of its members' against the first; the first's panel index; the
-- reason (nil when every member is the first's very record fields: worded on demand). nil when
-- one member is no match at all. g: panel index -> record, false or nil where a panel has none.
local function group_score(g, npanels, memo)
  local rep, first
  local worst, why = 101, nil
  for p = 1, npanels do
    local s = g[p]
    if s then
      if not rep then
        rep, first = s, p
      elseif s.name == rep.name and s.type == rep.type and s.category == rep.category and
          s.min == rep.min and s.max == rep.max and s.refill == rep.refill and
          s.cancel == rep.cancel and type(s.min) == "number" and type(s.max) == "number" then
        -- the same service sold again (the common case): nothing to weigh
        if worst > 100 then worst = 100 end
      else
        local sc, name, category, lo, hi, refill, cancel = pair(rep, s, memo)
        if not sc then return nil end
        if sc < worst or (sc == worst and not why) then
          worst, why = sc, reason_of(rep, s, name, category, lo, hi, refill, cancel)
        end
      end
    end
  end
  if worst > 100 then return nil end
  return worst, first, why
end

-- A product name proposed for a group: its first service's name in lower case, each run of
-- anything but Latin letters and digits made one "-".
local function trim_dashes(v)
  if byte(v, 1) == 45 then v = sub(v, 2) end
  if byte(v, -1) == 45 then v = sub(v, 1, -2) end
  return v
end
local function slug(name)
  local v = trim_dashes(gsub(lower(name), "%W+", "-"))
  if v == "" or v == "-" then -- no Latin letter or digit: the name's own letters, emojis dropped
    v = trim_dashes(gsub(without_emojis(name), "[^%w\128-\255]+", "-"))
  end
  if v == "" or v == "-" then v = "product" end
  return v
end

local function check(lists, opts)
  if type(lists) ~= "table" then error("smm.router.match: suggest(lists, opts): lists must be a table", 3) end
  for i, l in ipairs(lists) do
    if type(l) ~= "table" or type(l.name) ~= "string" or type(l.services) ~= "table" then
      error("smm.router.match: suggest: lists[" .. i .. "] must be { name = text, services = list }", 3)
    end
  end
  for k, v in pairs(opts) do
    if k == "min_score" then
      if type(v) ~= "number" or v < 0 or v > 100 then
        error("smm.router.match: suggest: min_score must be a number 0-100, not " .. tostring(v), 3)
      end
    elseif k == "products" or k == "memo" then
      if type(v) ~= "table" then error("smm.router.match: suggest: " .. k .. " must be a table", 3) end
    else
      error("smm.router.match: suggest: unknown option '" .. tostring(k) .. "'", 3)
    end
  end
end

local function disjoint(a, b, npanels)
  for p = 1, npanels do
    if a[p] and b[p] then return false end
  end
  return true
end

local function absorb(into, g, npanels)
  for p = 1, npanels do
    if g[p] then
      into[p] = g[p]
      into.n = into.n + 1
    end
  end
end

-- Level 2b: the groups of one block scored pairwise, the best pairs merged first, never two
-- services of one panel in a group.
local function signature(g, npanels)
  local t = {}
  for p = 1, npanels do t[p] = g[p] and "1" or "0" end
  return concat(t)
end

local function merge_block(block, npanels, memo, min_score)
  -- only groups of disjoint panel sets can merge: compared by sets, never two of one set
  local sets, set_order = {}, {}
  for i, g in ipairs(block) do
    local sig = signature(g, npanels)
    local list = sets[sig]
    if not list then
      list = {}
      sets[sig] = list
      set_order[#set_order + 1] = sig
    end
    list[#list + 1] = i
  end
  local cands = {}
  for x = 1, #set_order - 1 do
    for y = x + 1, #set_order do
      local a, b = set_order[x], set_order[y]
      local apart = true
      for k = 1, npanels do
        if byte(a, k) == 49 and byte(b, k) == 49 then apart = false break end -- a panel in both
      end
      if apart then
        for _, i in ipairs(sets[a]) do
          local u = block[i]
          for _, j in ipairs(sets[b]) do
            local v = block[j]
            local sc = pair(u[u.first], v[v.first], memo)
            if sc and sc >= min_score then
              if i < j then cands[#cands + 1] = { sc, i, j } else cands[#cands + 1] = { sc, j, i } end
            end
          end
        end
      end
    end
  end
  sort(cands, function(x, y)
    if x[1] ~= y[1] then return x[1] > y[1] end
    if x[2] ~= y[2] then return x[2] < y[2] end
    return x[3] < y[3]
  end)
  local into = {}
  local function root(i) while into[i] do i = into[i] end return i end
  for _, c in ipairs(cands) do
    local a, b = root(c[2]), root(c[3])
    if a ~= b and disjoint(block[a], block[b], npanels) then
      absorb(block[a], block[b], npanels)
      into[b] = a
    end
  end
  local out = {}
  for i, g in ipairs(block) do if not into[i] then out[#out + 1] = g end end
  return out
end

local function first_of(g, npanels)
  for p = 1, npanels do if g[p] then return p end end
end

-- Suggestions worded on demand (see the top of this file). ctx: what one call found, in
-- arrays by position in its list (group, first panel index, reason or nil).
local LAZY = { services = true, records = true, reason = true, mapped = true, known = true }

local function fill(s, ctx, i)
  if rawget(s, "services") then return end
  local g, lists, known = ctx.groups[i], ctx.lists, ctx.known
  local services, records, mapped, kn, same = {}, {}, nil, nil, true
  for p = 1, ctx.npanels do
    local r = g[p]
    if r then
      local panel = lists[p].name
      local id = r.service
      services[panel], records[panel] = id, r
      local product = known[panel] and known[panel][id]
      if product then
        kn = kn or {}
        kn[panel] = product
      end
      if not product or (mapped and product ~= mapped) then same = false end
      mapped = mapped or product
    end
  end
  rawset(s, "services", services)
  rawset(s, "records", records)
  rawset(s, "mapped", same and mapped or nil)
  rawset(s, "known", (not same) and kn or nil)
  local reason = ctx.reasons[i]
  if not reason then
    local rep = g[ctx.firsts[i]]
    reason = reason_of(rep, rep, 100, 100, rep.min, rep.max, true, true)
  end
  rawset(s, "reason", reason)
end

local function name_all(ctx)
  if ctx.named then return end
  ctx.named = true
  local used = {}
  local lists, out = ctx.lists, ctx.out
  local mapped = {}
  for i, s in ipairs(out) do
    fill(s, ctx, i)
    -- a group holding a mapped service is named after its product (the panels' order decides)
    local m = rawget(s, "mapped")
    local kn = rawget(s, "known")
    if not m and kn then
      for _, l in ipairs(lists) do
        if kn[l.name] then m = kn[l.name] break end
      end
    end
    if m then used[m], mapped[i] = true, m end
  end
  for i, s in ipairs(out) do
    local name = mapped[i]
    if not name then
      local g = ctx.groups[i]
      name = slug(tostring(g[ctx.firsts[i]].name or ""))
      if used[name] then
        local n = 2
        while used[name .. "-" .. n] do n = n + 1 end
        name = name .. "-" .. n
      end
    end
    used[name] = true
    rawset(s, "product", name)
  end
end

-- One metatable per call: its __index knows the call's findings.
local function suggestion_mt(ctx)
  local mt = {}
  mt.__index = function(s, k)
    local i = ctx.pos[s]
    if not i then return nil end
    if k == "product" then
      name_all(ctx)
      return rawget(s, "product")
    elseif LAZY[k] then
      fill(s, ctx, i)
      return rawget(s, k)
    end
  end
  return mt
end

-- Every field of every suggestion worked out (plain tables from then on). Returns the list.
function M.plain(list)
  for _, s in ipairs(list) do
    local _ = s.product
    _ = s.services
  end
  return list
end

function M.suggest(lists, opts)
  opts = opts or {}
  check(lists, opts)
  local memo = opts.memo or M.memo()
  local min_score = opts.min_score or M.MIN_SCORE
  local npanels = #lists
  local known = {}
  for product, map in pairs(opts.products or {}) do
    for panel, id in pairs(map) do
      known[panel] = known[panel] or {}
      known[panel][id] = product
    end
  end

  -- 1. by exact name (and type): a group is a table panel index -> record (false: none; the
  -- array part made at once, never grown)
  local by_name, groups, ng = {}, {}, 0
  for p = 1, npanels do
    local list = lists[p].services
    for i = 1, #list do
      local s = list[i]
      local name = s.name
      local g = by_name[name]
      if g and not g[p] and (g[1] or g[first_of(g, npanels)]).type == s.type then
        g[p] = s
      else
        -- a new name; or a second service of one name on one panel, or of another type: a
        -- group of its own (the first one keeps the name)
        if npanels == 3 then g = { false, false, false }
        elseif npanels == 2 then g = { false, false }
        elseif npanels == 4 then g = { false, false, false, false }
        else g = {} end
        g[p] = s
        if by_name[name] == nil then by_name[name] = g end
        ng = ng + 1
        groups[ng] = g
      end
    end
  end

  local fgroups, fscores, ffirsts, freasons, nf = {}, {}, {}, {}, 0
  local function emit(g, score, first, reason)
    if score >= min_score then
      nf = nf + 1
      fgroups[nf], fscores[nf], ffirsts[nf], freasons[nf] = g, score, first, reason or false
    end
  end

  -- 2. the rest, a) by type and the full normalised name, b) by type and the name's key
  local rest = {}
  for k = 1, ng do
    local g = groups[k]
    local n = 0
    for p = 1, npanels do if g[p] then n = n + 1 end end
    local score, first, reason
    if n > 1 then score, first, reason = group_score(g, npanels, memo) end
    if n == npanels and score then
      emit(g, score, first, reason)
    elseif n > 1 and not score then
      for p = 1, npanels do
        if g[p] then rest[#rest + 1] = { n = 1, [p] = g[p] } end
      end
    else
      g.n = n
      rest[#rest + 1] = g
    end
  end
  for pass = 1, 3 do
    if npanels < 2 or #rest == 0 then break end
    local blocks, order, left_out = {}, {}, {}
    for _, g in ipairs(rest) do
      g.first = first_of(g, npanels)
      local rep = g[g.first]
      local info = name_info(memo, tostring(rep.name or ""))
      local k = pass == 1 and info.full or pass == 2 and info.key or info.coarse
      k = k and (type_of(memo.types, rep.type) .. "\0" .. k)
      if not k then
        left_out[#left_out + 1] = g
      else
        local b = blocks[k]
        if not b then
          b = {}
          blocks[k] = b
          order[#order + 1] = k
        end
        b[#b + 1] = g
      end
    end
    local left = left_out
    for _, k in ipairs(order) do
      local block = blocks[k]
      if pass == 1 then
        -- alike names: merged in order, as long as the panels differ
        local merged = {}
        for _, g in ipairs(block) do
          local placed = false
          for _, m in ipairs(merged) do
            if disjoint(m, g, npanels) then
              absorb(m, g, npanels)
              placed = true
              break
            end
          end
          if not placed then merged[#merged + 1] = g end
        end
        block = merged
      else
        local parts = {}
        for i = 1, #block, BLOCK_LIMIT do
          local part = {}
          for j = i, math.min(#block, i + BLOCK_LIMIT - 1) do part[#part + 1] = block[j] end
          parts[#parts + 1] = part
        end
        block = {}
        for _, part in ipairs(parts) do
          for _, g in ipairs(merge_block(part, npanels, memo, min_score)) do block[#block + 1] = g end
        end
      end
      for _, g in ipairs(block) do
        if g.n == npanels then
          local score, first, reason = group_score(g, npanels, memo)
          if score then
            emit(g, score, first, reason)
          elseif pass == 1 then
            for p = 1, npanels do
              if g[p] then left[#left + 1] = { n = 1, [p] = g[p] } end
            end
          end
        else
          left[#left + 1] = g
        end
      end
    end
    rest = left
  end
  -- what found no service of every panel: groups of two or more panels
  for _, g in ipairs(rest) do
    if g.n > 1 then
      local score, first, reason = group_score(g, npanels, memo)
      if score then emit(g, score, first, reason) end
    end
  end

  -- 3. best first (a counting sort: scores are 0-100), in the order found within a score
  local buckets = {}
  for i = 1, nf do
    local sc = fscores[i]
    local b = buckets[sc]
    if not b then b = {} buckets[sc] = b end
    b[#b + 1] = i
  end
  local out = {}
  local ctx = { lists = lists, known = known, npanels = npanels, out = out, groups = {},
    firsts = {}, reasons = {}, pos = setmetatable({}, { __mode = "k" }) }
  local cgroups, cfirsts, creasons, pos = ctx.groups, ctx.firsts, ctx.reasons, ctx.pos
  local mt = suggestion_mt(ctx)
  local n = 0
  for score = 100, 0, -1 do
    local b = buckets[score]
    if b then
      for _, i in ipairs(b) do
        n = n + 1
        local s = setmetatable({ score = score }, mt)
        out[n], pos[s] = s, n
        cgroups[n], cfirsts[n], creasons[n] = fgroups[i], ffirsts[i], freasons[i] or nil
      end
    end
  end
  return out
end

return M
