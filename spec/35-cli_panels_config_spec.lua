-- Issue 13, the command line for several panels: the config file's [panel NAME] sections and
-- [products] map (every malformed line named), and --panel NAME choosing the panel of the
-- single-panel commands. Real `smm` processes against three real sandbox panels, each with its
-- own key and its own prices.
local env = require "helpers.env"
local cli = require "helpers.cli"

describe("smm with several panels: config and --panel", function()
  local sbs, keys, dir, vars

  local function smm(words, opts)
    opts = opts or {}
    local e = {}
    for k, v in pairs(vars) do e[k] = v end
    for k, v in pairs(opts.env or {}) do e[k] = v end
    return cli.run(words, { env = e, cwd = dir, stdin = opts.stdin })
  end

  local function config(text)
    local path = dir .. "/config"
    cli.write_file(path, text)
    os.execute("chmod 600 " .. cli.quote(path))
    return path
  end

  -- three panels: a (rates x3), b (x1), c (x2); keys of their own
  local function three_panels(extra)
    return table.concat({
      "[profile default]",
      "book = sqlite:" .. dir .. "/orders.db",
      "",
      "[panel a]",
      "url = " .. sbs.a.url,
      "key = " .. keys.a,
      "low_balance = 5.00",
      "",
      "[panel b]",
      "url = " .. sbs.b.url,
      "key_env = PANEL_B_KEY",
      "timeout = 5000",
      "",
      "[panel c]",
      "url = " .. sbs.c.url,
      "key_file = " .. dir .. "/c.key",
      "",
      "[products]",
      "ig-followers = a:1, b:1, c:1",
      "ig-likes = b:3, c:3",
    }, "\n") .. "\n" .. (extra or "")
  end

  local function requests(name) return env.count(sbs[name]) end

  setup(function()
    dir = cli.tmpdir()
    keys = { a = env.KEY .. "-a", b = env.KEY .. "-b", c = env.KEY .. "-c" }
    sbs = {
      a = env.sandbox{ key = keys.a, rates_for = keys.a .. "=3" },
      b = env.sandbox{ key = keys.b },
      c = env.sandbox{ key = keys.c, rates_for = keys.c .. "=2" },
    }
    cli.write_file(dir .. "/c.key", keys.c .. "\n")
    vars = { XDG_CONFIG_HOME = dir .. "/xdg", HOME = dir, XDG_DATA_HOME = dir .. "/data",
             PANEL_B_KEY = keys.b }
  end)

  teardown(function()
    for _, sb in pairs(sbs) do sb:stop() end
    local leaked, where = cli.leaks(env.KEY, { dir .. "/orders.db" })
    assert.is_false(leaked, "a key was printed: " .. tostring(where))
    os.execute("rm -rf " .. cli.quote(dir))
  end)

  before_each(function()
    for _, sb in pairs(sbs) do sb:reset() end
  end)

  describe("--panel NAME", function()
    it("balance --panel b asks panel b only, with b's key from key_env", function()
      local path = config(three_panels())
      local r = smm("balance --panel b --json --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      assert.same({ balance = "100.00", currency = "USD" }, cli.json(r.out))
      assert.equal(1, requests("b"))
      assert.equal(0, requests("a"))
      assert.equal(0, requests("c"))
    end)

    it("services --panel a shows a's prices, --panel c c's (key_file)", function()
      local path = config(three_panels())
      local r = smm("services --panel a --json --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      local by_id = {}
      for _, s in ipairs(cli.json(r.out)) do by_id[s.service] = s end
      assert.equal("2.70", by_id[1].rate)
      r = smm("services --panel c --json --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      by_id = {}
      for _, s in ipairs(cli.json(r.out)) do by_id[s.service] = s end
      assert.equal("1.80", by_id[1].rate)
      assert.equal(1, requests("a"))
      assert.equal(1, requests("c"))
      assert.equal(0, requests("b"))
    end)

    it("status --panel a ID asks a for its order, not b for b's order of the same id", function()
      local path = config(three_panels())
      -- order 1 on a and order 1 on b: ids collide across panels
      sbs.a:admin("bulk", { count = 1, service = 1, link = "https://x.example/a", quantity = 100 })
      sbs.b:admin("bulk", { count = 1, service = 1, link = "https://x.example/b", quantity = 200 })
      local r = smm("status 1 --panel a --json --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal(1, doc[1].order)
      assert.equal("0.09", doc[1].charge) -- a's order 1: 100 (placed without a key: the list rate)
      assert.equal(100, doc[1].remains)
      r = smm("status 1 --panel b --json --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      assert.equal("0.18", cli.json(r.out)[1].charge) -- b's order 1: 200
      assert.equal(200, cli.json(r.out)[1].remains)
    end)

    it("several panels and none chosen: an error listing them, exit 1, nothing sent", function()
      local path = config(three_panels())
      for _, words in ipairs{ "balance", "services", "status 1", "add --service 1 --link x --quantity 100 --yes" } do
        local r = smm(words .. " --config " .. cli.quote(path))
        assert.equal(1, r.code, words)
        assert.truthy(r.err:find("several panels in " .. path .. " (a, b, c): choose one with --panel NAME",
          1, true), r.err)
      end
      local r = smm("balance --json --config " .. cli.quote(path))
      assert.equal("usage", cli.json(r.out).error.kind)
      for _, name in ipairs{ "a", "b", "c" } do assert.equal(0, requests(name)) end
    end)

    it("an unknown panel, --panel with --url, --key or --profile: refused, nothing sent", function()
      local path = config(three_panels())
      local r = smm("balance --panel d --config " .. cli.quote(path))
      assert.equal(1, r.code)
      assert.equal("smm: no panel 'd' in " .. path .. " (panels: a, b, c)\n", r.err)
      r = smm("balance --panel bee --config " .. cli.quote(path))
      assert.truthy(r.err:find("did you mean 'b'?", 1, true) == nil)
      r = smm("balance --panel b --url " .. sbs.a.url .. " --config " .. cli.quote(path))
      assert.equal(1, r.code)
      assert.truthy(r.err:find("--panel and --url together", 1, true), r.err)
      r = smm("balance --panel b --key x --config " .. cli.quote(path))
      assert.truthy(r.err:find("--panel and --key together", 1, true), r.err)
      r = smm("balance --panel b --profile default --config " .. cli.quote(path))
      assert.truthy(r.err:find("--panel and --profile together", 1, true), r.err)
      for _, name in ipairs{ "a", "b", "c" } do assert.equal(0, requests(name)) end
    end)

    it("a panel whose key_env is unset or key_file unreadable: named, nothing sent", function()
      local path = config(three_panels())
      local r = smm("balance --panel b --config " .. cli.quote(path), { env = { PANEL_B_KEY = false } })
      assert.equal(1, r.code)
      assert.equal("smm: panel 'b': key_env names PANEL_B_KEY, which is not set\n", r.err)
      -- a command that reads only the book needs no key
      r = smm("orders --panel b --json --config " .. cli.quote(path), { env = { PANEL_B_KEY = false } })
      assert.equal(0, r.code, r.err)
      assert.same({}, cli.json(r.out))
      os.rename(dir .. "/c.key", dir .. "/c.key.moved")
      r = smm("balance --panel c --config " .. cli.quote(path))
      os.rename(dir .. "/c.key.moved", dir .. "/c.key")
      assert.equal(1, r.code)
      assert.truthy(r.err:find("^smm: panel 'c': cannot read key_file: "), r.err)
      for _, name in ipairs{ "b", "c" } do assert.equal(0, requests(name)) end
    end)

    it("one panel and nothing else: that panel, without --panel", function()
      local path = config("[panel only]\nurl = " .. sbs.c.url .. "\nkey = " .. keys.c .. "\n")
      local r = smm("balance --json --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      assert.equal(1, requests("c"))
    end)

    it("a single-panel profile beside the panels still works as before", function()
      local path = config("[profile default]\nurl = " .. sbs.a.url .. "\nkey = " .. keys.a .. "\n\n" ..
        "[panel b]\nurl = " .. sbs.b.url .. "\nkey = " .. keys.b .. "\n")
      local r = smm("balance --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      assert.equal(1, requests("a"))
      r = smm("balance --panel b --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      assert.equal(1, requests("b"))
    end)

    it("smm config: the panels (keys ***, where each comes from) and the products", function()
      local path = config(three_panels())
      local r = smm("config --json --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      local doc = cli.json(r.out)
      assert.equal(3, #doc.panels)
      assert.same({ name = "b", url = sbs.b.url, key = "***", key_source = "panel b, $PANEL_B_KEY" },
        doc.panels[2])
      assert.equal("5.00", doc.panels[1].low_balance)
      assert.same({ ["ig-followers"] = { a = 1, b = 1, c = 1 }, ["ig-likes"] = { b = 3, c = 3 } }, doc.products)
      r = smm("config --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      assert.truthy(r.out:find("panels    a, b, c", 1, true), r.out)
      assert.truthy(r.out:find("product ig-followers = a:1, b:1, c:1", 1, true), r.out)
      assert.is_nil(r.out:find(env.KEY, 1, true))
    end)
  end)

  describe("the config file", function()
    -- (text, the line and message expected)
    local cases = {
      { "[panel a]\nurl = http://x/api/v2\nkey = k\n[panel a]\nurl = http://y/api/v2\n",
        ":4: panel 'a' is defined twice" },
      { "[panel a b]\nurl = http://x\n", ":1: a panel's name is letters, digits, '_', '-' or '.', got 'a b'" },
      { "[panel a]\nkey = k\n", ":1: panel 'a' has no url" },
      { "[panel a]\nurl = http://x\nkey = k\nkey_env = K\n", ":1: panel 'a' has more than one of key, key_env" },
      { "[panel a]\nurl = http://x\nkey_env = 9bad\n", ":3: 'key_env' must name an environment variable" },
      { "[panel a]\nurl = http://x\nlow_balance = five\n", ":3: 'low_balance' must be a decimal amount" },
      { "[panel a]\nurl = http://x\nbook = sqlite:/tmp/x.db\n", ":3: 'book' belongs in a [profile] section" },
      { "[panel a]\nurl = http://x\ncolour = red\n", ":3: unknown option 'colour'" },
      { "[panel a]\nurl = http://x\nkey = k\n[products]\nig = a17\n",
        ":5: product 'ig': 'a17' is not panel:service (like a:17)" },
      { "[panel a]\nurl = http://x\nkey = k\n[products]\nig = a:0\n",
        ":5: product 'ig': 'a:0' is not panel:service" },
      { "[panel a]\nurl = http://x\nkey = k\n[products]\nig = a:1,\n",
        ":5: product 'ig': '' is not panel:service" },
      { "[panel a]\nurl = http://x\nkey = k\n[products]\nig = a:1, a:2\n",
        ":5: product 'ig' names panel 'a' twice (one service a panel)" },
      { "[panel a]\nurl = http://x\nkey = k\n[products]\nig = a:1\nig = a:2\n",
        ":6: product 'ig' is defined twice" },
      { "[products]\nig = a:1\n\nlikes = a:2, z:3, y:4\n[panel a]\nurl = http://x\nkey = k\n",
        ":4: product 'likes' names unknown panels 'y', 'z' (panels: a)" },
      { "[products]\nig = q:1\n", ":2: product 'ig' names an unknown panel 'q' (no [panel NAME] sections)" },
      { "[products]\nig\n", ":2: expected product = panel:service, panel:service" },
      { "[products]\n[products]\n", ":2: [products] is defined twice" },
    }
    for i, case in ipairs(cases) do
      it("refuses a bad line, naming it: " .. case[2], function()
        local path = config(case[1])
        for _, words in ipairs{ "config", "balance --panel a" } do
          local r = smm(words .. " --config " .. cli.quote(path))
          assert.equal(1, r.code, "case " .. i .. ": " .. r.err)
          assert.truthy(r.err:find("smm: " .. path .. case[2], 1, true), "case " .. i .. ": " .. r.err)
        end
      end)
    end

    it("a product line may have spaces anywhere, a product any name a panel may have", function()
      local path = config(three_panels("  tiktok.views_2  =  b : 5 ,c:5  \n"))
      local r = smm("config --json --config " .. cli.quote(path))
      assert.equal(0, r.code, r.err)
      assert.same({ b = 5, c = 5 }, cli.json(r.out).products["tiktok.views_2"])
    end)

    it("keys in [panel] sections readable by others: the usual warning", function()
      local path = config(three_panels())
      os.execute("chmod 644 " .. cli.quote(path))
      local r = smm("config --config " .. cli.quote(path))
      assert.truthy(r.err:find("holds API keys and others can read it", 1, true), r.err)
    end)
  end)
end)
