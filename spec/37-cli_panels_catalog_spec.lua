-- Issue 13, the command line over the catalog of several panels: `smm match` (suggested
-- products, printed so that the accepted lines paste into [products]) and `smm watch` (what
-- the panels changed since the last snapshot). Real `smm` processes, three real sandbox panels
-- with their own keys and prices, a real SQLite book in a temporary folder.
local env = require "helpers.env"
local cli = require "helpers.cli"
local smm_lib = require "smm"

describe("smm over several panels: match and watch", function()
  local sbs, keys, dir, vars, path, n

  local function smm(words, opts)
    opts = opts or {}
    local e = {}
    for k, v in pairs(vars) do e[k] = v end
    for k, v in pairs(opts.env or {}) do e[k] = v end
    return cli.run(words, { env = e, cwd = dir, stdin = opts.stdin })
  end

  local function write_config(products, extra_panels)
    path = dir .. "/config"
    cli.write_file(path, table.concat({
      "[profile default]",
      "book = sqlite:" .. dir .. "/orders" .. n .. ".db",
      "",
      "[panel a]",
      "url = " .. sbs.a.url,
      "key = " .. keys.a,
      "retries = 0",
      "",
      "[panel b]",
      "url = " .. sbs.b.url,
      "key = " .. keys.b,
      "retries = 0",
      "",
      "[panel c]",
      "url = " .. sbs.c.url,
      "key = " .. keys.c,
      "retries = 0",
      extra_panels or "",
      "[products]",
      products or "ig-followers = a:1, b:1, c:1\nig-likes = b:3, c:3",
    }, "\n") .. "\n")
    os.execute("chmod 600 " .. cli.quote(path))
    vars.SMM_CONFIG = path
  end

  setup(function()
    dir = cli.tmpdir()
    keys = { a = env.KEY .. "-a", b = env.KEY .. "-b", c = env.KEY .. "-c" }
    sbs = {
      a = env.sandbox{ key = keys.a, rates_for = keys.a .. "=3" },
      b = env.sandbox{ key = keys.b },
      c = env.sandbox{ key = keys.c, rates_for = keys.c .. "=2" },
    }
    vars = { XDG_CONFIG_HOME = dir .. "/xdg", HOME = dir, XDG_DATA_HOME = dir .. "/data" }
    n = 0
  end)

  teardown(function()
    for _, sb in pairs(sbs) do sb:stop() end
    local files = {}
    local p = io.popen("find " .. cli.quote(dir) .. " -type f")
    for f in p:lines() do
      if f ~= path then files[#files + 1] = f end -- (the config file holds the keys)
    end
    p:close()
    local leaked, where = cli.leaks(env.KEY, files)
    assert.is_false(leaked, "a key leaked into " .. tostring(where))
    os.execute("rm -rf " .. cli.quote(dir))
  end)

  before_each(function()
    for _, sb in pairs(sbs) do
      sb:reset()
      sb:services{ count = 0 } -- the built-in catalogue again
    end
    n = n + 1
    write_config()
  end)

  describe("smm match", function()
    it("suggestions with scores and reasons; the accepted lines paste into [products]", function()
      local r = smm("match")
      assert.equal(0, r.code, r.err)
      -- a product already mapped: shown, commented out
      assert.truthy(r.out:find("\n# ig%-followers = a:1, b:1, c:1   %(already in %[products%]%)\n"), r.out)
      -- a product gaining a panel keeps its name; its line replaces the old one
      assert.truthy(r.out:find("# adds panels to ig-likes: this line replaces its line\nig-likes = a:3, b:3, c:3\n",
        1, true), r.out)
      -- a new product: a score, the reasons, each member, then the line
      local block = r.out:match("(# score (%d+): [^\n]*\n#   a:4 [^\n]*\n#   b:4 [^\n]*\n#   c:4 [^\n]*\n[^#\n][^\n]*)\n")
      assert.truthy(block, r.out)
      assert.truthy(block:find("same type Default", 1, true), block)
      assert.truthy(block:find("#   b:4  YouTube Views", 1, true), block)
      local line = block:match("\n([^#\n][^\n]*)$")
      assert.truthy(line:find("^[%w_.%-]+ = a:4, b:4, c:4$"), line)
      -- paste every line that is not a comment into [products] (ig-likes' new line replacing the old)
      local pasted = {}
      for l in r.out:gmatch("[^\n]+") do
        if not l:find("^#") then pasted[#pasted + 1] = l end
      end
      assert.truthy(#pasted >= 5, r.out)
      write_config("ig-followers = a:1, b:1, c:1\n" .. table.concat(pasted, "\n"))
      local c = smm("config --json")
      assert.equal(0, c.code, c.err)
      local products = cli.json(c.out).products
      assert.same({ a = 3, b = 3, c = 3 }, products["ig-likes"])
      assert.same({ a = 4, b = 4, c = 4 }, products[line:match("^(%S+)")])
      -- and with them all mapped, nothing is left to suggest but commented lines
      r = smm("match")
      assert.equal(0, r.code, r.err)
      for l in r.out:gmatch("[^\n]+") do assert.truthy(l:find("^#"), l) end
    end)

    it("--json: each suggestion's product, score, services, members, reasons and line", function()
      local r = smm("match --json")
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.truthy(#doc >= 5)
      local likes
      for _, s in ipairs(doc) do
        if s.product == "ig-likes" then likes = s end
        assert.truthy(s.score >= 60 and s.score <= 100, s.score)
      end
      assert.truthy(likes)
      assert.same({ a = 3, b = 3, c = 3 }, likes.services)
      assert.equal("ig-likes", likes.extends)
      assert.equal("ig-likes = a:3, b:3, c:3", likes.line)
      assert.equal(3, #likes.members)
      assert.equal("0.35", likes.members[2].rate) -- b's own price
      assert.equal("1.05", likes.members[1].rate) -- a's: three times
      assert.truthy(#likes.reasons >= 3)
    end)

    it("--min-score: out of 0-100 or not a number refused; a panel down left out, exit 3", function()
      for _, bad in ipairs{ "101", "-1", "abc" } do
        local r = smm("match --min-score " .. bad)
        assert.equal(1, r.code)
        assert.truthy(r.err:find("option --min-score must be a number from 0 to 100", 1, true), r.err)
      end
      write_config(nil, "\n[panel d]\nurl = http://127.0.0.1:" .. env.closed_port() .. "/api/v2\nkey = " ..
        env.KEY .. "-d\nretries = 0\n")
      local r = smm("match --json")
      assert.equal(3, r.code, r.err)
      assert.truthy(r.err:find("smm: panel d: network", 1, true), r.err)
      assert.truthy(#cli.json(r.out) >= 5)
    end)

    it("--panel does not apply to match and watch (they compare every panel)", function()
      for _, command in ipairs{ "match", "watch" } do
        local r = smm(command .. " --panel a")
        assert.equal(1, r.code)
        assert.equal("smm: option --panel does not apply to 'smm " .. command .. "'\n", r.err)
      end
      assert.equal(0, sbs.a:stats().requests)
    end)

    it("one panel: nothing to compare, a usage error", function()
      cli.write_file(path, "[panel a]\nurl = " .. sbs.a.url .. "\nkey = " .. keys.a .. "\n")
      local r = smm("match")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("compares the services of two panels or more", 1, true), r.err)
    end)
  end)

  describe("smm watch", function()
    -- the events the book's outbox holds, as a Lua hook gets them
    local function outbox()
      local book = assert(smm_lib.book.open("sqlite:" .. dir .. "/orders" .. n .. ".db"))
      local got = {}
      assert(book:deliver({ { fn = function(e) got[#got + 1] = e return true end } }))
      book:close()
      return got
    end

    local function by_type(lines)
      local out = {}
      for line in lines:gmatch("[^\n]+") do
        local e = cli.json(line)
        out[e.type .. ":" .. tostring(e.panel)] = e
      end
      return out
    end

    it("the first run is the baseline; then each change once: a rate up, a service gone, new bounds, " ..
      "a product's cheapest panel", function()
      local r = smm("watch")
      assert.equal(0, r.code, r.err)
      assert.equal("no changes since the last snapshots\n", r.out)
      r = smm("watch --json")
      assert.equal(0, r.code, r.err)
      assert.equal("", r.out)
      sbs.a:services{ service = 1, rate = "1.00" } -- a sells at 3x: 2.70 -> 3.00
      sbs.b:services{ service = 3, remove = 1 }    -- ig-likes' cheapest panel drops it
      sbs.c:services{ service = 1, min = 100 }
      r = smm("watch --json")
      assert.equal(0, r.code, r.err)
      local events = by_type(r.out)
      local rate = events["service.rate:a"]
      assert.truthy(rate, r.out)
      assert.same({ service = 1, old = "2.70", new = "3.00", direction = "up", percent = "11.11" },
        { service = rate.data.service, old = rate.data.old, new = rate.data.new, direction = rate.data.direction,
          percent = rate.data.percent })
      assert.equal(3, events["service.removed:b"].data.service)
      local b = events["service.bounds:c"].data
      assert.same({ 50, 100, 10000, 10000 }, { b.old_min, b.new_min, b.old_max, b.new_max })
      local cheapest
      for _, e in pairs(events) do
        if e.type == "product.cheapest" and e.data.product == "ig-likes" then cheapest = e end
      end
      assert.truthy(cheapest, r.out)
      assert.same({ "b", "c" }, { cheapest.data.old_panel, cheapest.data.new_panel })
      -- the same changes are events in the book's outbox, for the hooks
      local types = {}
      for _, e in ipairs(outbox()) do types[e.type] = (types[e.type] or 0) + 1 end
      assert.equal(1, types["service.rate"])
      assert.equal(1, types["service.removed"])
      assert.equal(1, types["service.bounds"])
      -- told once: the next run finds nothing new
      r = smm("watch")
      assert.equal(0, r.code, r.err)
      assert.equal("no changes since the last snapshots\n", r.out)
    end)

    it("a table: each change with its before and after", function()
      assert.equal(0, smm("watch").code)
      sbs.a:services{ service = 4, rate = "1.00" } -- 3.7035 -> 3.00 at a's 3x
      sbs.b:services{ service = 3, refill = 1 }
      sbs.c:services{ service = 99, name = "TikTok Saves", type = "Default", rate = "0.50", min = 10, max = 1000 }
      local r = smm("watch")
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("^PANEL%s+CHANGE%s+SERVICE%s+NAME%s+BEFORE%s+AFTER\n"), r.out)
      assert.truthy(r.out:find("\na%s+rate down%s+4%s+YouTube Views[^\n]-3%.7035%s+3%.00 %(%-19%.00%%%)\n"), r.out)
      assert.truthy(r.out:find("\nb%s+refill%s+3%s+Instagram Likes[^\n]-refill no%s+refill yes\n"), r.out)
      assert.truthy(r.out:find("\nc%s+added%s+99%s+TikTok Saves%s+rate 1%.00, 10%-1000\n"), r.out)
    end)

    it("a panel that cannot be listed: named, the others compared, exit 3", function()
      write_config(nil, "\n[panel d]\nurl = http://127.0.0.1:" .. env.closed_port() .. "/api/v2\nkey = " ..
        env.KEY .. "-d\nretries = 0\n")
      local r = smm("watch")
      assert.equal(3, r.code, r.err)
      assert.truthy(r.err:find("smm: panel d: network", 1, true), r.err)
      sbs.b:services{ service = 1, max = 5000 }
      r = smm("watch --json")
      assert.equal(3, r.code, r.err)
      local events = by_type(r.out)
      assert.equal(5000, events["service.bounds:b"].data.new_max)
    end)
  end)
end)
