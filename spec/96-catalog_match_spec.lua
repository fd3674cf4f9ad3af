-- Product suggestions (smm.router.match through the catalog): three real sandbox panels selling
-- realistic catalogues, spelled as resellers spell them ("Instagram Followers [Refill 30D]",
-- "IG Followers - R30", "Insta Followers (30 days refill)"), grouped across panels with a score
-- and the reason; what is not the same thing (another type, bounds apart, likes vs followers)
-- is kept apart; services already in the products map are shown as such.
local smm = require "smm"
local sandbox = require "helpers.sandbox"
local catalog = require "smm.router.catalog"
local match = require "smm.router.match"

local A = {
  { service = 1, name = "Instagram Followers [Refill 30D]", type = "Default",
    category = "Instagram Followers", rate = "0.90", min = 50, max = 10000, refill = true, cancel = true },
  { service = 2, name = "Instagram Likes [No Refill] \226\154\161", type = "Default",
    category = "Instagram Likes", rate = "0.10", min = 10, max = 5000, refill = false, cancel = false },
  { service = 3, name = "YouTube Views [Lifetime Guarantee]", type = "Default", category = "YouTube Views",
    rate = "1.20", min = 100, max = 100000, refill = true, cancel = false },
  { service = 4, name = "Instagram Custom Comments", type = "Custom Comments",
    category = "Instagram Comments", rate = "8", min = 10, max = 1000, refill = false, cancel = true },
  { service = 5, name = "Telegram Channel Members", type = "Default", category = "Telegram",
    rate = "1.50", min = 100, max = 1000, refill = false, cancel = false },
  { service = 6, name = "Spotify Plays [Premium]", type = "Default", category = "Spotify",
    rate = "0.55", min = 1000, max = 5000000, refill = true, cancel = true },
}
local B = {
  { service = 17, name = "IG Followers - R30", type = "Default", category = "Instagram",
    rate = "0.85", min = 100, max = 20000, refill = true, cancel = false },
  { service = 18, name = "IG Likes | Instant", type = "Default", category = "Instagram",
    rate = "0.08", min = 20, max = 10000, refill = false, cancel = false },
  { service = 19, name = "YT Views - Lifetime", type = "Default", category = "Youtube",
    rate = "1.10", min = 500, max = 1000000, refill = true, cancel = false },
  -- custom comments sold as a plain service: another type, never the same product
  { service = 20, name = "IG Custom Comments", type = "Default", category = "Instagram",
    rate = "7", min = 10, max = 1000, refill = false, cancel = true },
  -- the same name, quantities that never meet: not the same product
  { service = 21, name = "Telegram Channel Members", type = "Default", category = "Telegram",
    rate = "1.40", min = 5000, max = 100000, refill = false, cancel = false },
  { service = 22, name = "Spotify Plays [Premium]", type = "Default", category = "Spotify",
    rate = "0.50", min = 1000, max = 5000000, refill = true, cancel = true },
}
local C = {
  { service = 300, name = "\240\159\148\165 Insta Followers (30 days refill)", type = "Default",
    category = "IG | Followers", rate = "1.05", min = 20, max = 50000, refill = true, cancel = true },
  { service = 301, name = "Instagram Post Likes", type = "Default", category = "Instagram Likes",
    rate = "0.12", min = 10, max = 20000, refill = false, cancel = false },
  { service = 302, name = "Spotify Plays [Premium]", type = "Default", category = "Spotify",
    rate = "0.60", min = 1000, max = 1000000, refill = true, cancel = true },
}

local function find(list, panel, id)
  for _, s in ipairs(list) do
    if s.services[panel] == id then return s end
  end
end

describe("product suggestions across panels", function()
  local sbs, cat
  setup(function()
    sbs = { a = sandbox.start{ services = A }, b = sandbox.start{ services = B },
      c = sandbox.start{ services = C } }
  end)
  teardown(function() for _, sb in pairs(sbs or {}) do sb:stop() end end)
  before_each(function()
    for _, sb in pairs(sbs) do sb:reset() end
    local panels = {}
    for _, name in ipairs{ "a", "b", "c" } do
      panels[#panels + 1] = { name = name, client = smm.new{ url = sbs[name].url, key = "sandbox-key" } }
    end
    cat = catalog.new{ panels = panels, products = { spotify = { a = 6, b = 22 } } }
  end)

  it("groups the same service spelled three ways, with a score and the reason", function()
    local list, errs = cat:suggest()
    assert.is_nil(errs)
    local followers = assert(find(list, "a", 1))
    assert.are.same({ a = 1, b = 17, c = 300 }, followers.services)
    assert.is_true(followers.score >= 60 and followers.score < 100)
    assert.are.equal("instagram-followers-refill-30d", followers.product)
    local r = followers.reason
    assert.are.equal("Default", r.type)
    assert.is_false(r.same_name)
    assert.are.equal(100, r.name)       -- the same words once folded: IG = Insta = Instagram
    assert.are.same({ 100, 10000 }, { r.min, r.max }) -- the quantities every panel takes
    assert.is_true(r.refill)           -- refill on all, 30 days stated by all three
    local words = match.explain(followers)
    assert.are.equal("same type Default", words[1])
    assert.are.equal("names alike (100%)", words[2])
    assert.is_truthy(words[4]:find("quantities 100-10000", 1, true))
    assert.are.same(followers.records.b, (function()
      for _, s in ipairs(cat:list("b")) do if s.service == 17 then return s end end
    end)())
    -- likes: a and b alike; c's "Post Likes" too
    local likes = assert(find(list, "a", 2))
    assert.are.equal(18, likes.services.b)
    assert.are.equal(301, likes.services.c)
    local views = assert(find(list, "a", 3))
    assert.are.same({ a = 3, b = 19 }, views.services)
    -- best first
    for i = 2, #list do assert.is_true(list[i - 1].score >= list[i].score) end
  end)

  it("keeps apart what is not the same thing", function()
    local list = cat:suggest()
    -- another type
    assert.is_nil(find(list, "a", 4))
    assert.is_nil(find(list, "b", 20))
    -- the same name, bounds that never meet
    assert.is_nil(find(list, "a", 5))
    assert.is_nil(find(list, "b", 21))
    local _, why = match.score(A[5], B[5])
    assert.are.equal("bounds do not overlap", why)
    _, why = match.score(A[4], B[4])
    assert.are.equal("types differ", why)
    -- spelled apart, the same network
    local sc, reason = match.score({ name = "TikTok Views", type = "Default", min = 1, max = 10 },
      { name = "Tik-Tok Views \240\159\154\128", type = "Default", min = 5, max = 50 })
    assert.are.equal(100, reason.name)
    assert.is_true(sc >= 60)
    -- followers are not likes
    local followers = find(list, "a", 1)
    assert.are_not.equal(18, followers.services.b)
    for _, s in ipairs(list) do
      local n = 0
      for _ in pairs(s.services) do n = n + 1 end
      assert.is_true(n >= 2)
    end
  end)

  it("shows services already in the map as such", function()
    local list = cat:suggest()
    local spotify = assert(find(list, "a", 6))
    assert.are.same({ a = 6, b = 22, c = 302 }, spotify.services)
    assert.are.equal("spotify", spotify.product) -- named after the product it already is
    assert.is_nil(spotify.mapped)                  -- c's service is not in it yet
    assert.are.same({ a = "spotify", b = "spotify" }, spotify.known)
    -- once all are mapped, the suggestion says so
    local mapped = catalog.new{ panels = { cat.panels.a, cat.panels.b, cat.panels.c },
      products = { spotify = { a = 6, b = 22, c = 302 } } }
    spotify = find(mapped:suggest(), "a", 6)
    assert.are.equal("spotify", spotify.mapped)
    assert.is_nil(spotify.known)
    local words = match.explain(spotify)
    assert.are.equal("already the product spotify", words[#words])
  end)

  it("min_score leaves out weaker groups; a panel that cannot answer is reported", function()
    local all = cat:suggest()
    local strict = cat:suggest{ min_score = 95 }
    assert.is_true(#strict < #all)
    for _, s in ipairs(strict) do assert.is_true(s.score >= 95) end
    assert.has_error(function() cat:suggest{ min_scor = 95 } end,
      "smm.router.catalog: suggest: unknown option 'min_scor'")
    assert.has_error(function() match.suggest({}, { min_score = "high" }) end)
    sbs.c:fault("html503", { action = "services", times = 10 })
    cat.panels.c.client.catalog:clear()
    local list, errs = cat:suggest()
    assert.is_truthy(errs.c)
    assert.is_truthy(find(list, "a", 1))
    assert.is_nil(find(list, "a", 1).services.c)
  end)

  it("merges big lists by blocks: the same names on three panels, and names spelled apart", function()
    for _, sb in pairs(sbs) do sb:services{ count = 3000 } end
    local lists = {}
    for _, name in ipairs{ "a", "b", "c" } do
      local l = assert(cat.panels[name].client:services{ refresh = true })
      lists[#lists + 1] = { name = name, services = l }
    end
    local out = match.suggest(lists)
    assert.are.equal(3000, #out)
    for i = 1, 3000, 499 do
      local s = out[i]
      assert.are.equal(s.services.a, s.services.b)
      assert.are.equal(s.services.a, s.services.c)
    end
    -- b and c spell every name their own way: grouped by the normalised names
    for p = 2, 3 do
      for _, s in ipairs(lists[p].services) do
        local net, what, n = s.name:match("^(%S+) (%S+) %[Server (%d+)%]$")
        net = ({ Instagram = "IG", YouTube = "YT", TikTok = "TT" })[net] or net
        s.name = p == 2 and (net .. " " .. what .. " - Server " .. n) or
          (what .. " " .. net .. " (Srv " .. n .. ") \240\159\154\128")
      end
    end
    out = match.suggest(lists)
    assert.are.equal(3000, #out)
    for _, s in ipairs(out) do
      assert.are.equal(s.services.a, s.services.b)
      assert.are.equal(s.services.a, s.services.c)
    end
  end)
end)
